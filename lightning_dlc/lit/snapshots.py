"""Snapshots as DeepLabCut users know them: ``snapshot-050.ckpt`` and ``snapshot-best-120.ckpt``, and beside
each DeepLabCut's own ``snapshot-050.pt`` / ``snapshot-best-120.pt`` (weights and metadata), which
DeepLabCut 3.0.2, DeepLabCut-Live and Anipose read."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from lightning_dlc.models.dlc_model_folder import to_dlc_snapshot
from lightning_dlc.models.snapshot_files import POSE, load_snapshot, snapshot_epoch, snapshot_patterns
from lightning_dlc.project.io import atomic_path

__all__ = ["Snapshots", "epochs_completed", "load_snapshot", "snapshot_epoch"]
log = logging.getLogger(__name__)


def epochs_completed(trainer: L.Trainer) -> int:
    """Epochs the weights have trained, the number DeepLabCut puts in a snapshot's name.

    Inside ``fit`` the running epoch is done by the time its validation or end hooks run, but
    ``current_epoch`` only counts it afterwards; outside ``fit`` (a ``validate`` after training
    or after a resume) ``current_epoch`` already counts every finished epoch.
    """
    return trainer.current_epoch + (1 if trainer.state.fn == TrainerFn.FITTING else 0)


class Snapshots(L.Callback):
    """Every ``save_epochs`` epochs (and at the end) save ``snapshot-<epoch>.ckpt``, keep the newest
    ``max_snapshots``; keep the best by ``key_metric`` as ``snapshot-best-<epoch>.ckpt``.

    Epochs are counted from 1 like DeepLabCut (``snapshot-050`` = after 50 epochs). With
    ``save_optimizer_state`` the files are full Lightning checkpoints (resume with
    ``ckpt_path=``); without it, weights only (smaller, but training cannot resume from them).
    ``key_metric`` names a logged metric (``test.mAP``, ``test.rmse``); ``key_metric_asc``:
    True when higher is better. ``prefix``: ``snapshot``, or ``snapshot-detector`` for a top-down
    run's detector (``snapshot-detector-020.ckpt``, as DeepLabCut names them).

    ``dlc_snapshots``: also write DeepLabCut's ``<name>.pt`` beside each ``<name>.ckpt`` (its format,
    ``{"model": state_dict, "metadata": {"epoch", "metrics", "losses"}}``, weights only as DeepLabCut's
    default ``save_optimizer_state: false``), kept and removed with it. A ResNet-50's is ~95 MB; set
    false to save the disk and write them later with ``lightning-dlc export``.
    """

    def __init__(self, dirpath: str | Path, save_epochs: int = 25, max_snapshots: int = 5,
                 key_metric: str | None = "test.mAP", key_metric_asc: bool = True,
                 save_optimizer_state: bool = True, prefix: str = POSE, dlc_snapshots: bool = True):
        if save_epochs < 1 or max_snapshots < 1:
            raise ValueError(f"snapshots: save_epochs and max_snapshots must be >= 1, got {save_epochs}, "
                             f"{max_snapshots}")
        self.dirpath = Path(dirpath)
        self.save_epochs, self.max_snapshots = save_epochs, max_snapshots
        self.key_metric, self.key_metric_asc = key_metric, key_metric_asc
        self.weights_only = not save_optimizer_state
        self.prefix = prefix
        self.dlc_snapshots = dlc_snapshots
        self._regular_name, self._best_name = snapshot_patterns(prefix)
        self.best: float | None = None

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")

    def _save(self, trainer: L.Trainer, name: str) -> Path:
        path = self.dirpath / name
        trainer.save_checkpoint(path, weights_only=self.weights_only)  # Lightning writes on rank 0 only
        if self.dlc_snapshots and trainer.is_global_zero:
            # DeepLabCut's metadata: metrics of the last validation, under its metrics/ names
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                       if k.startswith("test.") and v.numel() == 1}
            prefix = "detector." if self.prefix != POSE else "model."
            contents = to_dlc_snapshot(trainer.lightning_module.state_dict(), prefix, epochs_completed(trainer),
                                       metrics)
            with atomic_path(path.with_suffix(".pt"), overwrite=True) as tmp:
                torch.save(contents, tmp)
        return path

    @staticmethod
    def _remove(path: Path) -> None:
        """A snapshot and DeepLabCut's copy of it."""
        path.unlink(missing_ok=True)
        path.with_suffix(".pt").unlink(missing_ok=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.key_metric is None:
            return
        value = trainer.callback_metrics.get(self.key_metric)
        if value is None:
            if self.best is None:
                log.warning("key metric %r was not logged; logged: %s", self.key_metric,
                            sorted(trainer.callback_metrics))
            return
        value = float(value)
        better = math.isfinite(value) and (self.best is None or
                                           (value > self.best if self.key_metric_asc else value < self.best))
        if not better:
            return
        self.best = value
        old = [p for p in self.dirpath.glob(f"{self.prefix}-best-*.ckpt")
               if self._best_name.search(p.name)] if trainer.is_global_zero else []
        epoch = epochs_completed(trainer)
        path = self._save(trainer, f"{self.prefix}-best-{epoch:03d}.ckpt")
        for stale in old:
            if stale != path:
                self._remove(stale)
        log.info("new best %s = %.4f at epoch %d: %s", self.key_metric, value, epoch, path.name)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = epochs_completed(trainer)
        last = epoch >= (trainer.max_epochs or math.inf)
        if epoch % self.save_epochs and not last:
            return
        self._save(trainer, f"{self.prefix}-{epoch:03d}.ckpt")
        if trainer.is_global_zero:
            kept = sorted(self.dirpath.glob(f"{self.prefix}-*.ckpt"), key=snapshot_epoch)
            kept = [p for p in kept if self._regular_name.search(p.name)]
            for stale in kept[:-self.max_snapshots]:
                self._remove(stale)

