"""HRNet backbones (timm ``hrnet_w18`` / ``hrnet_w32`` / ``hrnet_w48``), as DeepLabCut 3 uses them.

The network keeps four parallel branches at strides 4, 8, 16 and 32. DeepLabCut returns the
stride-4 branch (18/32/48 channels), or, for DEKR, all branches upsampled to stride 4 and
concatenated. Inputs should be padded to a multiple of 32 so the branches line up.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.backbones.base import FrozenNormsMixin, create_timm, load_weights

VARIANTS = ("w18", "w32", "w48")


class HRNet(FrozenNormsMixin, nn.Module):
    """HRNet backbone with output stride 4.

    Args:
        variant: "w18", "w32" or "w48" (the width of the highest-resolution branch).
        pretrained: load timm's ImageNet weights.
        weights: local checkpoint: this backbone's state_dict, a pose-model checkpoint or
            the plain timm checkpoint of ``hrnet_<variant>``.
        interpolate_branches: upsample (bilinear) the stride 8/16/32 branches to stride 4 and
            concatenate all four (15x the width channels: 270/480/720), as DEKR does.
        increased_channel_count: take the branches after timm's "incre" modules (128/256/512/1024
            channels, part of the classification head) instead of the raw branches.
        freeze_bn_stats, freeze_bn_weights: DeepLabCut's options (:class:`FrozenNormsMixin`);
            its ``hrnet_*`` configs freeze the statistics, its ``dekr_*`` ones do not.
    """

    def __init__(
        self,
        variant: Literal["w18", "w32", "w48"] = "w32",
        pretrained: bool = True,
        weights: str | Path | None = None,
        interpolate_branches: bool = False,
        increased_channel_count: bool = False,
        freeze_bn_stats: bool = False,
        freeze_bn_weights: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"HRNet variant must be one of {VARIANTS}, got {variant!r}")
        self.model = create_timm(
            f"hrnet_{variant}",
            pretrained=pretrained and weights is None,
            features_only=True,
            out_indices=(1, 2, 3, 4),  # index 0 is the stride-2 stem
            # explicit: timm's features_only default is "incre", DeepLabCut's is the raw branches
            feature_location="incre" if increased_channel_count else "",
        )
        self.interpolate_branches = interpolate_branches
        self.freeze_bn_stats, self.freeze_bn_weights = freeze_bn_stats, freeze_bn_weights
        channels = self.model.feature_info.channels()
        self.out_channels: int = sum(channels) if interpolate_branches else channels[0]
        self.stride: int = self.model.feature_info.reduction()[0]
        if weights is not None:
            load_weights(self, weights, inner="model")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        branches = self.model(images)
        if not self.interpolate_branches:
            return branches[0]
        size = branches[0].shape[-2:]
        upsampled = [F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]]
        return torch.cat([branches[0], *upsampled], dim=1)
