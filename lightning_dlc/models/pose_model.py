"""PoseModel = backbone + optional neck + named heads, each head owning targets, loss and predictor."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lightning_dlc.project.records import ProjectMeta

# Which keypoints each head role learns, and how many of them the project has.
ROLES: dict[str, Callable[[ProjectMeta], int]] = {
    "bodypart": lambda meta: len(meta.bodyparts),
    "unique_bodypart": lambda meta: len(meta.unique_bodyparts),
}


class PoseModel(nn.Module):
    """Maps images to head outputs; knows nothing about optimizers or logging.

    ``heads`` maps a role (``bodypart``, ``unique_bodypart``) to a head factory (a Hydra
    ``_partial_``) called with the features' channels and stride and the role's number of
    keypoints: project metadata enters the model here, once.
    """

    def __init__(self, backbone: nn.Module, heads: dict[str, Callable[..., nn.Module]], meta: ProjectMeta,
                 neck: Callable[..., nn.Module] | None = None):
        super().__init__()
        self.meta = meta
        self.backbone = backbone
        channels, stride = backbone.out_channels, backbone.stride
        self.neck = neck(in_channels=channels, in_stride=stride) if neck is not None else None
        if self.neck is not None:
            channels, stride = self.neck.out_channels, self.neck.stride
        unknown = set(heads) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown head roles {sorted(unknown)}; known: {sorted(ROLES)}")
        self.heads = nn.ModuleDict({
            role: factory(in_channels=channels, in_stride=stride, n_bodyparts=ROLES[role](meta))
            for role, factory in heads.items() if ROLES[role](meta) > 0
        })

    def forward(self, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        features = self.backbone(images)
        if self.neck is not None:
            features = self.neck(features)
        return {role: head(features) for role, head in self.heads.items()}

    def loss(self, outputs, keypoints: torch.Tensor, unique_keypoints: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor]:
        """Per-head losses with targets made on the batch's device; ``total`` sums them."""
        labels = {"bodypart": keypoints, "unique_bodypart": None if unique_keypoints is None
                  else unique_keypoints.unsqueeze(1)}
        losses: dict[str, torch.Tensor] = {}
        for role, head in self.heads.items():
            for name, value in head.loss(outputs[role], head.targets(labels[role], outputs[role])).items():
                losses[f"{role}/{name}"] = value
        losses["total"] = sum(v for k, v in losses.items() if k.endswith("/total"))
        return losses

    @torch.no_grad()
    def predict(self, outputs) -> dict[str, torch.Tensor]:
        """``bodypart``: [B, n_individuals, K, 3]; ``unique_bodypart``: [B, 1, K_unique, 3]."""
        n = {"bodypart": self.meta.max_individuals, "unique_bodypart": 1}
        return {role: head.predict(outputs[role], n[role]) for role, head in self.heads.items()}
