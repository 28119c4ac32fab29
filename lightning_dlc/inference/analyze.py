"""Video and image analysis: a snapshot's predictions for every frame, written as DeepLabCut writes them.

:func:`analyze_video` streams one video. Frames come in batches from
:func:`~lightning_dlc.data.video.open_video` (OpenCV decodes in a background thread, DALI in its
own, while the model runs); a :class:`~lightning_dlc.inference.predictor.Predictor` turns each batch
into keypoints in the frame's pixels (PAF assembly for multi-animal models); rows collect in a buffer
of ``chunk_frames`` frames that is saved as one ``.npz`` in ``<prefix>.partial/`` when full
(:mod:`~lightning_dlc.inference.chunks`). A crash or Ctrl-C loses at most the chunk in progress: the
next call with the same snapshot, video and settings resumes after the last saved chunk (and logs it).
At the end the chunks are streamed into DeepLabCut's files, each written under a temporary name and
renamed into place (the ``.h5`` last; :mod:`~lightning_dlc.inference.writers`), and the partial
folder is removed. Memory holds one chunk and a few batches of frames, however long the video.

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
On the CPU, the entry points tune glibc's allocator once (:mod:`~lightning_dlc.inference.malloc`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lightning_dlc.inference.chunks import OK, STATE_VERSION, ChunkBuffer, PartialResults, file_id, frame_status
from lightning_dlc.data.discovery import IMAGE_EXTENSIONS, find_images, find_videos
from lightning_dlc.inference.malloc import tune_malloc
from lightning_dlc.inference.predictor import Predictor, as_predictor, read_boxes
from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_reader import VideoInfo, parse_crop, probe_video
from lightning_dlc.inference.writers import output_paths, write_outputs
from lightning_dlc.lit.quiet import quiet_third_party
from lightning_dlc.project import analysis_files as files
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.locks import OutputLocked, output_lock
from lightning_dlc.project.predictions import predictions_table, write_predictions

log = logging.getLogger(__name__)

__all__ = ["VideoSummary", "analyze_images", "analyze_video", "analyze_videos", "summaries_table"]


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


def _analysis_predictor(model, device, precision, channels_last, compile, project, detector,
                        box_threshold, backend: str = "torch") -> Predictor:
    """The entry points' predictor; on the CPU, glibc tuned first (once per process: process-wide, so done here,
    where a whole analysis is about to run, never by building a Predictor). ``backend``: ``torch``, or
    ``onnxruntime`` (the snapshot's ONNX export runs the network: :mod:`~lightning_dlc.inference.onnx_runner`)."""
    quiet_third_party()  # an analysis prints what the user can act on, as training does
    if backend == "onnxruntime":
        from lightning_dlc.inference.onnx_runner import onnx_predictor

        predictor = onnx_predictor(model, device, precision, project=project, detector=detector,
                                   box_threshold=box_threshold)
    elif backend == "torch":
        predictor = as_predictor(model, device, precision, channels_last, compile, project, detector, box_threshold)
    else:
        raise ValueError(f"backend must be torch or onnxruntime, got {backend!r}")
    if predictor.device.type == "cpu":
        tune_malloc()
    return predictor


def analyze_video(model, video, destfolder=None, *, batch_size: int = 8, reader: str = "auto", device=None,
                  precision="auto", channels_last: bool = True, compile: bool = False, crop=None,
                  overwrite: bool = False, save_as_csv: bool = False, chunk_frames: int = 1000,
                  blank_threshold: int | None = 4, progress: bool = True, project=None,
                  verbose: bool = True, detector="auto", box_threshold: float = 0.5, boxes=None,
                  features: bool = False, wait_for_lock: bool = False, backend: str = "torch") -> VideoSummary:
    """Predict every frame of one video and write DeepLabCut's files (see the module doc).

    Args:
        model: a snapshot file, a run folder (its best snapshot), a
            :class:`~lightning_dlc.inference.predictor.Predictor` or a PoseModel
            (then device, precision, channels_last and compile are its own / apply to it).
        video: the video file. destfolder: where the files go (default: beside the video).
        batch_size: frames per model call. reader: ``auto``, ``dali`` or ``opencv``.
        device: ``auto``/None (CUDA when available), ``cpu``, ``cuda:1``...
        precision: ``auto`` (bf16 on CPUs and GPUs that compute it natively, fp16 on other CUDA GPUs,
            else fp32; the choice is logged), ``32`` (forces fp32), ``bf16`` or ``16``.
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
            and the score its boxes need (see :meth:`~lightning_dlc.inference.predictor.Predictor.from_snapshot`).
        boxes: for top-down models, your boxes instead of a detector's: ``[n_frames, N, 4]`` (an
            array or a ``.npy`` file), xyxy in the video's pixels, NaN rows where fewer animals.
        features: also write ``<prefix>_features.h5``, the feature map at every keypoint, taken in the
            same forward pass (for re-identification; :mod:`~lightning_dlc.inference.features`).
        wait_for_lock: when another process is writing this video's outputs (same video and scorer,
            it holds ``<prefix>.lock``), wait for it to finish (then an analyzed video is skipped
            unless ``overwrite``); False: skip the video at once (status ``locked``, naming the holder's
            pid and host).
        backend: ``torch``, or ``onnxruntime``: the network runs from the snapshot's ONNX export (made first
            if missing; ``model`` may be an exported ``.onnx``), float32, decoded as with torch (same files
            and scorer; :mod:`~lightning_dlc.inference.onnx_runner`). ``compile`` and ``channels_last`` are
            torch's; onnxruntime runs on CUDA where the device is a GPU and onnxruntime-gpu is installed.

    Returns a :class:`VideoSummary`; raises :class:`~lightning_dlc.data.video_reader.VideoError` (naming
    the file) for a missing or unreadable video.
    """
    predictor = _analysis_predictor(model, device, precision, channels_last, compile, project, detector,
                                    box_threshold, backend)
    summary = _analyze(predictor, Path(video), destfolder, batch_size=batch_size, reader=reader, crop=crop,
                       overwrite=overwrite, save_as_csv=save_as_csv, chunk_frames=chunk_frames,
                       blank_threshold=blank_threshold, progress=progress, boxes=boxes, features=features,
                       wait_for_lock=wait_for_lock)
    _report_line(summary.line(), verbose)
    return summary


def _report_line(line: str, verbose: bool) -> None:
    """A result line: printed when ``verbose``, else logged."""
    if verbose:
        print(line, flush=True)
    else:
        log.info("%s", line)


def _analyze(predictor: Predictor, video: Path, destfolder, *, batch_size: int, reader: str, crop,
             overwrite: bool, save_as_csv: bool, chunk_frames: int, blank_threshold, progress: bool,
             boxes=None, features: bool = False, wait_for_lock: bool = False) -> VideoSummary:
    """One video with a ready predictor: checks, skip when analyzed, the outputs' lock, then the analysis."""
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
    paths = output_paths(out_dir, files.output_prefix(video, scorer))
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


def _analyze_locked(predictor: Predictor, video: Path, info: VideoInfo, box, user_boxes, paths: dict[str, Path], *,
                    batch_size: int, reader: str, save_as_csv: bool, chunk_frames: int, blank_threshold,
                    progress: bool, features: bool) -> VideoSummary:
    """:func:`_analyze` once the outputs' lock is held: the frames not saved yet predicted, then the files."""
    chunk = -(-int(chunk_frames) // batch_size) * batch_size
    state = _run_state(predictor, video, info, box, user_boxes, blank_threshold, chunk, features)
    partial = PartialResults(paths["partial"], state)
    done, chunk = partial.resume()
    started = time.time()
    buffer = ChunkBuffer(partial, predictor.output_shapes(features), chunk, done)
    t0 = time.perf_counter()
    frames = open_video(video, reader=reader, device=predictor.device, batch_size=batch_size, crop=box, start=done)
    backend = frames.backend
    bar = _progress(progress, info.n_frames, done, video.name)
    try:
        analyzed = _predict_frames(predictor, frames, buffer, user_boxes, blank_threshold, features, bar)
    except BaseException:
        first = buffer.first
        saved = f"frames 0-{first - 1} are saved in {paths['partial']}" if first else "no chunk was saved yet"
        log.warning("%s: stopped at frame %d; %s: run again with the same settings to resume", video,
                    first + buffer.fill, saved)
        raise
    finally:
        if bar is not None:
            bar.close()
        frames.close()
    seconds = time.perf_counter() - t0
    del buffer

    counts = write_outputs(predictor, partial, paths, info, box, batch_size, save_as_csv, started,
                           {"reader": backend, "precision": predictor.precision}, features)
    partial.remove()
    return VideoSummary(str(video), "resumed" if done else "analyzed", h5=str(paths["h5"]), scorer=predictor.scorer,
                        frames=info.n_frames, invalid_frames=counts["invalid"], blank_frames=counts["blank"],
                        empty_frames=counts["empty"], analyzed_frames=analyzed, seconds=round(seconds, 3),
                        fps=round(analyzed / seconds, 3) if seconds > 0 else 0.0, reader=backend)


def _run_state(predictor: Predictor, video: Path, info: VideoInfo, box, user_boxes, blank_threshold, chunk: int,
               features: bool) -> dict:
    """What a video's results depend on: saved with every chunk, compared when resuming."""
    snapshot = predictor.info.snapshot
    return {"version": STATE_VERSION, "video": str(video), "video_file": file_id(video),
            "n_frames": info.n_frames, "scorer": predictor.scorer,
            "snapshot": file_id(snapshot) if snapshot is not None else None,
            "detector": file_id(predictor.info.detector_snapshot) if predictor.info.detector_snapshot else None,
            "boxes": "user" if user_boxes is not None else None,
            "crop": list(box) if box else None, "precision": str(predictor.autocast_dtype),
            "blank_threshold": blank_threshold, "chunk_frames": chunk,
            **({"features": True} if features else {})}  # absent when off: earlier partial results still resume


def _predict_frames(predictor: Predictor, frames, buffer: ChunkBuffer, user_boxes, blank_threshold, features: bool,
                    bar) -> int:
    """Every batch of ``frames`` predicted into ``buffer`` (flushed at the end); returns the frames read.

    Undecodable and blank frames get NaN rows without a model call.
    """
    analyzed = 0
    for batch in frames:
        b = len(batch)
        status = frame_status(batch.frames, batch.valid, blank_threshold)
        run = status == OK
        if run.any():
            frame_boxes = user_boxes[batch.indices.numpy()] if user_boxes is not None else None
            out = predictor(batch.frames, frame_boxes, features)
            for value in out.values():
                value[~run] = np.nan
        else:
            out = {name: np.full((b, *shape), np.nan, np.float32) for name, shape in buffer.shapes.items()}
        buffer.add(out, status)
        analyzed += b
        if bar is not None:
            bar.update(b)
    buffer.flush()
    return analyzed


def _progress(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="frame", desc=name, dynamic_ncols=True, smoothing=0.1)


def analyze_videos(model, videos, destfolder=None, *, videotype=None, device=None, precision="auto",
                   channels_last: bool = True, compile: bool = False, project=None, verbose: bool = True,
                   detector="auto", box_threshold: float = 0.5, backend: str = "torch",
                   **options) -> list[VideoSummary]:
    """:func:`analyze_video` for each video (files or folders), with one model loaded once.

    A video that fails (missing, unreadable, ...) is reported once, as an error naming its path, and
    in its summary (``status="failed"``, ``error``); the other videos still run. A video whose outputs
    another process is writing (same video and scorer) is skipped (``status="locked"``, ``error``: the
    lock file and the holder's pid and host), or waited for with ``wait_for_lock=True``. Options are those of
    :func:`analyze_video`; ``boxes`` (top-down models) maps each video's path or file name to its boxes.
    Returns one :class:`VideoSummary` per video, in order.
    """
    paths = find_videos(videos, videotype)
    predictor = _analysis_predictor(model, device, precision, channels_last, compile, project, detector,
                                    box_threshold, backend)
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
def _read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _json_points(array: np.ndarray):
    return [[None if not math.isfinite(v) else round(float(v), 4) for v in p] for p in array.reshape(-1, 3)]


def analyze_images(model, images_or_folder, destfolder=None, *, batch_size: int = 8, device=None,
                   precision="auto", channels_last: bool = True, overwrite: bool = False, save_as_csv: bool = False,
                   project=None, progress: bool = True, verbose: bool = True, detector="auto",
                   box_threshold: float = 0.5, backend: str = "torch") -> Path | None:
    """Predict images of any size and write DeepLabCut's ``image_predictions_<scorer>.h5`` and a ``.json``.

    images_or_folder: an image, a folder (its ``.png``, ``.jpg``... files) or a list of them. Images
    are batched (zero-padded at the bottom and right to the batch's largest), predictions are in
    each image's pixels. The .h5 (key ``predictions``, as DeepLabCut's ``analyze_images``) has rows
    indexed by image path and columns ``scorer/individuals/bodyparts/coords``; the JSON holds per image
    its ``size`` (width, height) and ``bodyparts`` (per individual, per bodypart ``[x, y, score]``,
    null where missing), ``unique_bodyparts`` and ``identity``. An unreadable image is logged and
    gets NaN (null) predictions. Output goes to ``destfolder`` (default: the folder, or the first
    image's). An existing .h5 is kept unless ``overwrite``. Returns the .h5 path (None: no images).
    Top-down models find the animals with ``detector`` (``auto``: the run's) as in :func:`analyze_video`;
    ``backend`` as there.
    """
    predictor = _analysis_predictor(model, device, precision, channels_last, False, project, detector, box_threshold,
                                    backend)
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
    t0 = time.perf_counter()
    out, sizes = _predict_images(predictor, paths, int(batch_size), progress)
    seconds = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_image_predictions(predictor, paths, out, sizes, h5, save_as_csv)
    unreadable = sum(s is None for s in sizes)
    line = (f"{len(paths)} images ({unreadable} unreadable) in {seconds:.1f} s "
            f"({len(paths) / max(seconds, 1e-9):.2f} images/s) -> {h5}")
    _report_line(line, verbose)
    return h5


def _predict_images(predictor: Predictor, paths: list[Path], batch_size: int,
                    progress: bool) -> tuple[dict[str, np.ndarray], list[tuple[int, int] | None]]:
    """Predictions per image (NaN for an unreadable one) and each image's (width, height) (None: unreadable)."""
    shapes = predictor.output_shapes()
    out = {name: np.full((len(paths), *shape), np.nan, np.float32) for name, shape in shapes.items()}
    sizes: list[tuple[int, int] | None] = [None] * len(paths)
    bar = _progress(progress, len(paths), 0, "images")
    for b0 in range(0, len(paths), batch_size):
        index, batch = [], []
        for i in range(b0, min(b0 + batch_size, len(paths))):
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
            bar.update(min(batch_size, len(paths) - b0))
    if bar is not None:
        bar.close()
    return out, sizes


def _write_image_predictions(predictor: Predictor, paths: list[Path], out: dict[str, np.ndarray],
                             sizes: list[tuple[int, int] | None], h5: Path, save_as_csv: bool) -> None:
    """DeepLabCut's ``image_predictions_<scorer>.h5`` (and ``.csv``), and the same predictions as JSON."""
    meta = predictor.meta
    keys = [str(p) for p in paths]
    table = predictions_table(out["bodypart"], out["unique_bodypart"] if meta.unique_bodyparts else None, meta,
                              predictor.scorer, index=pd.Index(keys, dtype=object), individuals_level=True)
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


def summaries_table(summaries: Sequence[VideoSummary]) -> pd.DataFrame:
    """Summaries as a table (one row per video)."""
    return pd.DataFrame([asdict(s) for s in summaries])
