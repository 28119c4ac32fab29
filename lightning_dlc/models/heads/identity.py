"""Identity head for DeepLabCut projects with ``identity: true``.

In such projects each individual name is one consistent animal (the same mouse in
every frame), so individual index n of the keypoints tensor ``[B, N, K, 3]`` *is*
identity n. The head predicts, at every map cell, logits over the identities; it is
supervised only near labeled keypoints (where animals are) and read out at the
cells of an assembled animal's keypoints to say which identity that animal is.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from lightning_dlc.models.heads.heatmap import upsample_steps, upsampler
from lightning_dlc.models.heads.heatmap_targets import _cell_centres, _target_points, pixels_to_grid
from lightning_dlc.models.heads.losses import _masked_mean


def identity_targets(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, radius: float,
                     n_identities: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot identity maps: a cell within ``radius`` input pixels of a labeled keypoint of individual n.

    Where the disks of several individuals overlap, the individual owning the nearest
    keypoint wins, so a keypoint's own cell always teaches its own identity.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility), individual n = identity n; ``N <= n_identities``.
        map_size: ``(H, W)``; stride: input pixels per cell; radius: input pixels.

    Returns:
        targets ``[B, n_identities, H, W]`` (one-hot where supervised, else 0) and weights
        ``[B, 1, H, W]``: 1 within ``radius`` of any labeled, in-map keypoint, else 0.
        Keypoints' dtype and device.
    """
    if keypoints.ndim == 4 and keypoints.shape[1] > n_identities:
        raise ValueError(f"keypoints have {keypoints.shape[1]} individuals but the head knows "
                         f"{n_identities} identities")
    H, W = map_size
    x, y, ok = _target_points(keypoints, map_size, stride)  # [B, N, K]
    xs, ys = _cell_centres(W, stride, x), _cell_centres(H, stride, x)
    d2 = (ys - y[..., None])[..., :, None] ** 2 + (xs - x[..., None])[..., None, :] ** 2  # [B, N, K, H, W]
    d2 = d2.masked_fill(~ok[..., None, None], float("inf")).amin(2)  # [B, N, H, W]: nearest keypoint per animal
    d2min, nearest = d2.min(1)  # [B, H, W]
    inside = (d2min <= radius**2)[:, None]  # [B, 1, H, W]
    onehot = torch.zeros((x.shape[0], n_identities, H, W), dtype=x.dtype, device=x.device)
    onehot.scatter_(1, nearest[:, None], 1.0)
    targets = onehot * inside
    return targets.to(keypoints.dtype), inside.to(keypoints.dtype)


def assign_identities(poses: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Reorder assembled animals so that row n is the animal predicted as identity n.

    Per image, animals are matched one-to-one to identities by the Hungarian method,
    maximising the summed log-probability of the chosen identities. Animals with no
    identity evidence (NaN probabilities) are left out; identities no animal gets (and,
    with more animals than identities, the least likely animals) are dropped / NaN rows.

    Args:
        poses: ``[B, N, K, C]`` assembled predictions (x, y, score, ...).
        probs: ``[B, N, n_identities]`` from :meth:`IdentityHead.predict`.

    Returns:
        ``[B, n_identities, K, C]`` in the poses' dtype and device; all-NaN rows for
        identities not assigned.
    """
    B, N, K, C = poses.shape
    n_ids = probs.shape[-1]
    out = poses.new_full((B, n_ids, K, C), float("nan"))
    cost = -probs.detach().double().clamp_min(1e-12).log().cpu().numpy()  # NaN stays NaN
    for b in range(B):
        animals = np.flatnonzero(np.isfinite(cost[b]).all(-1))
        if animals.size == 0:
            continue
        rows, cols = linear_sum_assignment(cost[b, animals])
        src = torch.as_tensor(animals[rows], device=poses.device)
        out[b, torch.as_tensor(cols, device=poses.device)] = poses[b, src]
    return out


class IdentityHead(nn.Module):
    """Per-cell identity logits ``[B, n_identities, H, W]`` at ``in_stride / 2**n_upsample``.

    Args:
        in_channels, in_stride: the features' channels and stride.
        n_identities: number of identities (the project's individuals).
        n_upsample: stride-2 transposed convolutions (0: a 1x1 conv).
        radius: input pixels around each labeled keypoint where identity is supervised.
        weight: factor on the loss.
    """

    def __init__(self, in_channels: int, in_stride: int, n_identities: int, output_stride: float | None = 8,
                 n_upsample: int | None = None, radius: float = 17.0, weight: float = 1.0):
        super().__init__()
        n_upsample = upsample_steps(in_stride, output_stride, n_upsample)
        if n_identities < 1:
            raise ValueError(f"n_identities must be >= 1, got {n_identities}")
        self.stride = in_stride / 2**n_upsample
        self.n_identities, self.radius, self.weight = n_identities, radius, weight
        self.identity = upsampler(in_channels, n_identities, n_upsample)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"identity": self.identity(features)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["identity"].shape[-2:])
        identity, weights = identity_targets(keypoints, size, self.stride, self.radius, self.n_identities)
        return {"identity": identity, "identity_weights": weights}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy (softmax over identities) averaged over the supervised cells."""
        log_probs = outputs["identity"].float().log_softmax(1)
        per_cell = -(targets["identity"].float() * log_probs).sum(1, keepdim=True)  # [B, 1, H, W]
        loss = self.weight * _masked_mean(per_cell, targets["identity_weights"])
        return {"identity": loss, "total": loss}

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs["identity"].float().softmax(1)

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], keypoints: torch.Tensor) -> torch.Tensor:
        """Identity probabilities of assembled animals.

        Args:
            outputs: this head's outputs.
            keypoints: ``[B, N, K, 3]`` (x, y, score) in input pixels, NaN where missing.

        Returns:
            ``[B, N, n_identities]``: the identity softmax at each keypoint's cell (clamped
            into the map), averaged over the animal's finite keypoints; NaN rows for
            animals with none.
        """
        probs = self.probabilities(outputs)  # [B, I, H, W]
        B, I, H, W = probs.shape
        _, N, K, _ = keypoints.shape
        kp = keypoints.to(probs.device, torch.promote_types(keypoints.dtype, torch.float32))
        x, y = kp[..., 0], kp[..., 1]
        valid = torch.isfinite(x) & torch.isfinite(y)  # [B, N, K]
        col = pixels_to_grid(torch.where(valid, x, 0.0), self.stride).round().long().clamp(0, W - 1)
        row = pixels_to_grid(torch.where(valid, y, 0.0), self.stride).round().long().clamp(0, H - 1)
        flat = (row * W + col).reshape(B, 1, N * K).expand(B, I, N * K)
        at = probs.flatten(2).gather(2, flat).reshape(B, I, N, K).permute(0, 2, 3, 1)  # [B, N, K, I]
        w = valid[..., None].to(at.dtype)
        count = w.sum(2)  # [B, N, 1]
        mean = (at * w).sum(2) / count.clamp(min=1.0)
        return torch.where(count > 0, mean, float("nan"))
