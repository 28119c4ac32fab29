"""Masked losses shared by heads, reduced as DeepLabCut's weighted criteria reduce them.

DeepLabCut's ``Weighted{MSE,Huber,BCE}Criterion``: ``sum(loss * weights)`` divided by the
number of cells whose weight is non-zero (1 if none), so a background weight of 0.1
scales those cells' loss without shrinking the count.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def _masked_mean(per_cell: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.expand_as(per_cell).to(per_cell.dtype)
    return (per_cell * weights).sum() / (weights != 0).sum().clamp(min=1)


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean((prediction.float() - target.float()) ** 2, weights)


def weighted_bce_with_logits(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean(F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none"), weights)


def weighted_huber(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return _masked_mean(F.huber_loss(prediction.float(), target.float(), reduction="none"), weights)


def aggregate(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """DeepLabCut's ``WeightedLossAggregator``: the mean (not the sum) of the weighted losses."""
    return torch.stack([weight * losses[name] for name, weight in weights.items()]).mean()
