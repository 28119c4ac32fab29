"""What every backbone shares: building timm networks, the pretrained-weights error, local weights.

A backbone is an ``nn.Module`` mapping images ``[B, 3, H, W]`` to one feature map
``[B, out_channels, H / stride, W / stride]``; heads upsample from there.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

HINT = (
    "set model.backbone.pretrained=false to train from scratch, or model.backbone.weights=PATH "
    "to load a local checkpoint"
)


def pretrained_unavailable(model: str, cause: BaseException | None = None, note: str = "") -> RuntimeError:
    """The error for pretrained weights that cannot be had (offline, no source); says what to do instead."""
    why = f" ({type(cause).__name__}: {str(cause)[:300]})" if cause is not None else ""
    note = note or "Offline, HF_HUB_OFFLINE=1 makes the download fail at once instead of after its retries."
    return RuntimeError(f"Could not get pretrained weights for backbone '{model}'{why}. To go on, {HINT}. {note}")


def create_timm(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model`` whose download failures become :func:`pretrained_unavailable`."""
    if not timm.is_model(name):
        raise ValueError(f"timm has no model '{name}' (list them with timm.list_models())")
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except TypeError:  # a bad keyword argument, not a download problem
        raise
    except Exception as error:  # hub/network/cache errors come in many types
        raise pretrained_unavailable(name, error) from error


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a file: raw, or nested under 'state_dict' / 'model'; .safetensors too."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state_dict")
    return state


def load_weights(module: nn.Module, path: str | Path, inner: str | None = None) -> None:
    """Load a local checkpoint into ``module``, strictly.

    Accepted, in this order: the module's own state_dict; a whole pose-model checkpoint
    (ours or a DeepLabCut snapshot), from which the keys after ``backbone.`` are taken; and,
    when ``inner`` names the wrapped timm network, a plain timm checkpoint of it (e.g. the
    ImageNet weights downloaded elsewhere). For that last one, keys for parts the
    features-only network dropped (classifier, unused stages) are ignored, but every
    weight of that network must come from the file (layers outside it keep their init).
    """
    state, own = read_state_dict(path), module.state_dict()
    if not state.keys() & own.keys() and any("backbone." in k for k in state):
        state = {k.split("backbone.", 1)[1]: v for k, v in state.items() if "backbone." in k}
    plain_timm = inner is not None and not state.keys() & own.keys()
    target = getattr(module, inner) if plain_timm else module
    own = target.state_dict()
    check_state_fits(own, state, path, type(module).__name__, ignore_unexpected=plain_timm)
    target.load_state_dict({k: state[k] for k in own})


def check_state_fits(own: dict, state: dict, path: str | Path, what: str, ignore_unexpected: bool = False) -> None:
    """Raise one error listing every missing, unexpected and resized key of a checkpoint for ``what``."""
    missing = sorted(own.keys() - state.keys())
    unexpected = [] if ignore_unexpected else sorted(state.keys() - own.keys())
    # same keys, other widths: another variant's weights
    resized = [f"{k}: {tuple(state[k].shape)} in file, {tuple(v.shape)} here"
               for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or resized:
        raise RuntimeError(
            f"Weights in {path} do not fit {what}: {len(missing)} missing keys {missing[:10]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:10]}, {len(resized)} size mismatches {resized[:3]}"
        )


class FrozenNormsMixin:
    """DeepLabCut's ``freeze_bn_stats`` / ``freeze_bn_weights`` backbone options, applied on ``train()``.

    ``freeze_bn_stats`` keeps BatchNorm layers in eval mode (running statistics fixed, e.g. the
    ImageNet ones HRNet starts from); ``freeze_bn_weights`` stops their affine parameters learning.
    Set both attributes in ``__init__`` before training starts.
    """

    freeze_bn_stats: bool = False
    freeze_bn_weights: bool = False

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                if self.freeze_bn_weights:
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)
                if self.freeze_bn_stats:
                    module.eval()
        return self
