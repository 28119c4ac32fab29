"""DEKR training targets, as DeepLabCut 3's ``DEKRGenerator`` makes them, vectorized over the batch.

Geometry is DeepLabCut's for DEKR: cell (i, j) of a stride-s map is centred at input pixel
``(j * s + s / 2, i * s + s / 2)``, so a point at pixel x sits at cell ``(x - s / 2) / s``.
Offsets are in cells and point from the keypoint to the cell (``cell - keypoint``), the sign
DeepLabCut's predictor undoes.
"""
from __future__ import annotations

import torch

BACKGROUND_WEIGHT = 0.1  # heatmap weight of cells no labeled keypoint's window covers
BOX_MARGIN = 20.0  # input pixels around an animal's keypoints: the box whose area scales its offsets


def labeled(keypoints: torch.Tensor) -> torch.Tensor:
    """``[..., K]``: a keypoint counts where its visibility is > 0 and it has finite coordinates."""
    return (keypoints[..., 2] > 0) & keypoints[..., :2].isfinite().all(-1)


def with_centres(keypoints: torch.Tensor) -> torch.Tensor:
    """``[B, N, K, 3] -> [B, N, K + 1, 3]``: each animal's mean labeled keypoint appended (visibility 2),
    or a ``(0, 0, 0)`` centre for an animal with nothing labeled."""
    ok = labeled(keypoints)
    xy = torch.where(ok[..., None], keypoints[..., :2], 0.0)
    count = ok.sum(-1, keepdim=True)
    centre = xy.sum(-2) / count.clamp(min=1)
    has = count > 0
    centre = torch.cat([torch.where(has, centre, 0.0), has.to(centre.dtype) * 2], -1)
    return torch.cat([torch.where(ok[..., None], keypoints, 0.0), centre[:, :, None]], 2)


def animal_areas(keypoints: torch.Tensor, image_size: tuple[float, float], margin: float = BOX_MARGIN
                 ) -> torch.Tensor:
    """``[B, N]`` areas (input pixels²) of the labeled keypoints' boxes, ``margin`` added on each side,
    clipped to the image, each side at least 1 (DeepLabCut's keypoint boxes); 1 for an empty animal."""
    ok = labeled(keypoints)
    inf = torch.tensor(float("inf"), dtype=keypoints.dtype, device=keypoints.device)
    low = torch.where(ok[..., None], keypoints[..., :2], inf).amin(-2) - margin
    high = torch.where(ok[..., None], keypoints[..., :2], -inf).amax(-2) + margin
    limit = torch.tensor([image_size[1], image_size[0]], dtype=keypoints.dtype, device=keypoints.device)
    has = ok.any(-1, keepdim=True)
    low = torch.where(has, low, 0.0).clamp(min=0.0).minimum(limit)
    high = torch.where(has, high, 0.0).clamp(min=0.0).minimum(limit)
    sides = (high - low).clamp(min=1.0)
    return sides[..., 0] * sides[..., 1]


def dekr_targets(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, pos_dist_thresh: float = 17.0,
                 area: torch.Tensor | None = None, bg_weight: float = BACKGROUND_WEIGHT) -> dict[str, torch.Tensor]:
    """Heatmap and offset targets for ``keypoints [B, N, K, 3]`` (input pixels, NaN / visibility 0 missing).

    * ``heatmap [B, K + 1, H, W]``: per labeled keypoint inside the map a Gaussian (sigma
      ``pos_dist_thresh / 2`` input pixels, ``pos_dist_thresh`` for the centre channel K) on
      its window ``[floor(c - 3 sigma - 1), ceil(c + 3 sigma + 2))`` cells, the max over
      animals; ``heatmap_weights``: 1 on those windows, ``bg_weight`` elsewhere.
    * ``offset [B, 2K, H, W]`` (x0, y0, x1, ...), in cells, ``cell - keypoint``, on the square of
      cells within ``pos_dist_thresh`` input pixels of the animal's (truncated) centre;
      ``offset_weights``: ``1 / sqrt(area)`` there. Animals are written in order; a cell an
      earlier animal already holds is kept by the smaller one, as DeepLabCut's loop decides.

    ``area [B, N]``: the animals' box areas in input pixels² (default :func:`animal_areas` on
    the map's extent in pixels). Computed in float32 at least, returned in float32.
    """
    H, W = map_size
    dtype = torch.promote_types(keypoints.dtype, torch.float32)
    points = with_centres(keypoints.to(dtype))  # [B, N, K + 1, 3]
    B, N, K1, _ = points.shape
    K = K1 - 1
    if area is None:
        area = animal_areas(keypoints.to(dtype), (H * stride, W * stride))
    area = area.to(dtype)
    scale = 1.0 / stride
    sigma = torch.full((K1,), pos_dist_thresh / 2 * scale, dtype=dtype, device=points.device)
    sigma[K] = pos_dist_thresh * scale
    radius = pos_dist_thresh * scale

    cells = (points[..., :2] - stride / 2) / stride  # [B, N, K + 1, 2]
    cx, cy = cells[..., 0], cells[..., 1]
    inside = (points[..., 2] > 0) & (cx >= 0) & (cy >= 0) & (cx < W) & (cy < H)
    xs = torch.arange(W, dtype=dtype, device=points.device)
    ys = torch.arange(H, dtype=dtype, device=points.device)

    # heatmaps: windowed Gaussians, the max over animals; weights 1 on windows, 0 on a channel an
    # animal marks undefined (visibility -1) until a later animal's window, else the background
    reach_low, reach_high = 3 * sigma + 1, 3 * sigma + 2
    in_x = (xs >= (cx - reach_low).floor()[..., None]) & (xs < (cx + reach_high).ceil()[..., None])  # [B, N, K+1, W]
    in_y = (ys >= (cy - reach_low).floor()[..., None]) & (ys < (cy + reach_high).ceil()[..., None])
    undefined = torch.cat([keypoints[..., 2] == -1, points.new_zeros(B, N, 1, dtype=torch.bool)], 2)
    heatmap = points.new_zeros(B, K1, H, W)
    weights = points.new_full((B, K1, H, W), -1.0)  # -1: not yet set
    # the Gaussian is separable: two 1-D exponentials per point instead of one per cell
    gauss_x = torch.exp(-((xs - cx[..., None]) ** 2) / (2 * sigma[:, None] ** 2))  # [B, N, K + 1, W]
    gauss_y = torch.exp(-((ys - cy[..., None]) ** 2) / (2 * sigma[:, None] ** 2))
    in_y = in_y & inside[..., None]
    for n in range(N):  # one animal at a time keeps memory at one [B, K + 1, H, W] map
        window = in_y[:, n, :, :, None] & in_x[:, n, :, None, :]
        gauss = (gauss_y[:, n] * in_y[:, n])[..., :, None] * (gauss_x[:, n] * in_x[:, n])[..., None, :]
        heatmap = heatmap.maximum(gauss)  # 0 off the window
        weights = torch.where(undefined[:, n, :, None, None], 0.0, weights)
        weights = torch.where(window, 1.0, weights)
    weights = torch.where(weights < 0, bg_weight, weights)

    # offsets: the square around each animal's truncated centre, animals written in order
    centre_cells = (points[:, :, K, :2].trunc() - stride / 2) / stride  # [B, N, 2]
    low = (centre_cells - radius).trunc().clamp(min=0)
    high = (centre_cells + radius).trunc()
    offset_x, offset_y = points.new_zeros(B, K, H, W), points.new_zeros(B, K, H, W)
    offset_weights = points.new_zeros(B, K, H, W)
    area_map = points.new_zeros(B, 1, H, W)
    joints = torch.arange(K, dtype=torch.int16, device=points.device)[:, None, None]
    for n in range(N):
        square = (((ys >= low[:, n, 1, None]) & (ys < high[:, n, 1, None]))[:, :, None]
                  & ((xs >= low[:, n, 0, None]) & (xs < high[:, n, 0, None]))[:, None, :])  # [B, H, W]
        candidate = inside[:, n, :K, None, None] & square[:, None]  # [B, K, H, W]
        a = area[:, n, None, None, None]
        held = ((offset_x != 0) | (offset_y != 0)) & (area_map < a)  # a smaller animal holds it for this joint
        free = candidate & ~held
        # once this animal wrote any joint at a cell, the cell's area is its own: later joints overwrite
        first_free = torch.where(free, joints, K).amin(1, keepdim=True)  # K where none is free
        wrote_before = joints > first_free
        write = free | (candidate & wrote_before)
        offset_x = torch.where(write, xs - cx[:, n, :K, None, None], offset_x)
        offset_y = torch.where(write, ys[:, None] - cy[:, n, :K, None, None], offset_y)
        offset_weights = torch.where(write, a.rsqrt(), offset_weights)
        area_map = torch.where(write.any(1, keepdim=True), a, area_map)
    offset = torch.stack([offset_x, offset_y], 2)
    offset_weights = offset_weights[:, :, None].expand(B, K, 2, H, W)
    return {
        "heatmap": heatmap.float(), "heatmap_weights": weights.float(),
        "offset": offset.reshape(B, 2 * K, H, W).float(),
        "offset_weights": offset_weights.reshape(B, 2 * K, H, W).float(),
    }
