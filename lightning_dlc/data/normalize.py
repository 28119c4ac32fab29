"""The one image normalization: uint8 RGB -> the float input the networks expect (labeled and unlabeled training
images, inference). It lives in data/ so the data room can hand out normalized unlabeled frames."""
from __future__ import annotations

import torch

__all__ = ["MEAN", "STD", "normalize_images"]

# ImageNet statistics: the pretrained backbones expect them (DeepLabCut normalizes the same way)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize_images(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` (or float in [0, 1]) images -> float model input, on the images' device."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
