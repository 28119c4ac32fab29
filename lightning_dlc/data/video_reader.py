"""The video reader contract: what a video is (probe, crop), what a reader yields (FrameBatch), the base reader.

Iterating a :class:`VideoReader` yields :class:`FrameBatch` es in frame order, each covering the next
``batch_size`` frame numbers (fewer in the last). Every frame number in ``[start, stop)`` appears
exactly once, in order; a frame that cannot be decoded comes as zeros with ``valid=False`` rather
than an exception, so predictions stay aligned with DeepLabCut's frame numbers. Readers stream:
decoding runs ahead by a bounded number of batches (``prefetch``), so memory does not grow with video
length. Frames are uint8 RGB ``[B, 3, H, W]``, cropped as DeepLabCut's ``crop`` (``x1, x2, y1, y2`` of
``video_sets`` in config.yaml: columns ``x1:x2``, rows ``y1:y2``). CPU frames are in pinned memory when
CUDA is available, so ``batch.to("cuda", non_blocking=True)`` overlaps the copy.

A reader opened with ``ranges`` (a list of ``(info, start, stop)``, possibly of several videos) yields
instead one FrameBatch per range, in the order given, each holding that range's frame numbers (``indices``)
with the same rules for undecodable frames: many short stretches (training sequences) are read by one reader,
without opening a decoder for each.

The frame count is the probe's (OpenCV's ``CAP_PROP_FRAME_COUNT``): frames a decoder cannot
deliver up to that count, a truncated end included, are reported invalid.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import torch

from lightning_dlc.project.errors import ProjectError

__all__ = ["BadFrames", "FrameBatch", "VideoError", "VideoInfo", "VideoReader", "first_line", "log_once", "parse_crop",
           "probe_video"]

logger = logging.getLogger(__name__)

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


_logged: set = set()
_log_lock = threading.Lock()


def log_once(log: logging.Logger, key, level: int, msg: str, *args) -> None:
    """``log.log(level, msg, *args)`` the first time this process sees ``key``."""
    with _log_lock:
        if key in _logged:
            return
        _logged.add(key)
    log.log(level, msg, *args)


def first_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


class BadFrames:
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
    """Frames ``[start, stop)`` of one video in batches, or one batch per range of ``ranges``; iterate (again) for
    :class:`FrameBatch` es.

    ranges: None, or ``(info, start, stop)`` of any videos (``open_video`` checks them); then ``batch_size``,
    ``start`` and ``stop`` are unused. crop applies to every video read.
    """

    backend = ""

    def __init__(self, info: VideoInfo, batch_size: int = 16, crop=None, start: int = 0,
                 stop: int | None = None, prefetch: int = 2,
                 ranges: list[tuple[VideoInfo, int, int]] | None = None):
        self.info = info
        self.batch_size = batch_size
        self.crop = crop
        self.start = start
        self.stop = info.n_frames if stop is None else stop
        self.prefetch = prefetch
        self.ranges = None if ranges is None else [(i, int(s), int(e)) for i, s, e in ranges]
        self.frame_size = self._frame_size(info)  # height, width of the frames yielded
        self._pin = torch.cuda.is_available()

    def _frame_size(self, info: VideoInfo) -> tuple[int, int]:
        x1, x2, y1, y2 = self.crop if self.crop is not None else (0, info.width, 0, info.height)
        return y2 - y1, x2 - x1

    @property
    def n_frames(self) -> int:
        if self.ranges is not None:
            return sum(e - s for _, s, e in self.ranges)
        return self.stop - self.start

    def __len__(self) -> int:
        if self.ranges is not None:
            return len(self.ranges)
        return -(-self.n_frames // self.batch_size)

    def _ranges(self, first: int | None = None) -> Iterator[tuple[int, int]]:
        for b0 in range(self.start if first is None else first, self.stop, self.batch_size):
            yield b0, min(b0 + self.batch_size, self.stop)

    def _reads(self) -> list[tuple[VideoInfo, int, int, int]]:
        """What to decode: (video, start, stop, frames per batch): ``[start, stop)`` in batches, or each range
        as one batch."""
        if self.ranges is not None:
            return [(i, s, e, e - s) for i, s, e in self.ranges]
        return [(self.info, self.start, self.stop, self.batch_size)] if self.n_frames else []

    def _empty(self, n: int, device=None, zero: bool = False, info: VideoInfo | None = None) -> torch.Tensor:
        shape = (n, 3, *(self.frame_size if info is None else self._frame_size(info)))
        if device is not None and torch.device(device).type == "cuda":
            return (torch.zeros if zero else torch.empty)(shape, dtype=torch.uint8, device=device)
        return (torch.zeros if zero else torch.empty)(shape, dtype=torch.uint8, pin_memory=self._pin)

    def _invalid_batch(self, b0: int, b1: int, device=None, info: VideoInfo | None = None) -> FrameBatch:
        frames = self._empty(b1 - b0, device, zero=True, info=info)
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
        if self.ranges is not None:
            return (f"{type(self).__name__}({str(self.info.path)!r}, backend={self.backend}, "
                    f"{len(self.ranges)} ranges of {len({i.path for i, _, _ in self.ranges})} video(s), "
                    f"crop={self.crop})")
        return (f"{type(self).__name__}({str(self.info.path)!r}, backend={self.backend}, "
                f"frames {self.start}:{self.stop}, batch_size={self.batch_size}, crop={self.crop})")
