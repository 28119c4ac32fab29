"""DeepLabCut's ``Transformer`` neck (TokenPose, Li et al. ICCV 2021), as in its ``animaltokenpose_base``.

The backbone's map is cut into ``patch_size`` patches, each flattened (row in patch, column in
patch, channel) and projected to a ``dim``-wide token; one learned token per keypoint is put in
front, and three pre-norm transformer encoders run one after the other. The output is not a
map: it is each keypoint's token after every encoder, concatenated, ``[B, K, 3 * dim]``, which
:class:`~lightning_dlc.models.heads.tokenpose.TokenPoseHead` turns into heatmaps.

Module and parameter names are DeepLabCut's (``keypoint_token``, ``pos_embedding``,
``patch_to_embedding``, ``transformer1.layers.0.0.fn.fn.to_qkv``, ...), so its state dicts load
as they are. The sine position embedding is fixed for ``feature_size``, so inputs must give
exactly that map (256 x 256 crops for 64 x 64 HRNet features), as in DeepLabCut.

Our own neck that keeps the spatial map is :class:`~lightning_dlc.models.necks.TransformerNeck`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def tokenpose_sine_embedding(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """DeepLabCut's sine position embedding ``[1, height * width, dim]`` (row-major tokens).

    The first ``dim / 2`` channels encode the row, the rest the column; positions are
    ``1..n`` scaled to ``(0, 2 pi]`` and channel pairs (sin, cos) share a frequency.
    """
    half = dim // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * (2 * math.pi)
    cols = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * (2 * math.pi)
    freqs = temperature ** (2 * (torch.arange(half, dtype=torch.float32) // 2) / half)

    def encode(pos: torch.Tensor) -> torch.Tensor:  # [n] -> [n, half], sin/cos interleaved
        angles = pos[:, None] / freqs
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=-1).flatten(1)

    emb = torch.cat([encode(rows)[:, None].expand(height, width, half),
                     encode(cols)[None].expand(height, width, half)], dim=-1)
    return emb.reshape(1, height * width, dim)


class PreNorm(nn.Module):
    """``fn(LayerNorm(x))``."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class PreNormResidual(nn.Module):
    """``x + fn(LayerNorm(x))``; the extra ``fn`` level gives DeepLabCut's keys (``fn.norm``, ``fn.fn``)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = PreNorm(dim, fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention, scaled by ``(dim / heads) ** -0.5``; one bias-free qkv projection."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.to_qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, heads, N, D / heads]
        return self.to_out(out.transpose(1, 2).reshape(B, N, D))


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear, DeepLabCut's ``FeedForward`` (its weights sit under ``net``)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenEncoder(nn.Module):
    """``depth`` pre-norm (attention, feed-forward) pairs: DeepLabCut's ``TransformerLayer``.

    With ``add_positions``, the patch tokens get the position embedding again before every
    layer but the first (TokenPose's "sine-full").
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dropout: float, n_keypoints: int,
                 add_positions: bool = False):
        super().__init__()
        self.n_keypoints, self.add_positions = n_keypoints, add_positions
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNormResidual(dim, SelfAttention(dim, heads, dropout)),
                           PreNormResidual(dim, FeedForward(dim, mlp_dim, dropout))])
            for _ in range(depth))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        for i, (attention, ff) in enumerate(self.layers):
            if i > 0 and self.add_positions:
                x = torch.cat([x[:, :self.n_keypoints], x[:, self.n_keypoints:] + positions], dim=1)
            x = ff(attention(x))
        return x


class TokenPoseNeck(nn.Module):
    """DeepLabCut's ``Transformer`` neck: feature map ``[B, C, H, W]`` -> keypoint tokens ``[B, K, 3 * dim]``.

    Args:
        in_channels, in_stride: the backbone's channels (DeepLabCut's ``channels``) and stride.
        n_bodyparts: keypoint tokens to learn (DeepLabCut's ``num_keypoints``).
        feature_size: ``(height, width)`` of the backbone map the position embedding is made for.
        patch_size: ``(height, width)`` of a patch, in feature cells.
        dim, depth, heads: token width, layers per encoder (there are three), attention heads.
        mlp_dim: the feed-forward's hidden width (DeepLabCut's default, and its
            animaltokenpose_base, is 3: three hidden units, not three times ``dim``).
        pos_embedding_type: ``"sine-full"`` (DeepLabCut's default: fixed sine positions, added
            again before every layer of the second and third encoders), ``"sine"`` or
            ``"learnable"`` (a learned embedding of keypoint and patch tokens).
        apply_init: DeepLabCut's init (truncated normal std 0.02 Linear weights, zero biases).

    ``out_channels`` is ``3 * dim`` (a token's width) and ``stride`` the backbone's.
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int,
                 feature_size: Sequence[int] = (64, 64), patch_size: Sequence[int] = (4, 4), dim: int = 192,
                 depth: int = 6, heads: int = 8, mlp_dim: int = 3, dropout: float = 0.0, emb_dropout: float = 0.0,
                 pos_embedding_type: Literal["sine-full", "sine", "learnable"] = "sine-full",
                 apply_init: bool = False):
        super().__init__()
        if pos_embedding_type not in ("sine-full", "sine", "learnable"):
            raise ValueError(f"pos_embedding_type must be sine-full, sine or learnable, got {pos_embedding_type!r}")
        self.feature_size = tuple(int(v) for v in feature_size)
        self.patch_size = tuple(int(v) for v in patch_size)
        grid = (self.feature_size[0] // self.patch_size[0], self.feature_size[1] // self.patch_size[1])
        self.n_keypoints, self.pos_embedding_type = n_bodyparts, pos_embedding_type
        self.out_channels, self.stride = 3 * dim, in_stride

        self.keypoint_token = nn.Parameter(torch.zeros(1, n_bodyparts, dim))
        if pos_embedding_type == "learnable":
            self.pos_embedding = nn.Parameter(torch.zeros(1, grid[0] * grid[1] + n_bodyparts, dim))
        else:  # fixed, but saved in the state dict as DeepLabCut saves it
            self.register_buffer("pos_embedding", tokenpose_sine_embedding(*grid, dim))
        self.patch_to_embedding = nn.Linear(in_channels * self.patch_size[0] * self.patch_size[1], dim)
        self.dropout = nn.Dropout(emb_dropout)
        full = pos_embedding_type == "sine-full"
        self.transformer1 = TokenEncoder(dim, depth, heads, mlp_dim, dropout, n_bodyparts)
        self.transformer2 = TokenEncoder(dim, depth, heads, mlp_dim, dropout, n_bodyparts, add_positions=full)
        self.transformer3 = TokenEncoder(dim, depth, heads, mlp_dim, dropout, n_bodyparts, add_positions=full)
        if apply_init:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.LayerNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def patches(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, n_patches, ph * pw * C]``, patches row-major, each (row, col, channel)."""
        B, C, H, W = features.shape
        if (H, W) != self.feature_size:
            raise ValueError(f"TokenPoseNeck's position embedding is made for {self.feature_size} feature maps, "
                             f"got {(H, W)}: give inputs of the crop size it was built for (as DeepLabCut)")
        ph, pw = self.patch_size
        x = features.reshape(B, C, H // ph, ph, W // pw, pw).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(B, (H // ph) * (W // pw), ph * pw * C)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.patch_to_embedding(self.patches(features))
        tokens = self.keypoint_token.expand(x.shape[0], -1, -1)
        positions = self.pos_embedding.to(x.dtype)
        if self.pos_embedding_type == "learnable":
            x = torch.cat([tokens, x], dim=1) + positions
        else:  # keypoint tokens carry no position
            x = torch.cat([tokens, x + positions], dim=1)
        x = self.dropout(x)
        outs = []
        for encoder in (self.transformer1, self.transformer2, self.transformer3):
            x = encoder(x, positions)
            outs.append(x[:, :self.n_keypoints])
        return torch.cat(outs, dim=2)
