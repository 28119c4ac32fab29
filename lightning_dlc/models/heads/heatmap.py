"""DeepLabCut's default head: per-bodypart heatmaps plus location refinement."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import (
    LOCREF_STD,
    decode_single,
    decode_top_k,
    heatmap_targets,
    locref_targets,
)
from lightning_dlc.models.heads.losses import weighted_bce_with_logits, weighted_huber, weighted_mse


def upsampler(in_channels: int, out_channels: int, n_upsample: int) -> nn.Module:
    """Stride-2 transposed convolutions (DeepLabCut's 3x3 deconvs), or a 1x1 conv when none."""
    if n_upsample == 0:
        return nn.Conv2d(in_channels, out_channels, kernel_size=1)
    layers: list[nn.Module] = []
    for i in range(n_upsample):
        last = i == n_upsample - 1
        layers.append(nn.ConvTranspose2d(in_channels, out_channels if last else in_channels,
                                         kernel_size=3, stride=2, padding=1, output_padding=1))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def upsample_steps(in_stride: float, output_stride: float | None, n_upsample: int | None) -> int:
    """How many stride-2 upsamplings bring ``in_stride`` to ``output_stride`` (never below 0).

    Heads are configured by the output stride they want (8, like DeepLabCut), so one head
    config serves a stride-16 ResNet (one deconv) and a stride-4 HRNet (none) alike.
    """
    if n_upsample is not None:
        return n_upsample
    if output_stride is None:
        raise ValueError("give the head either output_stride or n_upsample")
    steps = 0
    while in_stride / 2 ** (steps + 1) >= output_stride:
        steps += 1
    return steps


class HeatmapHead(nn.Module):
    """Heatmaps (+ locref) at ``output_stride`` (or ``in_stride / 2**n_upsample``); targets on the batch's device.

    ``loss="mse"`` regresses heatmap values (DeepLabCut's single-animal default, scores are
    the clipped outputs); ``loss="bce"`` treats outputs as logits (scores are their sigmoid).
    Predictions are ``[B, n_individuals, n_bodyparts, 3]`` (x, y, score) in input pixels.
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, output_stride: float | None = 8,
                 n_upsample: int | None = None, locref: bool = True, target: Literal["gaussian", "plateau"] = "gaussian",
                 radius: float = 17.0, sigma: float | None = None, loss: Literal["mse", "bce"] = "mse",
                 locref_weight: float = 0.05, locref_std: float = LOCREF_STD):
        super().__init__()
        n_upsample = upsample_steps(in_stride, output_stride, n_upsample)
        self.stride = in_stride / 2**n_upsample
        self.n_bodyparts = n_bodyparts
        self.target, self.radius, self.loss_kind = target, radius, loss
        self.sigma = sigma if sigma is not None else 2 * radius / 3  # DeepLabCut's radius-to-sigma rule
        self.locref_weight, self.locref_std = locref_weight, locref_std
        self.heatmap = upsampler(in_channels, n_bodyparts, n_upsample)
        self.locref = upsampler(in_channels, 2 * n_bodyparts, n_upsample) if locref else None

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"heatmap": self.heatmap(features)}
        if self.locref is not None:
            out["locref"] = self.locref(features)
        return out

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        heatmap, heatmap_weights = heatmap_targets(keypoints, size, self.stride, sigma=self.sigma,
                                                   radius=self.radius, mode=self.target)
        targets = {"heatmap": heatmap, "heatmap_weights": heatmap_weights}
        if self.locref is not None:
            targets["locref"], targets["locref_weights"] = locref_targets(
                keypoints, size, self.stride, self.radius, self.locref_std)
        return targets

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        criterion = weighted_bce_with_logits if self.loss_kind == "bce" else weighted_mse
        losses = {"heatmap": criterion(outputs["heatmap"], targets["heatmap"], targets["heatmap_weights"])}
        if self.locref is not None:
            losses["locref"] = self.locref_weight * weighted_huber(
                outputs["locref"], targets["locref"], targets["locref_weights"])
        losses["total"] = sum(losses.values())
        return losses

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        heatmap = outputs["heatmap"].float()
        return heatmap.sigmoid() if self.loss_kind == "bce" else heatmap.clamp(0.0, 1.0)

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """One animal: argmax per bodypart. Several: the best peaks per bodypart, not assembled."""
        probs, locref = self.probabilities(outputs), outputs.get("locref")
        if n_individuals == 1:
            return decode_single(probs, locref, self.stride, self.locref_std)
        return decode_top_k(probs, locref, self.stride, self.locref_std, n_individuals)
