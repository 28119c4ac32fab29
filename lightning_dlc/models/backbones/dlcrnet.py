"""DeepLabCut's multi-scale ResNet-50 (``dlcrnet_ms5``): ResNet-50 with earlier stages fused in.

As in DeepLabCut 3: a BatchNorm ResNet-50 (timm ``resnet50``) whose last stage (2048 ch) is
concatenated with two earlier feature banks brought down to stride 16 by strided 3x3 convs and
squeezed to 128 channels each by 1x1 convs: the end of layer1 (stride 4, 256 ch) and the
third block of layer2 (stride 8, 512 ch). Output: 128 + 128 + 2048 = 2304 channels. With
output stride 32 the two banks are resized down to the last stage's size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.backbones.base import create_timm, load_weights


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2),
        # momentum 0.001 = TensorFlow's decay 0.999, which DeepLabCut kept for these layers
        nn.BatchNorm2d(out_channels, momentum=0.001),
        nn.ReLU(inplace=True),
    )


class DLCRNet(nn.Module):
    """Multi-scale fusion ResNet-50.

    Args:
        output_stride: 16 (DeepLabCut's ``dlcrnet_ms5`` default) or 32.
        pretrained: load timm's ImageNet ``resnet50`` weights (the fusion layers start random).
        weights: local checkpoint: this backbone's state_dict, a pose-model checkpoint or the
            plain timm ``resnet50`` checkpoint (loads the ResNet part; the fusion layers stay random).
    """

    def __init__(
        self,
        output_stride: Literal[16, 32] = 16,
        pretrained: bool = True,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"DLCRNet output_stride must be 16 or 32, got {output_stride!r}")
        # the full network (no classifier), so forward can take the bank inside layer2
        self.model = create_timm(
            "resnet50", pretrained=pretrained and weights is None, num_classes=0, output_stride=output_stride
        )
        self.bank1 = nn.Sequential(  # end of layer1: stride 4 -> 16
            _conv_bn_relu(256, 256, 3, stride=2),
            _conv_bn_relu(256, 256, 3, stride=2),
            _conv_bn_relu(256, 128, 1),
        )
        self.bank2 = nn.Sequential(  # layer2's third block: stride 8 -> 16
            _conv_bn_relu(512, 512, 3, stride=2),
            _conv_bn_relu(512, 128, 1),
        )
        self.out_channels: int = 2048 + 2 * 128
        self.stride: int = output_stride
        if weights is not None:
            load_weights(self, weights, inner="model")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.act1(m.bn1(m.conv1(images))))
        bank1 = m.layer1(x)
        bank2 = m.layer2[:3](bank1)  # DeepLabCut taps layer2's third block, not its last
        out = m.layer4(m.layer3(m.layer2[3:](bank2)))
        banks = [self.bank1(bank1), self.bank2(bank2)]
        # resize guards odd input sizes and brings the stride-16 banks to stride 32
        banks = [b if b.shape[-2:] == out.shape[-2:] else _resize(b, out.shape[-2:]) for b in banks]
        return torch.cat([*banks, out], dim=1)


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
