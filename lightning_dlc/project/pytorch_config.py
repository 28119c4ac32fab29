"""DeepLabCut 3.0.2's ``pytorch_config.yaml`` (and ``test/pose_cfg.yaml``) from one of our runs.

:func:`pytorch_config_from_run` starts from what DeepLabCut itself writes for the project and
net_type (:mod:`lightning_dlc.project.dlc_defaults`) and puts in what the run was trained with:
optimizer, schedule (nested ones too), epochs, batch size, snapshots, evaluation, augmentation,
the heads' target and predictor settings, the top-down crop and the detector. The reverse,
a DeepLabCut file into our config, is :mod:`lightning_dlc.project.pytorch_config_read`.
Plain dicts (the run config as ``OmegaConf.to_container(cfg, resolve=True)`` gives it): no torch.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML

from lightning_dlc.project import dlc_defaults_table as table
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc_defaults import pose_cfg_for_test, pose_config_defaults, split_net_type, to_plain
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.records import ProjectMeta

log = logging.getLogger(__name__)

LR_LIST = "lightning_dlc.lit.schedulers.LRListScheduler"
# torch's ChainedScheduler, restartable inside a SequentialLR (torch's is not)
CHAINED = "lightning_dlc.lit.schedulers.ChainedScheduler"
OUR_SCHEDULERS = {"LRListScheduler": LR_LIST, "ChainedScheduler": CHAINED}
TORCH_SCHEDULERS = "torch.optim.lr_scheduler."
TORCH_OPTIMIZERS = "torch.optim."
# our snapshot key metric names <-> DeepLabCut's, where they differ (the detector's box mAP)
DETECTOR_KEY_METRICS = {"test.bbox_mAP": "test.mAP@50:95", "test.bbox_mAR": "test.mAR@50:95",
                        "test.bbox_mAP50": "test.mAP@50", "test.bbox_mAP75": "test.mAP@75"}
DEVICES = {"gpu": "cuda", "cuda": "cuda", "cpu": "cpu", "auto": "auto", "mps": "mps"}
PYTORCH_CONFIG = "pytorch_config.yaml"


# --------------------------------------------------------------------------- optimizer, schedule
def dlc_optimizer(node: Mapping) -> dict:
    """``{_target_: torch.optim.AdamW, _partial_: true, lr: ...}`` -> ``{type: AdamW, params: {lr: ...}}``."""
    target = str(node.get("_target_", ""))
    if not target.startswith(TORCH_OPTIMIZERS) or "." in target.removeprefix(TORCH_OPTIMIZERS):
        raise ValueError(f"optimizer {target!r}: DeepLabCut builds only torch.optim optimizers")
    return {"type": target.removeprefix(TORCH_OPTIMIZERS), "params": _params(node)}


def dlc_scheduler(node: Mapping | None) -> dict | None:
    """Our scheduler node (nested ``schedulers`` too) -> DeepLabCut's ``{type, params}``; None stays None."""
    if not node:
        return None
    target = str(node.get("_target_", ""))
    params = _params(node)
    if target == LR_LIST:
        params["lr_list"] = [list(v) if isinstance(v, (list, tuple)) else [v] for v in params["lr_list"]]
        return {"type": "LRListScheduler", "params": params}
    if target != CHAINED and not target.startswith(TORCH_SCHEDULERS):
        raise ValueError(f"scheduler {target!r}: DeepLabCut builds LRListScheduler and torch.optim.lr_scheduler "
                         "schedulers only")
    if "schedulers" in params:
        params["schedulers"] = [dlc_scheduler(s) for s in params["schedulers"]]
    return {"type": target.rsplit(".", 1)[1], "params": params}


def _params(node: Mapping) -> dict:
    return {k: copy.deepcopy(v) for k, v in node.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- augmentation
def dlc_augmentation(augment: Mapping | None, defaults: Mapping) -> dict:
    """Our ``augment`` node -> DeepLabCut's ``data.train`` (keys DeepLabCut has; ours it has not are left out:
    brightness/contrast; the affine translation is a fraction of the crop here, pixels there)."""
    train = copy.deepcopy(dict(defaults))
    for key in ("affine", "crop_sampling", "gaussian_noise", "motion_blur", "hflip", "grayscale"):
        train.pop(key, None)
    if not augment:
        return train
    crop = augment.get("crop_size")
    if crop:
        sampling = augment.get("crop_sampling") or {}
        around = float(sampling.get("p_around_animal", 0.9))
        train["crop_sampling"] = {"width": int(crop[1]), "height": int(crop[0]),
                                  "max_shift": float(sampling.get("max_shift", 0.1)),
                                  "method": "uniform" if around == 0 else "keypoints" if around == 1 else "hybrid"}
    if float(augment.get("affine_p", 0)) > 0:
        size = max(crop) if crop else 0
        train["affine"] = {"p": float(augment["affine_p"]), "rotation": augment.get("rotation", 0),
                           "scaling": list(augment.get("scale", [1.0, 1.0])),
                           "translation": int(round(float(augment.get("translation", 0)) * size))}
    if float(augment.get("noise_p", 0)) > 0 and float(augment.get("noise_std", 0)) > 0:
        train["gaussian_noise"] = round(float(augment["noise_std"]) * 255, 6)
    if float(augment.get("motion_blur_p", 0)) > 0:
        train["motion_blur"] = True
    if float(augment.get("hflip_p", 0)) > 0:
        pairs = [list(p) for p in augment.get("symmetric_pairs") or []]
        train["hflip"] = {"p": float(augment["hflip_p"]), **({"symmetries": pairs} if pairs else {})}
    if float(augment.get("grayscale_p", 0)) > 0:
        train["grayscale"] = True
    return train


# --------------------------------------------------------------------------- heads
def _set_heads(dlc_heads: dict, heads: Mapping) -> None:
    """Target, loss and predictor settings of our heads written into DeepLabCut's head sections."""
    for role, dlc in dlc_heads.items():
        ours = heads.get(role) or {}
        if dlc.get("type") == "HeatmapHead" and "HeatmapHead" in str(ours.get("_target_", "")):
            generator = dlc["target_generator"]
            _copy(ours, "radius", generator, "pos_dist_thresh")
            _copy(ours, "gradient_masking", generator, "gradient_masking")
            if "locref" in dlc.get("criterion", {}):
                _copy(ours, "locref_weight", dlc["criterion"]["locref"], "weight")
        elif dlc.get("type") == "DLCRNetHead" and "PafHead" in str(ours.get("_target_", "")):
            heatmaps, pafs = dlc["target_generator"]["generators"]
            _copy(ours, "radius", heatmaps, "pos_dist_thresh")
            _copy(ours, "paf_width", pafs, "width")
            _copy(ours, "locref_weight", dlc["criterion"]["locref"], "weight")
            _copy(ours, "paf_weight", dlc["criterion"]["paf"], "weight")
            for key in ("nms_radius", "sigma", "min_affinity"):
                _copy(ours.get("predict_kwargs") or {}, key, dlc["predictor"], key)
            if ours.get("edges_to_keep") is not None:
                dlc["predictor"]["edges_to_keep"] = [int(i) for i in ours["edges_to_keep"]]


def _copy(source: Mapping, key: str, target: dict, dlc_key: str) -> None:
    if source.get(key) is not None:
        target[dlc_key] = source[key]


def _chosen_heads(model: Mapping, meta: ProjectMeta) -> dict:
    heads = dict(model.get("heads") or {})
    chosen = dict(heads.get("single" if model.get("top_down") is not None or not meta.multianimal else "multi") or {})
    for role in ("unique_bodypart", "identity"):
        if heads.get(role) is not None:
            chosen[role] = heads[role]
    return chosen


# --------------------------------------------------------------------------- the whole file
def pytorch_config_from_run(run_config: Mapping, meta: ProjectMeta, *, net_type: str | None = None,
                            project: ProjectConfig | str | Path | None = None,
                            pose_config_path: str | Path | None = None,
                            paf_graph: list | None = None) -> dict:
    """DeepLabCut 3.0.2's ``pytorch_config.yaml`` (as a dict) for a model we trained.

    ``run_config``: the composed run config (a snapshot's ``run_config``); ``net_type``: DeepLabCut's
    name of the model (default ``run_config["net_type"]``, which lightning-dlc train and
    api.train_network record; ``top_down_resnet_50``, ``rtmpose_s`` ...); ``meta``: the project's
    metadata the model was built for; ``project``: its config.yaml (for DeepLabCut's metadata paths,
    ``individuals`` of single-animal projects and ``paf_best``); ``paf_graph``: the PAF head's edges
    when the model learned a pruned graph (15+ bodyparts). Raises ValueError naming what DeepLabCut
    cannot express (a model that is not a DeepLabCut net_type, an optimizer outside torch.optim).
    """
    run_config = to_plain(run_config)
    net_type = net_type or run_config.get("net_type")
    if not net_type:
        raise ValueError("the run config names no net_type: pass net_type= (DeepLabCut's name of the model)")
    base, top_down = split_net_type(net_type)
    model = run_config.get("model") or {}
    if top_down != (model.get("top_down") is not None):
        raise ValueError(f"net_type {net_type} is {'top-down' if top_down else 'bottom-up'} but the run's model "
                         f"is {'top-down' if model.get('top_down') is not None else 'bottom-up'}")
    project = ProjectConfig.read(project) if isinstance(project, (str, Path)) else project
    detector = run_config.get("detector") or {}
    detector_type = (detector.get("model") or {}).get("name") or "ssdlite"
    paf_best = project.data.get("paf_best") if project is not None else None
    config = pose_config_defaults(
        net_type, _dlc_meta(meta, project), detector_type=detector_type, paf_graph=paf_graph,
        paf_edges_to_keep=paf_best, project_path=project.root if project is not None else None,
        pose_config_path=pose_config_path, multianimal=meta.multianimal)
    if project is not None:  # as config.yaml has it (DeepLabCut: null where the key is absent)
        config["metadata"]["with_identity"] = project.data.get("identity")
    _set_training(config, run_config)
    config["data"]["train"] = dlc_augmentation(run_config.get("augment"), config["data"]["train"])
    _set_heads(config["model"]["heads"], _chosen_heads(model, meta))
    if top_down:
        _set_top_down(config, model["top_down"])
    if detector and top_down:
        _set_detector(config["detector"], detector, run_config)
    return config


def _set_training(config: dict, run_config: Mapping) -> None:
    runner, settings = config["runner"], config["train_settings"]
    runner["optimizer"] = dlc_optimizer(run_config["optimizer"])
    runner["scheduler"] = dlc_scheduler(run_config.get("scheduler"))
    snapshots = run_config.get("snapshots") or {}
    runner["snapshots"] = {"max_snapshots": snapshots.get("max_snapshots", 5),
                           "save_epochs": snapshots.get("save_epochs", 25),
                           "save_optimizer_state": bool(snapshots.get("save_optimizer_state", False))}
    runner["key_metric"] = snapshots.get("key_metric", runner["key_metric"])
    runner["key_metric_asc"] = bool(snapshots.get("key_metric_asc", runner["key_metric_asc"]))
    runner["eval_interval"] = int(run_config.get("eval_interval") or 0)
    data, trainer = run_config.get("data") or {}, run_config.get("trainer") or {}
    settings["batch_size"] = int(data.get("batch_size", settings["batch_size"]))
    settings["epochs"] = int(trainer.get("max_epochs", settings["epochs"]))
    settings["seed"] = int(run_config.get("seed", settings["seed"]))
    settings["dataloader_workers"] = int(data.get("num_workers", settings["dataloader_workers"]))
    settings["dataloader_pin_memory"] = bool(data.get("pin_memory", settings["dataloader_pin_memory"]))
    config["device"] = DEVICES.get(str(trainer.get("accelerator", "auto")), "auto")


def _set_top_down(config: dict, top_down: Mapping) -> None:
    height, width = (int(v) for v in top_down.get("crop_size", (256, 256)))
    for split in ("train", "inference"):
        config["data"][split]["top_down_crop"] = {"width": width, "height": height}
    config["data"]["bbox_margin"] = int(round(float(top_down.get("margin", config["data"]["bbox_margin"]))))
    shift, scale = float(top_down.get("jitter_shift") or 0), float(top_down.get("jitter_scale") or 0)
    if shift or scale:
        config["data"]["train"]["random_bbox_transform"] = {
            "shift_factor": shift, "shift_prob": 1.0 if shift else 0.0, "scale_factor": [1 - scale, 1 + scale],
            "scale_prob": 1.0, "p": 1.0}
    else:
        config["data"]["train"].pop("random_bbox_transform", None)


# torchvision arguments that only change how a detector learns (sampling, training proposals): not its boxes
TRAINING_ONLY_KWARGS = {"rpn_batch_size_per_image", "rpn_positive_fraction", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh",
                        "box_batch_size_per_image", "box_positive_fraction", "box_fg_iou_thresh", "box_bg_iou_thresh",
                        "iou_thresh", "positive_fraction"}


def _check_detector(model: Mapping) -> None:
    """Our detector settings that DeepLabCut's detector section cannot hold: refused where they change the boxes
    found (DeepLabCut would crop other animals with the same weights), a warning where only weak or surplus boxes
    differ (the pose model reads the best max_individuals boxes)."""
    name = str(model.get("name"))
    changed = [f"{key}={model[key]!r}" for key in ("nms_threshold", "min_size", "max_size") if model.get(key) is not None]
    if model.get("imagenet_input") is False:
        changed.append("imagenet_input=False")
    changed += [f"torchvision_kwargs.{key}" for key in (model.get("torchvision_kwargs") or {})
                if key not in TRAINING_ONLY_KWARGS and not key.endswith("_train")]
    if changed:
        raise ValueError(f"detector {name}: {', '.join(changed)} cannot be written in DeepLabCut's pytorch_config "
                         "(its detectors build torchvision's defaults there): DeepLabCut would find other boxes")
    for key, fixed in (("box_score_threshold", table.DETECTOR_BOX_SCORE_THRESH.get(name)),
                       ("max_detections", table.DETECTOR_MAX_DETECTIONS.get(name))):
        if fixed is not None and model.get(key) is not None and model[key] != fixed:
            log.warning("detector %s: %s=%s here, %s in DeepLabCut (not in its pytorch_config): DeepLabCut keeps "
                        "other weak or surplus boxes", name, key, model[key], fixed)


def _set_detector(dlc: dict, detector: Mapping, run_config: Mapping) -> None:
    model, train = detector.get("model") or {}, detector.get("train") or {}
    _check_detector(model)
    if dlc["model"]["type"] == "SSDLite":  # the field DeepLabCut writes; its SSDLite keeps torchvision's threshold
        dlc["model"]["box_score_thresh"] = table.BOX_SCORE_THRESH_FIELD
    elif model.get("box_score_threshold") is not None:
        dlc["model"]["box_score_thresh"] = model["box_score_threshold"]
    runner, settings = dlc["runner"], dlc["train_settings"]
    if train.get("optimizer"):
        runner["optimizer"] = dlc_optimizer(train["optimizer"])
    runner["scheduler"] = dlc_scheduler(train.get("scheduler"))
    runner["snapshots"] = {"max_snapshots": train.get("max_snapshots", 5), "save_epochs": train.get("save_epochs", 25),
                           "save_optimizer_state": bool((run_config.get("snapshots") or {}).get("save_optimizer_state"))}
    key = train.get("key_metric", "test.bbox_mAP")
    runner["key_metric"] = DETECTOR_KEY_METRICS.get(key, key)
    runner["eval_interval"] = int(train.get("eval_interval") or 0)
    settings["epochs"] = int(train.get("epochs", settings["epochs"]))
    settings["seed"] = int(run_config.get("seed", 42))
    batch = train.get("batch_size") or (run_config.get("data") or {}).get("batch_size")
    settings["batch_size"] = int(batch or settings["batch_size"])
    dlc["device"] = DEVICES.get(str((run_config.get("trainer") or {}).get("accelerator", "auto")), "auto")


def _dlc_meta(meta: ProjectMeta, project: ProjectConfig | None) -> ProjectMeta:
    """DeepLabCut's metadata lists config.yaml's individuals even for one animal (its default: individual_1)."""
    if meta.multianimal:
        return meta
    listed = (project.data.get("individuals") if project is not None else None) or ["individual_1"]
    return ProjectMeta(bodyparts=meta.bodyparts, individuals=tuple(str(v) for v in listed),
                       unique_bodyparts=meta.unique_bodyparts, skeleton=meta.skeleton, identity=meta.identity)


# --------------------------------------------------------------------------- files
def dump_yaml(data: Mapping, path: str | Path, overwrite: bool = False) -> Path:
    """Write plain data as YAML, atomically; an existing file stays unless ``overwrite``."""
    yaml = YAML()
    yaml.default_flow_style = None
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as stream:
        yaml.dump(to_plain(data), stream)
    return Path(path)


def write_pytorch_config(train_dir: str | Path, config: Mapping, overwrite: bool = False) -> tuple[Path, Path]:
    """DeepLabCut's two files of a model folder: ``<train_dir>/pytorch_config.yaml`` and
    ``<train_dir>/../test/pose_cfg.yaml``. Existing files stay unless ``overwrite`` (both are checked
    before either is written)."""
    train_dir = Path(train_dir)
    pose_path, test_path = train_dir / PYTORCH_CONFIG, train_dir.parent / "test" / "pose_cfg.yaml"
    if not overwrite:
        for path in (pose_path, test_path):
            if path.exists():
                raise ProjectError(path, "already exists; pass overwrite=True to replace it")
    config = dict(config)
    config["metadata"] = {**config.get("metadata", {}), "pose_config_path": str(pose_path)}
    return (dump_yaml(config, pose_path, overwrite=overwrite),
            dump_yaml(pose_cfg_for_test(config), test_path, overwrite=overwrite))


def read_pytorch_config(path: str | Path) -> dict:
    """A ``pytorch_config.yaml`` as plain data; a missing or unparsable file is a ProjectError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(path, "no such pytorch_config.yaml")
    try:
        with open(path, encoding="utf-8") as stream:
            data = to_plain(YAML(typ="safe").load(stream))
    except Exception as error:  # ruamel's parser errors have many types
        raise ProjectError(path, f"not readable as YAML: {error}") from error
    if not isinstance(data, dict) or "net_type" not in data:
        raise ProjectError(path, "not a DeepLabCut pytorch_config.yaml (no net_type)")
    return data
