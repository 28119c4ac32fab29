"""RTMPose's coordinate-classification head (DeepLabCut's ``RTMCCHead``): keypoints as two 1D
classifications, over x bins and over y bins, with DeepLabCut's labels, KL loss and decoder.

Single instance: it reads one pose per image (a top-down crop, or a whole single-animal frame
for our ``simcc`` head set), so its targets use individual 0 of the ``[B, N, K, 3]`` keypoints
and its predictions fill row 0 only.

Bins (DeepLabCut's ``SimCCGenerator`` / ``SimCCPredictor``): with split ratio k, an ``(H, W)``
input has ``int(W * k)`` x bins and ``int(H * k)`` y bins, bin j standing for input pixel
``j / k``. A keypoint at pixel x is labelled by a Gaussian centred on the bin ``round(x * k)``
(labels are whole bins, so a keypoint decodes back within ``0.5 / k`` px), and decodes to
``argmax / k``. A keypoint whose score is at most ``1 / x_bins`` (a flat output) decodes to bin
-1, i.e. pixel ``-1 / k``, as in DeepLabCut.

Parameter names are DeepLabCut's (``final_layer``, ``mlp``, ``gau.uv``, ``gau.gamma``, ...), so
its RTMPose state dicts load as they are. Targets and decoding are vectorized torch on the
inputs' device and compute in at least float32. Sizes here are ``(H, W)``, DeepLabCut's
``input_size`` is ``(W, H)``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import _work_dtype

DECODE_BETA = 150.0  # DeepLabCut's SimCC decoding temperature, per bin of sigma
# DeepLabCut's label widths in bins for a crop side (RTMCCHead.update_input_size)
SIGMA_FOR_SIDE = {192: 4.9, 256: 5.66, 288: 6.0, 384: 6.93}


def default_sigma(input_size: Sequence[int]) -> tuple[float, float]:
    """DeepLabCut's ``(sigma_x, sigma_y)`` in bins for an ``(H, W)`` input: 4.9 for a 192-pixel
    side, 5.66 for 256, 6.0 for 288, 6.93 for 384, else ``2.87 + 0.01 * side``."""
    H, W = input_size
    return tuple(SIGMA_FOR_SIDE.get(int(side), 2.87 + 0.01 * side) for side in (W, H))


def n_bins(input_size: Sequence[int], split_ratio: float) -> tuple[int, int]:
    """``(x_bins, y_bins) = (int(W * k), int(H * k))`` for an ``(H, W)`` input."""
    H, W = input_size
    return int(W * split_ratio), int(H * split_ratio)


def simcc_targets(
    keypoints: torch.Tensor,
    input_size: Sequence[int],
    split_ratio: float,
    sigma: Sequence[float],
    smoothing: Literal["gaussian", "standard"] = "gaussian",
    label_smooth_weight: float = 0.0,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DeepLabCut's SimCC labels for individual 0's keypoints.

    ``gaussian``: a Gaussian (peak 1, or area 1 with ``normalize``) on bin ``round(x * k)``; a
    keypoint whose +-3 sigma window misses every bin gets weight 0. ``standard``: one-hot on that
    bin, ``label_smooth_weight`` spread over the others; a bin off the grid gets weight 0.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels; labeled where the
            visibility is > 0 and x, y are finite.
        input_size: ``(H, W)`` of the input images.
        split_ratio: bins per input pixel.
        sigma: ``(sigma_x, sigma_y)`` in bins.

    Returns:
        x labels ``[B, K, x_bins]``, y labels ``[B, K, y_bins]`` (0 where there is no label) and
        weights ``[B, K]``, in the keypoints' dtype and device.
    """
    if keypoints.ndim != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be [batch, individuals, bodyparts, 3], got {tuple(keypoints.shape)}")
    if smoothing not in ("gaussian", "standard"):
        raise ValueError(f"smoothing must be 'gaussian' or 'standard', got {smoothing!r}")
    kp = keypoints[:, 0].to(_work_dtype(keypoints)) if keypoints.shape[1] else \
        keypoints.new_full((keypoints.shape[0], keypoints.shape[2], 3), float("nan"), dtype=_work_dtype(keypoints))
    labeled = torch.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    drawn = labeled & (kp[..., 2] >= 0.5)  # DeepLabCut weighs 0 < visibility < 0.5 but draws nothing
    centres = torch.where(labeled[..., None], kp[..., :2], 0.0).mul(split_ratio).round()  # [B, K, 2] bins
    labels, on_grid = [], torch.ones_like(labeled)
    for axis, (bins, s) in enumerate(zip(n_bins(input_size, split_ratio), sigma)):
        mu = centres[..., axis, None]
        grid = torch.arange(bins, device=kp.device, dtype=kp.dtype)
        if smoothing == "gaussian":
            on_grid &= (mu[..., 0] - 3 * s < bins) & (mu[..., 0] + 3 * s + 1 >= 0)
            label = torch.exp(-((grid - mu) ** 2) / (2 * s**2))
            label = label / (s * math.sqrt(2 * math.pi)) if normalize else label
        else:
            on_grid &= (mu[..., 0] >= 0) & (mu[..., 0] < bins)
            label = torch.where(grid == mu, 1.0 - label_smooth_weight, label_smooth_weight / (bins - 1))
        labels.append(label)
    weights = labeled & (on_grid | ~drawn)  # DeepLabCut checks the grid only for drawn labels
    show = (drawn & on_grid)[..., None]
    x, y = (torch.where(show, label, 0.0).to(keypoints.dtype) for label in labels)
    return x, y, weights.to(keypoints.dtype)


def kl_per_keypoint(logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0, label_softmax: bool = True,
                    label_beta: float = 10.0) -> torch.Tensor:
    """``KL(target || softmax(beta * logits))`` averaged over bins, ``[B, K]`` (see :func:`kl_discrete_loss`)."""
    log_pred = (logits.float() * beta).log_softmax(-1)
    target = (labels.float() * label_beta).softmax(-1) if label_softmax else labels.float()
    return (torch.special.xlogy(target, target) - target * log_pred).mean(-1)


def kl_discrete_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    beta: float = 10.0,
    label_softmax: bool = True,
    label_beta: float = 10.0,
) -> torch.Tensor:
    """DeepLabCut's ``KLDiscreteLoss``: ``KL(target || softmax(beta * logits))`` averaged over
    bins, times the keypoint's weight, summed over the batch and keypoints and divided by K.

    The target is ``softmax(label_beta * labels)`` with ``label_softmax``, else the labels.
    ``logits``, ``labels``: ``[B, K, bins]``; ``weights``: ``[B, K]`` or None (all 1).
    """
    per_keypoint = kl_per_keypoint(logits, labels, beta, label_softmax, label_beta)
    if weights is not None:
        per_keypoint = per_keypoint * weights
    return per_keypoint.sum() / logits.shape[1]


def simcc_decode(
    x: torch.Tensor,
    y: torch.Tensor,
    split_ratio: float,
    temperature: Sequence[float] = (1.0, 1.0),
    softmax: bool = True,
) -> torch.Tensor:
    """DeepLabCut's SimCC decoding: first argmax of each axis' bins -> input pixels.

    Each axis is multiplied by its temperature (DeepLabCut: ``sigma * decode_beta``) and, with
    ``softmax``, turned into probabilities; the score is the smaller of the two axes' maxima. A
    keypoint scoring at most ``1 / x_bins`` (0 without softmax) gets bin -1 on both axes.

    Args:
        x: ``[B, K, x_bins]``; y: ``[B, K, y_bins]`` (logits or labels).
        split_ratio: bins per input pixel.

    Returns:
        ``[B, K, 3]`` (x, y in input pixels, score), at least float32.
    """
    locations, scores = [], []
    for bins, t in zip((x, y), temperature):
        values = bins.to(_work_dtype(bins)) * t
        values = values.softmax(-1) if softmax else values
        score, index = values.max(-1)  # ties: the first bin
        locations.append(index.to(score.dtype))
        scores.append(score)
    score = torch.minimum(*scores)
    flat = score <= (1.0 / x.shape[-1] if softmax else 0.0)
    xy = torch.where(flat[..., None], -1.0, torch.stack(locations, -1)) / split_ratio
    return torch.cat([xy, score[..., None]], -1)


class ScaleNorm(nn.Module):
    """``g * x / max(||x|| / sqrt(dim), eps)`` over the last dim, one learned gain ``g``."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.scale, self.eps = dim**-0.5, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """A learned per-channel gain (the GAU's residual scale)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GatedAttentionUnit(nn.Module):
    """RTMPose's gated attention unit over keypoint tokens ``[B, K, dim]`` (self-attention, no
    relative-position bias, no dropout: DeepLabCut's RTMPose settings).

    Each token yields a gate ``u`` and a value ``v`` (``expansion * dim``) and a shared
    ``qk_dim`` base; queries and keys are per-dimension affine copies of the base (``gamma``,
    ``beta``). Attention is ``relu(q k^T / sqrt(qk_dim))**2`` (no softmax, not divided by K),
    and ``o(u * (A v))`` is added to the scaled input.
    """

    def __init__(self, dim: int, expansion: float = 2.0, qk_dim: int = 128, eps: float = 1e-5):
        super().__init__()
        self.e, self.s = int(dim * expansion), qk_dim
        self.ln = ScaleNorm(dim, eps)
        self.uv = nn.Linear(dim, 2 * self.e + qk_dim, bias=False)
        self.gamma = nn.Parameter(torch.rand(2, qk_dim))
        self.beta = nn.Parameter(torch.rand(2, qk_dim))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = Scale(dim)
        nn.init.xavier_uniform_(self.uv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, base = F.silu(self.uv(self.ln(x))).split([self.e, self.e, self.s], -1)
        q, k = (base[..., None, :] * self.gamma + self.beta).unbind(-2)
        attention = F.relu(q @ k.transpose(-1, -2) / math.sqrt(self.s)).square()
        return self.res_scale(x) + self.o(u * (attention @ v))


class SimCCHead(nn.Module):
    """DeepLabCut's ``RTMCCHead`` with its target generator, KL criterion and predictor.

    ``features [B, C, h, w]`` -> ``final_layer`` (``final_kernel`` conv to K maps) -> flatten ->
    ``mlp`` (ScaleNorm, linear to ``hidden``) -> ``gau`` over the K keypoint tokens ->
    ``cls_x`` / ``cls_y``: ``{"x": [B, K, x_bins], "y": [B, K, y_bins]}`` logits. The flatten
    size is fixed by ``input_size`` (features ``ceil(H / in_stride) x ceil(W / in_stride)``,
    what the stride-2 convolutions make), so images must be cropped or resized to it.

    Args:
        input_size: ``(H, W)`` of the input images (DeepLabCut's RTMPose: 256 x 256; x: 384 x 384).
        split_ratio: bins per input pixel (2: half-pixel bins).
        sigma: ``(sigma_x, sigma_y)`` label widths in bins; default :func:`default_sigma`.
        beta, label_softmax, label_beta, use_target_weight: the KL loss (see :func:`kl_discrete_loss`).
        smoothing, label_smooth_weight, normalize_labels: the labels (see :func:`simcc_targets`).
        decode_beta: decoding multiplies the logits by ``sigma * decode_beta`` before the softmax.
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, input_size: Sequence[int] = (256, 256),
                 split_ratio: float = 2.0, sigma: Sequence[float] | float | None = None, final_kernel: int = 7,
                 hidden: int = 256, gau_expansion: float = 2.0, gau_qk_dim: int = 128,
                 beta: float = 10.0, label_softmax: bool = True, label_beta: float = 10.0,
                 use_target_weight: bool = True, smoothing: Literal["gaussian", "standard"] = "gaussian",
                 label_smooth_weight: float = 0.0, normalize_labels: bool = False,
                 decode_beta: float = DECODE_BETA):
        super().__init__()
        if len(input_size) != 2:
            raise ValueError(f"input_size must be (height, width), got {input_size}")
        if smoothing == "gaussian" and label_smooth_weight > 0:
            raise ValueError("label_smooth_weight is for smoothing='standard' labels only")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.split_ratio = float(split_ratio)
        self.stride = 1.0 / self.split_ratio  # input pixels per bin
        self.n_bodyparts = n_bodyparts
        self.in_stride = in_stride
        self.feature_size = tuple(math.ceil(s / in_stride) for s in self.input_size)
        if sigma is None:
            sigma = default_sigma(self.input_size)
        elif isinstance(sigma, (int, float)):
            sigma = (sigma, sigma)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.beta, self.label_softmax, self.label_beta = beta, label_softmax, label_beta
        self.use_target_weight = use_target_weight
        self.smoothing, self.label_smooth_weight = smoothing, label_smooth_weight
        self.normalize_labels = normalize_labels
        self.decode_beta = decode_beta
        self.bins = n_bins(self.input_size, self.split_ratio)

        flat = self.feature_size[0] * self.feature_size[1]
        self.gau = GatedAttentionUnit(hidden, gau_expansion, gau_qk_dim)
        self.final_layer = nn.Conv2d(in_channels, n_bodyparts, final_kernel, padding=final_kernel // 2)
        self.mlp = nn.Sequential(ScaleNorm(flat), nn.Linear(flat, hidden, bias=False))
        self.cls_x = nn.Linear(hidden, self.bins[0], bias=False)
        self.cls_y = nn.Linear(hidden, self.bins[1], bias=False)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(features.shape[-2:]) != self.feature_size:
            h, w = features.shape[-2:]
            raise ValueError(
                f"SimCCHead was built for input_size (H, W) = {self.input_size}, i.e. {self.feature_size} "
                f"features at stride {self.in_stride}, but got {(h, w)} features (an input of about "
                f"{(h * self.in_stride, w * self.in_stride)}); resize or crop images to {self.input_size}")
        tokens = self.gau(self.mlp(self.final_layer(features).flatten(2)))  # [B, K, hidden]
        return {"x": self.cls_x(tokens), "y": self.cls_y(tokens)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Labels ``x [B, K, x_bins]``, ``y [B, K, y_bins]`` and ``weights [B, K]`` (individual 0)."""
        x, y, weights = simcc_targets(keypoints, self.input_size, self.split_ratio, self.sigma, self.smoothing,
                                      self.label_smooth_weight, self.normalize_labels)
        return {"x": x, "y": y, "weights": weights}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """DeepLabCut's: one KL loss per axis, ``total`` their mean."""
        weights = targets["weights"] if self.use_target_weight else None
        losses = {axis: kl_discrete_loss(outputs[axis], targets[axis], weights, self.beta, self.label_softmax,
                                         self.label_beta) for axis in ("x", "y")}
        return {**losses, "total": (losses["x"] + losses["y"]) / 2}

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """``[B, n_individuals, K, 3]`` (x, y, score) in input pixels; rows past the first are NaN."""
        temperature = (self.sigma[0] * self.decode_beta, self.sigma[1] * self.decode_beta)
        pose = simcc_decode(outputs["x"], outputs["y"], self.split_ratio, temperature)[:, None]
        if n_individuals > 1:
            pad = pose.new_full((pose.shape[0], n_individuals - 1, *pose.shape[2:]), float("nan"))
            pose = torch.cat([pose, pad], 1)
        return pose
