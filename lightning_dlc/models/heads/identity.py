"""DeepLabCut's identity head (``head_identity.yaml`` + ``IdentityPredictor``) for projects with ``identity: true``,
and ours for top-down models (:class:`CropIdentityHead`: one class per crop).

In such projects each individual name is one known animal, so individual index n of the
keypoints tensor ``[B, N, K, 3]`` *is* identity n. DeepLabCut's head is a ``HeatmapHead``
with one map per identity (one 3x3 deconv, ``heatmap_head.deconv_layers.0``), trained with
plateau targets around each keypoint of that individual and BCE. At inference the maps'
sigmoid is resized to input pixels, read at each assembled keypoint, and animals are
matched to identities by the Hungarian method on the score-weighted mean of those reads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from lightning_dlc.models.heads.heatmap import DeconvMaps
from lightning_dlc.models.heads.heatmap_targets import heatmap_targets
from lightning_dlc.models.heads.losses import aggregate, weighted_bce_with_logits


def identity_targets(keypoints: torch.Tensor, map_size: tuple[int, int], stride: float, radius: float,
                     n_identities: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepLabCut's ``HeatmapPlateauGenerator`` in ``INDIVIDUAL`` mode: map n is 1 within
    ``radius`` input pixels of any labeled keypoint of individual n.

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility), individual n = identity n; ``N <= n_identities``.
        map_size: ``(H, W)``; stride: input pixels per cell; radius: input pixels.

    Returns:
        targets ``[B, n_identities, H, W]`` and weights ``[B, n_identities, 1, 1]`` (1, or 0 for an
        identity with an undefined keypoint, visibility < 0). Keypoints' dtype and device.
    """
    B, N = keypoints.shape[:2]
    if N > n_identities:
        raise ValueError(f"keypoints have {N} individuals but the head knows {n_identities} identities")
    padding = keypoints.new_full((B, n_identities - N, *keypoints.shape[2:]), float("nan"))
    by_identity = torch.cat([keypoints, padding], 1).transpose(1, 2)  # identities play the bodyparts
    return heatmap_targets(by_identity, map_size, stride, radius=radius, mode="plateau")


def identity_scores(maps: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """``[B, N, n_identities]``: per animal, the mean over bodyparts of score x identity map at the keypoint.

    ``maps`` are ``[B, I, H, W]`` in input pixels; a keypoint reads the cell ``rint(x, y)``
    (clipped into the map); missing keypoints (or NaN scores) count as 0, as DeepLabCut's
    post-processing does.
    """
    B, I, H, W = maps.shape
    _, N, K, _ = keypoints.shape
    kp = keypoints.to(maps.device, torch.float64)
    x, y = kp[..., 0], kp[..., 1]
    valid = torch.isfinite(x) & torch.isfinite(y)  # [B, N, K]
    col = torch.where(valid, x, 0.0).round().long().clamp(0, W - 1)
    row = torch.where(valid, y, 0.0).round().long().clamp(0, H - 1)
    flat = (row * W + col).reshape(B, 1, N * K).expand(B, I, N * K)
    at = maps.flatten(2).gather(2, flat).reshape(B, I, N, K).permute(0, 2, 3, 1).double()  # [B, N, K, I]
    at = torch.where(valid[..., None], at, 0.0)
    score = torch.nan_to_num(kp[..., 2:3])
    return (score * at).mean(2).float()


def assign_identities(poses: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Reorder animals so that row n is the animal matched to identity n (DeepLabCut's ``assign_identity``).

    Per image, the Hungarian method maximises the summed scores of :func:`identity_scores`.

    Args:
        poses: ``[B, N, K, C]`` assembled predictions (or any ``[B, N, ...]`` per-animal values: the scores
            themselves, which DeepLabCut reorders with the poses); scores: ``[B, N, n_identities]``.

    Returns:
        ``[B, n_identities, K, C]`` in the poses' dtype and device; NaN rows for identities
        no animal gets.
    """
    B = poses.shape[0]
    out = poses.new_full((B, scores.shape[-1], *poses.shape[2:]), float("nan"))
    gains = torch.nan_to_num(scores.detach().double()).cpu().numpy()
    for b in range(B):
        rows, cols = linear_sum_assignment(gains[b], maximize=True)
        out[b, torch.as_tensor(cols, device=poses.device)] = poses[b, torch.as_tensor(rows, device=poses.device)]
    return out


class IdentityHead(nn.Module):
    """Identity logits ``[B, n_identities, 2H + 1, 2W + 1]`` at ``in_stride / 2**n_upsample``.

    Args:
        in_channels, in_stride: the features' channels and stride.
        n_identities: number of identities (the project's individuals).
        n_upsample: unpadded 3x3 stride-2 deconvs (DeepLabCut: 1).
        radius: plateau radius around each labeled keypoint (DeepLabCut's ``pos_dist_thresh``).
        weight: factor on the loss.
    """

    def __init__(self, in_channels: int, in_stride: int, n_identities: int, n_upsample: int = 1,
                 radius: float = 17.0, weight: float = 1.0):
        super().__init__()
        if n_identities < 1:
            raise ValueError(f"n_identities must be >= 1, got {n_identities}")
        self.stride = in_stride / 2**n_upsample
        self.n_identities, self.radius, self.weight = n_identities, float(radius), weight
        self.heatmap_head = DeconvMaps(in_channels, [in_channels] * (n_upsample - 1) + [n_identities])

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmap": self.heatmap_head(features)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        heatmap, weights = identity_targets(keypoints, size, self.stride, self.radius, self.n_identities)
        return {"heatmap": heatmap, "heatmap_weights": weights}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heatmap = weighted_bce_with_logits(outputs["heatmap"], targets["heatmap"], targets["heatmap_weights"])
        return {"heatmap": heatmap, "total": aggregate({"heatmap": heatmap}, {"heatmap": self.weight})}

    def identity_maps(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """DeepLabCut's ``IdentityPredictor``: the logits resized to ``int(size * stride)`` pixels, then sigmoid."""
        heatmap = outputs["heatmap"].float()
        size = [int(n * self.stride) for n in heatmap.shape[-2:]]
        resized = F.interpolate(heatmap, size=size, mode="bilinear", align_corners=False, antialias=True)
        return resized.sigmoid()

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], keypoints: torch.Tensor) -> torch.Tensor:
        """``[B, N, n_identities]`` identity scores of assembled animals (``keypoints [B, N, K, 3]``)."""
        return identity_scores(self.identity_maps(outputs), keypoints)


class CropIdentityHead(nn.Module):
    """Ours (DeepLabCut 3.0.2 learns no identity in top-down models): which individual a crop shows.

    The crop's features, averaged over the map, go through one linear layer to ``n_identities`` logits,
    trained with cross-entropy on the individual each training crop was cut around (in an ``identity: true``
    project individual n is one known animal, identity n). Predicts ``[M, 1, n_identities]`` softmax
    probabilities per crop; a frame's crops are then matched to identities as the bottom-up head's animals are
    (:func:`assign_identities`).

    Args:
        in_channels, in_stride: the features' channels and stride (the stride is unused: one value per crop).
        n_identities: the project's individuals.
        weight: factor on the loss.
    """

    def __init__(self, in_channels: int, in_stride: int, n_identities: int, weight: float = 1.0):
        super().__init__()
        if n_identities < 1:
            raise ValueError(f"n_identities must be >= 1, got {n_identities}")
        self.n_identities, self.weight = n_identities, float(weight)
        self.classifier = nn.Linear(in_channels, n_identities)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(features.float().mean((2, 3)))}

    def targets(self, individuals: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``individuals [M]``: the index of the individual each crop was cut around."""
        if individuals is None:
            raise ValueError("a top-down identity head learns from the individual of each crop: pass identities=")
        return {"label": torch.as_tensor(individuals, device=outputs["logits"].device).long()}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = F.cross_entropy(outputs["logits"].float(), targets["label"])
        return {"cross_entropy": loss, "total": aggregate({"cross_entropy": loss}, {"cross_entropy": self.weight})}

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], keypoints: torch.Tensor | None = None) -> torch.Tensor:
        """``[M, 1, n_identities]`` probabilities of each crop's animal (``keypoints`` unused)."""
        return outputs["logits"].float().softmax(-1)[:, None]
