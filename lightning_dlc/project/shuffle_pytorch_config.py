"""The model folder DeepLabCut's ``create_training_dataset(net_type=...)`` writes beside a new shuffle, and a
conditional top-down (CTD) model's ``inference.conditions`` read back from it.

``dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<n>/train/pytorch_config.yaml`` (and
``test/pose_cfg.yaml``) hold DeepLabCut's defaults for the net_type
(:func:`lightning_dlc.project.dlc_defaults.pose_config_defaults`); training then reads them as DeepLabCut does.
A ``ctd_*`` net_type also records which bottom-up model's poses it refines, in DeepLabCut's forms
(:func:`lightning_dlc.project.dlc_defaults.ctd_conditions_entry`). Plain data: no torch.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc_defaults import CTD_NET_TYPES, pose_config_defaults, with_ctd_conditions
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, _dlc_meta
from lightning_dlc.project.shuffles import model_folder

# DeepLabCut's keys of a shuffle reference in inference.conditions (its ConditionsShuffleConfig)
SHUFFLE_KEYS = {"source", "shuffle", "trainset_index", "snapshot", "snapshot_index", "config", "modelprefix"}


def shuffle_pytorch_config(cfg: ProjectConfig, fraction: float, shuffle: int, net_type: str, *,
                           detector_type: str | None = None, ctd_conditions=None,
                           paf_graph: list | None = None) -> tuple[Path, dict]:
    """The shuffle's ``train/`` folder and the pytorch_config DeepLabCut writes there for ``net_type``
    (``top_down_`` prefix for a top-down backbone; ``detector_type`` default ssdlite, as DeepLabCut's).
    A ``ctd_*`` net_type without ``ctd_conditions`` is DeepLabCut's error."""
    train_dir = model_folder(cfg, fraction, shuffle) / "train"
    meta = cfg.meta()
    config = pose_config_defaults(
        net_type, _dlc_meta(meta, cfg), detector_type=detector_type or "ssdlite", paf_graph=paf_graph,
        paf_edges_to_keep=cfg.data.get("paf_best"), project_path=cfg.root,
        pose_config_path=train_dir / PYTORCH_CONFIG, multianimal=meta.multianimal, source=cfg.path)
    config["metadata"]["with_identity"] = cfg.data.get("identity")  # as config.yaml has it (DeepLabCut: null)
    if str(net_type) in CTD_NET_TYPES:
        config = with_ctd_conditions(config, ctd_conditions)
    return train_dir, config


def check_free(train_dirs, overwrite: bool) -> None:
    """Refuse (ProjectError naming it) a model folder whose pytorch_config.yaml or test/pose_cfg.yaml exists,
    unless ``overwrite``: a model's config is never replaced silently."""
    if overwrite:
        return
    for train_dir in train_dirs:
        for path in (Path(train_dir) / PYTORCH_CONFIG, Path(train_dir).parent / "test" / "pose_cfg.yaml"):
            if path.exists():
                raise ProjectError(path, "already exists (a model folder of this shuffle); pass overwrite=True to "
                                         "replace it with net_type's defaults")


def ctd_conditions_of(pytorch_cfg: Mapping, source: str | Path) -> dict | None:
    """A CTD pytorch_config's ``inference.conditions`` (None for other methods, or none recorded) as one of
    DeepLabCut's three sources: ``{"source": "shuffle", "shuffle", "trainset_index", "snapshot",
    "snapshot_index", "config", "modelprefix"}``, ``{"source": "file", "filepath"}`` (a predictions file:
    evaluation only) or ``{"source": "model", "snapshot_path"}``; a form it does not have is a ProjectError."""
    if str(pytorch_cfg.get("method", "")).lower() != "ctd":
        return None
    conditions = (pytorch_cfg.get("inference") or {}).get("conditions")
    if conditions is None:
        return None
    if isinstance(conditions, (str, Path)):
        return {"source": "file", "filepath": Path(conditions)}
    if not isinstance(conditions, Mapping):
        raise ProjectError(source, f"inference.conditions {conditions!r}: expected a shuffle ({{shuffle: 1}}) or a "
                                   "predictions file path")
    kind = conditions.get("source") or ("file" if "filepath" in conditions else "shuffle" if "shuffle" in conditions
                                        else "model" if "snapshot_path" in conditions else None)
    if kind == "file" and conditions.get("filepath"):
        return {"source": "file", "filepath": Path(conditions["filepath"])}
    if kind == "model" and conditions.get("snapshot_path"):
        return {"source": "model", "snapshot_path": Path(conditions["snapshot_path"])}
    if kind == "shuffle" and conditions.get("shuffle") is not None and not set(conditions) - SHUFFLE_KEYS:
        return {"source": "shuffle", "shuffle": int(conditions["shuffle"]),
                "trainset_index": int(conditions.get("trainset_index") or 0),
                "snapshot": conditions.get("snapshot"), "snapshot_index": conditions.get("snapshot_index"),
                "config": conditions.get("config"), "modelprefix": conditions.get("modelprefix") or ""}
    raise ProjectError(source, f"inference.conditions {dict(conditions)}: not one of DeepLabCut's forms "
                               "({shuffle[, snapshot | snapshot_index, trainset_index]}, {filepath}, {snapshot_path})")
