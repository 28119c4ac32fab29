"""DeepLabCut's multi-scale ResNet-50 (``dlcrnet_stride16_ms5`` / ``dlcrnet_stride32_ms5``).

As DeepLabCut 3's ``DLCRNet``: a BatchNorm ResNet-50 (timm ``resnet50``, ``backbone.model.*``)
whose last stage (2048 ch) is concatenated with two earlier feature banks brought down by
unpadded strided 3x3 convs (``conv_block*``, names as DeepLabCut's) and squeezed to 128 channels
by 1x1 convs: the end of layer1 (stride 4, 256 ch; ``conv_block3-5``) and the third block of
layer2 (stride 8, 512 ch; ``conv_block1-2``). Without padding the banks come out a little
smaller than the last stage; they are resized (bilinear, antialiased) to its size.
Output: 128 + 128 + 2048 = 2304 channels.
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
        nn.Conv2d(in_channels, out_channels, kernel_size, stride),  # no padding, as DeepLabCut
        # momentum 0.001 = TensorFlow's decay 0.999, which DeepLabCut kept for these layers
        nn.BatchNorm2d(out_channels, momentum=0.001),
        nn.ReLU(),
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
        self.conv_block1 = _conv_bn_relu(512, 512, 3, stride=2)  # layer2's third block: stride 8 -> 16
        self.conv_block2 = _conv_bn_relu(512, 128, 1)
        self.conv_block3 = _conv_bn_relu(256, 256, 3, stride=2)  # end of layer1: stride 4 -> 16
        self.conv_block4 = _conv_bn_relu(256, 256, 3, stride=2)
        self.conv_block5 = _conv_bn_relu(256, 128, 1)
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
        # DeepLabCut reads the banks through detaching hooks: no gradient flows back from them
        bank1 = self.conv_block5(self.conv_block4(self.conv_block3(bank1.detach())))
        bank2 = self.conv_block2(self.conv_block1(bank2.detach()))
        return torch.cat([_resize(bank1, out.shape[-2:]), _resize(bank2, out.shape[-2:]), out], dim=1)


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
