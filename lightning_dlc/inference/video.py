"""Video frames for inference: one reader interface over DALI (GPU or CPU) and OpenCV.

``open_video(path)`` probes the file, picks a decoder and returns a reader; iterating it yields
:class:`FrameBatch` es in frame order, each covering the next ``batch_size`` frame numbers
(fewer in the last). Every frame number in ``[start, stop)`` appears exactly once, in order; a
frame that cannot be decoded comes as zeros with ``valid=False`` rather than an exception, so
predictions stay aligned with DeepLabCut's frame numbers. Readers stream: decoding runs ahead by a
bounded number of batches (``prefetch``), so memory does not grow with video length.

Decoders, as ``reader="auto"`` chooses them:

1. ``dali-gpu``: DALI's video reader on NVDEC when frames are wanted on a CUDA device and DALI
   imports. Frames come on that device.
2. ``dali-cpu``: DALI's CPU video reader when the codec is one it decodes
   (:data:`DALI_CPU_CODECS`: VP8, VP9, MJPEG; H.264 and HEVC it refuses).
3. ``opencv``: OpenCV (FFmpeg) in a background thread, for everything else.

The choice is logged once per process for each kind of choice. If DALI cannot open a file, ``auto``
falls back to OpenCV with one warning; ``reader="dali"`` raises :class:`VideoError` instead.

Frames are uint8 RGB ``[B, 3, H, W]``, cropped as DeepLabCut's ``crop`` (``x1, x2, y1, y2`` of
``video_sets`` in config.yaml: columns ``x1:x2``, rows ``y1:y2``). CPU frames are in pinned memory
when CUDA is available, so ``batch.to("cuda", non_blocking=True)`` overlaps the copy.

The frame count is the probe's (OpenCV's ``CAP_PROP_FRAME_COUNT``): frames a decoder cannot
deliver up to that count, a truncated end included, are reported invalid.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import queue
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from lightning_dlc.project.errors import ProjectError

__all__ = [
    "DALI_CPU_CODECS", "DALI_GPU_CODECS", "FrameBatch", "VideoError", "VideoInfo", "VideoReader",
    "choose_reader", "open_video", "parse_crop", "probe_video",
]

logger = logging.getLogger(__name__)

# DALI 2.4's video reader, from its documentation; VP9 and MJPEG decoded and H.264 refused on the
# CPU measured here. The GPU set needs NVDEC support for the codec on the card as well.
DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
DALI_GPU_CODECS = DALI_CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}

# FourCC (as OpenCV reports it, any case) -> codec name.
_FOURCC_CODECS = {
    "avc1": "h264", "avc3": "h264", "h264": "h264", "x264": "h264", "davc": "h264",
    "hev1": "hevc", "hvc1": "hevc", "hevc": "hevc", "h265": "hevc", "x265": "hevc",
    "vp90": "vp9", "vp09": "vp9",
    "vp80": "vp8", "vp08": "vp8",
    "mjpg": "mjpeg", "jpeg": "mjpeg", "mjpa": "mjpeg", "mjpb": "mjpeg", "avrn": "mjpeg", "ljpg": "mjpeg",
    "av01": "av1",
    "mp4v": "mpeg4", "fmp4": "mpeg4", "xvid": "mpeg4", "divx": "mpeg4", "dx50": "mpeg4",
}

_SEEK_AFTER = 32  # consecutive OpenCV read failures before it seeks past them


class VideoError(ProjectError):
    """A video cannot be read (missing, not a video, a decoder that cannot open it); names the file."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    n_frames: int
    fps: float      # 0.0 when the container does not say
    width: int
    height: int
    codec: str      # h264, hevc, vp9, vp8, mjpeg, av1, mpeg4, else the FourCC in lower case
    fourcc: str = ""


@dataclass
class FrameBatch:
    frames: torch.Tensor   # uint8 [B, 3, H, W] RGB, contiguous; zeros where not valid
    indices: torch.Tensor  # int64 [B] frame numbers, consecutive (CPU)
    valid: torch.Tensor    # bool [B]: False where the frame could not be decoded (CPU)

    def __len__(self) -> int:
        return len(self.indices)

    def to(self, device, non_blocking: bool = True) -> "FrameBatch":
        """The same batch with its frames on ``device`` (indices and valid stay on the CPU)."""
        return FrameBatch(self.frames.to(device, non_blocking=non_blocking), self.indices, self.valid)


# ----------------------------------------------------------------------------------------------
# Probe


def _codec_name(fourcc: str) -> str:
    key = fourcc.strip("\x00 ").lower()
    return _FOURCC_CODECS.get(key, key or "unknown")


def probe_video(path) -> VideoInfo:
    """Frame count, fps, size and codec as OpenCV sees them; :class:`VideoError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such video file" if not path.exists() else "not a file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoError(path, "OpenCV (FFmpeg) cannot open it as a video: not a video, or a "
                                   "container or codec it does not know")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
        fourcc = code.to_bytes(4, "little").decode("latin-1").strip("\x00 ")
        if width <= 0 or height <= 0:
            raise VideoError(path, f"no video stream with a frame size (got {width}x{height})")
        if n_frames <= 0:
            # The container does not say: count by demuxing (no pixels are converted).
            n_frames = 0
            while cap.grab():
                n_frames += 1
            if n_frames == 0:
                raise VideoError(path, "no frame can be read from it")
            logger.info("%s: the container gives no frame count; counted %d frames", path, n_frames)
    finally:
        cap.release()
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    return VideoInfo(path=path, n_frames=n_frames, fps=fps, width=width, height=height,
                     codec=_codec_name(fourcc), fourcc=fourcc)


def parse_crop(crop, info: VideoInfo) -> tuple[int, int, int, int] | None:
    """DeepLabCut's ``crop`` (``"x1, x2, y1, y2"`` or 4 numbers) checked against the frame size."""
    if crop is None:
        return None
    parts = crop.split(",") if isinstance(crop, str) else list(crop)
    try:
        x1, x2, y1, y2 = (int(round(float(p))) for p in parts)
    except (TypeError, ValueError):
        raise VideoError(info.path, f"crop must be 4 numbers x1, x2, y1, y2, got {crop!r}") from None
    if not (0 <= x1 < x2 <= info.width and 0 <= y1 < y2 <= info.height):
        raise VideoError(info.path, f"crop x1, x2, y1, y2 = {x1}, {x2}, {y1}, {y2} is not inside the "
                                    f"{info.width}x{info.height} frame")
    return x1, x2, y1, y2


# ----------------------------------------------------------------------------------------------
# Choosing a reader


@functools.lru_cache(maxsize=None)
def _dali_available() -> bool:
    try:
        import nvidia.dali.fn  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except Exception as e:  # not installed, or its libraries do not load here
        logger.debug("DALI unavailable: %s", e)
        return False
    return True


_logged: set = set()
_log_lock = threading.Lock()


def _log_once(key, level: int, msg: str, *args) -> None:
    with _log_lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.log(level, msg, *args)


def _resolve_device(device) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    return device


def choose_reader(info: VideoInfo, device) -> tuple[str, str]:
    """What ``reader="auto"`` picks for this video and device: (``dali-gpu``|``dali-cpu``|``opencv``, why)."""
    device = _resolve_device(device)
    dali = _dali_available()
    if device.type == "cuda":
        if not dali:
            return "opencv", "DALI does not import"
        if info.codec in DALI_GPU_CODECS:
            return "dali-gpu", f"CUDA device and DALI present, codec {info.codec}"
        return "opencv", f"codec {info.codec} is not one DALI's GPU reader decodes"
    if not dali:
        return "opencv", "no CUDA device and DALI does not import"
    if info.codec in DALI_CPU_CODECS:
        return "dali-cpu", f"no CUDA device; DALI decodes {info.codec} on the CPU"
    return "opencv", (f"no CUDA device, and DALI's CPU reader does not decode {info.codec} "
                      f"(only {', '.join(sorted(DALI_CPU_CODECS))})")


def open_video(path, reader: str = "auto", device=None, batch_size: int = 16, crop=None,
               start: int = 0, stop: int | None = None, prefetch: int = 2) -> "VideoReader":
    """A reader over frames ``[start, stop)`` of one video; iterate it for :class:`FrameBatch` es.

    reader: ``auto`` (see the module doc), ``dali`` (GPU when ``device`` is CUDA, else CPU) or
    ``opencv``. device: where DALI decodes and where its frames land (None: CUDA when available);
    OpenCV frames are always on the CPU (pinned when CUDA is available). crop: DeepLabCut's
    ``x1, x2, y1, y2``. stop: None or past the end means the probe's frame count.
    """
    if reader not in ("auto", "dali", "opencv"):
        raise ValueError(f"reader must be auto, dali or opencv, got {reader!r}")
    if int(batch_size) < 1 or int(prefetch) < 1:
        raise ValueError(f"batch_size and prefetch must be >= 1, got {batch_size}, {prefetch}")
    info = probe_video(path)
    dev = _resolve_device(device)
    box = parse_crop(crop, info)
    start = int(start)
    stop = info.n_frames if stop is None else min(int(stop), info.n_frames)
    if not 0 <= start <= stop:
        raise VideoError(info.path, f"frames start={start}, stop={stop} are not a range inside its "
                                    f"{info.n_frames} frames")
    kw = dict(batch_size=int(batch_size), crop=box, start=start, stop=stop, prefetch=int(prefetch))
    if reader == "opencv":
        return OpenCVReader(info, **kw)
    if reader == "dali":
        if not _dali_available():
            raise VideoError(info.path, "reader='dali' asked for, but DALI (nvidia-dali-cuda120) "
                                        "does not import")
        return DaliReader(info, device=dev, fallback=False, **kw)
    backend, why = choose_reader(info, dev)
    _log_once(("choice", backend, why), logging.INFO, "video reader: %s (%s); first video %s",
              backend, why, info.path)
    if backend == "opencv":
        return OpenCVReader(info, **kw)
    try:
        return DaliReader(info, device=dev if backend == "dali-gpu" else torch.device("cpu"),
                          fallback=True, **kw)
    except VideoError as e:
        logger.warning("%s; reading it with OpenCV instead", e)
        return OpenCVReader(info, **kw)


# ----------------------------------------------------------------------------------------------
# Readers


def _first_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


class _BadFrames:
    """Logs undecodable frames as stretches (``frames 8-12``), not one line per frame."""

    def __init__(self, path: Path, backend: str):
        self.path, self.backend = path, backend
        self.first = self.last = None
        self.total = 0

    def bad(self, index: int) -> None:
        if self.last is not None and index != self.last + 1:
            self.flush()
        if self.first is None:
            self.first = index
        self.last = index
        self.total += 1

    def flush(self) -> None:
        if self.first is not None:
            span = f"frame {self.first}" if self.first == self.last else f"frames {self.first}-{self.last}"
            logger.warning("%s: %s could not be decoded (%s); reported with valid=False",
                           self.path, span, self.backend)
        self.first = self.last = None


class VideoReader:
    """Frames ``[start, stop)`` of one video in batches; iterate (again) for :class:`FrameBatch` es."""

    backend = ""

    def __init__(self, info: VideoInfo, batch_size: int = 16, crop=None, start: int = 0,
                 stop: int | None = None, prefetch: int = 2):
        self.info = info
        self.batch_size = batch_size
        self.crop = crop
        self.start = start
        self.stop = info.n_frames if stop is None else stop
        self.prefetch = prefetch
        x1, x2, y1, y2 = crop if crop is not None else (0, info.width, 0, info.height)
        self.frame_size = (y2 - y1, x2 - x1)  # height, width of the frames yielded
        self._pin = torch.cuda.is_available()

    @property
    def n_frames(self) -> int:
        return self.stop - self.start

    def __len__(self) -> int:
        return -(-self.n_frames // self.batch_size)

    def _ranges(self, first: int | None = None) -> Iterator[tuple[int, int]]:
        for b0 in range(self.start if first is None else first, self.stop, self.batch_size):
            yield b0, min(b0 + self.batch_size, self.stop)

    def _empty(self, n: int, device=None, zero: bool = False) -> torch.Tensor:
        shape = (n, 3, *self.frame_size)
        if device is not None and torch.device(device).type == "cuda":
            return (torch.zeros if zero else torch.empty)(shape, dtype=torch.uint8, device=device)
        return (torch.zeros if zero else torch.empty)(shape, dtype=torch.uint8, pin_memory=self._pin)

    def _invalid_batch(self, b0: int, b1: int, device=None) -> FrameBatch:
        frames = self._empty(b1 - b0, device, zero=True)
        return FrameBatch(frames, torch.arange(b0, b1, dtype=torch.int64), torch.zeros(b1 - b0, dtype=torch.bool))

    def __iter__(self) -> Iterator[FrameBatch]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.info.path)!r}, backend={self.backend}, "
                f"frames {self.start}:{self.stop}, batch_size={self.batch_size}, crop={self.crop})")


_END = object()


class OpenCVReader(VideoReader):
    """OpenCV (FFmpeg) decoding in a background thread into a bounded queue of batches.

    A read that fails while frames remain by the probe's count gives that frame as invalid. After
    a read failure the next decoded frame's timestamp says which frame it is (OpenCV's own counter
    only counts successful reads), so frames lost in a corrupt stretch stay invalid and the rest
    keep their numbers (frames decoded again after a seek, numbered before the next one wanted, are
    dropped). FFmpeg often recovers by itself a few packets after damage, so only after
    ``seek_after`` failures in a row does the reader seek past them (``CAP_PROP_POS_FRAMES``),
    jumping twice as far each time the seek lands in more damage, up to the end. Frames decoded
    with concealed errors look valid: nothing short of a reference can tell.
    """

    backend = "opencv"

    def __init__(self, info: VideoInfo, seek_after: int = _SEEK_AFTER, **kw):
        super().__init__(info, **kw)
        if seek_after < 1:
            raise ValueError(f"seek_after must be >= 1, got {seek_after}")
        self.seek_after = seek_after
        self._running: list[threading.Event] = []

    def __iter__(self) -> Iterator[FrameBatch]:
        if self.n_frames == 0:
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop_event = threading.Event()
        worker = threading.Thread(target=self._produce, args=(q, stop_event), daemon=True,
                                  name=f"opencv-video-{self.info.path.name}")
        self._running.append(stop_event)
        worker.start()
        try:
            while True:
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    if worker.is_alive() or not q.empty():
                        continue
                    raise VideoError(self.info.path, "the reader was closed while frames were being read") from None
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_event.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
            self._running.remove(stop_event)

    def close(self) -> None:
        for event in list(self._running):
            event.set()

    @staticmethod
    def _put(q: queue.Queue, item, stop_event: threading.Event) -> bool:
        while not stop_event.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _produce(self, q: queue.Queue, stop_event: threading.Event) -> None:
        try:
            cap = cv2.VideoCapture(str(self.info.path), cv2.CAP_FFMPEG)
            if not cap.isOpened():
                raise VideoError(self.info.path, "OpenCV could not open it again to decode")
            try:
                self._batches(cap, q, stop_event)
            finally:
                cap.release()
        except BaseException as e:  # handed to the consumer, raised there
            self._put(q, e, stop_event)
            return
        self._put(q, _END, stop_event)

    def _batches(self, cap, q: queue.Queue, stop_event: threading.Event) -> None:
        x1, x2, y1, y2 = self.crop if self.crop is not None else (0, self.info.width, 0, self.info.height)
        frames_iter = self._frames(cap, stop_event)
        for b0, b1 in self._ranges():
            frames = self._empty(b1 - b0)
            out = frames.numpy()
            valid = np.zeros(b1 - b0, bool)
            for pos in range(b1 - b0):
                item = next(frames_iter, None)
                if item is None:  # stopped
                    return
                index, bgr = item
                assert index == b0 + pos, (index, b0 + pos)
                if bgr is None:
                    out[pos] = 0
                else:  # BGR HWC -> RGB CHW in one strided copy
                    np.copyto(out[pos], bgr[y1:y2, x1:x2].transpose(2, 0, 1)[::-1])
                    valid[pos] = True
            batch = FrameBatch(frames, torch.arange(b0, b1, dtype=torch.int64), torch.from_numpy(valid))
            if not self._put(q, batch, stop_event):
                return

    def _timestamp_index(self, cap, stamped: bool) -> int | None:
        """The number of the frame just read, from its timestamp; None when the video has none.

        OpenCV reports 0 for a frame without a timestamp: trusted as frame 0 only once other
        frames of this video had real (positive) timestamps.
        """
        if self.info.fps <= 0:
            return None
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        if not math.isfinite(ms) or ms < 0 or (ms == 0 and not stamped):
            return None
        return int(round(ms * self.info.fps / 1000.0))

    def _frames(self, cap, stop_event: threading.Event) -> Iterator[tuple[int, np.ndarray | None]]:
        """(frame number, BGR frame or None) for every frame number in [start, stop), in order."""
        info, stop = self.info, self.stop
        bad = _BadFrames(info.path, self.backend)
        i = self.start
        resync = False      # after a failure or seek: number the next frame by its timestamp
        failures = 0        # consecutive read failures
        jump = 0            # frames to skip at the next seek (0, then seek_after, doubling)
        stamped = False     # a frame had a positive timestamp
        if i > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            resync = True
        try:
            while i < stop:
                if stop_event.is_set():
                    return
                try:
                    ok, frame = cap.read()
                except cv2.error:
                    ok, frame = False, None
                if ok and (frame is None or frame.shape != (info.height, info.width, 3)):
                    _log_once(("size", str(info.path)), logging.WARNING,
                              "%s: a decoded frame has shape %s, not (%d, %d, 3); such frames are "
                              "reported invalid", info.path, None if frame is None else frame.shape,
                              info.height, info.width)
                    ok = False
                if ok:
                    if resync:
                        t = self._timestamp_index(cap, stamped)
                        if t is not None and t < i:
                            continue  # already reported (invalid) or decoded again after a seek: drop it
                        if t is not None and t > i:
                            for j in range(i, min(t, stop)):
                                bad.bad(j)
                                yield j, None
                            i = min(t, stop)
                            if i >= stop:
                                return
                        resync = False
                    stamped = stamped or cap.get(cv2.CAP_PROP_POS_MSEC) > 0
                    bad.flush()
                    failures, jump = 0, 0
                    yield i, frame
                    i += 1
                    continue
                # A failed read while the probe says frames remain: this frame is lost.
                bad.bad(i)
                yield i, None
                i += 1
                failures += 1
                resync = True
                if failures % self.seek_after == 0 and i < stop:
                    # Seek past the bad stretch; each seek that lands in more damage jumps twice as far.
                    for j in range(i, min(i + jump, stop)):
                        bad.bad(j)
                        yield j, None
                    i = min(i + jump, stop)
                    jump = max(self.seek_after, 2 * jump)
                    if i < stop:
                        logger.info("%s: %d failed reads in a row; seeking to frame %d", info.path, failures, i)
                        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        finally:
            bad.flush()


class DaliReader(VideoReader):
    """DALI's video reader (``fn.experimental.readers.video``) on the CPU or the GPU (NVDEC).

    One pipeline over one file: each sample is a sequence of ``batch_size`` consecutive frames
    starting at ``start`` (``file_list`` with frame numbers), no shuffling. The reader pads the last
    sequence (frame number -1) and gives frames it could not decode a timestamp of -1: both are
    dropped or reported invalid, so each frame number in ``[start, stop)`` appears once.
    With ``fallback`` (``reader="auto"``), a decoding error mid-video continues with OpenCV.
    """

    def __init__(self, info: VideoInfo, device: torch.device, fallback: bool = False, **kw):
        super().__init__(info, **kw)
        self.device = torch.device(device)
        self.gpu = self.device.type == "cuda"
        self.backend = "dali-gpu" if self.gpu else "dali-cpu"
        self.fallback = fallback
        self._tmp = None
        self._pipe = None
        if self.n_frames:
            self._tmp = tempfile.TemporaryDirectory(prefix="lightning_dlc_video_")
            # DALI's file_list is whitespace separated: name the video by a link with a plain name.
            link = Path(self._tmp.name) / f"video{info.path.suffix}"
            os.symlink(info.path.resolve(), link)
            self._list = Path(self._tmp.name) / "file_list.txt"
            if any(c.isspace() for c in str(link)):
                raise VideoError(info.path, f"DALI's file list cannot name {link} "
                                            "(whitespace in the temporary folder)")
            self._list.write_text(f"{link} 0 {self.start} {self.stop}\n")
            self._pipe = self._build()

    def _build(self):
        from nvidia.dali import fn
        from nvidia.dali.pipeline import Pipeline

        device_id = None
        if self.gpu:
            device_id = self.device.index if self.device.index is not None else torch.cuda.current_device()
        pipe = Pipeline(batch_size=1, num_threads=max(1, min(4, os.cpu_count() or 1)),
                        device_id=device_id, prefetch_queue_depth=self.prefetch, seed=0)
        with pipe:
            video, _labels, frame_num, timestamps = fn.experimental.readers.video(
                device="gpu" if self.gpu else "cpu", name="reader",
                file_list=str(self._list), file_list_format="frames", file_list_include_end=False,
                sequence_length=self.batch_size, step=self.batch_size, stride=1,
                pad_mode="constant", fill_value=0, enable_frame_num="sequence", enable_timestamps=True,
                random_shuffle=False)
            if self.crop is not None:
                x1, x2, y1, y2 = self.crop
                video = video[:, y1:y2, x1:x2, :]
            pipe.set_outputs(fn.transpose(video, perm=[0, 3, 1, 2]), frame_num, timestamps)
        try:
            pipe.build()
        except Exception as e:
            raise VideoError(self.info.path, self._open_problem(e)) from None
        return pipe

    def _open_problem(self, error: Exception) -> str:
        where = "GPU (NVDEC)" if self.gpu else "CPU"
        supported = DALI_GPU_CODECS if self.gpu else DALI_CPU_CODECS
        if self.info.codec not in supported:
            return (f"DALI's {where} video reader cannot open it: codec {self.info.codec} is not one "
                    f"it decodes ({', '.join(sorted(supported))})")
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "assert" in ln.lower() or "failed" in ln.lower()),
                      lines[-1] if lines else type(error).__name__)
        return f"DALI's {where} video reader cannot open it (codec {self.info.codec}): {detail}"

    def __iter__(self) -> Iterator[FrameBatch]:
        if self.n_frames == 0:
            return
        if self._tmp is None:
            raise VideoError(self.info.path, "this reader is closed")
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            pipe = self._build()
        bad = _BadFrames(self.info.path, self.backend)
        try:
            n_seq = pipe.epoch_size("reader")
            for k, (b0, b1) in enumerate(self._ranges()):
                if k >= n_seq:  # DALI found fewer frames than the probe counts
                    for j in range(b0, b1):
                        bad.bad(j)
                    yield self._invalid_batch(b0, b1, self.device if self.gpu else None)
                    continue
                try:
                    outputs = pipe.run()
                    batch, valid = self._batch(outputs, b0, b1)
                except Exception as e:
                    bad.flush()
                    if not self.fallback:
                        raise VideoError(self.info.path, f"{self.backend} failed at frames {b0}-{b1 - 1}: "
                                                         f"{_first_line(e)}") from e
                    logger.warning("%s: %s failed at frames %d-%d (%s); continuing with OpenCV",
                                   self.info.path, self.backend, b0, b1 - 1, _first_line(e))
                    pipe = None
                    rest = OpenCVReader(self.info, batch_size=self.batch_size, crop=self.crop, start=b0,
                                        stop=self.stop, prefetch=self.prefetch)
                    yield from rest
                    return
                for j in (np.flatnonzero(~valid) + b0).tolist():
                    bad.bad(j)
                if valid.all():
                    bad.flush()
                yield batch
        finally:
            bad.flush()
            del pipe

    def _batch(self, outputs, b0: int, b1: int) -> tuple[FrameBatch, np.ndarray]:
        from nvidia.dali.plugin.pytorch import feed_ndarray

        video, frame_num, timestamps = outputs
        # Frame numbers and timestamps may come on the GPU from the GPU reader: read them on the host.
        frame_num, timestamps = (o.as_cpu() if hasattr(o, "as_cpu") else o for o in (frame_num, timestamps))
        seq = video[0]
        index = np.asarray(frame_num[0]).astype(np.int64).reshape(-1)
        stamp = np.asarray(timestamps[0]).astype(np.float64).reshape(-1)
        if self.gpu:
            raw = torch.empty(seq.shape(), dtype=torch.uint8, device=self.device)
            feed_ndarray(seq, raw, cuda_stream=torch.cuda.current_stream(self.device))
        else:
            raw = torch.empty(seq.shape(), dtype=torch.uint8, pin_memory=self._pin)
            feed_ndarray(seq, raw)
        n = b1 - b0
        decoded = (index >= b0) & (index < b1) & (stamp >= 0)
        if len(index) >= n and np.array_equal(index[:n], np.arange(b0, b1)):
            frames, valid = raw[:n], decoded[:n].copy()
        else:  # not the sequence asked for: place what belongs here, the rest is invalid
            rows = np.flatnonzero(decoded)
            pos, first = np.unique(index[rows] - b0, return_index=True)
            rows = rows[first]
            frames = self._empty(n, self.device if self.gpu else None, zero=True)
            frames[torch.from_numpy(pos).to(frames.device)] = raw[torch.from_numpy(rows).to(raw.device)]
            valid = np.zeros(n, bool)
            valid[pos] = True
        valid_t = torch.from_numpy(valid)
        if not valid.all():
            frames[(~valid_t).to(frames.device)] = 0
        return FrameBatch(frames, torch.arange(b0, b1, dtype=torch.int64), valid_t), valid

    def close(self) -> None:
        self._pipe = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
