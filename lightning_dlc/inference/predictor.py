"""A snapshot as a batched predictor over arrays: uint8 RGB images in, keypoints in their pixels out."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightning_dlc.data.dataset import resize_points, to_original_pixels
from lightning_dlc.inference.devices import PRECISIONS, autocast_dtype, resolve_device, resolve_precision
from lightning_dlc.inference.features import (capture_features, crop_features_reader, feature_channels, feature_layer,
                                              features_at_predictions)
from lightning_dlc.inference.malloc import cpu_micro_batch
from lightning_dlc.inference.predict import detect_boxes, load_detector, load_model, predict_batch
from lightning_dlc.inference.scorer import ModelInfo, describe_snapshot, detector_snapshot
from lightning_dlc.models.detectors import Detector
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.models.snapshot_files import find_snapshots, load_snapshot
from lightning_dlc.project.errors import ProjectError

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "Predictor", "as_predictor", "read_boxes"]


class Predictor:
    """A batched predictor over arrays: uint8 RGB images in, keypoints in their pixels out.

    Usable outside any project::

        predictor = Predictor.from_snapshot("outputs/.../snapshot-best-120.ckpt", precision="bf16")
        out = predictor(frames)   # uint8 [B, 3, H, W] tensor or [B, H, W, 3] array

    ``out["bodypart"]``: float32 ``[B, n_individuals, n_bodyparts, 3]`` (x, y, score; NaN where
    nothing was found), ``out["unique_bodypart"]``: ``[B, n_unique, 3]``, with an identity head
    ``out["identity"]``: ``[B, n_individuals, n_identities]``; numpy arrays.

    Images are padded at the bottom and right to a multiple of ``pad_multiple`` (as training
    batches are) and resized by ``resize`` (the run's ``data.resize``) before the model, and
    predictions mapped back. ``precision``: ``auto`` (bf16 where the device computes it natively, fp16 on
    other CUDA GPUs, else fp32: :func:`~lightning_dlc.inference.devices.auto_precision`), ``32``, ``bf16``
    or ``16`` (autocast; decoding stays float32); ``channels_last``: the model and its input in
    channels-last memory format (faster convolutions on CPUs and GPUs); ``compile``: ``torch.compile`` the network (falls back to
    eager, with a warning, if compiling fails). ``micro_batch``: images per network call (None: all
    on a GPU; on the CPU as many as keep the largest activation under 24 MB, 1-2 full video frames,
    with :func:`~lightning_dlc.inference.malloc.tune_malloc`, which the analysis calls: big batches there
    cost page faults, not speed).

    Top-down models (``model.top_down``) read one crop per animal box: boxes the caller gives
    (``predictor(frames, boxes=...)``, xyxy in the frames' pixels, ``[B, N, 4]``, NaN rows for
    none), else the ``detector``'s ``max_individuals`` best boxes scoring at least
    ``box_threshold``. Row n of the output is box n.

    ``network``: something else that runs the network (normalized images in, the heads' outputs out), such as
    :class:`~lightning_dlc.inference.onnx_runner.OnnxNetwork`; ``model`` then only decodes (see
    :func:`~lightning_dlc.inference.onnx_runner.onnx_predictor`).
    """

    def __init__(self, model: PoseModel, device=None, precision="auto", channels_last: bool = True,
                 compile: bool = False, pad_multiple: int = 32, resize: float | None = None,
                 info: ModelInfo | None = None, micro_batch: int | None = None, detector: Detector | None = None,
                 box_threshold: float = 0.5, network=None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        # a detector that is not a torch module (an ONNX runner) runs where it was made
        self.detector = detector.to(self.device).eval() if isinstance(detector, torch.nn.Module) else detector
        self.box_threshold = float(box_threshold)
        self.meta = model.meta
        self.precision = resolve_precision(precision, self.device)  # auto: what this device computes fastest
        self.autocast_dtype = autocast_dtype(self.precision)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.pad_multiple = max(1, int(pad_multiple or 1))
        self.resize = None if resize in (None, 1, 1.0) else float(resize)
        self.info = info or ModelInfo()
        self.compile = bool(compile)
        # what runs the network (``network``: e.g. an onnx_runner.OnnxNetwork); self.model decodes its outputs
        self._net = network if network is not None else torch.compile(self.model) if self.compile else self.model
        self._static_batch: int | None = None
        self._checked = False
        self.micro_batch = None if micro_batch is None else max(1, int(micro_batch))

    @property
    def top_down(self) -> bool:
        return self.model.top_down is not None

    def _micro(self, n: int, height: int, width: int) -> int:
        """Images (or crops) of ``height x width`` per network call."""
        if self.micro_batch is not None:
            return self.micro_batch
        if self.device.type != "cpu":
            return n
        return cpu_micro_batch(height, width, half=self.autocast_dtype is not None)

    @classmethod
    def from_snapshot(cls, snapshot, device=None, precision="auto", channels_last: bool = True,
                      compile: bool = False, project=None, micro_batch: int | None = None, detector="auto",
                      box_threshold: float = 0.5) -> "Predictor":
        """The predictor of a snapshot file (or a run folder: its best snapshot).

        ``detector`` (top-down models): ``auto`` = the best (else last) ``snapshot-detector-*.ckpt``
        beside the snapshot, a detector snapshot file, or None (boxes must then be given).
        """
        path = Path(snapshot)
        if path.is_dir():
            path = find_snapshots(path, "best")[0]
        if not path.is_file():
            raise ProjectError(path, "no such snapshot file")
        contents = load_snapshot(path)
        model = load_model(contents, resolve_device(device))
        detector_path = detector_snapshot(path, detector) if model.top_down is not None else None
        info = describe_snapshot(path, contents, project, detector_path)
        data = info.run_config.get("data") or {}
        return cls(model, device, precision, channels_last, compile, pad_multiple=data.get("pad_multiple") or 32,
                   resize=data.get("resize"), info=replace(info, detector_snapshot=detector_path),
                   micro_batch=micro_batch, box_threshold=box_threshold,
                   detector=load_detector(detector_path, resolve_device(device)) if detector_path else None)

    @property
    def scorer(self) -> str:
        return self.info.scorer

    def output_shapes(self, features: bool = False) -> dict[str, tuple[int, ...]]:
        """Per-image shapes of the outputs (``features``: with the keypoint features)."""
        meta = self.meta
        shapes = {"bodypart": (meta.max_individuals, len(meta.bodyparts), 3),
                  "unique_bodypart": (len(meta.unique_bodyparts), 3)}
        if "identity" in self.model.heads:
            shapes["identity"] = (meta.max_individuals, len(meta.individuals))
        if features:
            shapes["features"] = (meta.max_individuals, len(meta.bodyparts), feature_channels(self.model))
        return shapes

    def _prepare(self, images) -> tuple[torch.Tensor, float]:
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"images must be uint8 [B, H, W, 3] (or a tensor [B, 3, H, W]), got {images.shape}")
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        x = images.to(self.device, non_blocking=True)
        scale = 1.0
        if self.resize is not None:
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            x = F.interpolate(x, scale_factor=self.resize, mode="area" if self.resize < 1 else "bilinear",
                              recompute_scale_factor=False).clamp_(0, 1)
            scale = self.resize
        h, w = x.shape[-2:]
        m = self.pad_multiple
        ph, pw = -h % m, -w % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return x, scale

    def _boxes(self, x: torch.Tensor, boxes, scale: float) -> torch.Tensor:
        """Boxes ``[B, N, 4]`` in the pixels of the prepared frames ``x``: the caller's, else the detector's."""
        if boxes is not None:
            boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)[..., :4], device=x.device)
            if boxes.ndim != 3 or boxes.shape[0] != x.shape[0]:
                raise ValueError(f"boxes must be [B={x.shape[0]}, N, 4] (xyxy per frame), got {tuple(boxes.shape)}")
            # resized frames: boxes move with the pixels (corners as points)
            return boxes if scale == 1.0 else resize_points(boxes, scale)
        if self.detector is None:
            raise ValueError("this top-down model needs boxes: give boxes=..., or a detector snapshot "
                             "(detector=.../snapshot-detector-NNN.ckpt; a run trained with detector=<name> has one)")
        return detect_boxes(self.detector, x, self.meta.max_individuals, self.box_threshold)[..., :4]

    def detect(self, images) -> np.ndarray:
        """The detector's boxes ``[B, max_individuals, 5]`` (xyxy in the images' pixels, score), NaN rows for none."""
        if self.detector is None:
            raise ValueError("this predictor has no detector")
        x, scale = self._prepare(images)
        found = detect_boxes(self.detector, x, self.meta.max_individuals, self.box_threshold)
        found[..., :4] = to_original_pixels(found[..., :4], scale)
        return found.cpu().numpy()

    @torch.no_grad()
    def __call__(self, images, boxes=None, features: bool = False) -> dict[str, np.ndarray]:
        """Predictions; with ``features``, also ``out["features"]`` ``[B, N, K, D]`` float32: the feature
        map and the input's appearance at each keypoint from the same forward pass
        (:mod:`~lightning_dlc.inference.features`)."""
        if features and not isinstance(self._net, torch.nn.Module):
            raise ValueError("features (keypoint features) are read from the torch model: use backend=torch")
        x, scale = self._prepare(images)
        n = x.shape[0]
        if self.top_down:
            boxes = self._boxes(x, boxes, scale)
        if self.compile:  # one static batch size: the last, smaller batch is padded, not recompiled
            self._static_batch = max(self._static_batch or n, n)
            if n < self._static_batch:
                x = torch.cat([x, x.new_zeros((self._static_batch - n, *x.shape[1:]))])
                if boxes is not None:
                    boxes = torch.cat([boxes, boxes.new_full((self._static_batch - n, *boxes.shape[1:]), float("nan"))])
        try:
            out = self._run(x, scale, boxes, features)
        except Exception as e:
            if self._checked or not self.compile:
                raise
            log.warning("torch.compile failed (%s: %s); running the model eagerly", type(e).__name__,
                        str(e).splitlines()[0] if str(e) else "")
            self._net, self.compile = self.model, False
            out = self._run(x[:n], scale, boxes[:n] if boxes is not None else None, features)
        self._checked = True
        return {k: v[:n] for k, v in out.items()}

    def _run(self, x: torch.Tensor, scale: float, boxes: torch.Tensor | None = None,
             features: bool = False) -> dict[str, np.ndarray]:
        if boxes is not None:  # top-down: the crops are what goes through the network in micro-batches
            crop_h, crop_w = self.model.top_down.crop_size
            micro = self._micro(boxes.shape[0] * boxes.shape[1], crop_h, crop_w)
            if not features:
                parts = [predict_batch(self.model, x, scale, self.channels_last, self.autocast_dtype, boxes=boxes,
                                       micro_batch=micro, net=self._net)]
            else:  # the crops' maps, read after each chunk (eager model, as below)
                with capture_features(self.model) as captured:
                    parts = [predict_batch(self.model, x, scale, self.channels_last, self.autocast_dtype, boxes=boxes,
                                           micro_batch=micro, crop_features=crop_features_reader(self.model, captured))]
                if "features" not in parts[0]:  # no box in these frames
                    shape = (*parts[0]["bodypart"].shape[:3], feature_channels(self.model))
                    parts[0]["features"] = parts[0]["bodypart"].new_full(shape, float("nan"))
        else:
            step = self._micro(x.shape[0], x.shape[-2], x.shape[-1])
            parts = [self._predict_part(x[i: i + step], scale, features) for i in range(0, x.shape[0], step)]
        return {k: torch.cat([p[k] for p in parts]).float().cpu().numpy() for k in parts[0]}

    def _predict_part(self, x: torch.Tensor, scale: float, features: bool) -> dict[str, torch.Tensor]:
        if not features:
            return predict_batch(self.model, x, scale, self.channels_last, self.autocast_dtype, net=self._net)
        # eager model: a hook added per call would make a compiled one recompile every time
        with capture_features(self.model) as captured:
            out = predict_batch(self.model, x, scale, self.channels_last, self.autocast_dtype)
        out["features"] = features_at_predictions(captured["maps"][-1], captured["images"][-1], out["bodypart"],
                                                  scale, feature_layer(self.model)[3])
        return out

    def predict_images(self, images: Sequence[np.ndarray], boxes=None) -> dict[str, np.ndarray]:
        """Images of any sizes (uint8 ``[H, W, 3]`` RGB) in one batch: zero-padded at the bottom and right."""
        h = max(im.shape[0] for im in images)
        w = max(im.shape[1] for im in images)
        batch = np.zeros((len(images), h, w, 3), np.uint8)
        for i, im in enumerate(images):
            batch[i, : im.shape[0], : im.shape[1]] = im
        return self(batch, boxes)


def as_predictor(model, device=None, precision="auto", channels_last=True, compile=False, project=None,
               detector="auto", box_threshold: float = 0.5) -> Predictor:
    """``model`` as a :class:`Predictor`: one already, a PoseModel, or a snapshot file or run folder."""
    if isinstance(model, Predictor):
        return model
    if isinstance(model, PoseModel):
        return Predictor(model, device, precision, channels_last, compile, box_threshold=box_threshold,
                         detector=load_detector(detector, resolve_device(device)) if detector not in (None, "auto")
                         else None)
    return Predictor.from_snapshot(model, device, precision, channels_last, compile, project, detector=detector,
                                   box_threshold=box_threshold)


def read_boxes(boxes, n_frames: int | None = None, where: str = "boxes") -> np.ndarray | None:
    """User boxes for a top-down model: an array or ``.npy`` file ``[n_frames, N, 4 or 5]`` (xyxy[, score])."""
    if boxes is None:
        return None
    if isinstance(boxes, (str, Path)):
        path = Path(boxes)
        if not path.is_file():
            raise ProjectError(path, "no such boxes file (a .npy array [n_frames, n_boxes, 4], xyxy in pixels)")
        boxes, where = np.load(path, allow_pickle=False), str(path)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] not in (4, 5) or (n_frames is not None and len(boxes) != n_frames):
        raise ValueError(f"{where}: boxes must be [n_frames{'=' + str(n_frames) if n_frames else ''}, n_boxes, 4 or 5] "
                         f"(xyxy[, score] per frame, NaN rows for none), got {boxes.shape}")
    return boxes[..., :4]
