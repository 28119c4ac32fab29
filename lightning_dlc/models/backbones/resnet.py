"""ResNet-50/101 backbones as DeepLabCut 3 builds them (``resnet_50``, ``resnet_101``).

DeepLabCut 3 uses timm's ``resnet50_gn`` (GroupNorm, so small batches train well) for
``resnet_50`` and timm's plain BatchNorm ``resnet101`` for ``resnet_101``, both dilated
to output stride 16, returning the last stage (2048 channels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from timm.layers import GroupNorm

from lightning_dlc.models.backbones.base import pretrained_unavailable
from lightning_dlc.models.backbones.timm_backbone import TimmBackbone

_DLC_GROUP_NORM = {"resnet50": True, "resnet101": False}  # timm has GroupNorm weights for resnet50 only


class ResNet(TimmBackbone):
    """ResNet backbone: last stage at ``output_stride`` (dilated convolutions below 32).

    Args:
        variant: "resnet50" or "resnet101".
        output_stride: 8, 16 or 32; DeepLabCut's default is 16.
        group_norm: GroupNorm instead of BatchNorm. None: DeepLabCut's choice (GroupNorm
            for resnet50, BatchNorm for resnet101; a GroupNorm resnet101 has no pretrained
            weights and trains from scratch).
        pretrained: load timm's ImageNet weights.
        weights: local checkpoint, see :class:`TimmBackbone`.
        freeze_bn_stats, freeze_bn_weights: DeepLabCut's BatchNorm options (false in its configs).
    """

    def __init__(
        self,
        variant: Literal["resnet50", "resnet101"] = "resnet50",
        output_stride: Literal[8, 16, 32] = 16,
        group_norm: bool | None = None,
        pretrained: bool = True,
        weights: str | Path | None = None,
        freeze_bn_stats: bool = False,
        freeze_bn_weights: bool = False,
    ) -> None:
        if variant not in _DLC_GROUP_NORM:
            raise ValueError(f"ResNet variant must be one of {sorted(_DLC_GROUP_NORM)}, got {variant!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output_stride must be 8, 16 or 32, got {output_stride!r}")
        group_norm = _DLC_GROUP_NORM[variant] if group_norm is None else group_norm
        name, kwargs = variant, {}
        if group_norm and variant == "resnet50":
            name = "resnet50_gn"
        elif group_norm:
            kwargs["norm_layer"] = GroupNorm  # timm's resnet50_gn recipe, applied to resnet101
            if pretrained and weights is None:
                note = "timm has no GroupNorm ResNet-101 weights; group_norm=false uses its BatchNorm ones."
                raise pretrained_unavailable(variant, note=note)
        super().__init__(name, pretrained=pretrained, weights=weights, output_stride=output_stride,
                         freeze_bn_stats=freeze_bn_stats, freeze_bn_weights=freeze_bn_weights, **kwargs)
