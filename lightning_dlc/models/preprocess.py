"""What happens to images on their way into a network and to its outputs on the way out (training and inference)."""
from __future__ import annotations

import torch

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


def _as_float(outputs):
    if isinstance(outputs, dict):
        return {k: _as_float(v) for k, v in outputs.items()}
    return outputs.float() if torch.is_tensor(outputs) and outputs.is_floating_point() else outputs


def run_network(net, x: torch.Tensor, autocast_dtype: torch.dtype | None = None):
    """``net(x)``, under autocast in ``autocast_dtype`` if given; outputs in float32 for decoding.

    A :class:`~lightning_dlc.models.pose_model.PoseModel`'s heads then run in float32 on its features: heatmaps
    rounded to bf16 make neighbouring cells tie, and a tie broken the other way moves a keypoint by a cell.
    """
    if autocast_dtype is None:
        return net(x)
    # the class, not the instance: a torch.compile wrapper forwards attributes to the eager model
    if not hasattr(type(net), "run_heads"):  # a compiled or exported network: all of it under autocast
        with torch.autocast(x.device.type, dtype=autocast_dtype):
            return _as_float(net(x))
    with torch.autocast(x.device.type, dtype=autocast_dtype):
        features = net.features(x)
    return net.run_heads(_as_float(features))
