"""Part-affinity-field (PAF) targets: DeepLabCut's ``PartAffinityFieldGenerator``, batched.

For every graph edge ``(a, b)`` the head predicts a 2-channel field (channels ``2e``, ``2e + 1``
= x, y) that, on each animal's limb from part a to part b, is the unit vector a -> b scaled by
``1 - |distance across| / width``. The predictor reads it back by line integrals
(:mod:`paf_assembly`).
"""
from __future__ import annotations

import torch


def paf_cell_centres(n: int, stride: float, like: torch.Tensor) -> torch.Tensor:
    """DeepLabCut's PAF grid: ``floor(j * stride + stride / 2)`` (it fills an integer grid)."""
    return torch.floor(torch.arange(n, device=like.device, dtype=like.dtype) * stride + stride / 2)


def paf_targets(
    keypoints: torch.Tensor,
    edges,
    map_size: tuple[int, int],
    stride: float,
    width: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PAF targets: on each labeled limb, the unit vector from part a to part b, fading across.

    A cell belongs to the limb of individual n for edge (a, b) if the projection of its centre
    on the limb's direction falls between the two ends and its distance across the limb is at
    most ``width``; its target is ``u * (1 - across / width)``. Where limbs of several
    individuals cover a cell, the last individual's wins (DeepLabCut writes them in order).
    A limb needs both ends labeled (visibility > 0); one of length 0 draws nothing.

    Memory and time are O(B * N * E * H * W), one pass, no loops.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels.
        edges: ``[E, 2]`` bodypart index pairs (a, b).
        map_size: ``(H, W)`` of the head's output; stride: input pixels per cell.
        width: half-width of a limb's band, input pixels.

    Returns:
        pafs ``[B, 2E, H, W]`` (0 off every limb) and weights ``[B, 2E, 1, 1]`` (all 1: DeepLabCut
        weighs every cell). Keypoints' dtype and device.
    """
    if width <= 0:
        raise ValueError(f"width must be > 0 (input pixels), got {width}")
    H, W = map_size
    if keypoints.shape[1] == 0:  # no individuals: nothing drawn
        zeros = keypoints.new_zeros((keypoints.shape[0], 2 * len(edges), H, W))
        return zeros, torch.ones_like(zeros[..., :1, :1])
    # DeepLabCut's number types, so cells exactly on a limb's end or edge fall the same way:
    # float32 labels and unit vectors, float64 distances of the (integer) cell centres
    kp = keypoints.float()
    x, y, vis = kp.unbind(-1)  # [B, N, K]
    ok = torch.isfinite(x) & torch.isfinite(y) & (vis > 0)
    x, y = torch.where(ok, x, 0.0), torch.where(ok, y, 0.0)
    e = torch.as_tensor(edges, dtype=torch.long, device=x.device).reshape(-1, 2)
    if e.numel() and (e.min() < 0 or e.max() >= x.shape[-1]):
        raise ValueError(f"edges must index bodyparts 0..{x.shape[-1] - 1}, got {e.tolist()}")
    ia, ib = e.unbind(1)
    ax, ay, bx, by = x[..., ia], y[..., ia], x[..., ib], y[..., ib]  # [B, N, E]
    vx, vy = bx - ax, by - ay
    length = (vx * vx + vy * vy).double().sqrt().float()
    drawn = ok[..., ia] & ok[..., ib] & (length > 0)
    ux, uy = (torch.where(drawn, v / length.clamp_min(1e-12), 0.0) for v in (vx, vy))
    start, end = ux * ax + uy * ay, ux * bx + uy * by
    low, high = torch.minimum(start, end).double(), torch.maximum(start, end).double()
    ortho = (ay * ux - ax * uy).double()
    xs, ys = paf_cell_centres(W, stride, x.double()), paf_cell_centres(H, stride, x.double())
    e4 = (..., None, None)  # [B, N, E] -> [B, N, E, 1, 1]
    ux, uy = ux.double(), uy.double()
    along = ux[e4] * xs + uy[e4] * ys[:, None]  # [B, N, E, H, W]
    across = (((ys[:, None] * ux[e4] - xs * uy[e4]) - ortho[e4]) / width).abs()
    inside = (along >= low[e4]) & (along <= high[e4]) & (across <= 1) & drawn[e4]
    order = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1, 1)
    last = torch.where(inside, order, -1).amax(1, keepdim=True)  # [B, 1, E, H, W]
    fade = torch.gather(1 - across, 1, last.clamp(min=0)).squeeze(1)
    u = [torch.gather(v[e4].expand_as(across), 1, last.clamp(min=0)).squeeze(1) for v in (ux, uy)]
    hit = (last >= 0).squeeze(1)
    field = torch.stack([torch.where(hit, c * fade, 0.0) for c in u], 2)  # [B, E, 2, H, W]
    pafs = field.flatten(1, 2)
    return pafs.to(keypoints.dtype), torch.ones_like(pafs[..., :1, :1], dtype=keypoints.dtype)
