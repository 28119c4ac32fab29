"""TokenPose-style transformer neck: global self-attention over the backbone's feature map.

The feature map is cut into ``patch_size x patch_size`` patches, each projected to a
``dim``-wide token by a strided convolution. Fixed 2D sine position embeddings are
computed for the feature map actually given (positions normalised to the map's extent),
so any input image size works without interpolating learned embeddings. A pre-norm
transformer encoder mixes the tokens, which are then folded back into a spatial map
``[B, out_channels, H / patch, W / patch]`` and, when ``patch_size > 1``, resized
bilinearly to the input feature resolution, so ``stride == in_stride``.

Unlike TokenPose, no keypoint tokens are learned or decoded: the neck keeps the
spatial map, so every head (heatmaps, locref, PAFs, identity, ...) works after it
unchanged and simply reads a context-enriched map.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_embedding(height: int, width: int, dim: int, temperature: float = 10000.0,
                            device=None, dtype=torch.float32) -> torch.Tensor:
    """2D sine/cosine embedding ``[height * width, dim]`` in row-major token order.

    The first ``dim / 2`` channels encode the row, the last ``dim / 2`` the column, each as
    sines then cosines of the position (cell centre normalised to ``(0, 2 pi)``) at
    ``dim / 4`` geometrically spaced frequencies.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for a 2D sine embedding, got {dim}")
    n_freq = dim // 4
    freqs = temperature ** (torch.arange(n_freq, device=device, dtype=torch.float32) / n_freq)

    def axis(n: int) -> torch.Tensor:  # [n, dim / 2]
        pos = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * (2 * math.pi)
        angles = pos[:, None] / freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    rows, cols = axis(height), axis(width)
    emb = torch.cat([rows[:, None].expand(height, width, dim // 2),
                     cols[None].expand(height, width, dim // 2)], dim=-1)
    return emb.reshape(height * width, dim).to(dtype)


class TransformerNeck(nn.Module):
    """Patch tokens + sine positions + pre-norm transformer encoder, folded back into a map.

    Args:
        in_channels, in_stride: the backbone's feature channels and stride.
        dim: token width (divisible by 4 and by ``heads``).
        depth: number of encoder layers.
        heads: attention heads per layer.
        mlp_ratio: feed-forward width as a multiple of ``dim``.
        patch_size: feature-map cells per token side; maps whose size is not a multiple
            are zero-padded on the bottom/right and cropped back after upsampling.
        dropout: dropout in attention and feed-forward layers.
        out_channels: channels of the output map (default ``dim``; a 1x1 conv maps to it).
    """

    def __init__(self, in_channels: int, in_stride: int, dim: int = 192, depth: int = 6, heads: int = 8,
                 mlp_ratio: float = 3.0, patch_size: int = 1, dropout: float = 0.0,
                 out_channels: int | None = None):
        super().__init__()
        if dim % 4 or dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by 4 and by heads ({heads})")
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.dim, self.patch_size = dim, patch_size
        self.out_channels: int = out_channels if out_channels is not None else dim
        self.stride = in_stride
        self.embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.project = (nn.Identity() if self.out_channels == dim
                        else nn.Conv2d(dim, self.out_channels, kernel_size=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        B, _, H, W = features.shape
        p = self.patch_size
        pad_h, pad_w = (-H) % p, (-W) % p
        if pad_h or pad_w:
            features = F.pad(features, (0, pad_w, 0, pad_h))
        tokens = self.embed(features)  # [B, dim, h, w]
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # [B, h * w, dim]
        tokens = tokens + sine_position_embedding(h, w, self.dim, device=tokens.device, dtype=tokens.dtype)
        tokens = self.encoder(tokens)
        out = self.project(tokens.transpose(1, 2).reshape(B, self.dim, h, w))
        if p > 1:
            out = F.interpolate(out, size=(h * p, w * p), mode="bilinear", align_corners=False)[..., :H, :W]
        return out
