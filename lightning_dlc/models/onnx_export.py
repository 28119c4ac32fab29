"""Networks as ONNX graphs: a pose model's backbone + neck + heads (raw head outputs), a detector's forward.

The graph holds the network only; decoding stays ours (one code path): the ONNX runtime's outputs go
through the same heads' ``predict`` as the torch network's (:mod:`lightning_dlc.inference.onnx_runner`).
A pose graph takes ``images`` float32 ``[batch, 3, height, width]``, normalized as
:func:`~lightning_dlc.models.preprocess.normalize_images` does (``x / 255``, then ImageNet's mean and std,
written in the sidecar), with dynamic batch, height and width; its outputs are named ``<role>.<key>``
(``bodypart.heatmap``, ``bodypart.locref``, ``bodypart.paf``...), one per tensor a head returns. A detector
graph takes one image float32 ``[3, height, width]`` in [0, 1] (torchvision's detectors trace one image at a
time) and returns ``boxes [n, 4]`` (xyxy), ``scores [n]``, ``labels [n]``.

:func:`decoding_info` is what the sidecar JSON says about a model: names, strides, locref std, head settings,
input normalization, which outputs are which.
"""
from __future__ import annotations

import importlib
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.models.preprocess import MEAN, STD

__all__ = ["INPUT", "DETECTOR_OUTPUTS", "decoding_info", "export_detector_network", "export_pose_network",
           "output_names", "require"]

INPUT = "images"
DETECTOR_OUTPUTS = ("boxes", "scores", "labels")
_HEAD_SETTINGS = ("stride", "locref_std", "loss_kind", "edges", "edges_to_keep", "n_identities", "split_ratio")


def require(module: str):
    """``import module`` (``onnx``, ``onnxruntime``), or an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"ONNX export and the onnxruntime backend need {module}: "
                          "pip install lightning_dlc[onnx]") from e


def _flatten(outputs) -> list[tuple[str, str]]:
    names = []
    for role, value in outputs.items():
        if not isinstance(value, dict) or not all(torch.is_tensor(v) for v in value.values()):
            raise TypeError(f"head {role!r} returns {type(value).__name__}, not a dict of tensors: "
                            "it cannot be exported as named ONNX outputs")
        names += [(role, key) for key in value]
    return names


@torch.no_grad()
def output_names(model: PoseModel, sample: torch.Tensor) -> list[tuple[str, str]]:
    """``(role, key)`` of every tensor the heads return, in the graph's output order."""
    return _flatten(model(sample))


class _FlatOutputs(nn.Module):
    """The pose network with its nested head outputs as one tuple (what an ONNX graph returns)."""

    def __init__(self, model: PoseModel, names: list[tuple[str, str]]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, images: torch.Tensor):
        outputs = self.model(images)
        return tuple(outputs[role][key] for role, key in self.names)


class _OneImageDetector(nn.Module):
    """A detector over one image ``[3, H, W]`` returning (boxes, scores, labels)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor):
        found = self.detector([image])[0]
        return tuple(found[key] for key in DETECTOR_OUTPUTS)


def _sample_size(model: PoseModel) -> tuple[int, int]:
    """Traced input size: a top-down model's crop, else a small image (height != width, so neither is baked in)."""
    return tuple(model.top_down.crop_size) if model.top_down is not None else (160, 192)


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_axes, opset: int) -> None:
    require("onnx")
    # tracing notes from torch and torchvision (shape arithmetic the dynamic axes cover, torch.jit deprecation):
    # not the user's to act on
    with warnings.catch_warnings():
        for category in (torch.jit.TracerWarning, UserWarning, FutureWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        torch.onnx.export(module, args, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    import onnx

    onnx.checker.check_model(str(path))


def export_pose_network(model: PoseModel, path: str | Path, opset: int = 17) -> list[tuple[str, str]]:
    """Write ``model``'s network to ``path`` (the model is left in float32, eval mode, on the CPU); returns its
    outputs' ``(role, key)``."""
    model = model.float().cpu().eval().to(memory_format=torch.contiguous_format)
    h, w = _sample_size(model)
    sample = torch.randn(2, 3, h, w)
    names = output_names(model, sample)
    outputs = [f"{role}.{key}" for role, key in names]
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}}
    axes.update({name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in outputs})
    for name, (role, key) in zip(outputs, names):  # outputs that are not maps keep only the batch axis
        rank = model(sample[:1])[role][key].ndim
        axes[name] = {d: a for d, a in axes[name].items() if d < rank}
    # eval wrappers: the exporter restores the wrapper's mode afterwards, a fresh (training) one would leave it training
    _export(_FlatOutputs(model, names).eval(), (sample,), Path(path), [INPUT], outputs, axes, opset)
    return names


def export_detector_network(detector: nn.Module, path: str | Path, opset: int = 17,
                            sample_size: tuple[int, int] = (240, 320)) -> None:
    """Write a :class:`~lightning_dlc.models.detectors.Detector` (one image in, boxes/scores/labels out) to ``path``."""
    detector = detector.float().cpu().eval()
    sample = torch.rand(3, *sample_size)
    axes = {INPUT: {1: "height", 2: "width"}, **{name: {0: "detections"} for name in DETECTOR_OUTPUTS}}
    _export(_OneImageDetector(detector).eval(), (sample,), Path(path), [INPUT], DETECTOR_OUTPUTS, axes, opset)


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if torch.is_tensor(value):
        return value.tolist()
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def decoding_info(model: PoseModel, names: list[tuple[str, str]]) -> dict:
    """What turning the graph's outputs into keypoints needs, as JSON-ready values (the sidecar's model part)."""
    meta = model.meta
    heads = {role: {"class": f"{type(head).__module__}.{type(head).__qualname__}",
                    **{k: _jsonable(getattr(head, k)) for k in _HEAD_SETTINGS if hasattr(head, k)}}
             for role, head in model.heads.items()}
    body = heads["bodypart"]
    return {
        "project_meta": _jsonable(asdict(meta)),
        "bodyparts": list(meta.bodyparts), "unique_bodyparts": list(meta.unique_bodyparts),
        "individuals": list(meta.individuals), "max_individuals": meta.max_individuals,
        "stride": body.get("stride"), "locref_std": body.get("locref_std"), "heads": heads,
        "top_down": None if model.top_down is None else {"crop_size": list(model.top_down.crop_size),
                                                         "margin": model.top_down.margin},
        "input": {"name": INPUT, "layout": "NCHW", "dtype": "float32", "scale": 1 / 255, "mean": list(MEAN),
                  "std": list(STD), "formula": "(pixels * scale - mean) / std"},
        "outputs": [{"name": f"{role}.{key}", "role": role, "key": key} for role, key in names],
    }
