"""The onnxruntime backend: a snapshot's networks written as ONNX files, and read back as a :class:`Predictor`.

:func:`export_snapshot_onnx` writes, into ``out`` (default ``<snapshot folder>/onnx/``):

- ``<snapshot stem>.onnx``: the pose network (:func:`~lightning_dlc.models.onnx_export.export_pose_network`);
- ``<detector snapshot stem>.onnx`` for a top-down run with a detector;
- ``<snapshot stem>.json``: the sidecar, what decoding needs (names, stride, locref std, head settings, input
  normalization, which outputs are which; :func:`~lightning_dlc.models.onnx_export.decoding_info`), DeepLabCut's
  scorer name of the snapshot, its run config (the model's config rebuilds the decoders) and the files.

:func:`onnx_predictor` runs them: an :class:`OnnxNetwork` (an onnxruntime session; CUDA execution provider
when the device is a GPU and onnxruntime-gpu has it, else the CPU's) replaces the torch network inside a
:class:`~lightning_dlc.inference.predictor.Predictor`, whose model (rebuilt from the sidecar, weights unused)
decodes the outputs exactly as it decodes the torch network's: the same code path, the same files, the same
scorer. :func:`load_onnx` gives those parts (network, decoding model, detector) to callers that are no
:class:`Predictor` (evaluation's :func:`~lightning_dlc.inference.predict.predict_dataset`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lightning_dlc.inference.chunks import file_id
from lightning_dlc.inference.devices import resolve_device
from lightning_dlc.inference.predict import _no_downloads, load_detector, load_model, snapshot_meta
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.inference.scorer import ModelInfo, describe_snapshot, detector_snapshot, snapshot_from_args
from lightning_dlc.models.onnx_export import (DETECTOR_OUTPUTS, INPUT, decoding_info, export_detector_network,
                                              export_pose_network, require)
from lightning_dlc.models.ctd_crops import is_conditional
from lightning_dlc.models.pose_model import PoseModel, model_from_config
from lightning_dlc.models.snapshot_files import load_snapshot, net_type
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "OnnxDetector", "OnnxModel", "OnnxNetwork", "export_snapshot_onnx", "float32_only", "load_onnx",
           "onnx_files", "onnx_predictor", "onnx_providers"]

FORMAT = "lightning_dlc.onnx/1"
PRECISIONS_32 = ("32", "32-true", "fp32", "auto")


def onnx_providers(device: torch.device) -> list:
    """onnxruntime's execution providers for ``device``: CUDA's where the device is a GPU and onnxruntime has it."""
    ort = require("onnxruntime")
    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" in available:
            return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        log.warning("onnxruntime has no CUDAExecutionProvider here (%s): the network runs on the CPU "
                    "(pip install onnxruntime-gpu for CUDA)", ", ".join(available))
    return ["CPUExecutionProvider"]


def _session(path: Path, device: torch.device):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's notes on graph rewrites are not the user's to act on
    return ort.InferenceSession(str(path), options, providers=onnx_providers(device))


class OnnxNetwork:
    """A pose graph's session called as the torch network is: normalized images ``[B, 3, H, W]`` in,
    ``{role: {key: tensor}}`` out (on the input's device, float32)."""

    def __init__(self, path: str | Path, device=None):
        self.path = Path(path)
        self.session = _session(self.path, resolve_device(device))
        self.names = [tuple(o.name.split(".", 1)) for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def __call__(self, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        x = images.detach().float().contiguous().cpu().numpy()
        out: dict[str, dict[str, torch.Tensor]] = {}
        for (role, key), value in zip(self.names, self.session.run(None, {INPUT: x})):
            out.setdefault(role, {})[key] = torch.from_numpy(value).to(images.device)
        return out


class OnnxDetector:
    """A detector graph's session called as :class:`~lightning_dlc.models.detectors.Detector` is in eval mode:
    a list of float ``[3, H, W]`` images in [0, 1] in, one ``{"boxes", "scores", "labels"}`` per image out."""

    def __init__(self, path: str | Path, device=None):
        self.path = Path(path)
        self.session = _session(self.path, resolve_device(device))

    def __call__(self, images) -> list[dict[str, torch.Tensor]]:
        found = []
        for image in images:  # the graph holds one image (torchvision's detectors trace one at a time)
            values = self.session.run(None, {INPUT: image.detach().float().contiguous().cpu().numpy()})
            found.append({k: torch.from_numpy(v).to(image.device) for k, v in zip(DETECTOR_OUTPUTS, values)})
        return found


def onnx_files(snapshot: str | Path, out: str | Path | None = None) -> tuple[Path, Path]:
    """``(.onnx, .json)`` paths of a snapshot's export into ``out`` (default ``<snapshot folder>/onnx``)."""
    snapshot = Path(snapshot)
    folder = Path(out) if out is not None else snapshot.parent / "onnx"
    return folder / f"{snapshot.stem}.onnx", folder / f"{snapshot.stem}.json"


def _write_json(path: Path, record: dict, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def export_snapshot_onnx(snapshot: str | Path, out: str | Path | None = None, *, detector="auto",
                         project=None, overwrite: bool = False, opset: int = 17) -> Path:
    """Write a snapshot's pose network (and a top-down run's detector) as ONNX, plus the sidecar; returns the sidecar.

    ``snapshot``: a snapshot file (ours or DeepLabCut's ``.pt``) or a run folder / DeepLabCut ``train/`` folder
    (its best snapshot). ``detector`` (top-down): ``auto`` = the run's ``snapshot-detector-*`` beside it, a
    detector snapshot file, or None. ``project``: the run's config.yaml if it moved (scorer name). Existing
    files are kept (ProjectError) unless ``overwrite``; each file is written under a temporary name first.
    """
    path = Path(snapshot)
    path = snapshot_from_args(path, "best") if path.is_dir() else snapshot_from_args(None, str(path))
    contents = load_snapshot(path)
    model = load_model(contents, "cpu")
    if is_conditional(model):
        raise ProjectError(path, "is a conditional top-down (CTD) model: its network takes a bottom-up model's poses "
                                 "beside the images, which the ONNX export does not hold; use backend=torch")
    detector_path = detector_snapshot(path, detector) if model.top_down is not None else None
    info = describe_snapshot(path, contents, project, detector_path)
    onnx_path, json_path = onnx_files(path, out)
    detector_onnx = onnx_path.with_name(f"{detector_path.stem}.onnx") if detector_path else None
    for target in (onnx_path, json_path, detector_onnx):
        if target is not None and target.exists() and not overwrite:
            raise ProjectError(target, "already exists; pass overwrite=true to replace it")
    with atomic_path(onnx_path, overwrite=overwrite, keep_suffix=True) as tmp:
        names = export_pose_network(model, tmp, opset)
    if detector_onnx is not None:
        with atomic_path(detector_onnx, overwrite=overwrite, keep_suffix=True) as tmp:
            export_detector_network(load_detector(detector_path, "cpu"), tmp, opset)
    record = {"format": FORMAT, "model": onnx_path.name, **decoding_info(model, names),
              "detector": None if detector_onnx is None else {"model": detector_onnx.name,
                                                               "snapshot": file_id(detector_path)},
              "net_type": net_type(info.run_config, path.parent),
              "scorer": info.scorer, "iteration": info.iteration, "train_fraction": info.train_fraction,
              "snapshot": file_id(path), "opset": opset, "run_config": info.run_config}
    _write_json(json_path, json.loads(json.dumps(record, default=str)), overwrite)
    log.info("ONNX export of %s: %s (%s)", path, onnx_path, json_path.name)
    return json_path


def _read_sidecar(path: Path) -> tuple[dict, Path]:
    """The sidecar of an ``.onnx`` (or the sidecar itself) and the pose graph's path."""
    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        raise ProjectError(json_path, "no ONNX sidecar here; files of lightning-dlc export format=onnx come in pairs "
                                      "(<name>.onnx + <name>.json)")
    record = json.loads(json_path.read_text())
    if record.get("format") != FORMAT:
        raise ProjectError(json_path, f"not a lightning_dlc ONNX sidecar (format {record.get('format')!r}, "
                                      f"expected {FORMAT!r})")
    return record, json_path.parent / record["model"]


def _current(snapshot: Path, json_path: Path, detector) -> bool:
    """Whether the export beside ``snapshot`` was made from this very file (not an older one of the same name)
    and, for a top-down model, from the detector snapshot ``detector`` names."""
    try:
        record = json.loads(json_path.read_text()) if json_path.is_file() else {}
    except (OSError, ValueError):
        return False
    if record.get("snapshot") != file_id(snapshot):
        return False
    if record.get("top_down") is None or detector is None or str(detector).endswith(".onnx"):
        return True
    wanted, have = detector_snapshot(snapshot, detector), (record.get("detector") or {}).get("snapshot")
    return have == (file_id(wanted) if wanted is not None else None)


def float32_only(precision) -> str:
    """``32``: what an ONNX graph computes in; ``precision`` other than 32 (or auto) is refused."""
    if str(precision).lower() not in PRECISIONS_32:
        raise ValueError(f"backend=onnxruntime runs the float32 graph; precision={precision!r} is for backend=torch")
    return "32"


@dataclass
class OnnxModel:
    """A snapshot's ONNX export, loaded: ``network`` runs it, ``model`` (rebuilt from the sidecar's config, its
    weights unused) decodes the outputs, ``detector`` finds a top-down model's animals (None: boxes given)."""

    model: PoseModel
    network: OnnxNetwork
    detector: OnnxDetector | None
    info: ModelInfo
    device: torch.device


def load_onnx(model, device=None, precision="32", *, project=None, detector="auto") -> OnnxModel:
    """The networks of ``model`` in onnxruntime, and the decoders of their outputs (what every backend=onnxruntime
    caller uses: :func:`onnx_predictor`, evaluation).

    ``model``: an exported ``.onnx`` (its ``.json`` sidecar beside it) or a snapshot file / run folder, whose
    export in ``<snapshot folder>/onnx/`` is used (written first when missing or made from another file).
    ``detector`` (top-down): ``auto`` = the export's detector graph, a detector snapshot file (exported with the
    pose network when the export was made from another), a detector ``.onnx``, or None (boxes given).
    ONNX graphs are float32: ``precision`` other than 32 is refused.
    """
    if not isinstance(model, (str, Path)):
        raise TypeError(f"backend=onnxruntime needs a snapshot file, run folder or exported .onnx, not "
                        f"{type(model).__name__}")
    float32_only(precision)
    path = Path(model)
    if path.suffix not in (".onnx", ".json"):
        path = snapshot_from_args(path, "best") if path.is_dir() else snapshot_from_args(None, str(path))
        onnx_path, json_path = onnx_files(path)
        if not _current(path, json_path, detector):
            log.warning("%s: no ONNX export of this snapshot yet; writing it to %s", path, onnx_path.parent)
            # a detector snapshot file is exported with it; a detector .onnx is used as given
            from_snapshot = detector if detector is None or Path(str(detector)).suffix in (".ckpt", ".pt") else "auto"
            export_snapshot_onnx(path, detector=from_snapshot, project=project, overwrite=True)
        path = onnx_path
    record, onnx_path = _read_sidecar(path)
    device = resolve_device(device)
    run_config = record["run_config"]
    meta = snapshot_meta({"project_meta": record["project_meta"]})
    # the decoders: the model its config describes (its weights are unused; the graph holds the trained ones)
    decoder = model_from_config(OmegaConf.create({**_no_downloads(run_config["model"]), "weights": None}), meta)
    detector_graph = None
    if record.get("top_down") is not None and detector is not None:
        if str(detector).endswith(".onnx"):
            detector_graph = Path(detector)
        else:  # auto, or the detector snapshot the export was made from
            entry = record.get("detector")
            detector_graph = onnx_path.parent / entry["model"] if entry else None
        if detector_graph is None:
            log.warning("%s: a top-down model exported without a detector: give boxes", onnx_path)
        elif not detector_graph.is_file():
            raise ProjectError(detector_graph, "no such detector ONNX file")
    info = ModelInfo(scorer=record["scorer"], snapshot=onnx_path, run_config=run_config,
                     iteration=record.get("iteration"), train_fraction=record.get("train_fraction"),
                     detector_snapshot=detector_graph)
    network = OnnxNetwork(onnx_path, device)
    log.info("onnxruntime backend: %s on %s", onnx_path.name, ", ".join(network.providers))
    return OnnxModel(decoder.to(device).eval(), network,
                     OnnxDetector(detector_graph, device) if detector_graph is not None else None, info, device)


def onnx_predictor(model, device=None, precision="32", *, project=None, detector="auto", box_threshold: float = 0.5,
                   micro_batch: int | None = None) -> Predictor:
    """A :class:`Predictor` whose network runs in onnxruntime (``model``, ``detector``, ``precision``: as
    :func:`load_onnx`). A :class:`Predictor` is returned as it is."""
    if isinstance(model, Predictor):  # made already, with its own backend
        return model
    loaded = load_onnx(model, device, precision, project=project, detector=detector)
    data = loaded.info.run_config.get("data") or {}
    return Predictor(loaded.model, loaded.device, "32", channels_last=False, compile=False,
                     pad_multiple=data.get("pad_multiple") or 32, resize=data.get("resize"), info=loaded.info,
                     micro_batch=micro_batch, box_threshold=box_threshold, network=loaded.network,
                     detector=loaded.detector)
