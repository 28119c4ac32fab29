"""Learning-rate schedules beyond torch's own, and building nested ones from config."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch.optim.lr_scheduler import LRScheduler


class LRListScheduler(LRScheduler):
    """DeepLabCut's schedule: at epoch ``milestones[i]`` the learning rate becomes ``lr_list[i]``.

    ``lr_list[i]`` is one value for every parameter group, or a list with one per group
    (DeepLabCut writes ``[[1e-5], [1e-6]]``). Between milestones the rate is left alone.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int],
                 lr_list: Sequence[float | Sequence[float]], last_epoch: int = -1):
        if len(milestones) != len(lr_list):
            raise ValueError(f"scheduler: {len(milestones)} milestones but {len(lr_list)} learning rates")
        self.milestones = [int(m) for m in milestones]
        n = len(optimizer.param_groups)
        self.lr_list = [[float(v)] * n if isinstance(v, (int, float)) else [float(x) for x in v] for v in lr_list]
        if any(len(v) not in (1, n) for v in self.lr_list):
            raise ValueError(f"scheduler: each lr_list entry needs 1 or {n} values, got {lr_list}")
        self.lr_list = [v * n if len(v) == 1 else v for v in self.lr_list]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch in self.milestones:
            return list(self.lr_list[self.milestones.index(self.last_epoch)])
        return [group["lr"] for group in self.optimizer.param_groups]


class ChainedScheduler(torch.optim.lr_scheduler.ChainedScheduler):
    """torch's ChainedScheduler (its schedulers' factors applied together), which a SequentialLR can
    switch to: entering its stage, SequentialLR restarts it at epoch 0 (``_update_lr(0)``; older
    torch: ``step(0)``), which torch's own cannot do (NotImplementedError). Here each chained
    scheduler restarts in turn. DeepLabCut's ``type: ChainedScheduler`` is read as this class.
    """

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        if epoch is None:
            super().step()
        else:
            self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            super().step()
            return
        for scheduler in self._schedulers:
            scheduler._update_lr(epoch) if hasattr(scheduler, "_update_lr") else scheduler.step(epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_scheduler(factory: Callable[..., LRScheduler] | None, optimizer: torch.optim.Optimizer):
    """Call a scheduler factory (a Hydra partial) with the optimizer; nested ones first.

    ``SequentialLR`` / ``ChainedScheduler`` take built schedulers (``schedulers: [...]``), so
    partials listed there are bound to the same optimizer before the outer one is made, at any
    depth (a ChainedScheduler inside a SequentialLR): warm-up + cosine is plain config. The
    optimizer is passed by name, as DeepLabCut does: ``ChainedScheduler`` takes it second.
    """
    if factory is None:
        return None
    if isinstance(factory, partial) and "schedulers" in factory.keywords:
        inner = [build_scheduler(s, optimizer) for s in factory.keywords["schedulers"]]
        return partial(factory, schedulers=inner)(optimizer=optimizer)
    return factory(optimizer=optimizer)
