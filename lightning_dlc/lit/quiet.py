"""What a run prints is what a user can act on: known third-party noise filtered, intervals fitted to the data.

:func:`quiet_third_party` filters, each by its exact message and the module that emits it, the
third-party messages that no setting of ours or the user's changes; it is called where training and
analysis start. Our own warnings and any third-party message not listed here still show.
:class:`FitLogInterval` lowers Lightning's ``log_every_n_steps`` to the batches of one epoch on small
projects, so the per-step curves are logged there instead of a warning that they are not.
"""
from __future__ import annotations

import logging
import warnings

import lightning as L

# Lightning (2.6 here) advertises its cloud products ("💡 Tip: ... litlogger", "... litmodels") at every Trainer.
_ADVERT_PREFIX = "💡 Tip:"
# rank_zero_info logs through one of these, whichever of lightning / lightning_fabric was imported last
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")

# (message regex, category, emitting module regex): torch (2.15 here) deprecates the LeafSpec that Lightning's
# own _pytree helper (2.6 here) still builds at every fit; nothing a user can change.
_THIRD_PARTY_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
)


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERT_PREFIX)


def quiet_third_party() -> None:
    """Install the filters (idempotent: repeated calls add nothing)."""
    for message, category, module in _THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdverts) for f in logger.filters):
            logger.addFilter(_DropAdverts())


def batches_per_epoch(trainer: L.Trainer, loader_batches: int) -> int:
    """A lower bound of one process's training batches per epoch: the loader's split over the processes,
    cut by ``limit_train_batches``."""
    batches = loader_batches // max(1, trainer.world_size)
    limit = trainer.limit_train_batches
    if isinstance(limit, int):
        batches = min(batches, limit)
    elif limit is not None and limit < 1:
        batches = int(batches * limit)
    return max(1, batches)


class FitLogInterval(L.Callback):
    """``log_every_n_steps`` at most one epoch's batches (a 9-batch epoch with the default 10 logs every
    9 steps). Runs in ``setup``, after the datamodule's, before Lightning checks the interval."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage != "fit" or datamodule is None:
            return
        try:
            loader = datamodule.train_dataloader()
            if isinstance(getattr(loader, "iterables", None), dict):  # CombinedLoader: the labeled loader's epoch
                loader = loader.iterables.get("labeled", loader)
            loader_batches = len(loader)
        except (TypeError, RuntimeError):  # a loader without a length (iterable dataset): nothing to fit
            return
        if loader_batches <= 0:
            return
        trainer.log_every_n_steps = min(trainer.log_every_n_steps, batches_per_epoch(trainer, loader_batches))
