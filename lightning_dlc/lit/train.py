"""``train(cfg)``: a composed config in, a trained run folder and its key metric out.

``lightning-dlc train`` (Hydra) and :func:`lightning_dlc.api.train_network` both call it; it is
importable and testable without Hydra's command line. A top-down run (``model=top_down_*`` or
``rtmpose_*`` with ``detector=<name>``) trains in two stages, the detector first
(``snapshot-detector-NNN.ckpt``), then the pose model (``snapshot-NNN.ckpt``), in one run folder;
``stages=[detector]`` or ``stages=[pose]`` trains one of them.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.lit.detector import DetectorModule
from lightning_dlc.lit.pose import PoseModule
from lightning_dlc.lit.quiet import FitLogInterval, quiet_third_party
from lightning_dlc.lit.unlabeled import build_unsupervised_losses
from lightning_dlc.models.ctd_crops import generative_sampling, require_conditions
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.snapshot_files import DETECTOR

STAGES = ("detector", "pose")

log = logging.getLogger(__name__)


def _optional(node):
    """An empty group option (``scheduler=none``, ``detector=none``) means "none"."""
    return None if node is None or (isinstance(node, DictConfig) and not node) else node


def _augment(cfg: DictConfig, meta, **overrides):
    """The ``augment`` group's module for this project's bodyparts (None for ``augment=none``)."""
    augment = _optional(cfg.get("augment"))
    if augment is None:
        return None
    return instantiate(augment, bodyparts=list(meta.bodyparts), unique_bodyparts=list(meta.unique_bodyparts),
                       **overrides)


def build_module(cfg: DictConfig, datamodule) -> PoseModule:
    """Model (fitted to the project's metadata, read once here), optimizer, schedule, augmentation."""
    meta = datamodule.load_meta()
    model = model_from_config(cfg.model, meta)
    require_conditions(model, cfg.get("conditions"))  # CTD models train on conditions synthesized from labels
    scheduler = _optional(cfg.get("scheduler"))
    pcutoff = cfg.get("pcutoff")
    if pcutoff is None:
        pcutoff = getattr(datamodule, "pcutoff", None) or 0.6
    return PoseModule(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        # top-down models see crops already cut to size: augmentation must not crop them again
        augment=_augment(cfg, meta, **({"crop_size": None} if model.top_down is not None else {})),
        pcutoff=float(pcutoff),
        oks_sigma=cfg.oks_sigma,
        image_log_interval=cfg.image_log_interval,
        channels_last=cfg.channels_last,
        load_scheduler_state=cfg.resume.load_scheduler_state,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        unsupervised_losses=build_unsupervised_losses(cfg.get("losses")),
        gen_sampling=generative_sampling(cfg.get("gen_sampling"), meta),
    )


def build_detector_module(cfg: DictConfig, datamodule) -> DetectorModule:
    """The detector stage's module: ``detector.model`` trained as ``detector.train`` says."""
    meta = datamodule.load_meta()
    train = cfg.detector.train
    scheduler = _optional(train.get("scheduler"))
    return DetectorModule(
        detector=instantiate(cfg.detector.model),
        optimizer=instantiate(train.optimizer) if _optional(train.get("optimizer")) is not None else None,
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        augment=_augment(cfg, meta),
        margin=train.margin,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )


# the callbacks a top-down run's detector stage takes from the group; the others watch the pose model's metrics
DETECTOR_CALLBACKS = ("snapshots", "lr_monitor")


def build_callbacks(cfg: DictConfig, output_dir: Path, logger, stage: str = "pose") -> list[L.Callback]:
    """The ``callbacks`` group's choice (``callbacks=[snapshots,lr_monitor,early_stopping]``) for one stage:
    snapshots in ``output_dir``, the detector's with ``detector.train``'s settings."""
    snapshots: dict = {"dirpath": output_dir}
    if stage == "detector":
        train = cfg.detector.train
        snapshots.update(save_epochs=train.save_epochs, max_snapshots=train.max_snapshots,
                         key_metric=train.key_metric, key_metric_asc=True, prefix=DETECTOR)
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None or (stage == "detector" and name not in DETECTOR_CALLBACKS):
            continue
        callback = instantiate(node, **(snapshots if name == "snapshots" else {}))
        if logger or not isinstance(callback, LearningRateMonitor):  # Lightning's monitor needs a logger
            callbacks.append(callback)
    return callbacks


def build_trainer(cfg: DictConfig, output_dir: Path, stage: str = "pose") -> L.Trainer:
    """The Trainer of one stage; the detector's has its own epochs, snapshots and logger version."""
    loggers = _optional(cfg.get("logger"))
    overrides: dict = {}
    if stage == "detector":
        train = cfg.detector.train
        eval_interval = train.eval_interval
        overrides["max_epochs"] = train.epochs
        if eval_interval:
            overrides["check_val_every_n_epoch"] = eval_interval
        # TensorBoard / CSV: the detector's curves in a "detector" folder beside the pose model's
        logger = instantiate(loggers, **({"version": "detector"} if "version" in loggers else {})) if loggers else False
    else:
        eval_interval = cfg.eval_interval
        logger = instantiate(loggers) if loggers is not None else False
    callbacks = [*build_callbacks(cfg, output_dir, logger, stage), FitLogInterval()]
    if not eval_interval:  # 0 = never evaluate during training
        overrides.update(limit_val_batches=0, check_val_every_n_epoch=1)
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks, **overrides)


def stages_to_train(cfg: DictConfig) -> list[str]:
    """The stages ``cfg.stages`` asks for that this model and detector have; errors for contradictions."""
    stages = list(cfg.get("stages") or STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"stages must be a list of {list(STAGES)}, got {stages}")
    top_down = cfg.model.get("top_down") is not None
    has_detector = _optional(cfg.get("detector")) is not None
    if has_detector and not top_down:
        raise ValueError(f"detector={cfg.detector.model.name} serves top-down models, but the model is bottom-up: "
                         "choose model=top_down_resnet_50 (or top_down_hrnet_w32, rtmpose_m, ...), or detector=none")
    if "detector" in stages and not has_detector:
        if stages == ["detector"]:
            raise ValueError("stages=[detector] needs a detector: detector=fasterrcnn_mobilenet_v3_large_fpn, ...")
        if top_down and not cfg.model.get("conditional"):  # CTD models crop around conditions, not boxes
            log.warning("top-down model without a detector (detector=none): only the pose model trains; "
                        "inference then needs boxes (a detector snapshot or boxes you give)")
        stages.remove("detector")
    return stages


def check_preset(cfg: DictConfig) -> None:
    """The demo preset (small model from scratch, short schedule) on other data is a mistake: say so."""
    if cfg.get("experiment_name") == "demo" and cfg.data.get("source") != "demo":
        raise ValueError(
            f"data={cfg.data.get('source')} was chosen while the default experiment=demo is active (a small model "
            "trained from scratch on a short schedule, meant for the built-in demo). For a DeepLabCut project use "
            "experiment=dlc data.project=/path/to/config.yaml (COCO: experiment=coco).")


def _final_metrics(trainer: L.Trainer, module, datamodule, eval_interval: int, name: str) -> dict[str, float]:
    """The test metrics after training: the last validation's if it was the last epoch, else one more."""
    if not eval_interval:
        return {}
    epochs = trainer.current_epoch
    evaluated_last = epochs > 0 and epochs % eval_interval == 0 and name in trainer.callback_metrics
    final = trainer.callback_metrics if evaluated_last else trainer.validate(module, datamodule=datamodule,
                                                                             verbose=False)[0]
    return {k: float(v) for k, v in final.items() if k.startswith("test.")}


def _report(trainer: L.Trainer, output_dir: Path, what: str, metrics: dict, names: tuple[str, ...]) -> None:
    if trainer.is_global_zero:
        shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in names if k in metrics)
        print(f"Trained {trainer.current_epoch} epochs{what} in {output_dir}: "
              f"{shown or 'no evaluation (eval_interval=0)'}")


def train_detector(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    """The detector stage: returns its final box metrics (``test.bbox_mAP``, ...)."""
    L.seed_everything(cfg.seed, workers=True)
    batch_size = cfg.detector.train.get("batch_size")
    datamodule = instantiate(cfg.data, **({"batch_size": batch_size} if batch_size else {}))
    module = build_detector_module(cfg, datamodule)
    trainer = build_trainer(cfg, output_dir, stage="detector")
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.detector.train.get("ckpt_path"))
    metrics = _final_metrics(trainer, module, datamodule, cfg.detector.train.eval_interval, "test.bbox_mAP")
    _report(trainer, output_dir, " of the detector", metrics,
            ("test.bbox_mAP", "test.bbox_mAR", "test.bbox_mAP50", "test.bbox_mAP75"))
    return metrics


def train_pose(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    """The pose stage: returns its final test metrics (``test.rmse``, ``test.mAP``, ...)."""
    L.seed_everything(cfg.seed, workers=True)  # each stage seeded: a pose-only run equals a two-stage run's pose
    # the `unlabeled` group (video sequences beside the labeled batches) feeds the pose stage only
    # as a plain dict given after instantiation (instantiate would wrap it in OmegaConf again): the datamodule's
    # hyperparameters go into snapshots, which load with weights_only=True
    unlabeled = OmegaConf.to_container(cfg.unlabeled, resolve=True) if cfg.get("unlabeled") else None
    datamodule = instantiate(cfg.data, _partial_=True)(unlabeled=unlabeled)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = _final_metrics(trainer, module, datamodule, cfg.eval_interval, "test.rmse")
    _report(trainer, output_dir, "", metrics, ("test.rmse", "test.rmse_pcutoff", "test.mAP", "test.mAR"))
    return metrics


def train(cfg: DictConfig) -> float | None:
    """Train as ``cfg`` says; return the final ``snapshots.key_metric`` (for sweepers), or None.

    A detector-only run (``stages=[detector]``) returns ``detector.train.key_metric``.
    """
    quiet_third_party()  # before the first Trainer, whose constructor prints Lightning's advertisement
    check_preset(cfg)
    stages = stages_to_train(cfg)
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics, key = {}, cfg.snapshots.key_metric
    if "detector" in stages:
        metrics = train_detector(cfg, output_dir)
        key = cfg.detector.train.key_metric
    if "pose" in stages:
        metrics, key = train_pose(cfg, output_dir), cfg.snapshots.key_metric
    value = metrics.get(key)
    return value if value is not None and math.isfinite(value) else None
