"""``precision="auto"`` for inference: the fastest precision a device computes natively (the ``device``
argument itself is read by :func:`lightning_dlc.data.devices.resolve_device`, re-exported here)."""
from __future__ import annotations

import logging

import torch

from lightning_dlc.data.devices import resolve_device

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "auto_precision", "autocast_dtype", "cpu_has_native_bf16", "resolve_device",
           "resolve_precision"]

# the precisions inference runs in (Lightning's spellings too): the autocast dtype of each, None = fp32
PRECISIONS = {"32": None, "32-true": None, "fp32": None, "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16,
              "16": torch.float16, "16-mixed": torch.float16, "fp16": torch.float16}

_LOGGED: set[tuple[str, str]] = set()  # (precision, device) choices already logged


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (x86 AVX512-BF16 or AMX).

    Without it oneDNN emulates bf16: on an AVX2-only CPU (AMD EPYC, 2 cores) a 3x3 convolution ran 9x
    slower in bf16 than in fp32, so bf16 is only fast where these instructions exist.
    """
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def _cuda_has_native_bf16(device: torch.device) -> bool:
    with torch.cuda.device(device):
        try:  # emulated bf16 (older GPUs) is slower than fp16: not counted
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch without the argument counts native support only
            return bool(torch.cuda.is_bf16_supported())


def auto_precision(device: str | torch.device) -> str:
    """``bf16`` on CPUs and CUDA GPUs that compute it natively, ``16`` (fp16 autocast) on other CUDA GPUs,
    ``32`` elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if _cuda_has_native_bf16(device) else "16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "32"


def resolve_precision(precision, device: str | torch.device, log_choice: bool = True) -> str:
    """``auto`` (or None) -> :func:`auto_precision` for ``device``, logged once per choice and device;
    any other precision (``32`` forces fp32) as given, as a string."""
    if precision is not None and str(precision).lower() != "auto":
        return str(precision)
    device = resolve_device(device)
    chosen = auto_precision(device)
    if log_choice and (chosen, str(device)) not in _LOGGED:
        _LOGGED.add((chosen, str(device)))
        log.info("precision auto: %s on %s", {"32": "fp32", "bf16": "bf16", "16": "fp16"}[chosen], device)
    return chosen


def autocast_dtype(precision) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: fp32); ValueError for an unknown one."""
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise ValueError(f"precision must be one of auto, 32, bf16, 16, got {precision!r}")
    return PRECISIONS[key]
