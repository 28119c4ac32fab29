"""A stand-in conditional (CTD) model for tests of CTD training, inference and tracking: tiny and fast.

The real architectures (tests/models/test_dlc_ctd_models.py) are big; this one only has to take conditions
as a CTD backbone does (``backbone(images, conditions)``, ``conditional = True``): it draws them into the input.
"""
import torch

from lightning_dlc.models.pose_model import PoseModel, build_pose_model


class StandInBackbone(torch.nn.Module):
    """A tiny conditional backbone: the conditions' pixels brightened in the input, then a timm backbone."""

    conditional = True

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.out_channels, self.stride = inner.out_channels, inner.stride

    def forward(self, images, conditions):
        assert conditions.shape[0] == images.shape[0] and conditions.shape[-1] == 3
        h, w = images.shape[-2:]
        drawn = torch.zeros_like(images[:, :1])
        present = torch.isfinite(conditions[..., :2]).all(-1) & (conditions[..., 2] > 0)
        b, k = present.nonzero(as_tuple=True)
        x = conditions[b, k, 0].long().clamp(0, w - 1)
        y = conditions[b, k, 1].long().clamp(0, h - 1)
        drawn[b, 0, y, x] = 1.0
        return self.inner(images + drawn)


def build_standin(backbone, **kwargs) -> PoseModel:
    return build_pose_model(StandInBackbone(backbone), **kwargs)


# compose overrides: a top-down config made conditional with this backbone
STANDIN = ["model._target_=ctd_standin.build_standin", "+model.conditional=true"]


