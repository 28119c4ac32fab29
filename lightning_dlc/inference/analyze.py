"""Video and image analysis: a snapshot's predictions for every frame, written as DeepLabCut writes them.

:func:`analyze_video` streams one video. Frames come in batches from
:func:`~lightning_dlc.inference.video.open_video` (OpenCV decodes in a background thread, DALI in its
own, while the model runs); a :class:`Predictor` turns each batch into keypoints in the frame's pixels
(PAF assembly for multi-animal models); rows collect in a buffer of ``chunk_frames`` frames that is
saved as one ``.npz`` in ``<prefix>.partial/`` when full. A crash or Ctrl-C loses at most the chunk in
progress: the next call with the same snapshot, video and settings resumes after the last saved
chunk (and logs it). At the end the chunks are streamed into DeepLabCut's files, each written under
a temporary name and renamed into place (the ``.h5`` last), and the partial folder is removed.
Memory holds one chunk and a few batches of frames, however long the video.

Files, named ``<prefix>`` = ``<video stem><scorer>`` (DeepLabCut's scorer of the snapshot,
``DLC_<Net>_<Task><date>shuffle<n>_snapshot_<epoch>``) beside the video or in ``destfolder``:

- ``<prefix>.h5``: key ``df_with_missing``, pandas' table format, float32, rows = frame numbers,
  columns ``scorer/bodyparts/coords`` for one animal, ``scorer/individuals/bodyparts/coords`` for
  several (unique bodyparts under ``single``), coords ``x, y, likelihood`` (DeepLabCut 3's layout;
  DeepLabCut's pandas reads it);
- ``<prefix>_full.pickle``, ``<prefix>_meta.pickle`` and, multi-animal, ``<prefix>_assemblies.pickle``
  (:mod:`lightning_dlc.project.analysis_files`); with ``save_as_csv`` the ``.csv``.

Coordinates are in pixels of the frame as analyzed (the crop's, as DeepLabCut; ``_meta.pickle``
holds the crop). Frames that cannot be decoded and blank frames (one flat colour, as camera dropouts
give: pixel range at most ``blank_threshold`` grey levels) get NaN rows without running the model,
as do frames where a multi-animal model finds no animal; their assemblies are empty. The counts go
in the summary and the meta pickle (``lightning_dlc`` entry, with the frame ranges).

A final ``.h5`` that exists is kept unless ``overwrite=True`` (logged as already analyzed).

One process at a time writes a video's outputs: the analysis holds ``<prefix>.lock``
(:mod:`lightning_dlc.project.locks`, an OS file lock that dies with the process) from before it looks
at ``.partial/`` until the files are in place. A second analysis of the same video and scorer skips
it, naming the holder's pid and host (status ``locked``), or waits (``wait_for_lock=True``). Every
chunk carries the state of the run that made it (snapshot, video file, settings, frame range) and is
checked against the run's own state when resumed from and when assembled: a chunk of another run,
snapshot or video, or overlapping frames, stops the run with the folder's name and the fix.
:func:`analyze_videos` runs a list of videos (files or folders) with one model; a video that is
missing or unreadable is logged with its path and the others still run. :func:`analyze_images`
predicts images of any size and writes DeepLabCut's ``image_predictions_<scorer>.h5`` plus a JSON.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lightning_dlc.data.dataset import resize_points, to_original_pixels
from lightning_dlc.inference.features import (APPEARANCE_CHANNELS, APPEARANCE_PATCH, FeaturesWriter,
                                              capture_features, crop_features_reader, feature_channels,
                                              feature_layer, features_at_predictions)
from lightning_dlc.inference.predict import detect_boxes, load_detector, load_model, predict_batch, resolve_device
from lightning_dlc.inference.video import open_video, parse_crop, probe_video
from lightning_dlc.models.detectors import Detector
from lightning_dlc.models.snapshot_files import (detector_beside, find_snapshots, load_snapshot, net_name,
                                                 scorer_name, snapshot_epoch)
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.project import analysis_files as files
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.locks import OutputLocked, lock_path, output_lock
from lightning_dlc.project.predictions import PredictionsWriter, predictions_table, write_predictions

log = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "PRECISIONS", "VIDEO_EXTENSIONS", "Predictor", "VideoSummary", "analyze_images",
           "analyze_video", "analyze_videos", "describe_snapshot", "find_images", "find_videos",
           "snapshot_from_args", "summaries_table", "tune_malloc"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PRECISIONS = {"32": None, "32-true": None, "fp32": None, "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16,
              "16": torch.float16, "16-mixed": torch.float16, "fp16": torch.float16}
DEFAULT_SCORER = "DLC_lightning_dlc"
OK, INVALID, BLANK = 0, 1, 2  # frame status in the partial chunks
_STATE_VERSION = 2  # 2: every chunk carries the state it was made with


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelInfo:
    """Where a predictor's model came from, for file names and the meta pickle."""

    scorer: str = DEFAULT_SCORER
    snapshot: Path | None = None
    run_config: dict = field(default_factory=dict)
    iteration: int | None = None
    train_fraction: float | None = None
    detector_snapshot: Path | None = None  # top-down models: the detector that finds the animals


def _project_config(where, source) -> ProjectConfig | None:
    if not where or source == "coco":
        return None
    path = Path(str(where)).expanduser()
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        return None
    try:
        return ProjectConfig.read(path)
    except Exception as e:  # a damaged config only costs the task name in the scorer
        log.warning("%s: cannot read it for the scorer name (%s)", path, e)
        return None


def describe_snapshot(path: Path, snapshot: Mapping, project=None, detector: Path | None = None) -> ModelInfo:
    """Scorer (DeepLabCut's name), iteration and training fraction of a snapshot's run.

    The task and date come from the project the run trained on (``project`` when it moved since); a
    top-down model's ``detector`` snapshot is named in the scorer as DeepLabCut does.
    """
    run_config = dict(snapshot.get("run_config") or {})
    data = run_config.get("data") or {}
    epoch = snapshot_epoch(path)
    if epoch < 0:
        epoch = int(snapshot.get("epoch", -1)) + 1
    source = data.get("source", "dlc")
    cfg = _project_config(project if project is not None else data.get("project"), source)
    shuffle = data.get("shuffle") if source != "coco" else None
    iteration = fraction = None
    if cfg is not None:
        task = f"{cfg.task}{cfg.date}"
        iteration = cfg.iteration
        index = int(data.get("trainset_index") or 0)
        fractions = cfg.training_fractions
        fraction = fractions[index] if 0 <= index < len(fractions) else None
    else:
        where = Path(str(project if project is not None else data.get("project") or path.parent.name))
        task = where.parent.name if where.suffix in (".yaml", ".yml") else where.name
        if source != "coco":
            log.warning("%s: the project it trained on (%s) is not there; scorer names use %r as the task "
                        "(pass project= to name it as DeepLabCut does)", path, where, task)
    scorer = scorer_name(net_name(run_config, path.parent), task, shuffle, path, epoch, detector)
    return ModelInfo(scorer=scorer, snapshot=path, run_config=run_config, iteration=iteration,
                     train_fraction=fraction)


# glibc serves allocations above its mmap threshold with fresh mappings that are faulted in page by page
# and unmapped again on free: a CNN on full video frames then spends a third of its time in the kernel.
_MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's largest allowed threshold on 64-bit
_TRIM_THRESHOLD = 512 * 1024 * 1024  # freed memory kept for reuse up to this much
_MICRO_BATCH_BYTES = 24 * 1024 * 1024
_malloc_tuned: bool | None = None


def tune_malloc() -> bool:
    """Make glibc reuse freed memory (mmap threshold 32 MB, trim threshold 512 MB); False where not glibc.

    Process-wide and harmless elsewhere (the process keeps up to 512 MB of freed memory for reuse).
    With micro-batches whose activations stay under the threshold, CPU inference runs without page
    faults: 1.4x (bf16) to 1.7x (fp32) the frames/s of plain batches of 8 for ResNet-50 on 640x480.
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            _malloc_tuned = libc.mallopt(-3, _MMAP_THRESHOLD) == 1 and libc.mallopt(-1, _TRIM_THRESHOLD) == 1
        except (OSError, AttributeError):
            _malloc_tuned = False
        log.debug("glibc malloc tuned for reuse: %s", _malloc_tuned)
    return _malloc_tuned


def _precision(precision) -> torch.dtype | None:
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise ValueError(f"precision must be one of 32, bf16, 16, got {precision!r}")
    return PRECISIONS[key]


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
    predictions mapped back. ``precision``: ``32``, ``bf16`` or ``16`` (autocast; decoding stays
    float32); ``channels_last``: the model and its input in channels-last memory format (faster
    convolutions on CPUs and GPUs); ``compile``: ``torch.compile`` the network (falls back to
    eager, with a warning, if compiling fails). ``micro_batch``: images per network call (None: all
    on a GPU; on the CPU as many as keep the largest activation under 24 MB, 1-2 full video frames,
    with :func:`tune_malloc`: big batches there cost page faults, not speed).

    Top-down models (``model.top_down``) read one crop per animal box: boxes the caller gives
    (``predictor(frames, boxes=...)``, xyxy in the frames' pixels, ``[B, N, 4]``, NaN rows for
    none), else the ``detector``'s ``max_individuals`` best boxes scoring at least
    ``box_threshold``. Row n of the output is box n.
    """

    def __init__(self, model: PoseModel, device=None, precision="32", channels_last: bool = True,
                 compile: bool = False, pad_multiple: int = 32, resize: float | None = None,
                 info: ModelInfo | None = None, micro_batch: int | None = None, detector: Detector | None = None,
                 box_threshold: float = 0.5):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.detector = detector.to(self.device).eval() if detector is not None else None
        self.box_threshold = float(box_threshold)
        self.meta = model.meta
        self.precision = str(precision)
        self.autocast_dtype = _precision(precision)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.pad_multiple = max(1, int(pad_multiple or 1))
        self.resize = None if resize in (None, 1, 1.0) else float(resize)
        self.info = info or ModelInfo()
        self.compile = bool(compile)
        self._net = torch.compile(self.model) if self.compile else self.model
        self._static_batch: int | None = None
        self._checked = False
        self.micro_batch = None if micro_batch is None else max(1, int(micro_batch))
        if self.device.type == "cpu":
            tune_malloc()

    @property
    def top_down(self) -> bool:
        return self.model.top_down is not None

    def _micro(self, n: int, height: int, width: int) -> int:
        """Images (or crops) of ``height x width`` per network call."""
        if self.micro_batch is not None:
            return self.micro_batch
        if self.device.type != "cpu":
            return n
        # A ResNet-like stem, 64 channels at half resolution, makes the largest activation per image.
        per_image = 64 * (height // 2) * (width // 2) * (4 if self.autocast_dtype is None else 2)
        return max(1, _MICRO_BATCH_BYTES // per_image)

    @classmethod
    def from_snapshot(cls, snapshot, device=None, precision="32", channels_last: bool = True,
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
        detector_path = _detector_snapshot(path, detector) if model.top_down is not None else None
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
            if self._checked or self._net is self.model:
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
                parts = [predict_batch(self._net, x, scale, self.channels_last, self.autocast_dtype, boxes=boxes,
                                       micro_batch=micro)]
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
            return predict_batch(self._net, x, scale, self.channels_last, self.autocast_dtype)
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


def _detector_snapshot(pose_snapshot: Path, detector) -> Path | None:
    """The detector snapshot a top-down predictor uses (see :meth:`Predictor.from_snapshot`)."""
    if detector is None:
        return None
    if str(detector) != "auto":
        path = Path(detector)
        if not path.is_file():
            raise ProjectError(path, "no such detector snapshot file")
        return path
    path = detector_beside(pose_snapshot)
    if path is None:
        log.warning("%s: a top-down model with no snapshot-detector-*.ckpt beside it: give boxes, or "
                    "detector=<a detector snapshot>", pose_snapshot)
    return path


def snapshot_from_args(run=None, snapshot="best") -> Path:
    """The snapshot a script names: ``snapshot`` as a file, else run folder ``run``'s ``best``, ``last`` or
    DeepLabCut's snapshot index (``-1``); ``run`` may be a DeepLabCut model folder's ``train/``."""
    if snapshot not in (None, "best", "last") and not str(snapshot).lstrip("-").isdigit():
        path = Path(snapshot)
        if not path.is_file():
            raise ProjectError(path, "no such snapshot file (or snapshot=best / last with run=<run folder>)")
        return path
    if run is None:
        raise ValueError("name the model: run=outputs/YYYY-MM-DD/HH-MM-SS (a run folder) or snapshot=<file>")
    return find_snapshots(run, "best" if snapshot is None else snapshot)[0]


def _predictor(model, device=None, precision="32", channels_last=True, compile=False, project=None,
               detector="auto", box_threshold: float = 0.5) -> Predictor:
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


# --------------------------------------------------------------------------- partial results
class _Partial:
    """``<prefix>.partial/``: ``state.json`` (what the results depend on) and ``frames-<a>-<b>.npz`` chunks.

    Each chunk also carries what made it: ``_state`` (the run's state as JSON: snapshot, video file,
    settings) and ``_frames`` (its first and end frame). Chunks must run from frame 0 without gaps or
    overlaps and carry this run's state; anything else (a chunk of another run, snapshot or video)
    stops the run with the folder's name and the fix: it is never mixed in.
    """

    def __init__(self, folder: Path, state: dict):
        self.folder = folder
        self.state = state

    def _foreign(self, path: Path, problem: str) -> ProjectError:
        return ProjectError(self.folder, f"{path.name}: {problem}; these partial results are not this run's "
                                         "alone: remove the folder (or run again with overwrite=True) to start over")

    def _check(self, path: Path, a: int, b: int, z) -> None:
        """The chunk at ``path`` (open npz ``z``) was made by this run's state for frames ``[a, b)``."""
        if "_state" not in z.files or "_frames" not in z.files:
            raise self._foreign(path, "carries no record of the run that made it")
        try:
            made_by = json.loads(str(z["_state"]))
        except ValueError:
            raise self._foreign(path, "its record of the run that made it is unreadable") from None
        differ = sorted(k for k in set(made_by) | set(self.state)
                        if k != "chunk_frames" and made_by.get(k) != self.state.get(k))
        if differ:
            raise self._foreign(path, f"made by another run ({', '.join(differ)} differ)")
        frames = [int(v) for v in np.asarray(z["_frames"]).reshape(-1)]
        if frames != [a, b]:
            raise self._foreign(path, f"holds frames {frames[0]}-{frames[-1] - 1}, its name says {a}-{b - 1}")

    def _chunks(self, check: bool = True) -> list[tuple[int, int, Path]]:
        """The chunks, in order: a complete run from frame 0 made by this run (else ProjectError)."""
        found = []
        for path in self.folder.glob("frames-*-*.npz"):
            parts = path.stem.split("-")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                found.append((int(parts[1]), int(parts[2]), path))
        found.sort()
        chunks, end = [], 0
        for a, b, path in found:
            if a != end or b <= a:
                what = "overlaps the chunk before it" if a < end else "leaves a gap after the chunk before it"
                raise self._foreign(path, f"frames {a}-{b - 1} {what} (frames 0-{end - 1} are covered)")
            if check:
                with np.load(path) as z:
                    self._check(path, a, b, z)
            chunks.append((a, b, path))
            end = b
        return chunks

    def resume(self) -> tuple[int, int]:
        """(frames already done, chunk size to use): 0 and the state's chunk size for a fresh start."""
        state_file = self.folder / "state.json"
        if self.folder.is_dir():
            try:
                old = json.loads(state_file.read_text())
            except (OSError, ValueError):
                old = None
            same = old is not None and all(old.get(k) == v for k, v in self.state.items() if k != "chunk_frames")
            if same:
                self.state["chunk_frames"] = int(old.get("chunk_frames") or self.state["chunk_frames"])
                chunks = self._chunks()
                done = chunks[-1][1] if chunks else 0
                if done:
                    log.info("%s: resuming from frame %d (resumed: %d frames in %d chunks of %s)",
                             self.state["video"], done, done, len(chunks), self.folder)
                return done, self.state["chunk_frames"]
            changed = sorted(k for k, v in self.state.items() if k != "chunk_frames" and (old or {}).get(k) != v)
            log.warning("%s: partial results made with other settings or inputs (%s differ); starting over",
                        self.folder, ", ".join(changed) or "state.json unreadable")
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        with atomic_path(state_file, overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.state, indent=1))
        return 0, self.state["chunk_frames"]

    def write(self, first: int, arrays: Mapping[str, np.ndarray], count: int) -> None:
        path = self.folder / f"frames-{first:010d}-{first + count:010d}.npz"
        with atomic_path(path, overwrite=True) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v[:count] for k, v in arrays.items()},
                         _state=np.array(json.dumps(self.state, sort_keys=True)),
                         _frames=np.array([first, first + count], np.int64))

    def __iter__(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for a, b, path in self._chunks(check=False):
            with np.load(path) as z:
                self._check(path, a, b, z)  # checked as read: nothing unchecked reaches the files
                arrays = {k: z[k] for k in z.files if not k.startswith("_")}
            if len(arrays["status"]) != b - a:
                raise ProjectError(path, f"holds {len(arrays['status'])} frames, its name says {b - a}")
            yield a, arrays

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _Ranges:
    """Frame numbers as ``[first, last]`` stretches (for the meta pickle)."""

    def __init__(self):
        self.ranges: list[list[int]] = []
        self.total = 0

    def add(self, frames: Iterable[int]) -> None:
        for f in frames:
            f = int(f)
            if self.ranges and self.ranges[-1][1] == f - 1:
                self.ranges[-1][1] = f
            else:
                self.ranges.append([f, f])
            self.total += 1


# --------------------------------------------------------------------------- one video
@dataclass
class VideoSummary:
    """What happened to one video. status: ``analyzed``, ``resumed``, ``skipped`` (already analyzed), ``locked``
    (another process is writing its outputs: ``error`` says which, by pid and host), ``failed``."""

    video: str
    status: str
    h5: str | None = None
    scorer: str = ""
    frames: int = 0
    invalid_frames: int = 0      # could not be decoded
    blank_frames: int = 0        # one flat colour
    empty_frames: int = 0        # decoded, but no animal found
    analyzed_frames: int = 0     # frames predicted in this call (fewer when resumed)
    seconds: float = 0.0
    fps: float = 0.0             # analyzed_frames / seconds
    reader: str = ""
    error: str | None = None

    def line(self) -> str:
        if self.status == "failed":  # errors that name the video already start with it
            error = str(self.error)
            return f"{self.video}: FAILED: {error.removeprefix(f'{self.video}: ')}"
        if self.status == "locked":
            return f"{self.video}: skipped, {self.error}"
        if self.status == "skipped":
            return f"{self.video}: already analyzed, kept {self.h5} (overwrite=True replaces it)"
        resumed = " (resumed)" if self.status == "resumed" else ""
        return (f"{self.video}: {self.frames} frames{resumed}, {self.invalid_frames} undecodable, "
                f"{self.blank_frames} blank, {self.empty_frames} without animals; {self.analyzed_frames} "
                f"analyzed in {self.seconds:.1f} s ({self.fps:.2f} frames/s, {self.reader}) -> {self.h5}")


def _file_id(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _output_paths(out_dir: Path, prefix: str) -> dict[str, Path]:
    return {"h5": out_dir / f"{prefix}.h5", "csv": out_dir / f"{prefix}.csv",
            "full": out_dir / f"{prefix}_full.pickle", "meta": out_dir / f"{prefix}_meta.pickle",
            "assemblies": out_dir / f"{prefix}_assemblies.pickle", "partial": out_dir / f"{prefix}.partial",
            "features": out_dir / f"{prefix}_features.h5", "lock": lock_path(out_dir / prefix)}


def _paf_graph(predictor: Predictor):
    head = predictor.model.heads["bodypart"]
    edges = getattr(head, "edges", None)
    try:
        return [tuple(int(v) for v in edge) for edge in edges] if edges is not None else None
    except TypeError:
        return None


def analyze_video(model, video, destfolder=None, *, batch_size: int = 8, reader: str = "auto", device=None,
                  precision="32", channels_last: bool = True, compile: bool = False, crop=None,
                  overwrite: bool = False, save_as_csv: bool = False, chunk_frames: int = 1000,
                  blank_threshold: int | None = 4, progress: bool = True, project=None,
                  verbose: bool = True, detector="auto", box_threshold: float = 0.5, boxes=None,
                  features: bool = False, wait_for_lock: bool = False) -> VideoSummary:
    """Predict every frame of one video and write DeepLabCut's files (see the module doc).

    Args:
        model: a snapshot file, a run folder (its best snapshot), a :class:`Predictor` or a PoseModel
            (then device, precision, channels_last and compile are its own / apply to it).
        video: the video file. destfolder: where the files go (default: beside the video).
        batch_size: frames per model call. reader: ``auto``, ``dali`` or ``opencv``.
        device: ``auto``/None (CUDA when available), ``cpu``, ``cuda:1``...
        precision: ``32``, ``bf16`` (fast on recent CPUs and GPUs) or ``16``.
        crop: DeepLabCut's ``x1, x2, y1, y2``: analyze only that part of each frame.
        overwrite: replace an existing ``.h5`` (else it is kept and the video skipped).
        save_as_csv: also write the ``.csv``.
        chunk_frames: frames per saved chunk (rounded up to a multiple of batch_size): the most a
            crash can lose, and what memory holds.
        blank_threshold: a frame whose pixel values span at most this many grey levels is blank
            (NaN row, no model call); None: predict every decoded frame.
        project: the run's config.yaml if the project moved since training (for the scorer name).
        verbose: print the summary line.
        detector, box_threshold: for top-down models, the detector snapshot (``auto``: the run's)
            and the score its boxes need (see :meth:`Predictor.from_snapshot`).
        boxes: for top-down models, your boxes instead of a detector's: ``[n_frames, N, 4]`` (an
            array or a ``.npy`` file), xyxy in the video's pixels, NaN rows where fewer animals.
        features: also write ``<prefix>_features.h5``, the feature map at every keypoint, taken in the
            same forward pass (for re-identification; :mod:`~lightning_dlc.inference.features`).
        wait_for_lock: when another process is writing this video's outputs (same video and scorer,
            it holds ``<prefix>.lock``), wait for it to finish (then an analyzed video is skipped
            unless ``overwrite``); False: skip the video at once (status ``locked``, naming the holder's
            pid and host).

    Returns a :class:`VideoSummary`; raises :class:`~lightning_dlc.inference.video.VideoError` (naming
    the file) for a missing or unreadable video.
    """
    predictor = _predictor(model, device, precision, channels_last, compile, project, detector, box_threshold)
    summary = _analyze(predictor, Path(video), destfolder, batch_size=batch_size, reader=reader, crop=crop,
                       overwrite=overwrite, save_as_csv=save_as_csv, chunk_frames=chunk_frames,
                       blank_threshold=blank_threshold, progress=progress, boxes=boxes, features=features,
                       wait_for_lock=wait_for_lock)
    _report_line(summary.line(), verbose)
    return summary


def _report_line(line: str, verbose: bool) -> None:
    if verbose:
        print(line, flush=True)
    else:
        log.info("%s", line)


def _analyze(predictor: Predictor, video: Path, destfolder, *, batch_size: int, reader: str, crop,
             overwrite: bool, save_as_csv: bool, chunk_frames: int, blank_threshold, progress: bool,
             boxes=None, features: bool = False, wait_for_lock: bool = False) -> VideoSummary:
    if int(batch_size) < 1 or int(chunk_frames) < 1:
        raise ValueError(f"batch_size and chunk_frames must be >= 1, got {batch_size}, {chunk_frames}")
    batch_size = int(batch_size)
    info = probe_video(video)  # VideoError naming the file if missing or unreadable
    box = parse_crop(crop, info)
    user_boxes = read_boxes(boxes, info.n_frames, f"boxes for {video}")
    if user_boxes is not None and box:  # boxes are in the full frame's pixels; the model sees the crop
        user_boxes = user_boxes - np.array([box[0], box[2], box[0], box[2]], np.float32)
    scorer = predictor.scorer
    out_dir = Path(destfolder) if destfolder else video.parent
    paths = _output_paths(out_dir, files.output_prefix(video, scorer))
    if paths["h5"].exists() and not overwrite:
        return VideoSummary(str(video), "skipped", h5=str(paths["h5"]), scorer=scorer, frames=info.n_frames)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:  # the lock, held for the whole analysis: .partial and the files
        try:
            stack.enter_context(output_lock(paths["lock"], wait=wait_for_lock))
        except OutputLocked as e:
            return VideoSummary(str(video), "locked", scorer=scorer, frames=info.n_frames, error=str(e))
        if paths["h5"].exists() and not overwrite:  # made meanwhile by the process we waited for
            return VideoSummary(str(video), "skipped", h5=str(paths["h5"]), scorer=scorer, frames=info.n_frames)
        return _analyze_locked(predictor, video, info, box, user_boxes, paths, batch_size=batch_size,
                               reader=reader, save_as_csv=save_as_csv, chunk_frames=chunk_frames,
                               blank_threshold=blank_threshold, progress=progress, features=features)


def _analyze_locked(predictor: Predictor, video: Path, info, box, user_boxes, paths: dict[str, Path], *,
                    batch_size: int, reader: str, save_as_csv: bool, chunk_frames: int, blank_threshold,
                    progress: bool, features: bool) -> VideoSummary:
    """:func:`_analyze` once the outputs' lock is held."""
    scorer = predictor.scorer

    chunk = -(-int(chunk_frames) // batch_size) * batch_size
    snapshot = predictor.info.snapshot
    state = {"version": _STATE_VERSION, "video": str(video), "video_file": _file_id(video),
             "n_frames": info.n_frames, "scorer": scorer,
             "snapshot": _file_id(snapshot) if snapshot is not None else None,
             "detector": _file_id(predictor.info.detector_snapshot) if predictor.info.detector_snapshot else None,
             "boxes": "user" if user_boxes is not None else None,
             "crop": list(box) if box else None, "precision": str(predictor.autocast_dtype),
             "blank_threshold": blank_threshold, "chunk_frames": chunk,
             **({"features": True} if features else {})}  # absent when off: earlier partial results still resume
    partial = _Partial(paths["partial"], state)
    done, chunk = partial.resume()
    started = time.time()

    shapes = predictor.output_shapes(features)
    buffer = {name: np.full((chunk, *shape), np.nan, np.float16 if name == "features" else np.float32)
              for name, shape in shapes.items()}
    buffer["status"] = np.zeros(chunk, np.uint8)
    fill, first = 0, done
    t0 = time.perf_counter()
    analyzed = 0
    backend = ""
    frames = open_video(video, reader=reader, device=predictor.device, batch_size=batch_size, crop=box, start=done)
    backend = frames.backend
    bar = _progress(progress, info.n_frames, done, video.name)
    try:
        for batch in frames:
            b = len(batch)
            status = np.where(batch.valid.numpy(), OK, INVALID).astype(np.uint8)
            if blank_threshold is not None and (status == OK).any():
                flat = batch.frames.flatten(1)
                spread = (flat.amax(1).int() - flat.amin(1).int()).cpu().numpy()
                status[(status == OK) & (spread <= int(blank_threshold))] = BLANK
            run = status == OK
            if run.any():
                frame_boxes = user_boxes[batch.indices.numpy()] if user_boxes is not None else None
                out = predictor(batch.frames, frame_boxes, features)
                for value in out.values():
                    value[~run] = np.nan
            else:
                out = {name: np.full((b, *shape), np.nan, np.float32) for name, shape in shapes.items()}
            pos = 0
            while pos < b:
                take = min(b - pos, chunk - fill)
                for name in shapes:
                    buffer[name][fill: fill + take] = out[name][pos: pos + take]
                buffer["status"][fill: fill + take] = status[pos: pos + take]
                fill, pos = fill + take, pos + take
                if fill == chunk:
                    partial.write(first, buffer, fill)
                    first, fill = first + fill, 0
            analyzed += b
            if bar is not None:
                bar.update(b)
        if fill:
            partial.write(first, buffer, fill)
            first, fill = first + fill, 0
    except BaseException:
        saved = f"frames 0-{first - 1} are saved in {paths['partial']}" if first else "no chunk was saved yet"
        log.warning("%s: stopped at frame %d; %s: run again with the same settings to resume", video,
                    first + fill, saved)
        raise
    finally:
        if bar is not None:
            bar.close()
        frames.close()
    seconds = time.perf_counter() - t0
    del buffer

    counts = _write_outputs(predictor, partial, paths, info, box, batch_size, save_as_csv, started,
                            {"reader": backend, "precision": predictor.precision}, features)
    partial.remove()
    return VideoSummary(str(video), "resumed" if done else "analyzed", h5=str(paths["h5"]), scorer=scorer,
                        frames=info.n_frames, invalid_frames=counts["invalid"], blank_frames=counts["blank"],
                        empty_frames=counts["empty"], analyzed_frames=analyzed, seconds=round(seconds, 3),
                        fps=round(analyzed / seconds, 3) if seconds > 0 else 0.0, reader=backend)


def _progress(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="frame", desc=name, dynamic_ncols=True, smoothing=0.1)


def _write_outputs(predictor: Predictor, partial: _Partial, paths: dict[str, Path], info, box, batch_size: int,
                   save_as_csv: bool, started: float, extra: dict, features: bool = False) -> dict[str, int]:
    """Stream the chunks into the final files: temporary names, renamed together (the .h5 last)."""
    meta = predictor.meta
    n = info.n_frames
    width = files.frame_key_width(n)
    multi = meta.multianimal
    unique = len(meta.unique_bodyparts) > 0
    invalid, blank, empty = _Ranges(), _Ranges(), _Ranges()
    with contextlib.ExitStack() as stack:
        tmp = {"h5": stack.enter_context(atomic_path(paths["h5"], overwrite=True))}  # renamed last
        names = ["full", "meta", *(["assemblies"] if multi else []), *(["csv"] if save_as_csv else []),
                 *(["features"] if features else [])]
        for name in names:
            tmp[name] = stack.enter_context(atomic_path(paths[name], overwrite=True))
        writer = stack.enter_context(PredictionsWriter(tmp["h5"], tmp.get("csv")))
        full = files.StreamedPickleDict(stack.enter_context(open(tmp["full"], "wb")))
        full.update([("metadata", files.full_metadata(meta, n, _paf_graph(predictor) if multi else None))])
        assemblies = None
        if multi:
            assemblies = files.StreamedPickleDict(stack.enter_context(open(tmp["assemblies"], "wb")))
            assemblies.begin("single")
            if unique:
                for first, arrays in partial:
                    assemblies.update(files.unique_items(first, arrays["unique_bodypart"]))
            assemblies.end()
        feature_file = stack.enter_context(_features_writer(predictor, tmp["features"])) if features else None
        rows = 0
        for first, arrays in partial:
            count = len(arrays["status"])
            bodypart = arrays["bodypart"]
            identity = arrays.get("identity")
            status = arrays["status"]
            frames = np.arange(first, first + count)
            invalid.add(frames[status == INVALID])
            blank.add(frames[status == BLANK])
            nothing = ~np.isfinite(bodypart[..., :2]).all(-1).any((1, 2))
            empty.add(frames[(status == OK) & nothing])
            table = predictions_table(bodypart, arrays["unique_bodypart"] if unique else None, meta,
                                      predictor.scorer, index=pd.Index(frames, dtype=np.int64))
            writer.append(table.astype(np.float32))
            full.update(files.full_items(first, bodypart, arrays["unique_bodypart"], width, identity))
            if assemblies is not None:
                assemblies.update(files.assembly_items(first, bodypart, identity))
            if feature_file is not None:
                feature_file.append(arrays["features"], bodypart)
            rows += count
        if rows != n:
            raise RuntimeError(f"{info.path}: {rows} frames of results for {n} frames; the partial results in "
                               f"{paths['partial']} are incomplete (delete it to start over)")
        full.close()
        if assemblies is not None:
            assemblies.close()
        if feature_file is not None:
            feature_file.close()
        run_extra = {"lightning_dlc": {
            **extra, "snapshot": str(predictor.info.snapshot) if predictor.info.snapshot else None,
            "invalid_frames": invalid.ranges, "blank_frames": blank.ranges, "empty_frames": empty.ranges,
            "blank_threshold": partial.state.get("blank_threshold")}}
        metadata = files.video_metadata(
            start=started, stop=time.time(), scorer=predictor.scorer, run_config=predictor.info.run_config,
            fps=info.fps, batch_size=batch_size, frame_size=(info.width, info.height), n_frames=n,
            iteration=predictor.info.iteration, train_fraction=predictor.info.train_fraction, crop=box, meta=meta,
            extra=run_extra)
        with open(tmp["meta"], "wb") as f:
            pickle.dump(metadata, f, pickle.HIGHEST_PROTOCOL)
    return {"invalid": invalid.total, "blank": blank.total, "empty": empty.total}


def _features_writer(predictor: Predictor, path: Path) -> FeaturesWriter:
    meta = predictor.meta
    _, layer, channels, stride = feature_layer(predictor.model)
    attrs = {"layer": layer, "stride": stride, "channels": channels, "appearance": APPEARANCE_CHANNELS,
             "appearance_patch": APPEARANCE_PATCH, "sampling": "bilinear", "scorer": predictor.scorer,
             "bodyparts": list(meta.bodyparts)}
    return FeaturesWriter(path, (meta.max_individuals, len(meta.bodyparts), channels + APPEARANCE_CHANNELS), attrs)


# --------------------------------------------------------------------------- several videos
def _made_from_analysis(path: Path) -> bool:
    """A labeled video or all-detections video made from an analysis (``<video>DLC_..._labeled.mp4``)."""
    return "DLC_" in path.stem and path.stem.endswith(("_labeled", "_full"))


def find_videos(videos, videotype: str | Sequence[str] | None = None) -> list[Path]:
    """Video files from files and folders (a folder: its videos with ``videotype`` or the usual suffixes,
    not the labeled videos made from earlier analyses).

    Paths that do not exist are kept, so that their analysis fails with their name.
    """
    if isinstance(videos, (str, Path)):
        videos = [videos]
    suffixes = VIDEO_EXTENSIONS if not videotype else tuple(
        ("." + s.lstrip(".")).lower() for s in ([videotype] if isinstance(videotype, str) else videotype))
    out: list[Path] = []
    for item in videos:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                           and not _made_from_analysis(p))
            if not found:
                log.warning("%s: no videos (%s) in this folder", path, ", ".join(suffixes))
            out += found
        else:
            out.append(path)
    return out


def analyze_videos(model, videos, destfolder=None, *, videotype=None, device=None, precision="32",
                   channels_last: bool = True, compile: bool = False, project=None, verbose: bool = True,
                   detector="auto", box_threshold: float = 0.5, **options) -> list[VideoSummary]:
    """:func:`analyze_video` for each video (files or folders), with one model loaded once.

    A video that fails (missing, unreadable, ...) is reported once, as an error naming its path, and
    in its summary (``status="failed"``, ``error``); the other videos still run. A video whose outputs
    another process is writing (same video and scorer) is skipped (``status="locked"``, ``error``: the
    lock file and the holder's pid and host), or waited for with ``wait_for_lock=True``. Options are those of
    :func:`analyze_video`; ``boxes`` (top-down models) maps each video's path or file name to its boxes.
    Returns one :class:`VideoSummary` per video, in order.
    """
    paths = find_videos(videos, videotype)
    predictor = _predictor(model, device, precision, channels_last, compile, project, detector, box_threshold)
    boxes_by_video = options.pop("boxes", None) or {}
    summaries = []
    for video in paths:
        try:
            boxes = boxes_by_video.get(str(video), boxes_by_video.get(video.name))
            summary = _analyze(predictor, video, destfolder, boxes=boxes, **_video_options(options))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            summary = VideoSummary(str(video), "failed", scorer=predictor.scorer, error=str(e))
            # reported once, as an error (a traceback only for what is not a plain bad-file error)
            log.error("%s", summary.line(), exc_info=not isinstance(e, (ProjectError, OSError)))
        else:
            _report_line(summary.line(), verbose)
        summaries.append(summary)
    if verbose and len(summaries) > 1:
        by = {s: sum(x.status == s for x in summaries)
              for s in ("analyzed", "resumed", "skipped", "locked", "failed")}
        print("Videos: " + ", ".join(f"{v} {k}" for k, v in by.items() if v), flush=True)
    return summaries


def _video_options(options: dict) -> dict:
    defaults = {"batch_size": 8, "reader": "auto", "crop": None, "overwrite": False, "save_as_csv": False,
                "chunk_frames": 1000, "blank_threshold": 4, "progress": True, "features": False,
                "wait_for_lock": False}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"unknown options {unknown}; known: {sorted(defaults)}")
    return {**defaults, **options}


# --------------------------------------------------------------------------- images
def find_images(images_or_folder, suffixes: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files from an image, a folder (its images, sorted) or a list of either."""
    items = [images_or_folder] if isinstance(images_or_folder, (str, Path)) else list(images_or_folder)
    out: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        else:
            out.append(path)
    return out


def _read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _json_points(array: np.ndarray):
    return [[None if not math.isfinite(v) else round(float(v), 4) for v in p] for p in array.reshape(-1, 3)]


def analyze_images(model, images_or_folder, destfolder=None, *, batch_size: int = 8, device=None,
                   precision="32", channels_last: bool = True, overwrite: bool = False, save_as_csv: bool = False,
                   project=None, progress: bool = True, verbose: bool = True, detector="auto",
                   box_threshold: float = 0.5) -> Path | None:
    """Predict images of any size and write DeepLabCut's ``image_predictions_<scorer>.h5`` and a ``.json``.

    images_or_folder: an image, a folder (its ``.png``, ``.jpg``... files) or a list of them. Images
    are batched (zero-padded at the bottom and right to the batch's largest), predictions are in
    each image's pixels. The .h5 (key ``predictions``, as DeepLabCut's ``analyze_images``) has rows
    indexed by image path and columns ``scorer/individuals/bodyparts/coords``; the JSON holds per image
    its ``size`` (width, height) and ``bodyparts`` (per individual, per bodypart ``[x, y, score]``,
    null where missing), ``unique_bodyparts`` and ``identity``. An unreadable image is logged and
    gets NaN (null) predictions. Output goes to ``destfolder`` (default: the folder, or the first
    image's). An existing .h5 is kept unless ``overwrite``. Returns the .h5 path (None: no images).
    Top-down models find the animals with ``detector`` (``auto``: the run's) as in :func:`analyze_video`.
    """
    predictor = _predictor(model, device, precision, channels_last, False, project, detector, box_threshold)
    paths = find_images(images_or_folder)
    if not paths:
        log.warning("%s: no images (%s)", images_or_folder, ", ".join(IMAGE_EXTENSIONS))
        return None
    first = Path(images_or_folder) if isinstance(images_or_folder, (str, Path)) else paths[0]
    out_dir = Path(destfolder) if destfolder else (first if first.is_dir() else paths[0].parent)
    h5 = out_dir / f"image_predictions_{predictor.scorer}.h5"
    if h5.exists() and not overwrite:
        _report_line(f"{h5}: already analyzed, kept (overwrite=True replaces it)", verbose)
        return h5
    shapes = predictor.output_shapes()
    out = {name: np.full((len(paths), *shape), np.nan, np.float32) for name, shape in shapes.items()}
    sizes: list[tuple[int, int] | None] = [None] * len(paths)
    bar = _progress(progress, len(paths), 0, "images")
    t0 = time.perf_counter()
    for b0 in range(0, len(paths), int(batch_size)):
        index, batch = [], []
        for i in range(b0, min(b0 + int(batch_size), len(paths))):
            image = _read_image(paths[i])
            if image is None:
                log.warning("%s: not a readable image; its predictions are NaN", paths[i])
                continue
            sizes[i] = (image.shape[1], image.shape[0])
            index.append(i)
            batch.append(image)
        if batch:
            predicted = predictor.predict_images(batch)
            for name in shapes:
                out[name][index] = predicted[name]
        if bar is not None:
            bar.update(min(int(batch_size), len(paths) - b0))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    meta = predictor.meta
    keys = [str(p) for p in paths]
    table = predictions_table(out["bodypart"], out["unique_bodypart"] if meta.unique_bodyparts else None, meta,
                              predictor.scorer, index=pd.Index(keys, dtype=object), individuals_level=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(table, h5, csv=save_as_csv, overwrite=True, key="predictions")
    record = {"scorer": predictor.scorer, "bodyparts": list(meta.bodyparts), "individuals": list(meta.individuals),
              "unique_bodyparts": list(meta.unique_bodyparts), "images": {}}
    for i, key in enumerate(keys):
        entry = {"size": list(sizes[i]) if sizes[i] else None,
                 "bodyparts": [_json_points(animal) for animal in out["bodypart"][i]],
                 "unique_bodyparts": _json_points(out["unique_bodypart"][i])}
        if "identity" in out:
            entry["identity"] = [[None if not math.isfinite(v) else round(float(v), 4) for v in row]
                                 for row in out["identity"][i]]
        record["images"][key] = entry
    with atomic_path(h5.with_suffix(".json"), overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    unreadable = sum(s is None for s in sizes)
    line = (f"{len(paths)} images ({unreadable} unreadable) in {seconds:.1f} s "
            f"({len(paths) / max(seconds, 1e-9):.2f} images/s) -> {h5}")
    _report_line(line, verbose)
    return h5


def summaries_table(summaries: Sequence[VideoSummary]) -> pd.DataFrame:
    """Summaries as a table (one row per video)."""
    return pd.DataFrame([asdict(s) for s in summaries])
