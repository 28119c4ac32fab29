"""HRNet with conditional attention (CoAM): DeepLabCut 3's ``HRNetCoAM``, its ``ctd_coam_*`` net_types.

The condition (one animal's proposed pose, encoded as one heatmap channel per bodypart) steers
HRNet's branches through attention before chosen stages: at stage ``s`` (``coam_modules``, DeepLabCut:
``[2]``, before stage 3) every branch ``i`` gets

    x + position_attention(x, cond) + channel_attention(x, cond)

with the condition resized (bilinear, antialiased) to that branch's grid. Position attention: the
conditions' pixels ask (queries) the branch's pixels (keys, values); channel attention: channels of
the condition (projected to the branch's width) ask the branch's channels, with one linear layer over
the H*W positions, so a model is made for one input size (``img_size``, DeepLabCut's crop).

Names follow DeepLabCut's (``coam_stages.<stage-1>.att_layers.<branch>.{position,channel}_attention_module``),
so its snapshots load with the identity key map. Like DeepLabCut, the resize target is (W/4, H/4) as
(height, width): for a non-square ``img_size`` the condition is squeezed into the transposed grid and
read in the branch's memory order; we keep that so DeepLabCut's weights see what they learned on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.backbones.base import load_weights
from lightning_dlc.models.backbones.hrnet import HRNet
from lightning_dlc.models.keypoint_encoders import StackedKeypointEncoder

ATTENTION_DROPOUT = 0.1  # on attention weights while training, as DeepLabCut


def _small_linear(cin: int, cout: int) -> nn.Linear:
    layer = nn.Linear(cin, cout)
    nn.init.normal_(layer.weight, std=0.001)
    nn.init.zeros_(layer.bias)
    return layer


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, training: bool) -> torch.Tensor:
    """Scaled dot-product attention of [B, n, heads * d] tokens, heads split from the last axis."""
    B, nq, nk = q.shape[0], q.shape[1], k.shape[1]
    q, k, v = (t.view(B, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=ATTENTION_DROPOUT if training else 0.0)
    return out.transpose(1, 2).reshape(B, nq, -1)


class ProjectedAttention(nn.Module):
    """Attention with linear query/key/value/output projections (``fc_q``, ``fc_k``, ``fc_v``, ``fc_o``)."""

    def __init__(self, query_dim: int, key_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.fc_q = _small_linear(query_dim, heads * key_dim)
        self.fc_k = _small_linear(key_dim, heads * key_dim)
        self.fc_v = _small_linear(key_dim, heads * key_dim)
        self.fc_o = _small_linear(heads * key_dim, key_dim)

    def forward(self, queries, keys, values):
        out = _attend(self.fc_q(queries), self.fc_k(keys), self.fc_v(values), self.heads, self.training)
        return self.fc_o(out)


class PlainAttention(nn.Module):
    """Attention on the tokens as they are, then one linear layer (``fc_o``) over their width."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.fc_o = _small_linear(width // heads * heads, width)

    def forward(self, queries, keys, values):
        return self.fc_o(_attend(queries, keys, values, self.heads, self.training))


class PositionAttention(nn.Module):
    """Each pixel of the condition attends over the branch's pixels: [B, C, H, W] -> [B, H*W, C]."""

    def __init__(self, channels: int, cond_channels: int, heads: int, kernel_size: int = 3):
        super().__init__()
        self.cnn = nn.Conv2d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.cnn_cond = nn.Conv2d(cond_channels, cond_channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.pa = ProjectedAttention(cond_channels, channels, heads)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.cnn(x).flatten(2).transpose(1, 2)
        y_cond = self.cnn_cond(cond).flatten(2).transpose(1, 2)
        return self.pa(y_cond, y, y)


class ChannelAttention(nn.Module):
    """Each channel of the (projected) condition attends over the branch's channels: -> [B, C, H*W]."""

    def __init__(self, channels: int, cond_channels: int, positions: int, heads: int, kernel_size: int = 3):
        super().__init__()
        self.cnn = nn.Conv2d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.cnn_cond = nn.Conv2d(cond_channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.pa = PlainAttention(positions, heads)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.cnn(x).flatten(2)
        return self.pa(self.cnn_cond(cond).reshape(y.shape), y, y)


class ConditionalAttention(nn.Module):
    """DeepLabCut's ``DAModule`` for one branch: ``x + position + channel`` (or ``x * channel``)."""

    def __init__(self, channels: int, cond_channels: int, positions: int, heads: int, channel_only: bool):
        super().__init__()
        self.channel_only = channel_only
        if not channel_only:
            self.position_attention_module = PositionAttention(channels, cond_channels, heads)
        self.channel_attention_module = ChannelAttention(channels, cond_channels, positions, heads)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        c_out = self.channel_attention_module(x, cond).view(B, C, H, W)
        if self.channel_only:
            return x * c_out
        p_out = self.position_attention_module(x, cond).transpose(1, 2).reshape(B, C, H, W)
        return x + (p_out + c_out)


class CoAMBlock(nn.Module):
    """Conditional attention on every branch entering one HRNet stage."""

    def __init__(self, grids: Sequence[tuple[int, int]], channels: Sequence[int], cond_channels: int, heads: int,
                 channel_only: bool):
        super().__init__()
        self.grids = [tuple(g) for g in grids]  # (H, W) per branch
        self.att_layers = nn.ModuleList(
            ConditionalAttention(c, cond_channels, h * w, heads, channel_only) for (h, w), c in zip(grids, channels))

    def forward(self, branches: list[torch.Tensor], cond: torch.Tensor) -> list[torch.Tensor]:
        # (W, H) as (height, width): DeepLabCut's order (see the module docstring)
        return [layer(x, F.interpolate(cond, size=(w, h), mode="bilinear", align_corners=False, antialias=True))
                for layer, x, (h, w) in zip(self.att_layers, branches, self.grids)]


class HRNetCoAM(HRNet):
    """HRNet (stride 4, its highest-resolution branch) with CoAM blocks; ``forward(images, conditions)``.

    Args:
        n_bodyparts: the project's bodyparts (given by the model builder, one condition channel each).
        variant, pretrained, freeze_bn_stats, freeze_bn_weights: as :class:`HRNet`.
        weights: a local checkpoint of this whole backbone or a pose model holding it.
        coam_modules: stages (1-4) whose incoming branches get conditional attention; 4 means after
            stage 4, on its highest-resolution branch only (DeepLabCut: ``[2]``).
        channel_att_only: channel attention only, multiplied in (DeepLabCut: false).
        att_heads: attention heads.
        kernel_size: the condition encoder's Gaussian blur (DeepLabCut: 15 x 15).
        img_size: (height, width) of the inputs; fixed, the channel attention spans the branch grid.
    """

    conditional = True  # forward needs conditions (PoseModel checks)

    def __init__(self, n_bodyparts: int, variant: Literal["w18", "w32", "w48"] = "w32", pretrained: bool = True,
                 weights: str | Path | None = None, coam_modules: Sequence[int] = (2,),
                 channel_att_only: bool = False, att_heads: int = 1, kernel_size: Sequence[int] = (15, 15),
                 img_size: Sequence[int] = (256, 256), freeze_bn_stats: bool = False,
                 freeze_bn_weights: bool = False):
        super().__init__(variant, pretrained=pretrained and weights is None, freeze_bn_stats=freeze_bn_stats,
                         freeze_bn_weights=freeze_bn_weights)
        if not set(coam_modules) <= {1, 2, 3, 4}:
            raise ValueError(f"coam_modules are HRNet stages 1-4, got {list(coam_modules)}")
        self.cond_enc = StackedKeypointEncoder(n_bodyparts, kernel_size)
        self.img_size = H, W = tuple(int(s) for s in img_size)
        grids = [(H // s, W // s) for s in (4, 8, 16, 32)]
        widths = [self.model.stage2_cfg["num_channels"], self.model.stage3_cfg["num_channels"],
                  self.model.stage4_cfg["num_channels"]]
        blocks: list[nn.Module | None] = [None, None, None, None]
        for stage in coam_modules:
            grid, channels = ([grids[0]], [widths[-1][0]]) if stage == 4 else (grids[:stage + 1], widths[stage - 1])
            blocks[stage - 1] = CoAMBlock(grid, channels, self.cond_enc.num_channels, att_heads, channel_att_only)
        self.coam_stages = nn.ModuleList(blocks)
        if weights is not None:
            load_weights(self, weights)

    def forward(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != self.img_size:
            raise ValueError(f"HRNetCoAM is made for {self.img_size} (height, width) inputs (its attention spans "
                             f"the branch grids), got {tuple(images.shape[-2:])}; set model.backbone.img_size")
        cond = self.cond_enc(conditions, images.shape[-2:]).to(images.dtype)
        net, coam = self.model, self.coam_stages
        x = net.act2(net.bn2(net.conv2(net.act1(net.bn1(net.conv1(images))))))
        x = net.layer1(x)
        xl = [t(x) for t in net.transition1]
        xl = coam[0](xl, cond) if coam[0] is not None else xl
        yl = net.stage2(xl)
        xl = [yl[i] if isinstance(t, nn.Identity) else t(yl[-1]) for i, t in enumerate(net.transition2)]
        xl = coam[1](xl, cond) if coam[1] is not None else xl
        yl = net.stage3(xl)
        xl = [yl[i] if isinstance(t, nn.Identity) else t(yl[-1]) for i, t in enumerate(net.transition3)]
        xl = coam[2](xl, cond) if coam[2] is not None else xl
        yl = net.stage4(xl)
        yl = coam[3](yl, cond) if coam[3] is not None else yl
        return yl[0]
