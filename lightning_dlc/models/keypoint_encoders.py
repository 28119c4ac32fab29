"""Conditions -> images a conditional (CTD) backbone can read: DeepLabCut 3's keypoint encoders.

A condition is one animal's proposed pose, ``[B, n_bodyparts, 3]`` (x, y, score) in the pixels of
the image the model sees (the crop); NaN or a score <= 0 marks a missing keypoint. The stacked
encoding (DeepLabCut's ``StackedKeypointEncoder``, from BUCTD) gives each bodypart its own
channel: 255 at the keypoint's pixel, blurred by a 15 x 15 Gaussian (OpenCV's sigma for that size,
2.6), and each sample's maps scaled so their maximum is 255. Tensor code on the batch's device.

Pixels are placed as DeepLabCut places them, so weights trained there see the same maps: a
keypoint at (x, y) marks pixel (int(y) - 1, int(x) - 1), where -1 wraps to the last row/column
(numpy indexing); keypoints outside [0, W] x [0, H] are dropped. One difference: a keypoint with
a NaN coordinate is missing here whatever its score (DeepLabCut turns it into 0 and marks it).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def gaussian_kernel(size: int, device=None) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(size, sigma=0)``: sigma from the size, weights summing to 1."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    offsets = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    weights = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    return (weights / weights.sum()).float()


class StackedKeypointEncoder:
    """One heatmap channel per bodypart (DeepLabCut's ``StackedKeypointEncoder``).

    Args:
        n_bodyparts: channels (DeepLabCut's ``num_joints``).
        kernel_size: (height, width) of the Gaussian blur (DeepLabCut: 15 x 15), odd.
    """

    def __init__(self, n_bodyparts: int, kernel_size: Sequence[int] = (15, 15)):
        if n_bodyparts < 1:
            raise ValueError(f"a keypoint encoder needs at least one bodypart, got {n_bodyparts}")
        ky, kx = (int(k) for k in kernel_size)
        if ky % 2 == 0 or kx % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {tuple(kernel_size)}")
        self.n_bodyparts, self.kernel_size = n_bodyparts, (ky, kx)

    @property
    def num_channels(self) -> int:
        return self.n_bodyparts

    def __call__(self, conditions: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``conditions [B, n_bodyparts, 3]`` -> maps ``[B, n_bodyparts, H, W]`` (float32, 0-255)."""
        if conditions.dim() != 3 or conditions.shape[1:] != (self.n_bodyparts, 3):
            raise ValueError(f"conditions must be [batch, {self.n_bodyparts} bodyparts, 3] (x, y, score), "
                             f"got {tuple(conditions.shape)}")
        H, W = (int(s) for s in size)
        x, y, score = conditions.detach().unbind(-1)
        keep = (score > 0) & ~x.isnan() & ~y.isnan() & (x >= 0) & (x <= W) & (y >= 0) & (y <= H)
        b, k = keep.nonzero(as_tuple=True)
        rows = (y[b, k].long() - 1) % H  # int() truncates; -1 wraps, as DeepLabCut's numpy indexing does
        cols = (x[b, k].long() - 1) % W
        # float32 (DeepLabCut: float64 in OpenCV): maps agree to ~1e-5 of their 255 peak, at half the memory
        maps = torch.zeros(conditions.shape[0], self.n_bodyparts, H, W, device=conditions.device)
        maps[b, k, rows, cols] = 255.0
        maps = self.blur(maps)
        peak = maps.amax(dim=(1, 2, 3), keepdim=True)
        return torch.where(peak > 0, maps / (peak / 255).clamp_min(torch.finfo(maps.dtype).tiny), maps)

    def blur(self, maps: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur per channel, borders reflected without repeating the edge (OpenCV's default)."""
        B, C, H, W = maps.shape
        flat = maps.reshape(B * C, 1, H, W)
        (ky, kx), device = self.kernel_size, maps.device
        flat = F.conv2d(F.pad(flat, (0, 0, ky // 2, ky // 2), mode="reflect"),
                        gaussian_kernel(ky, device).view(1, 1, ky, 1))
        flat = F.conv2d(F.pad(flat, (kx // 2, kx // 2, 0, 0), mode="reflect"),
                        gaussian_kernel(kx, device).view(1, 1, 1, kx))
        return flat.reshape(B, C, H, W)
