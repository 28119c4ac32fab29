"""CSPNeXt, the RTMDet/RTMPose backbone (DeepLabCut 3's ``rtmpose_*`` models), in plain PyTorch.

Layout (the "P5" arch): a stride-2 stem of three 3x3 convs, then four stages, each a stride-2
3x3 conv followed by a CSP layer (the last stage has an SPP block, 5/9/13 max pools, before
its CSP layer). A CSP layer splits into a shortcut 1x1 conv and a main 1x1 conv followed by
blocks (3x3 conv, then a depthwise 5x5 + pointwise conv), concatenates both halves, reweights
channels (global pool, 1x1 conv, hard sigmoid) and mixes them with a 1x1 conv. Widths and
depths scale with ``widen_factor`` / ``deepen_factor``. Output: the last stage, stride 32,
``1024 * widen_factor`` channels.

Module and parameter names follow DeepLabCut's implementation, so its checkpoints (the
``cspnext_<variant>.pt`` files DeepLabCut downloads from the Hugging Face repo
``DeepLabCut/DeepLabCut-Backbones``, state under "state_dict") and DeepLabCut RTMPose
snapshots load with ``weights=PATH``. There is no download here: ``pretrained=True`` without
``weights`` raises. (Recent timm, >= 1.0.31, also has ``cspnext_*`` with ImageNet weights of
its own naming: use ``TimmBackbone("cspnext_m")`` for those.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from lightning_dlc.models.backbones.base import load_weights, pretrained_unavailable

# variant: (deepen_factor, widen_factor), as in RTMPose / DeepLabCut
VARIANTS = {"tiny": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}
# stage: (in, out, blocks, residual blocks, SPP) before widen/deepen
P5 = [
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
]


class ConvModule(nn.Module):
    """conv (no bias) -> BatchNorm -> SiLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(cout)  # SyncBN under DDP: Trainer(sync_batchnorm=True)
        self.activate = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(self.conv(x)))


class DepthwiseSeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, kernel_size, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)


class CSPNeXtBlock(nn.Module):
    """3x3 conv, then the large-kernel (5x5) depthwise separable conv; residual when asked."""

    def __init__(self, channels: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3)
        self.conv2 = DepthwiseSeparableConv(channels, channels, 5)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.residual else out


class ChannelAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class CSPLayer(nn.Module):
    def __init__(self, channels: int, num_blocks: int, residual: bool) -> None:
        super().__init__()
        mid = channels // 2
        self.main_conv = ConvModule(channels, mid, 1)
        self.short_conv = ConvModule(channels, mid, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, residual) for _ in range(num_blocks)])
        self.attention = ChannelAttention(2 * mid)
        self.final_conv = ConvModule(2 * mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], dim=1)
        return self.final_conv(self.attention(both))


class SPPBottleneck(nn.Module):
    def __init__(self, channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        mid = channels // 2
        self.conv1 = ConvModule(channels, mid, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.poolings)], dim=1))


HUB_REPO = "DeepLabCut/DeepLabCut-Backbones"  # where DeepLabCut publishes its ImageNet CSPNeXt weights


def download_cspnext_weights(variant: str) -> str:
    """DeepLabCut's ImageNet CSPNeXt checkpoint from the Hugging Face hub (cached by huggingface_hub)."""
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(HUB_REPO, f"cspnext_{variant}.pt")
    except Exception as error:  # offline, hub errors, missing file: all mean "no weights"
        raise pretrained_unavailable(
            f"cspnext_{variant}", error, note=f"The weights are cspnext_{variant}.pt in the Hugging Face "
            f"repo {HUB_REPO}; set HF_HUB_OFFLINE=1 offline.") from error


class CSPNeXt(nn.Module):
    """CSPNeXt backbone, output stride 32.

    Args:
        variant: "s", "m" or "x" (DeepLabCut's rtmpose_s/m/x); "tiny" and "l" as in RTMPose.
        pretrained: load DeepLabCut's ImageNet weights (``cspnext_<variant>.pt`` from the Hugging
            Face hub ``DeepLabCut/DeepLabCut-Backbones``); a clear error when they cannot be had.
        weights: local checkpoint: this backbone's state_dict (e.g. DeepLabCut's
            ``cspnext_<variant>.pt``) or a pose-model checkpoint holding it under ``backbone.``.
    """

    def __init__(
        self,
        variant: Literal["tiny", "s", "m", "l", "x"] = "m",
        pretrained: bool = True,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"CSPNeXt variant must be one of {list(VARIANTS)}, got {variant!r}")
        deepen, widen = VARIANTS[variant]
        stem = int(P5[0][0] * widen)
        half = stem // 2
        self.stem = nn.Sequential(
            ConvModule(3, half, 3, stride=2), ConvModule(half, half, 3), ConvModule(half, stem, 3)
        )
        for i, (cin, cout, blocks, residual, spp) in enumerate(P5, start=1):
            cin, cout = int(cin * widen), int(cout * widen)
            layers = [ConvModule(cin, cout, 3, stride=2), *([SPPBottleneck(cout)] if spp else [])]
            layers.append(CSPLayer(cout, max(round(blocks * deepen), 1), residual))
            self.add_module(f"stage{i}", nn.Sequential(*layers))
        self.out_channels: int = int(P5[-1][1] * widen)
        self.stride: int = 32
        if pretrained and weights is None:
            weights = download_cspnext_weights(variant)
        if weights is not None:
            load_weights(self, weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
        return x
