"""Any timm model as a backbone: the one feature map of its ``features_only`` form."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lightning_dlc.models.backbones.base import FrozenNormsMixin, create_timm, load_weights


class TimmBackbone(FrozenNormsMixin, nn.Module):
    """Any timm model by name, e.g. ``TimmBackbone("mobilenetv3_small_100")``.

    Args:
        name: a timm model name (``timm.list_models()``), optionally with a weights tag
            (``"resnet50.a1_in1k"``).
        pretrained: load timm's ImageNet weights (downloaded from the Hugging Face hub).
        weights: local checkpoint loaded instead of downloading: this backbone's
            state_dict, a pose-model checkpoint, or the plain timm checkpoint of ``name``.
        out_index: which of the model's feature levels to return (-1: the deepest).
        output_stride: ask timm for a dilated network with this stride (models that support it).
        freeze_bn_stats, freeze_bn_weights: DeepLabCut's BatchNorm options (:class:`FrozenNormsMixin`).
        **timm_kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ``in_chans``, ...).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = True,
        weights: str | Path | None = None,
        out_index: int = -1,
        output_stride: int | None = None,
        freeze_bn_stats: bool = False,
        freeze_bn_weights: bool = False,
        **timm_kwargs,
    ) -> None:
        super().__init__()
        self.freeze_bn_stats, self.freeze_bn_weights = freeze_bn_stats, freeze_bn_weights
        if output_stride is not None:  # not every timm model accepts the argument
            timm_kwargs["output_stride"] = output_stride
        self.model = create_timm(
            name,
            pretrained=pretrained and weights is None,  # local weights replace the download
            features_only=True,
            out_indices=(out_index,),
            **timm_kwargs,
        )
        self.out_channels: int = self.model.feature_info.channels()[-1]
        self.stride: int = self.model.feature_info.reduction()[-1]
        if weights is not None:
            load_weights(self, weights, inner="model")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[-1]
