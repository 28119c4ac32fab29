"""DeepLabCut's model folders: its ``snapshot-NNN.pt`` files <-> the contents of our snapshots.

A DeepLabCut 3 shuffle keeps its model in ``dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>
shuffle<n>/train/``: ``pytorch_config.yaml`` (``net_type``, ``method``, ``metadata``, ``detector``) and
snapshots ``{"model": state_dict, "metadata": {"epoch", "metrics", "losses"}, ["optimizer", "scheduler"]}``
(deeplabcut/pose_estimation_pytorch/runners/snapshots.py). Our state dict keys equal DeepLabCut's (the
identity key map, docs/architecture.md), so a snapshot moves between the engines by renaming the
container's keys only: ours keep the model's weights under ``state_dict`` with a ``model.`` prefix
(``detector.`` for a detector) beside ``run_config`` and ``project_meta``.

Reading a ``.pt`` here rebuilds that run config from the folder: our ``conf/model/<net_type>.yaml``
(DeepLabCut's architecture for that net_type), ``conf/detector/<variant>.yaml`` for a top-down model,
and the shuffle's data, found by walking up from the folder to the project's ``config.yaml``. The
file's model section (detector, its box threshold, the PAF assembly) is read with the functions training
reads it with (:mod:`lightning_dlc.project.pytorch_config_read`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from lightning_dlc.config_compose import CONF_DIR, compose_train
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, read_pytorch_config
from lightning_dlc.project.pytorch_config_read import detector_box_threshold, detector_name, paf_predictor_values
from lightning_dlc.project.records import ProjectMeta

_SHUFFLE_FOLDER = re.compile(r"^(?P<task>.+)-trainset(?P<percent>\d+)shuffle(?P<shuffle>\d+)$")

__all__ = ["PYTORCH_CONFIG", "compose_run_config", "from_dlc_snapshot", "is_dlc_snapshot", "pytorch_config_beside",
           "to_dlc_snapshot"]


def is_dlc_snapshot(path: str | Path) -> bool:
    """A DeepLabCut snapshot file (``.pt``) rather than one of our Lightning ``.ckpt`` files."""
    return Path(path).suffix == ".pt"


def to_dlc_snapshot(state_dict: Mapping[str, torch.Tensor], prefix: str, epoch: int,
                    metrics: Mapping[str, float] | None = None) -> dict:
    """DeepLabCut's snapshot contents from a Lightning ``state_dict``: the keys under ``prefix``
    (``model.`` or ``detector.``) without it, and DeepLabCut's metadata (metric names as its
    ``metrics/test.rmse``, plain floats so DeepLabCut's ``weights_only`` load accepts them)."""
    model = {k[len(prefix):]: v.detach().cpu().clone() for k, v in state_dict.items() if k.startswith(prefix)}
    if not model:
        raise ValueError(f"no weights under {prefix!r} in the checkpoint's state_dict")
    metrics = {(k if k.startswith("metrics/") else f"metrics/{k}"): float(v) for k, v in (metrics or {}).items()}
    return {"model": model, "metadata": {"epoch": int(epoch), "metrics": metrics, "losses": {}}}


def pytorch_config_beside(snapshot: str | Path) -> Path:
    """The ``pytorch_config.yaml`` of the folder holding a ``.pt`` snapshot (an error if there is none)."""
    path = Path(snapshot).parent / PYTORCH_CONFIG
    if not path.is_file():
        raise ProjectError(Path(snapshot), f"no {PYTORCH_CONFIG} beside this DeepLabCut snapshot: the model "
                                           "cannot be rebuilt (copy the whole train/ folder)")
    return path


def _project_of(train_dir: Path, pytorch_cfg: Mapping) -> tuple[Path | None, int | None, int]:
    """config.yaml, shuffle and trainset index of a model folder (``<project>/dlc-models-pytorch/iteration-<i>/
    <shuffle folder>/train``): the folder itself first (a moved project), then ``metadata.project_path``."""
    match = _SHUFFLE_FOLDER.match(train_dir.parent.name)
    candidates = [train_dir.parents[3] / "config.yaml"] if len(train_dir.parents) > 3 else []
    project_path = (pytorch_cfg.get("metadata") or {}).get("project_path")
    if project_path:
        candidates.append(Path(project_path) / "config.yaml")
    config = next((c for c in candidates if c.is_file()), None)
    if match is None or config is None:
        return config, int(match["shuffle"]) if match else None, 0
    fractions = ProjectConfig.read(config).training_fractions
    percents = [int(round(100 * f)) for f in fractions]
    percent = int(match["percent"])
    if percent not in percents:
        raise ProjectError(config, f"TrainingFraction {fractions} has no {percent}% for model folder "
                                   f"{train_dir.parent}")
    return config, int(match["shuffle"]), percents.index(percent)


def _check_meta(meta: ProjectMeta, pytorch_cfg: Mapping, where: Path) -> None:
    recorded = pytorch_cfg["metadata"]
    for key, ours in (("bodyparts", meta.bodyparts), ("unique_bodyparts", meta.unique_bodyparts)):
        theirs = tuple(recorded.get(key) or ())
        if theirs != tuple(ours):
            raise ProjectError(where, f"metadata.{key} {list(theirs)} differs from the project's {list(ours)}")


def _apply_paf_predictor(run_config: dict, pytorch_cfg: Mapping, n_bodyparts: int) -> None:
    """The PAF predictor's settings as the folder's file has them (:func:`paf_predictor_values`): DeepLabCut's
    evaluate_network prunes the graph on a model's first evaluation, and a 15+ bodypart graph is pruned at
    random when the shuffle is made; assembling with other edges groups the same keypoints into other animals."""
    head = ((pytorch_cfg.get("model") or {}).get("heads") or {}).get("bodypart") or {}
    ours = run_config["model"]["heads"]["multi"]["bodypart"]
    for dotted, value in paf_predictor_values(head, n_bodyparts).items():
        node = ours
        *parents, key = dotted.split(".")
        for part in parents:
            node = node[part]
        node[key] = value


# what we build of DeepLabCut's data.inference.top_down_crop (its crop_with_context=False and margins are not)
SUPPORTED_CROP = {"margin": 0, "crop_with_context": True}


def _top_down_overrides(pytorch_cfg: Mapping, where: Path) -> list[str]:
    """A top-down folder's crop, box margin and detector as its file has them: DeepLabCut crops its
    detector's boxes to ``data.inference.top_down_crop`` and names SSDLite by its ``type``, Faster R-CNN
    by its ``variant`` (:func:`detector_name`); a model read with other crops or another detector predicts
    other keypoints."""
    data = pytorch_cfg.get("data") or {}
    crop = (data.get("inference") or {}).get("top_down_crop") or {}
    unsupported = {}
    if int(crop.get("margin", 0) or 0) != SUPPORTED_CROP["margin"]:
        unsupported["margin"] = crop["margin"]
    if crop.get("crop_with_context", True) is False:
        unsupported["crop_with_context"] = False
    if unsupported:
        raise ProjectError(where, f"data.inference.top_down_crop has {unsupported}; supported here: "
                                  f"{SUPPORTED_CROP} with any height and width")
    out = [f"model.top_down.crop_size=[{int(crop.get('height', 256))},{int(crop.get('width', 256))}]"]
    if data.get("bbox_margin") is not None:
        out.append(f"model.top_down.margin={float(data['bbox_margin'])}")
    model = (pytorch_cfg.get("detector") or {}).get("model") or {}
    if not model:
        return out  # no detector: boxes come from the user (or the labels)
    variant = detector_name(model)
    if variant is None or not (CONF_DIR / "detector" / f"{variant}.yaml").is_file():
        known = sorted(p.stem for p in (CONF_DIR / "detector").glob("*.yaml"))
        raise ProjectError(where, f"detector.model {model.get('type')} {model.get('variant') or ''} is not a "
                                  f"detector we build (ours: {known})")
    out.append(f"detector={variant}")
    threshold = detector_box_threshold(model)
    if threshold is not None:
        out.append(f"detector.model.box_score_threshold={threshold}")
    return out


def _conditional_overrides(pytorch_cfg: Mapping) -> list[str]:
    """A conditional top-down (``method: ctd``) folder's crop as its model is made for: the backbone's
    ``img_size`` (HRNetCoAM's attention spans that grid; an RTMPose head reads that input size) and
    ``data.bbox_margin``. DeepLabCut's ``data.*.top_down_crop`` is not read: its ctd_prenet_rtmpose_x
    files say 256 x 256 beside a 384 x 384 model."""
    model = pytorch_cfg.get("model") or {}
    height, width = ((model.get("backbone") or {}).get("img_size") or (256, 256))
    out = [f"model.top_down.crop_size=[{int(height)},{int(width)}]"]
    if (((model.get("heads") or {}).get("bodypart") or {}).get("type")) == "RTMCCHead":
        out.append(f"model.heads.single.bodypart.input_size=[{int(height)},{int(width)}]")
    margin = (pytorch_cfg.get("data") or {}).get("bbox_margin")
    if margin is not None:
        out.append(f"model.top_down.margin={float(margin)}")
    return out


def compose_run_config(overrides: list[str]) -> dict:
    """Our ``conf/train.yaml`` composed with Hydra ``overrides``, resolved to plain containers."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_train(overrides), resolve=True)


def from_dlc_snapshot(path: str | Path, contents: Mapping | None = None) -> dict:
    """Our snapshot's contents (``state_dict``, ``run_config``, ``project_meta``, ``epoch``) for a DeepLabCut
    ``snapshot-NNN.pt`` (pose) or ``snapshot-detector-NNN.pt``, from the ``pytorch_config.yaml`` beside it."""
    path = Path(path)
    if contents is None:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(contents, Mapping) or not isinstance(contents.get("model"), Mapping):
        raise ProjectError(path, "not a DeepLabCut snapshot: no 'model' state dict (DeepLabCut's snapshots hold "
                                 "{'model': ..., 'metadata': ...})")
    bad = [k for k, v in contents["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ProjectError(path, f"not a DeepLabCut snapshot: model[{bad[0]!r}] is not a tensor")
    config_path = pytorch_config_beside(path)
    pytorch_cfg = read_pytorch_config(config_path)
    if not isinstance(pytorch_cfg.get("metadata"), dict):
        raise ProjectError(config_path, "has no 'metadata' (bodyparts, individuals): not DeepLabCut 3's")
    net_type = str(pytorch_cfg["net_type"])
    model_name = net_type  # our conf/model name: DeepLabCut's top-down models are a backbone + method "td"
    if pytorch_cfg.get("method") == "td" and (CONF_DIR / "model" / f"top_down_{net_type}.yaml").is_file():
        model_name = f"top_down_{net_type}"
    if not (CONF_DIR / "model" / f"{model_name}.yaml").is_file():
        known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise ProjectError(config_path, f"net_type {net_type!r} is not one we build (known: {known})")
    config, shuffle, trainset_index = _project_of(path.parent, pytorch_cfg)
    if config is None:
        raise ProjectError(config_path, "the project's config.yaml is neither above this model folder nor at "
                                        "metadata.project_path")
    meta = ProjectConfig.read(config).meta()
    _check_meta(meta, pytorch_cfg, config_path)
    overrides = ["experiment=dlc", f"data.project={config}", f"data.trainset_index={trainset_index}",
                 f"model={model_name}", f"output_dir={path.parent}"]
    if shuffle is not None:
        overrides.append(f"data.shuffle={shuffle}")
    if pytorch_cfg.get("method") == "td":
        overrides += _top_down_overrides(pytorch_cfg, config_path)
    elif pytorch_cfg.get("method") == "ctd":
        overrides += _conditional_overrides(pytorch_cfg)
    run_config = compose_run_config(overrides)
    run_config["net_type"] = net_type  # DeepLabCut's name for scorer names
    if meta.multianimal and pytorch_cfg.get("method") not in ("td", "ctd"):  # bottom-up: PAF assembly
        _apply_paf_predictor(run_config, pytorch_cfg, len(meta.bodyparts))
    detector = "snapshot-detector" in path.name
    prefix = "detector." if detector else "model."
    state = {prefix + k: v for k, v in contents["model"].items()}
    metadata = contents.get("metadata") or {}
    return {"state_dict": state, "run_config": run_config,
            "project_meta": {"bodyparts": list(meta.bodyparts), "individuals": list(meta.individuals),
                             "unique_bodyparts": list(meta.unique_bodyparts),
                             "skeleton": [list(e) for e in meta.skeleton], "identity": meta.identity},
            "epoch": int(metadata.get("epoch", 0)) - 1, "dlc_metadata": dict(metadata)}
