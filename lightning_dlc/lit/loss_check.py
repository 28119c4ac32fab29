"""Stopping training at the first non-finite loss, naming where it happened and what to change."""
from __future__ import annotations

import lightning as L
import torch


def check_finite_loss(module: L.LightningModule, total: torch.Tensor, what: str, advice: str) -> None:
    """Raise FloatingPointError when ``total`` is NaN or infinite: one bad step would otherwise poison the weights
    and every later snapshot. ``what`` names the loss ("the training loss"), ``advice`` the fixes to try."""
    if not torch.isfinite(total):
        raise FloatingPointError(f"{what} became {total.item()} at epoch {module.current_epoch + 1}, step "
                                 f"{module.global_step}: {advice}")
