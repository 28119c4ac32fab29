"""DEKR head: bottom-up "disentangled keypoint regression" (DeepLabCut 3's ``dekr_w18/w32/w48``).

Every animal is found as a peak of an *instance-centre* heatmap, and its whole pose is read
from that peak's cell: each cell regresses, per bodypart, the offset in input pixels from
the cell centre to that bodypart of the animal whose centre lies there. Bodypart heatmaps
are learnt alongside (they are the usual keypoint heatmaps) and are used at inference to
rescore the regressed keypoints. No grouping step is needed, which is what makes the
method bottom-up yet assembly-free.

The offsets come from *disentangled* branches: after a shared transition, each bodypart has
its own small stack of convolutions (grouped convolutions, one group per bodypart), so a
bodypart's regression only sees the features it learnt for itself. (The DEKR paper also
makes those convolutions adaptive, i.e. pixel-wise deformed; here plain dilated 3x3 grouped
convolutions stand in for that, keeping the head compact.)

Conventions are those of :mod:`heatmap_targets`: keypoints ``[B, N, K, 3]`` (x, y,
visibility) in input pixels, NaN or visibility 0 = missing; cell (i, j) centred at
``((j + 0.5) * s - 0.5, (i + 0.5) * s - 0.5)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dlc.models.heads.heatmap import upsample_steps, upsampler
from lightning_dlc.models.heads.heatmap_targets import (
    _cell_centres,
    _target_points,
    find_peaks,
    grid_to_pixels,
    heatmap_targets,
    pixels_to_grid,
)
from lightning_dlc.models.heads.losses import weighted_mse


def dekr_targets(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, sigma: float,
                 offset_radius: float) -> dict[str, torch.Tensor]:
    """Heatmap, centre and offset targets for one batch, on the keypoints' device.

    * ``heatmap`` ``[B, K + 1, H, W]``: a Gaussian (``sigma`` input pixels) per labeled,
      in-map keypoint for channels ``0..K-1``, and one per individual's *centre* (the mean
      of its labeled, in-map keypoints) for channel ``K``; ``heatmap_weights``
      ``[B, K + 1, 1, 1]`` as :func:`heatmap_targets` (0 for a channel with nothing
      labeled in the image).
    * ``offset`` ``[B, 2K, H, W]`` (x0, y0, x1, y1, ...): at each cell within
      ``offset_radius`` input pixels of an individual's centre, ``keypoint - cell centre``
      for that individual's keypoints; where two individuals' disks overlap, the nearest
      centre wins. ``offset_weights`` ``[B, 2K, H, W]``: ``1 / sqrt(box area)`` there, with
      the box the individual's labeled keypoints' bounding box (each side at least
      ``stride``, so a one-keypoint individual gets a finite weight), and 0 elsewhere and for
      missing keypoints. The area scaling (as in DEKR) turns the offset loss into an error
      relative to the animal's size, so large animals, whose offsets and errors are large in
      pixels, do not dominate small ones.

    All in the keypoints' dtype. ``N = 0`` and all-missing individuals give zero weights.
    """
    H, W = map_size
    x, y, ok = _target_points(keypoints, map_size, stride)  # [B, N, K]
    B, N, K = x.shape
    okf = ok.to(x.dtype)
    count = okf.sum(-1)
    has = count > 0  # [B, N]
    cx, cy = (x * okf).sum(-1) / count.clamp(min=1), (y * okf).sum(-1) / count.clamp(min=1)

    heat, heat_w = heatmap_targets(keypoints, map_size, stride, sigma=sigma)
    centres = torch.stack([cx, cy, has.to(x.dtype)], -1)[:, :, None]  # [B, N, 1, 3]
    centre_heat, centre_w = heatmap_targets(centres, map_size, stride, sigma=sigma)

    # per-individual scale: 1 / sqrt of its labeled keypoints' box area (sides >= stride)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    side_x = torch.where(ok, x, -inf).amax(-1) - torch.where(ok, x, inf).amin(-1)
    side_y = torch.where(ok, y, -inf).amax(-1) - torch.where(ok, y, inf).amin(-1)
    area = side_x.clamp(min=stride) * side_y.clamp(min=stride)
    inv_scale = torch.where(has, area.rsqrt(), 0.0)  # [B, N]; NaN-free for empty individuals

    # nearest labeled centre per cell, and whether it lies within the radius
    xs, ys = _cell_centres(W, stride, x), _cell_centres(H, stride, x)
    d2 = (ys - cy[..., None])[..., :, None] ** 2 + (xs - cx[..., None])[..., None, :] ** 2  # [B, N, H, W]
    d2 = d2.masked_fill(~has[..., None, None], float("inf"))
    d2min, nearest = d2.min(1)  # [B, H, W]
    inside = d2min <= offset_radius**2

    def take(v: torch.Tensor) -> torch.Tensor:  # [B, N, K] -> the nearest individual's, [B, K, H, W]
        index = nearest[:, None, None].expand(B, 1, K, H, W)
        return torch.gather(v[..., None, None].expand(B, N, K, H, W), 1, index).squeeze(1)

    x_near, y_near, ok_near = take(x), take(y), take(okf)
    scale_near = torch.gather(inv_scale, 1, nearest.flatten(1)).view(B, 1, H, W)
    weight = ok_near * inside[:, None].to(x.dtype) * scale_near  # [B, K, H, W]
    offsets = torch.stack([x_near - xs, y_near - ys[:, None]], 2)  # [B, K, 2, H, W]
    offsets = offsets * (weight > 0)[:, :, None]
    weights = weight[:, :, None].expand(B, K, 2, H, W)
    dtype = keypoints.dtype
    return {
        "heatmap": torch.cat([heat, centre_heat.to(dtype)], 1),
        "heatmap_weights": torch.cat([heat_w, centre_w.to(dtype)], 1),
        "offset": offsets.reshape(B, 2 * K, H, W).to(dtype),
        "offset_weights": weights.reshape(B, 2 * K, H, W).to(dtype),
    }


def _per_cell_smooth_l1(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 (beta 1 input pixel) weighted per cell, summed, over the number of supervised cells.

    Unlike the shared masked means this does not divide by the weights' sum, which would
    cancel the ``1 / sqrt(area)`` scale of :func:`dekr_targets`.
    """
    per_cell = F.smooth_l1_loss(prediction.float(), target.float(), reduction="none", beta=1.0)
    weights = weights.to(per_cell.dtype)
    return (per_cell * weights).sum() / (weights > 0).sum().clamp(min=1)


def _sample(maps: torch.Tensor, xy: torch.Tensor, stride: float) -> torch.Tensor:
    """Bilinear value of map k at points ``xy [B, P, K, 2]`` (input pixels) -> ``[B, P, K]``; 0 off the map."""
    B, K, H, W = maps.shape
    P = xy.shape[1]
    grid = pixels_to_grid(xy, stride)
    norm = torch.stack([(grid[..., 0] + 0.5) / W, (grid[..., 1] + 0.5) / H], -1) * 2 - 1  # align_corners=False
    norm = norm.nan_to_num(nan=-2.0).clamp(-2.0, 2.0)  # NaN / huge offsets sample the zero padding
    norm = norm.permute(0, 2, 1, 3).reshape(B * K, P, 1, 2)
    values = F.grid_sample(maps.reshape(B * K, 1, H, W), norm, align_corners=False)  # [B*K, 1, P, 1]
    return values.view(B, K, P).transpose(1, 2)


def decode_dekr(heatmaps: torch.Tensor, offsets: torch.Tensor, stride: float, n_individuals: int,
                extra_candidates: int = 4, threshold: float = 0.05, nms_radius: int = 1,
                pose_nms_distance: float = 8.0) -> torch.Tensor:
    """Centre peaks -> regressed poses -> rescoring -> pose NMS -> the best ``n_individuals``.

    Args:
        heatmaps: ``[B, K + 1, H, W]`` probabilities, the last channel the instance centres.
        offsets: ``[B, 2K, H, W]`` input-pixel offsets from each cell centre.
        extra_candidates: centre peaks kept beyond ``n_individuals``, so a duplicate
            peak removed by pose NMS does not cost a real animal its slot.
        threshold: centre peaks at or below it are not animals.
        pose_nms_distance: a candidate whose keypoints lie on average closer than this many
            input pixels to a better-scored candidate's is a duplicate and dropped.

    Returns:
        ``[B, n_individuals, K, 3]`` (x, y, score), float32, best first. The score of
        keypoint k is ``sqrt(centre score * bodypart-k heatmap at the regressed point)``
        (bilinear, 0 off the map): the centre says an animal is there, the bodypart map
        checks the regressed keypoint lands on a keypoint-like spot. Individuals are ranked
        by the mean of their keypoint scores. Rows are NaN where fewer animals were found.
        Time and memory are bounded by ``n_individuals + extra_candidates`` whatever the maps.
    """
    heatmaps, offsets = heatmaps.float(), offsets.float()
    B, K1, H, W = heatmaps.shape
    K = K1 - 1
    peaks = find_peaks(heatmaps[:, K:], n_individuals + extra_candidates, threshold, nms_radius)
    grid, centre, valid = peaks.xy[:, 0], peaks.scores[:, 0], peaks.valid[:, 0]  # [B, P, 2], [B, P], [B, P]
    P = grid.shape[1]
    grid = torch.where(valid[..., None], grid, 0.0)
    flat = (grid[..., 1] * W + grid[..., 0]).long()  # [B, P]
    off = offsets.reshape(B, K, 2, H * W).gather(3, flat[:, None, None].expand(B, K, 2, P))  # [B, K, 2, P]
    xy = grid_to_pixels(grid, stride)[:, :, None] + off.permute(0, 3, 1, 2)  # [B, P, K, 2]

    centre = torch.where(valid, centre, 0.0)
    scores = (centre[..., None] * _sample(heatmaps[:, :K], xy, stride).clamp(min=0)).sqrt()  # [B, P, K]
    instance = torch.where(valid, scores.mean(-1) if K else centre, float("-inf"))

    # pose NMS: sort by score; drop a candidate near any better one (one vectorized pass)
    instance, order = instance.sort(-1, descending=True)
    xy = xy.gather(1, order[..., None, None].expand(B, P, K, 2))
    scores = scores.gather(1, order[..., None].expand(B, P, K))
    keep = instance > float("-inf")
    if K and P > 1:
        dist = (xy[:, :, None] - xy[:, None]).norm(dim=-1).mean(-1)  # [B, P, P]
        better = torch.ones(P, P, dtype=torch.bool, device=xy.device).tril(-1)  # j < i
        duplicate = ((dist < pose_nms_distance) & better & keep[:, None, :]).any(-1)
        keep &= ~duplicate
    instance = torch.where(keep, instance, float("-inf"))
    instance, best = instance.topk(min(n_individuals, P), dim=-1)  # stays sorted best first
    out = torch.cat([xy, scores[..., None]], -1).gather(1, best[..., None, None].expand(-1, -1, K, 3))
    return torch.where((instance > float("-inf"))[..., None, None], out, float("nan"))


class _GroupedBlock(nn.Module):
    """Residual pair of grouped 3x3 convs: ``groups`` independent branches of equal width."""

    def __init__(self, channels: int, groups: int, dilation: int):
        super().__init__()
        conv = lambda: nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation,  # noqa: E731
                                 groups=groups, bias=False)
        self.body = nn.Sequential(conv(), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  conv(), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class DEKRHead(nn.Module):
    """Bottom-up DEKR head: keypoint + instance-centre heatmaps and per-bodypart pose offsets.

    Outputs (at ``stride = in_stride / 2**n_upsample`` input pixels per cell):
    ``heatmap`` ``[B, K + 1, H, W]`` (K bodyparts, then the instance centre; regressed with
    MSE, scores are the clipped values) and ``offset`` ``[B, 2K, H, W]`` (x0, y0, ...: input
    pixels from each cell centre to the keypoints of the animal centred there). Targets:
    :func:`dekr_targets`; decoding: :func:`decode_dekr`.

    Args:
        output_stride / n_upsample: as :class:`HeatmapHead` (``n_upsample`` wins); DEKR
            works at stride 4, so on HRNet (stride 4) no upsampling is done.
        sigma: Gaussian std in input pixels; default ``2 * stride`` (DEKR's 2 output cells).
        offset_radius: input pixels around a centre where offsets are supervised; default
            ``4 * stride`` (DEKR's 4 output cells).
        heatmap_weight / offset_weight: loss weights; 1 and 0.03 as in the DEKR paper (the
            offset loss is a size-relative smooth-L1, see :func:`dekr_targets`).
        channels: width of the heatmap branch (DEKR: 32).
        offset_channels: width of each bodypart's offset branch (DEKR: 15).
        extra_candidates, centre_threshold, pose_nms_distance: see :func:`decode_dekr`;
            ``pose_nms_distance`` defaults to ``sigma``.
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, output_stride: float | None = 4,
                 n_upsample: int | None = None, sigma: float | None = None, offset_radius: float | None = None,
                 heatmap_weight: float = 1.0, offset_weight: float = 0.03, channels: int = 32,
                 offset_channels: int = 15, extra_candidates: int = 4, centre_threshold: float = 0.05,
                 pose_nms_distance: float | None = None):
        super().__init__()
        n_upsample = upsample_steps(in_stride, output_stride, n_upsample)
        self.stride = in_stride / 2**n_upsample
        self.n_bodyparts = K = n_bodyparts
        self.sigma = sigma if sigma is not None else 2.0 * self.stride
        self.offset_radius = offset_radius if offset_radius is not None else 4.0 * self.stride
        self.heatmap_weight, self.offset_weight = heatmap_weight, offset_weight
        self.extra_candidates, self.centre_threshold = extra_candidates, centre_threshold
        self.pose_nms_distance = pose_nms_distance if pose_nms_distance is not None else self.sigma
        self.heatmap = nn.Sequential(
            upsampler(in_channels, channels, n_upsample), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, K + 1, 1),
        )
        width = K * offset_channels
        self.offset = nn.Sequential(
            upsampler(in_channels, width, n_upsample), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            _GroupedBlock(width, K, dilation=1), _GroupedBlock(width, K, dilation=2),
            nn.Conv2d(width, 2 * K, 1, groups=K),  # group k -> channels (x_k, y_k)
        )

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        # offsets are learnt in cells and reported in input pixels
        return {"heatmap": self.heatmap(features), "offset": self.offset(features) * self.stride}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        return dekr_targets(keypoints, size, self.stride, self.sigma, self.offset_radius)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = {
            "heatmap": self.heatmap_weight * weighted_mse(outputs["heatmap"], targets["heatmap"],
                                                          targets["heatmap_weights"]),
            "offset": self.offset_weight * _per_cell_smooth_l1(outputs["offset"], targets["offset"],
                                                               targets["offset_weights"]),
        }
        losses["total"] = losses["heatmap"] + losses["offset"]
        return losses

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs["heatmap"].float().clamp(0.0, 1.0)

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """``[B, n_individuals, K, 3]`` (x, y, score) in input pixels, best first, NaN rows if missing."""
        return decode_dekr(self.probabilities(outputs), outputs["offset"], self.stride, n_individuals,
                           self.extra_candidates, self.centre_threshold, pose_nms_distance=self.pose_nms_distance)
