"""Masked losses shared by heads: the mean over the cells whose weight is non-zero."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(per_cell: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.expand_as(per_cell).to(per_cell.dtype)
    return (per_cell * weights).sum() / weights.sum().clamp(min=1.0)


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean((prediction.float() - target.float()) ** 2, weights)


def weighted_bce_with_logits(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean(F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none"), weights)


def weighted_huber(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean(F.huber_loss(prediction.float(), target.float(), reduction="none"), weights)
