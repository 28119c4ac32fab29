"""What happens to images on their way into a network and to its outputs on the way out (training and inference)."""
from __future__ import annotations

import torch

from lightning_dlc.data.normalize import MEAN, STD, normalize_images  # noqa: F401 (the one normalization)


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
