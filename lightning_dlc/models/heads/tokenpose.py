"""DeepLabCut's ``TransformerHead`` (TokenPose): keypoint tokens -> one heatmap per keypoint.

It reads the tokens of :class:`~lightning_dlc.models.necks.tokenpose.TokenPoseNeck`
(``[B, K, in_channels]``), maps each through ``mlp_head`` (LayerNorm + Linear, or with a hidden
LayerNorm + Linear pair) to ``heatmap_size`` values, and learns them as DeepLabCut does:
plateau targets (1 within ``radius`` input pixels of the keypoint) and BCE on the logits. It
decodes as DeepLabCut's ``HeatmapPredictor`` without location refinement: the argmax cell's
centre, scored by the sigmoid. Parameter names are DeepLabCut's (``mlp_head.0.weight``, ...).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import decode_single, heatmap_targets
from lightning_dlc.models.heads.losses import weighted_bce_with_logits


class TokenPoseHead(nn.Module):
    """Heatmaps from keypoint tokens; targets, loss and predictor of DeepLabCut's animaltokenpose.

    Args:
        in_channels: a token's width (the neck's ``out_channels``, DeepLabCut's ``3 * dim``).
        in_stride: input pixels per feature cell of the backbone (the maps' stride, divided by
            ``head_stride`` as in DeepLabCut).
        n_bodyparts: heatmaps (one per keypoint token).
        hidden_heatmap_dim: width of the hidden layer, used only when ``apply_multi`` and
            ``in_channels <= hidden_heatmap_dim / 2`` (DeepLabCut's rule; its
            animaltokenpose_base, 576 > 384 / 2, has no hidden layer).
        heatmap_size: ``(height, width)`` of the maps; ``heatmap_dim`` must be their product.
        apply_init: DeepLabCut's init (truncated normal std 0.02 Linear weights, zero biases).
        radius: DeepLabCut's ``pos_dist_thresh`` (input pixels): the plateau's radius.
        gradient_masking, background_weight: DeepLabCut's target-generator options (a bodypart
            unlabeled in a crop weighs ``background_weight`` in the loss).
    """

    def __init__(self, in_channels: int, in_stride: float, n_bodyparts: int, hidden_heatmap_dim: int = 384,
                 heatmap_dim: int = 4096, apply_multi: bool = True, heatmap_size: Sequence[int] = (64, 64),
                 apply_init: bool = True, head_stride: float = 1, radius: float = 17.0,
                 gradient_masking: bool = False, background_weight: float = 0.1):
        super().__init__()
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        if heatmap_dim != self.heatmap_size[0] * self.heatmap_size[1]:
            raise ValueError(f"heatmap_dim ({heatmap_dim}) must be heatmap_size's area {self.heatmap_size}")
        if apply_multi and in_channels <= hidden_heatmap_dim * 0.5:
            self.mlp_head = nn.Sequential(nn.LayerNorm(in_channels), nn.Linear(in_channels, hidden_heatmap_dim),
                                          nn.LayerNorm(hidden_heatmap_dim), nn.Linear(hidden_heatmap_dim, heatmap_dim))
        else:
            self.mlp_head = nn.Sequential(nn.LayerNorm(in_channels), nn.Linear(in_channels, heatmap_dim))
        # DeepLabCut's model stride: backbone stride / head stride (a positive head stride upsamples)
        self.stride = in_stride / head_stride if head_stride > 0 else in_stride * -head_stride
        self.n_bodyparts = n_bodyparts
        self.radius = float(radius)
        self.gradient_masking, self.background_weight = gradient_masking, background_weight
        if apply_init:
            for module in self.mlp_head:
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                    nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        if tokens.ndim != 3:
            raise ValueError(f"TokenPoseHead reads keypoint tokens [B, K, C] (TokenPoseNeck), "
                             f"got {tuple(tokens.shape)}")
        maps = self.mlp_head(tokens)
        return {"heatmap": maps.reshape(*tokens.shape[:2], *self.heatmap_size)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heatmap, weights = heatmap_targets(
            keypoints, self.heatmap_size, self.stride, radius=self.radius, mode="plateau",
            gradient_masking=self.gradient_masking, background_weight=self.background_weight)
        return {"heatmap": heatmap, "heatmap_weights": weights}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heatmap = weighted_bce_with_logits(outputs["heatmap"], targets["heatmap"], targets["heatmap_weights"])
        return {"heatmap": heatmap, "total": heatmap}

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """``[B, 1, K, 3]``: each map's argmax cell centre (input pixels) and its sigmoid score.

        A top-down head: one animal per crop, so ``n_individuals`` must be 1.
        """
        if n_individuals != 1:
            raise ValueError("TokenPoseHead decodes one animal per input (a top-down model); "
                             f"got n_individuals={n_individuals}")
        return decode_single(outputs["heatmap"].float().sigmoid(), None, self.stride)
