"""Heatmap + location-refinement targets and decoding: the core of DeepLabCut's default head.

Pure, vectorized torch functions that run on the inputs' device, with no loops
over the batch.

Conventions (DeepLabCut 3's, so training and decoding match its own):

* Keypoints are ``[B, N, K, 3]``: x, y in input-image pixels (x = column,
  y = row) and a visibility flag. As in DeepLabCut, a keypoint is *labeled* if
  its flag is > 0 (and x, y are finite), *unlabeled* if the flag is 0 or x/y is
  not finite (DeepLabCut's 0), *undefined* if the flag is < 0 (DeepLabCut's -1);
  an all-NaN individual (padding) is none of these and is ignored.
* A map at ``stride`` s has ``map_size = (H, W)`` cells. Cell (row i, col j) is
  centred at input pixel ``x = j * s + s / 2``, ``y = i * s + s / 2`` (see
  :func:`grid_to_pixels`). Keypoints outside the map still shape the targets
  (a Gaussian's tail), as in DeepLabCut.
* Decoders return coordinates in at least float32, even for bf16/fp16 maps,
  because a bf16 pixel coordinate is off by up to a pixel or more. Target
  generators compute in at least float32 and return the keypoints' dtype.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

LOCREF_STD = 7.2801  # DeepLabCut's default locref_stdev


def grid_to_pixels(grid: torch.Tensor | float, stride: float) -> torch.Tensor | float:
    """Map-cell coordinate (col or row, any shape) -> input-image pixel coordinate.

    DeepLabCut's convention (its target generators and predictors): ``j * stride + stride / 2``.
    """
    return grid * stride + stride / 2


def pixels_to_grid(pixels: torch.Tensor | float, stride: float) -> torch.Tensor | float:
    """Input-image pixel coordinate -> (fractional) map-cell coordinate; inverse of grid_to_pixels."""
    return (pixels - stride / 2) / stride


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    # float32 at least: half types cannot hold pixel coordinates or small offsets exactly
    return torch.promote_types(t.dtype, torch.float32)


def _cell_centres(n: int, stride: float, like: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates of the centres of n cells along one axis, ``[n]``."""
    return grid_to_pixels(torch.arange(n, device=like.device, dtype=like.dtype), stride)


def _target_points(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, in_map_only: bool = True):
    """x, y ``[B, N, K]`` (missing ones set to 0, so no NaN leaks) and the labeled mask ``[B, N, K]``.

    ``in_map_only`` also drops keypoints outside the map's extent (the heatmap head's targets
    keep them, as DeepLabCut does).
    """
    if keypoints.ndim != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be [batch, individuals, bodyparts, 3], got {tuple(keypoints.shape)}")
    kp = keypoints.to(_work_dtype(keypoints))
    if kp.shape[1] == 0:  # no individuals at all: one padded, all-missing individual
        kp = kp.new_full((kp.shape[0], 1, kp.shape[2], 3), float("nan"))
    x, y, vis = kp.unbind(-1)
    H, W = map_size
    ok = torch.isfinite(x) & torch.isfinite(y) & (vis > 0)
    if in_map_only:
        ok &= (x >= 0) & (x < W * stride) & (y >= 0) & (y < H * stride)
    return torch.where(ok, x, 0.0), torch.where(ok, y, 0.0), ok


def heatmap_weights(keypoints: torch.Tensor, gradient_masking: bool = False,
                    background_weight: float = 0.1) -> torch.Tensor:
    """DeepLabCut's per-map loss weights ``[B, K, 1, 1]`` (broadcast against the maps).

    1 by default. A bodypart with an undefined keypoint (flag < 0) weighs 0; with
    ``gradient_masking``, one with an unlabeled keypoint weighs ``background_weight``.
    Where individuals disagree, the last of them sets the weight, as DeepLabCut's loop does.
    """
    B, N, K, _ = keypoints.shape
    if N == 0:
        return keypoints.new_ones(B, K, 1, 1)
    x, y, vis = keypoints.to(_work_dtype(keypoints)).unbind(-1)
    undefined = vis < 0
    unlabeled = torch.isfinite(vis) & ~undefined & ((vis == 0) | ~torch.isfinite(x) | ~torch.isfinite(y))
    value = torch.where(undefined, 0.0, background_weight)  # [B, N, K]
    sets = undefined | (unlabeled & gradient_masking)
    n = torch.arange(N, device=keypoints.device).view(1, N, 1)
    last = torch.where(sets, n, -1).amax(1, keepdim=True)  # [B, 1, K]: the last individual setting it
    chosen = torch.gather(value, 1, last.clamp(min=0)).squeeze(1)
    weights = torch.where(last.squeeze(1) >= 0, chosen, 1.0)
    return weights[..., None, None].to(keypoints.dtype)


def heatmap_targets(
    keypoints: torch.Tensor,
    map_size: tuple[int, int],
    stride: float,
    sigma: float | None = None,
    radius: float | None = None,
    mode: Literal["gaussian", "plateau"] = "gaussian",
    gradient_masking: bool = False,
    background_weight: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score-map targets: per bodypart, the max over individuals of one blob per labeled keypoint.

    DeepLabCut's ``HeatmapGaussianGenerator`` / ``HeatmapPlateauGenerator``.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels.
        map_size: ``(H, W)`` of the head's output map.
        stride: input pixels per map cell.
        sigma: Gaussian standard deviation in input pixels (``mode="gaussian"``;
            DeepLabCut's is ``2 / 3 * pos_dist_thresh``).
        radius: disk radius in input pixels (``mode="plateau"``, DeepLabCut's
            ``pos_dist_thresh``: 1 where the cell centre is within ``radius``).
        mode: ``"gaussian"`` (peak 1 at the keypoint) or ``"plateau"``.
        gradient_masking, background_weight: see :func:`heatmap_weights`.

    Returns:
        heatmaps ``[B, K, H, W]`` in [0, 1]; weights ``[B, K, 1, 1]`` (:func:`heatmap_weights`).
        Both in the keypoints' dtype, on their device.
    """
    H, W = map_size
    x, y, ok = _target_points(keypoints, map_size, stride, in_map_only=False)
    xs, ys = _cell_centres(W, stride, x), _cell_centres(H, stride, x)
    dx2 = (xs - x[..., None]) ** 2  # [B, N, K, W]
    dy2 = (ys - y[..., None]) ** 2  # [B, N, K, H]
    if mode == "gaussian":
        if sigma is None or sigma <= 0:
            raise ValueError(f"mode='gaussian' needs sigma > 0 (input pixels), got {sigma}")
        # exp of the summed squares (not a product of 1D profiles), as DeepLabCut computes it
        heat = torch.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 * sigma**2))
        heat = (heat * ok[..., None, None]).amax(1)
    elif mode == "plateau":
        if radius is None or radius <= 0:
            raise ValueError(f"mode='plateau' needs radius > 0 (input pixels), got {radius}")
        inside = (dy2[..., :, None] + dx2[..., None, :]) <= radius**2
        heat = (inside & ok[..., None, None]).any(1).to(x.dtype)
    else:
        raise ValueError(f"mode must be 'gaussian' or 'plateau', got {mode!r}")
    weights = heatmap_weights(keypoints, gradient_masking, background_weight)
    return heat.to(keypoints.dtype), weights


def locref_targets(
    keypoints: torch.Tensor,
    map_size: tuple[int, int],
    stride: float,
    radius: float,
    locref_std: float = LOCREF_STD,
    mode: Literal["gaussian", "plateau"] = "plateau",
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepLabCut's location-refinement targets: ``(keypoint - cell centre) / locref_std``.

    Weights are 1 within ``radius`` input pixels of a labeled keypoint of the bodypart.
    Which keypoint a cell's offsets point to follows DeepLabCut's generators, which
    overwrite in individual order: with ``mode="plateau"``, the last individual whose disk
    holds the cell (0 outside every disk); with ``mode="gaussian"``, the last labeled
    individual, on the whole map (weights still 0 outside the disks).

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels.
        map_size: ``(H, W)``; stride: input pixels per cell; radius: input pixels.

    Returns:
        locref ``[B, 2K, H, W]`` with channels x0, y0, x1, y1, ...; weights
        ``[B, 2K, H, W]``. Keypoints' dtype and device.
    """
    H, W = map_size
    x, y, ok = _target_points(keypoints, map_size, stride, in_map_only=False)
    B, N, K = x.shape
    xs, ys = _cell_centres(W, stride, x), _cell_centres(H, stride, x)
    d2 = (ys - y[..., None])[..., :, None] ** 2 + (xs - x[..., None])[..., None, :] ** 2  # [B, N, K, H, W]
    inside = (d2 <= radius**2) & ok[..., None, None]
    order = torch.arange(N, device=x.device).view(1, N, 1, 1, 1)
    if mode == "plateau":
        last = torch.where(inside, order, -1).amax(1)  # [B, K, H, W]
    elif mode == "gaussian":
        last = torch.where(ok, order[..., 0, 0], -1).amax(1)[..., None, None].expand(B, K, H, W)
    else:
        raise ValueError(f"mode must be 'gaussian' or 'plateau', got {mode!r}")
    near = last.clamp(min=0)[:, None]
    shape = (B, 1, K, H, W)
    x_near = torch.gather(x[..., None, None].expand(B, N, K, H, W), 1, near).reshape(shape).squeeze(1)
    y_near = torch.gather(y[..., None, None].expand(B, N, K, H, W), 1, near).reshape(shape).squeeze(1)
    offsets = torch.stack([x_near - xs, y_near - ys[:, None]], 2) / locref_std  # [B, K, 2, H, W]
    has = (last >= 0)[:, :, None].expand(B, K, 2, H, W)
    locref = torch.where(has, offsets, 0.0).reshape(B, 2 * K, H, W)
    weights = inside.any(1)[:, :, None].expand(B, K, 2, H, W).reshape(B, 2 * K, H, W)
    return locref.to(keypoints.dtype), weights.to(keypoints.dtype)


class Peaks(NamedTuple):
    """Fixed-size peaks per bodypart, best first (unpacks as ``xy, scores, valid``)."""

    xy: torch.Tensor  # [B, K, P, 2] grid (col, row) as float; NaN in invalid slots
    scores: torch.Tensor  # [B, K, P] heatmap value; -inf in invalid slots
    valid: torch.Tensor  # [B, K, P] bool


def find_peaks(heatmaps: torch.Tensor, max_peaks: int, threshold: float, nms_radius: int = 1) -> Peaks:
    """Local maxima of each map (max-pool NMS) scoring > ``threshold``, at most ``max_peaks`` each.

    A cell is a peak if it equals the max of its ``(2 * nms_radius + 1)``-square
    window. Peaks within one window are necessarily equal (a plateau, or a bf16
    tie); of those only the last in raster order is kept, so a tie between two
    cells gives one peak, not two. The top ``max_peaks`` by score are returned,
    which bounds time and memory whatever the maps look like.

    Args:
        heatmaps: ``[B, K, H, W]`` probabilities.

    Returns:
        :class:`Peaks` with ``P = max_peaks`` slots sorted by descending score:
        ``xy [B, K, P, 2]`` (col, row) grid coordinates, ``scores [B, K, P]``,
        ``valid [B, K, P]``. Invalid slots have xy NaN and score -inf. Float
        outputs are in at least float32.
    """
    B, K, H, W = heatmaps.shape
    h = heatmaps.to(_work_dtype(heatmaps))
    k = 2 * nms_radius + 1
    peak = (h == F.max_pool2d(h, k, stride=1, padding=nms_radius)) & (h > threshold)
    # break ties: keep the candidate with the largest raster index in its window
    order = torch.arange(H * W, device=h.device, dtype=torch.float32).view(H, W)  # exact below 2**24
    rank = torch.where(peak, order, -1.0)
    peak &= F.max_pool2d(rank, k, stride=1, padding=nms_radius) == rank
    scores = torch.where(peak, h, float("-inf")).flatten(2)
    scores, idx = scores.topk(min(max_peaks, H * W), dim=-1)
    if max_peaks > H * W:  # pad to the promised fixed size
        pad = max_peaks - H * W
        scores = F.pad(scores, (0, pad), value=float("-inf"))
        idx = F.pad(idx, (0, pad))
    valid = scores > float("-inf")
    xy = torch.stack([idx % W, idx // W], -1).to(h.dtype)
    return Peaks(torch.where(valid[..., None], xy, float("nan")), scores, valid)


def refine(
    peaks_grid_xy: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_std: float = LOCREF_STD,
) -> torch.Tensor:
    """Grid peaks -> input pixels, corrected by the location-refinement offsets at each peak's cell.

    Args:
        peaks_grid_xy: ``[B, K, P, 2]`` (col, row) cell coordinates; NaN rows allowed.
        locref: ``[B, 2K, H, W]`` (x0, y0, x1, y1, ...) offsets in units of
            ``locref_std`` pixels, or None (cell centres only).

    Returns:
        ``[B, K, P, 2]`` (x, y) input pixels, at least float32; NaN where the peak is NaN.
    """
    peaks = peaks_grid_xy.to(_work_dtype(peaks_grid_xy))
    pixels = grid_to_pixels(peaks, stride)
    if locref is None:
        return pixels
    B, K, P, _ = peaks.shape
    H, W = locref.shape[-2:]
    cell = torch.where(torch.isfinite(peaks), peaks, 0.0).round().long()
    flat = cell[..., 1].clamp(0, H - 1) * W + cell[..., 0].clamp(0, W - 1)  # [B, K, P]
    offsets = locref.to(peaks.dtype).reshape(B, K, 2, H * W).gather(3, flat[:, :, None].expand(B, K, 2, P))
    return pixels + offsets.transpose(2, 3) * locref_std


def decode_single(
    heatmaps: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_std: float = LOCREF_STD,
    clip_scores: bool = False,
) -> torch.Tensor:
    """DeepLabCut's ``HeatmapPredictor``: argmax of each bodypart's map, refined by locref.

    Args:
        heatmaps: ``[B, K, H, W]`` scores (the sigmoid already applied for a BCE head);
            ties go to the first cell in raster order, as ``torch.argmax``.
        locref: ``[B, 2K, H, W]`` or None.
        clip_scores: clip the returned scores (not the maps) to [0, 1].

    Returns:
        ``[B, 1, K, 3]`` (x, y in input pixels, score = heatmap value at the
        argmax), at least float32. Every bodypart gets a prediction; a low score
        is the caller's cue that it is absent.
    """
    B, K, H, W = heatmaps.shape
    flat = heatmaps.to(_work_dtype(heatmaps)).flatten(2)
    idx = flat.argmax(-1)  # [B, K]
    scores = flat.gather(-1, idx[..., None])[..., 0]
    if clip_scores:
        scores = scores.clamp(0.0, 1.0)
    grid = torch.stack([idx % W, idx // W], -1)[:, :, None].to(scores.dtype)  # [B, K, 1, 2]
    xy = refine(grid, locref, stride, locref_std)
    return torch.cat([xy, scores[:, :, None, None]], -1).transpose(1, 2)


def decode_top_k(
    heatmaps: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_std: float,
    n_individuals: int,
    threshold: float = 0.0,
    nms_radius: int = 1,
) -> torch.Tensor:
    """Unassembled multi-animal candidates: per bodypart, the best ``n_individuals`` peaks.

    Row i of bodypart k is k's i-th best peak (after NMS, score > ``threshold``),
    refined by locref; rows of different bodyparts are unrelated (no assembly).

    Args:
        heatmaps: ``[B, K, H, W]`` probabilities; locref: ``[B, 2K, H, W]`` or None.

    Returns:
        ``[B, n_individuals, K, 3]`` (x, y, score) sorted by descending score per
        bodypart, at least float32; all-NaN rows where a bodypart has fewer peaks.
    """
    xy, scores, valid = find_peaks(heatmaps, n_individuals, threshold, nms_radius)
    xy = refine(xy, locref, stride, locref_std)
    out = torch.cat([xy, scores[..., None].to(xy.dtype)], -1)  # [B, K, n, 3]
    return torch.where(valid[..., None], out, float("nan")).transpose(1, 2)
