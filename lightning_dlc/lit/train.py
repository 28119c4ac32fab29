"""``train(cfg)``: a composed config in, a trained run folder and its key metric out.

``scripts/train.py`` (Hydra) and :func:`lightning_dlc.api.train_network` both call it; it is
importable and testable without Hydra's command line.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.lit.pose import PoseModule
from lightning_dlc.lit.snapshots import Snapshots
from lightning_dlc.models.pose_model import model_from_config

log = logging.getLogger(__name__)


def _optional(node):
    """An empty group option (``scheduler=none``, ``detector=none``) means "none"."""
    return None if node is None or (isinstance(node, DictConfig) and not node) else node


def build_module(cfg: DictConfig, datamodule) -> PoseModule:
    """Model (fitted to the project's metadata, read once here), optimizer, schedule, augmentation."""
    meta = datamodule.load_meta()
    model = model_from_config(cfg.model, meta)
    augment = _optional(cfg.get("augment"))
    scheduler = _optional(cfg.get("scheduler"))
    pcutoff = cfg.get("pcutoff")
    if pcutoff is None:
        pcutoff = getattr(datamodule, "pcutoff", None) or 0.6
    return PoseModule(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        augment=instantiate(augment, bodyparts=list(meta.bodyparts),
                            unique_bodyparts=list(meta.unique_bodyparts)) if augment is not None else None,
        pcutoff=float(pcutoff),
        oks_sigma=cfg.oks_sigma,
        image_log_interval=cfg.image_log_interval,
        channels_last=cfg.channels_last,
        load_scheduler_state=cfg.resume.load_scheduler_state,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )


def build_trainer(cfg: DictConfig, output_dir: Path) -> L.Trainer:
    snapshots = Snapshots(output_dir, **cfg.snapshots)
    loggers = _optional(cfg.get("logger"))
    logger = instantiate(loggers) if loggers is not None else False
    callbacks = [snapshots] + ([LearningRateMonitor("epoch")] if logger else [])
    overrides = {}
    if not cfg.eval_interval:  # 0 = never evaluate during training
        overrides = {"limit_val_batches": 0, "check_val_every_n_epoch": 1}
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks, **overrides)


def check_preset(cfg: DictConfig) -> None:
    """The demo preset (small model from scratch, short schedule) on other data is a mistake: say so."""
    if cfg.get("experiment_name") == "demo" and cfg.data.get("source") != "demo":
        raise ValueError(
            f"data={cfg.data.get('source')} was chosen while the default experiment=demo is active (a small model "
            "trained from scratch on a short schedule, meant for the built-in demo). For a DeepLabCut project use "
            "experiment=dlc data.project=/path/to/config.yaml (COCO: experiment=coco).")


def train(cfg: DictConfig) -> float | None:
    """Train as ``cfg`` says; return the final ``snapshots.key_metric`` (for sweepers), or None."""
    check_preset(cfg)
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    metrics = {}
    if cfg.eval_interval:
        epochs = trainer.current_epoch
        evaluated_last = epochs > 0 and epochs % cfg.eval_interval == 0 and "test.rmse" in trainer.callback_metrics
        # the last epoch's validation already holds the final numbers; otherwise evaluate once more
        final = trainer.callback_metrics if evaluated_last else trainer.validate(module, datamodule=datamodule,
                                                                                 verbose=False)[0]
        metrics = {k: float(v) for k, v in final.items() if k.startswith("test.")}
    if trainer.is_global_zero:
        shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in ("test.rmse", "test.rmse_pcutoff", "test.mAP", "test.mAR")
                          if k in metrics)
        print(f"Trained {trainer.current_epoch} epochs in {output_dir}: {shown or 'no evaluation (eval_interval=0)'}")
    value = metrics.get(cfg.snapshots.key_metric)
    return value if value is not None and math.isfinite(value) else None
