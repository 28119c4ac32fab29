"""DeepLabCut's default head: per-bodypart heatmaps plus location refinement (``HeatmapHead``).

Module names follow DeepLabCut's, so state dicts load as they are:
``heatmap_head.deconv_layers.0.weight``, ``locref_head.final_conv.bias``, ...
"""
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
from lightning_dlc.models.heads.losses import aggregate, weighted_bce_with_logits, weighted_huber, weighted_mse


class DeconvMaps(nn.Module):
    """DeepLabCut's ``DeconvModule``: ``deconv_layers`` (k=3, s=2 deconvs, ReLU between) then
    ``final_conv`` (a 1x1 conv); either may be absent (an Identity, with no weights).

    ``channels`` are the deconvs' output widths; the last is the map count unless
    ``final_channels`` adds the 1x1 conv.
    """

    def __init__(self, in_channels: int, channels: list[int], final_channels: int | None = None,
                 kernel_size: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.ConvTranspose2d(in_channels, width, kernel_size=kernel_size, stride=2), nn.ReLU()]
            in_channels = width
        self.deconv_layers = nn.Sequential(*layers[:-1]) if layers else nn.Identity()
        self.final_conv = nn.Conv2d(in_channels, final_channels, 1) if final_channels else nn.Identity()
        self.upsampling = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.deconv_layers(x))


def upsample_steps(in_stride: float, output_stride: float | None, n_upsample: int | None) -> int:
    """How many stride-2 upsamplings bring ``in_stride`` to ``output_stride`` (never below 0).

    ``n_upsample`` wins when given (DeepLabCut's heads: one deconv whatever the backbone).
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
    """DeepLabCut's ``HeatmapHead`` + ``HeatmapPredictor`` + heatmap target generator + criteria.

    Maps are made by ``n_upsample`` deconvolutions (DeepLabCut's single-animal head: 1, so
    stride ``in_stride / 2`` and size ``2H + 1``) and, with ``final_conv`` (DeepLabCut's
    top-down head: no deconv, a 1x1 conv at the backbone's stride), a 1x1 conv.

    ``loss="mse"`` regresses heatmap values (DeepLabCut's default; scores are the outputs at
    the argmax, clipped to [0, 1]); ``loss="bce"`` treats outputs as logits (scores are their
    sigmoid). The head's total loss is DeepLabCut's: the mean of ``heatmap`` and
    ``locref_weight * locref``. Predictions are ``[B, n_individuals, n_bodyparts, 3]``
    (x, y, score) in input pixels.

    Args:
        n_upsample / output_stride: the deconvolutions, by count or by the stride wanted
            (``n_upsample`` wins; neither: 1, DeepLabCut's).
        init_std: DeepLabCut's ``weight_init: normal`` (None: PyTorch's default init).
        radius: DeepLabCut's ``pos_dist_thresh`` (input pixels): the locref disk, the plateau,
            and the Gaussian's ``sigma = 2 / 3 * radius`` unless ``sigma`` is given.
        gradient_masking, background_weight: DeepLabCut's target-generator options (a bodypart
            unlabeled in an image weighs ``background_weight`` in the heatmap loss).
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, output_stride: float | None = None,
                 n_upsample: int | None = None, final_conv: bool | None = None, locref: bool = True,
                 target: Literal["gaussian", "plateau"] = "gaussian", radius: float = 17.0,
                 sigma: float | None = None, loss: Literal["mse", "bce"] = "mse", locref_weight: float = 0.05,
                 locref_std: float = LOCREF_STD, gradient_masking: bool = False, background_weight: float = 0.1,
                 init_std: float | None = 0.001):
        super().__init__()
        if n_upsample is None and output_stride is None:
            n_upsample = 1  # DeepLabCut's single-animal head: one deconv, whatever the backbone
        n_upsample = upsample_steps(in_stride, output_stride, n_upsample)
        final_conv = n_upsample == 0 if final_conv is None else final_conv
        self.stride = in_stride / 2**n_upsample
        self.n_bodyparts = n_bodyparts
        self.target, self.radius, self.loss_kind = target, float(radius), loss
        self.sigma = sigma if sigma is not None else 2 * self.radius / 3  # DeepLabCut's radius-to-sigma rule
        self.locref_weight, self.locref_std = locref_weight, locref_std
        self.gradient_masking, self.background_weight = gradient_masking, background_weight

        def maps(n: int) -> DeconvMaps:
            widths = [in_channels] * (n_upsample - 1) + ([in_channels] if final_conv else [n])
            return DeconvMaps(in_channels, widths[:n_upsample], n if final_conv else None)

        self.heatmap_head = maps(n_bodyparts)
        self.locref_head = maps(2 * n_bodyparts) if locref else None
        if init_std is not None:  # DeepLabCut's "normal" weight_init: N(0, 0.001) weights, zero biases
            for name, param in self.named_parameters():
                nn.init.zeros_(param) if "bias" in name else nn.init.normal_(param, std=init_std)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"heatmap": self.heatmap_head(features)}
        if self.locref_head is not None:
            out["locref"] = self.locref_head(features)
        return out

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        heatmap, heatmap_weights = heatmap_targets(
            keypoints, size, self.stride, sigma=self.sigma, radius=self.radius, mode=self.target,
            gradient_masking=self.gradient_masking, background_weight=self.background_weight)
        targets = {"heatmap": heatmap, "heatmap_weights": heatmap_weights}
        if self.locref_head is not None:
            # plateau-style offsets (each disk points to its own keypoint): where the weights are
            # non-zero they equal DeepLabCut's Gaussian ones for one animal, so the loss is the same,
            # and they stay right for several animals (DeepLabCut's point to the last one everywhere)
            targets["locref"], targets["locref_weights"] = locref_targets(
                keypoints, size, self.stride, self.radius, self.locref_std, mode="plateau")
        return targets

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        criterion = weighted_bce_with_logits if self.loss_kind == "bce" else weighted_mse
        losses = {"heatmap": criterion(outputs["heatmap"], targets["heatmap"], targets["heatmap_weights"])}
        weights = {"heatmap": 1.0}
        if self.locref_head is not None:
            losses["locref"] = weighted_huber(outputs["locref"], targets["locref"], targets["locref_weights"])
            weights["locref"] = self.locref_weight
        losses["total"] = aggregate(losses, weights)
        return losses

    def scores(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The maps the predictor reads: sigmoid of a BCE head's logits, an MSE head's raw outputs."""
        heatmap = outputs["heatmap"].float()
        return heatmap.sigmoid() if self.loss_kind == "bce" else heatmap

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores in [0, 1] (an MSE head's outputs clipped), for peak finding across animals."""
        return self.scores(outputs).clamp(0.0, 1.0)

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """One animal: DeepLabCut's argmax per bodypart. Several (ours): the best peaks per bodypart, not assembled."""
        locref = outputs.get("locref") if self.locref_head is not None else None
        if n_individuals == 1:
            return decode_single(self.scores(outputs), locref, self.stride, self.locref_std,
                                 clip_scores=self.loss_kind != "bce")
        return decode_top_k(self.probabilities(outputs), locref, self.stride, self.locref_std, n_individuals)
