"""DEKR decoding, as DeepLabCut 3's ``DEKRPredictor``: centre peaks -> regressed poses -> scores -> pose NMS.

Maps are DeepLabCut's raw DEKR outputs: ``heatmap [B, K + 1, H, W]`` (K bodyparts, then the
animal centre) and ``offset [B, 2K, H, W]`` in cells, ``cell - keypoint``. A cell (i, j) is
centred at input pixel ``(j * s + s / 2, i * s + s / 2)``.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

ScoreType = Literal["combined", "center", "heatmap"]


def local_maxima(maps: torch.Tensor) -> torch.Tensor:
    """``maps [B, C, H, W]`` kept where they equal their 5x5 neighbourhood's max, 0 elsewhere (ties all kept)."""
    return maps * (F.max_pool2d(maps, 5, 1, 2) == maps)


def top_cells(maps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best cells of each ``[..., H, W]`` map: values and flat indices, both ``[..., k]``."""
    return maps.flatten(-2).topk(k, dim=-1)


def absorb_into_peaks(poses: torch.Tensor, keypoint_maps: torch.Tensor, k: int, max_distance: float
                      ) -> torch.Tensor:
    """Moves each regressed keypoint (cells, ``[B, P, K, 2]``) onto the nearest of its bodypart's ``k`` best
    peaks (of the already peak-masked ``keypoint_maps``) when that peak is nearer than ``max_distance`` cells."""
    B, K, H, W = keypoint_maps.shape
    _, index = top_cells(keypoint_maps, k)  # [B, K, k]
    peaks = torch.stack([index % W, index // W], -1)  # [B, K, k, 2], integer cells
    distance = (poses[:, :, :, None] - peaks[:, None]).norm(dim=-1)  # [B, P, K, k]
    nearest_distance, nearest = distance.min(-1)
    nearest_peak = peaks[:, None].expand(B, poses.shape[1], K, k, 2).gather(
        3, nearest[..., None, None].expand(*nearest.shape, 1, 2)).squeeze(3)
    return torch.where((nearest_distance < max_distance)[..., None], nearest_peak.to(poses.dtype), poses)


def value_under(poses: torch.Tensor, keypoint_maps: torch.Tensor) -> torch.Tensor:
    """``[B, P, K]``: bodypart k's map at the cell holding each pose's keypoint k (floor, clamped to the map)."""
    B, K, H, W = keypoint_maps.shape
    x = poses[..., 0].floor().clamp(0, W - 1).long()
    y = poses[..., 1].floor().clamp(0, H - 1).long()
    flat = (y * W + x).transpose(1, 2)  # [B, K, P]
    return keypoint_maps.flatten(2).gather(2, flat).transpose(1, 2)


def suppressed_poses(poses: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[B, P]``: pose j (pixels, ``[B, P, K, 2]``, in centre-score order) is dropped when an earlier pose
    has at least one keypoint nearer than ``threshold * diagonal of pose j`` to pose j's (a dropped pose
    still drops later ones, as DeepLabCut's one-pass test does)."""
    P = poses.shape[1]
    span = poses.amax(2) - poses.amin(2)  # [B, P, 2]
    diagonal = (span.pow(2).sum(-1)).clamp(min=1).sqrt()  # [B, P]
    distance = (poses[:, :, None] - poses[:, None]).pow(2).sum(-1).sqrt()  # [B, P, P, K]: i, j
    close = (distance < threshold * diagonal[:, None, :, None]).sum(-1) > threshold  # [B, P, P]
    earlier = torch.ones(P, P, dtype=torch.bool, device=poses.device).triu(1)  # i < j
    return (close & earlier).any(1)


def decode_dekr(heatmap: torch.Tensor, offset: torch.Tensor, stride: float, n_individuals: int,
                score_type: ScoreType = "combined", use_heatmap: bool = False, max_absorb_distance: float = 75.0,
                nms_threshold: float = 0.05, apply_pose_nms: bool = True, apply_sigmoid: bool = False,
                clip_scores: bool = True) -> torch.Tensor:
    """``[B, n_individuals, K, 3]`` (x, y, score) in input pixels, float32, DeepLabCut's ``DEKRPredictor``.

    The ``n_individuals`` best 5x5 local maxima of the centre map (no threshold) each give an
    animal: keypoint k is ``cell - offset_k`` there; with ``use_heatmap`` it snaps onto a
    nearby bodypart peak. Scores: ``combined`` = centre value x bodypart map under the
    keypoint, ``center`` or ``heatmap`` alone; clipped to [0, 1] with ``clip_scores``. Pose
    NMS (see :func:`suppressed_poses`) keeps the survivors first, in DeepLabCut's order
    (reversed centre-score order); dropped animals are NaN rows (DeepLabCut writes -1).
    """
    heat, offset = heatmap.float(), offset.float()
    if apply_sigmoid:
        heat = heat.sigmoid()
    B, K1, H, W = heat.shape
    K = K1 - 1
    P = min(n_individuals, H * W)
    centre_scores, index = top_cells(local_maxima(heat[:, K:]), P)  # [B, 1, P]
    centre_scores, index = centre_scores[:, 0], index[:, 0]
    regressed = offset.view(B, K, 2, H * W).gather(3, index[:, None, None].expand(B, K, 2, P))  # [B, K, 2, P]
    cell = torch.stack([index % W, index // W], -1).to(heat.dtype)  # [B, P, 2]
    poses = cell[:, :, None] - regressed.permute(0, 3, 1, 2)  # [B, P, K, 2] cells
    keypoint_maps = heat[:, :K]
    if use_heatmap:
        keypoint_maps = local_maxima(keypoint_maps)  # DeepLabCut scores on the masked maps too
        poses = absorb_into_peaks(poses, keypoint_maps, P, max_absorb_distance)

    if score_type == "center":
        scores = centre_scores[..., None].expand(B, P, K)
    elif score_type == "heatmap":
        scores = value_under(poses, keypoint_maps)
    elif score_type == "combined":
        scores = centre_scores[..., None] * value_under(poses, keypoint_maps)
    else:
        raise ValueError(f"unknown DEKR keypoint score type {score_type!r}: combined, center or heatmap")
    if clip_scores:
        scores = scores.clamp(0, 1)
    out = torch.cat([poses * stride + 0.5 * stride, scores[..., None]], -1)

    if apply_pose_nms and P:
        kept = ~suppressed_poses(out[..., :2], nms_threshold)
        order = torch.arange(P, device=out.device)
        rank = kept.float() + (order.float() + 1) / (P + 1)  # DeepLabCut's sort key: survivors first
        out = torch.where(kept[..., None, None], out, float("nan"))
        out = out.gather(1, rank.sort(1, descending=True).indices[..., None, None].expand(B, P, K, 3))
    if P < n_individuals:
        out = torch.cat([out, out.new_full((B, n_individuals - P, K, 3), float("nan"))], 1)
    return out
