"""RTMPose's SimCC head: keypoints as two 1D classifications, over x bins and over y bins.

Single instance: SimCC predicts one pose per image (a top-down crop or a
single-animal frame), so its targets use individual 0 of the ``[B, N, K, 3]``
keypoints and its predictions fill row 0 only.

Bin convention: with ``split_ratio`` k, an image ``(H, W)`` has ``round(W * k)``
x bins and ``round(H * k)`` y bins, and bin j is centred at input pixel
``j / k`` (pixel centres at integer coordinates, as everywhere in this package;
see :mod:`~lightning_dlc.models.heads.heatmap_targets`). A keypoint at pixel x
is labelled with a Gaussian centred on the fractional bin ``x * k`` and decodes
back to ``argmax / k``, within ``0.5 / k`` px of where it was. With integer k
every pixel centre is a bin centre. The bins span pixels ``[0, W - 1/k]``, so a
keypoint in the outer half pixel of the image decodes to the edge bin (error
up to 0.5 px). Keypoints outside the image extent
``[-0.5, W - 0.5) x [-0.5, H - 0.5)`` count as missing.

Like the heatmap module, targets and decoding are vectorized torch on the
inputs' device and compute in at least float32.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import _target_points, _work_dtype
from lightning_dlc.models.heads.losses import _masked_mean

DECODE_BETA = 150.0  # DeepLabCut's SimCC decoding temperature, per bin of sigma


def default_sigma(input_size: Sequence[int], split_ratio: float = 2.0) -> tuple[float, float]:
    """RTMPose's label widths ``(sigma_x, sigma_y)`` in bins for an ``(H, W)`` input.

    RTMPose's configs (split ratio 2) use 5.66 bins for a 256-pixel side, 4.9 for
    192 and 6.93 for 384: all ``sqrt(side / 8)``. The width is kept constant in
    pixels for other split ratios, i.e. ``sigma = split_ratio / 2 * sqrt(side / 8)``.
    """
    H, W = input_size
    return split_ratio / 2 * math.sqrt(W / 8), split_ratio / 2 * math.sqrt(H / 8)


def n_bins(input_size: Sequence[int], split_ratio: float) -> tuple[int, int]:
    """``(x_bins, y_bins) = (round(W * k), round(H * k))`` for an ``(H, W)`` input."""
    H, W = input_size
    return round(W * split_ratio), round(H * split_ratio)


def simcc_targets(
    keypoints: torch.Tensor,
    input_size: Sequence[int],
    split_ratio: float,
    sigma: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1D Gaussian labels (peak 1) per axis for individual 0's keypoints.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels; only
            individual 0 is used (SimCC is single-instance).
        input_size: ``(H, W)`` of the input images.
        split_ratio: bins per input pixel.
        sigma: ``(sigma_x, sigma_y)`` in bins.

    Returns:
        x labels ``[B, K, x_bins]``, y labels ``[B, K, y_bins]`` (all 0 for a
        missing keypoint) and weights ``[B, K]``: 1 where individual 0's keypoint
        is labeled and inside the image, else 0. Keypoints' dtype and device.
    """
    H, W = (int(s) for s in input_size)
    x, y, ok = _target_points(keypoints[:, :1], (H, W), 1.0)
    x, y, ok = x[:, 0], y[:, 0], ok[:, 0]  # [B, K]
    labels = []
    for centre, bins, s in zip((x, y), n_bins((H, W), split_ratio), sigma):
        grid = torch.arange(bins, device=x.device, dtype=x.dtype)
        g = torch.exp(-((grid - centre[..., None] * split_ratio) ** 2) / (2 * s**2))
        labels.append((g * ok[..., None]).to(keypoints.dtype))
    return labels[0], labels[1], ok.to(keypoints.dtype)


def simcc_decode(
    x: torch.Tensor,
    y: torch.Tensor,
    split_ratio: float,
    temperature: Sequence[float] = (1.0, 1.0),
) -> torch.Tensor:
    """Argmax of each axis' bins -> input pixels, scored by the peak probabilities.

    The score of a keypoint is the smaller of its two axes' maximum of
    ``softmax(bins * temperature)``: near 1 for a single sharp peak, lower when
    an axis is ambiguous (RTMPose's min-of-axes rule, DeepLabCut's softmax).

    Args:
        x: ``[B, K, x_bins]``; y: ``[B, K, y_bins]`` (logits or labels).
        split_ratio: bins per input pixel.
        temperature: ``(t_x, t_y)`` multiplying the bins before the softmax.

    Returns:
        ``[B, K, 3]`` (x, y in input pixels, score in [0, 1]), at least float32.
    """
    coords, scores = [], []
    for bins, t in zip((x, y), temperature):
        probs = (bins.to(_work_dtype(bins)) * t).softmax(-1)
        score, idx = probs.max(-1)
        coords.append(idx.to(score.dtype) / split_ratio)
        scores.append(score)
    return torch.stack([*coords, torch.minimum(*scores)], -1)


class ScaleNorm(nn.Module):
    """``g * x / rms(x)`` over the last dim, with a single learned gain (RTMPose's ScaleNorm)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.gain


class GatedAttentionUnit(nn.Module):
    """Compact GAU (FLASH, as in RTMPose) over tokens ``[B, T, dim]``: one block, one residual.

    Each token yields a gate ``u``, a value ``v`` (both ``expansion * dim``)
    and a shared ``qk_dim`` base ``z``; queries and keys are per-dimension affine
    copies of ``z``. Attention is ``relu(q k^T / sqrt(qk_dim))**2 / T`` (no
    softmax, no positional terms: the K keypoint tokens are an unordered set
    whose identity is carried by their features), and the output
    ``W_o(u * (A v))`` is gated token-wise before the rescaled residual.
    """

    def __init__(self, dim: int, expansion: float = 2.0, qk_dim: int = 128):
        super().__init__()
        self.e, self.s = int(dim * expansion), qk_dim
        self.norm = ScaleNorm()
        self.proj = nn.Linear(dim, 2 * self.e + qk_dim, bias=False)
        self.qk_gain = nn.Parameter(1 + 0.02 * torch.randn(2, qk_dim))
        self.qk_bias = nn.Parameter(torch.zeros(2, qk_dim))
        self.out = nn.Linear(self.e, dim, bias=False)
        self.residual_scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, z = F.silu(self.proj(self.norm(x))).split([self.e, self.e, self.s], -1)
        q, k = (z[..., None, :] * self.qk_gain + self.qk_bias).unbind(-2)
        attn = F.relu(q @ k.transpose(-1, -2) / math.sqrt(self.s)).square() / x.shape[-2]
        return x * self.residual_scale + self.out(u * (attn @ v))


class SimCCHead(nn.Module):
    """RTMPose's coordinate-classification head (single instance; see the module docstring).

    ``features [B, C, h, w]`` -> ``final_kernel`` conv to K maps -> flatten ->
    ScaleNorm + linear to ``hidden`` per keypoint -> GAU over the K keypoint tokens
    -> linear to x bins and to y bins: ``{"x": [B, K, x_bins], "y": [B, K, y_bins]}``
    logits. The flatten size is fixed by ``input_size`` (features must be
    ``ceil(H / in_stride) x ceil(W / in_stride)``), so images must be resized
    or cropped to ``input_size``.

    Args:
        input_size: ``(H, W)`` of the input images.
        split_ratio: bins per input pixel (RTMPose: 2, half-pixel bins).
        sigma: ``(sigma_x, sigma_y)`` label widths in bins; default
            :func:`default_sigma` (RTMPose's 5.66 bins for a 256-pixel side).
        beta: temperature of the KL loss, applied to logits and, with
            ``label_softmax``, to the labels (RTMPose: 10).
        label_softmax: target distribution ``softmax(beta * label)`` (RTMPose);
            otherwise the labels normalised to sum to 1.
        decode_beta: prediction scores are the peak of
            ``softmax(logits * sigma * decode_beta)`` per axis, min over axes
            (DeepLabCut's 150: a sharp softmax, ~1 for a confident unimodal output).
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, input_size: Sequence[int] = (256, 256),
                 split_ratio: float = 2.0, sigma: Sequence[float] | float | None = None, final_kernel: int = 7,
                 hidden: int = 256, gau: bool = True, gau_expansion: float = 2.0, gau_qk_dim: int = 128,
                 beta: float = 10.0, label_softmax: bool = True, decode_beta: float = DECODE_BETA):
        super().__init__()
        if len(input_size) != 2:
            raise ValueError(f"input_size must be (height, width), got {input_size}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.split_ratio = float(split_ratio)
        self.stride = 1.0 / self.split_ratio  # input pixels per bin
        self.n_bodyparts = n_bodyparts
        self.in_stride = in_stride
        self.feature_size = tuple(math.ceil(s / in_stride) for s in self.input_size)
        if sigma is None:
            sigma = default_sigma(self.input_size, self.split_ratio)
        elif isinstance(sigma, (int, float)):
            sigma = (sigma, sigma)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.beta, self.label_softmax, self.decode_beta = beta, label_softmax, decode_beta
        self.bins = n_bins(self.input_size, self.split_ratio)

        self.final = nn.Conv2d(in_channels, n_bodyparts, final_kernel, padding=final_kernel // 2)
        flat = self.feature_size[0] * self.feature_size[1]
        self.mlp = nn.Sequential(ScaleNorm(), nn.Linear(flat, hidden, bias=False))
        self.gau = GatedAttentionUnit(hidden, gau_expansion, gau_qk_dim) if gau else nn.Identity()
        self.cls_x = nn.Linear(hidden, self.bins[0], bias=False)
        self.cls_y = nn.Linear(hidden, self.bins[1], bias=False)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(features.shape[-2:]) != self.feature_size:
            h, w = features.shape[-2:]
            raise ValueError(
                f"SimCCHead was built for input_size (H, W) = {self.input_size}, i.e. {self.feature_size} "
                f"features at stride {self.in_stride}, but got {(h, w)} features (an input of about "
                f"{(h * self.in_stride, w * self.in_stride)}); resize or crop images to {self.input_size}")
        tokens = self.gau(self.mlp(self.final(features).flatten(2)))  # [B, K, hidden]
        return {"x": self.cls_x(tokens), "y": self.cls_y(tokens)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gaussian labels ``x [B, K, x_bins]``, ``y [B, K, y_bins]`` and ``weights [B, K]`` (individual 0)."""
        x, y, weights = simcc_targets(keypoints, self.input_size, self.split_ratio, self.sigma)
        return {"x": x, "y": y, "weights": weights}

    def _distribution(self, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.float()
        if self.label_softmax:
            return (labels * self.beta).softmax(-1)
        return labels / labels.sum(-1, keepdim=True).clamp(min=1e-12)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """KL(target || softmax(beta * logits)) in nats, summed over bins and the two axes,
        averaged over labeled keypoints (RTMPose averages over bins instead: a constant factor)."""
        per_keypoint = 0.0
        for axis in ("x", "y"):
            target = self._distribution(targets[axis])
            log_pred = (outputs[axis].float() * self.beta).log_softmax(-1)
            per_keypoint = per_keypoint + (torch.special.xlogy(target, target) - target * log_pred).sum(-1)
        simcc = _masked_mean(per_keypoint, targets["weights"])
        return {"simcc": simcc, "total": simcc}

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """``[B, n_individuals, K, 3]`` (x, y, score) in input pixels; rows past the first are NaN."""
        temperature = (self.sigma[0] * self.decode_beta, self.sigma[1] * self.decode_beta)
        pose = simcc_decode(outputs["x"], outputs["y"], self.split_ratio, temperature)[:, None]
        if n_individuals > 1:
            pad = pose.new_full((pose.shape[0], n_individuals - 1, *pose.shape[2:]), float("nan"))
            pose = torch.cat([pose, pad], 1)
        return pose
