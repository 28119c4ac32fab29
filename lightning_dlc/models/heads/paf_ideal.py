"""What a perfectly trained part-affinity-field head outputs for known poses: to test and benchmark the
assembly (:mod:`paf_assembly`) with real animals' worth of peaks and links, which an untrained
network's maps (noise) do not give.

Score maps are Gaussian blobs at the keypoints (as logits: the predictor applies the sigmoid), locref
and PAF fields are DeepLabCut's targets (:mod:`heatmap_targets`, :mod:`paf_targets`), so the
assembly recovers every visible keypoint exactly.
"""
from __future__ import annotations

import torch

from lightning_dlc.models.heads.heatmap_targets import LOCREF_STD, heatmap_targets, locref_targets
from lightning_dlc.models.heads.paf_targets import paf_targets

BLOB_SIGMA = 8.0  # input pixels: about 2 cells at DeepLabCut's PAF stride 4, one clean peak per keypoint


def ideal_outputs(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, edges,
                  locref_std: float = LOCREF_STD, radius: float = 17.0, paf_width: float = 20.0,
                  sigma: float = BLOB_SIGMA) -> dict[str, torch.Tensor]:
    """``heatmap`` (logits), ``locref`` and ``paf`` float32 maps ``[B, C, H, W]`` for ``[B, N, K, 3]`` poses
    (x, y, visibility in input pixels; hidden keypoints get no peak), one frame at a time (the PAF
    targets hold ``N * E`` maps per frame while they are made)."""
    keypoints = torch.as_tensor(keypoints, dtype=torch.float32)
    frames = []
    for kp in keypoints.split(1):
        probs, _ = heatmap_targets(kp, map_size, stride, sigma=sigma, mode="gaussian")
        locref, _ = locref_targets(kp, map_size, stride, radius, locref_std, mode="plateau")
        paf, _ = paf_targets(kp, edges, map_size, stride, width=paf_width)
        frames.append({"heatmap": torch.logit(probs.float().clamp(1e-4, 1 - 1e-4)), "locref": locref.float(),
                       "paf": paf.float()})
    return {k: torch.cat([f[k] for f in frames]) for k in frames[0]}
