"""The one reading of a ``device`` argument (``auto``, ``cpu``, ``cuda:1``, a torch.device): video readers
and inference both use it, so it lives below them."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None: CUDA when available, else the CPU; anything else as torch reads it.

    CUDA asked for where it is not available fails here, naming the device, rather than at the
    first tensor moved there.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but CUDA is not available")
    return device
