"""DeepLabCut 3's conditional pre-network (``CondPreNet``, its ``ctd_prenet_*`` net_types).

Conditional top-down (CTD/BUCTD): a crop around one animal plus that animal's proposed pose (the
condition, from a bottom-up model) go in; the refined pose of that animal comes out. The pre-network
turns both into one 3-channel image the wrapped backbone (CSPNeXt for ``ctd_prenet_rtmpose_*``,
HRNet for ``ctd_prenet_hrnet_*``) reads as usual:

    backbone(rgb_preNet(image) + cond_preNet(encoded condition))

``rgb_preNet``: 3x3 conv to 64 channels, BatchNorm, 7x7 conv to 3, BatchNorm; ``cond_preNet``: 7x7
conv from the encoded condition (one channel per bodypart) to 3, BatchNorm. Names follow
DeepLabCut's, so its snapshots load with the identity key map.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightning_dlc.models.keypoint_encoders import StackedKeypointEncoder


def _prenet(in_channels: int, image: bool) -> nn.Sequential:
    if not image:
        return nn.Sequential(nn.Conv2d(in_channels, 3, 7, padding="same"), nn.BatchNorm2d(3))
    return nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding="same"), nn.BatchNorm2d(64),
                         nn.Conv2d(64, 3, 7, padding="same"), nn.BatchNorm2d(3))


def init_small(modules) -> None:
    """DeepLabCut's start for the conditional layers: convs ~ N(0, 0.001), no bias; BatchNorm identity."""
    for module in modules:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class CondPreNet(nn.Module):
    """Any backbone behind DeepLabCut's conditional pre-network; ``forward(images, conditions)``.

    Args:
        backbone: the wrapped backbone (built from its own config node).
        n_bodyparts: the project's bodyparts (given by the model builder, one condition channel each).
        kernel_size: the condition encoder's Gaussian blur (DeepLabCut: 15 x 15).
        img_size: (height, width) the model is made for (DeepLabCut's ``img_size``; the crop size).
            Kept for the record: the pre-network itself works at any size.
        pretrained: the wrapped backbone's ImageNet weights; its config node reads this value
            (``pretrained: ${..pretrained}``), as DeepLabCut hands its flag down.
    """

    conditional = True  # forward needs conditions (PoseModel checks)

    def __init__(self, backbone: nn.Module, n_bodyparts: int, kernel_size: Sequence[int] = (15, 15),
                 img_size: Sequence[int] = (256, 256), pretrained: bool = True):
        super().__init__()
        self.cond_enc = StackedKeypointEncoder(n_bodyparts, kernel_size)
        self.img_size = tuple(int(s) for s in img_size)
        self.backbone = backbone
        self.rgb_preNet = _prenet(3, image=True)
        self.cond_preNet = _prenet(self.cond_enc.num_channels, image=False)
        self.out_channels: int = backbone.out_channels
        self.stride: int = backbone.stride
        init_small([*self.rgb_preNet.modules(), *self.cond_preNet.modules()])

    def forward(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        encoded = self.cond_enc(conditions, images.shape[-2:]).to(images.dtype)
        return self.backbone(self.rgb_preNet(images) + self.cond_preNet(encoded))
