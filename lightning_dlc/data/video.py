"""Video frames for inference and training: ``open_video`` picks a decoder for a file and returns its reader.

``open_video(path)`` probes the file, picks a decoder and returns a reader that keeps the contract of
:mod:`~lightning_dlc.data.video_reader` (FrameBatches in frame order, undecodable frames zeros with
``valid=False``, bounded read-ahead). Decoders, as ``reader="auto"`` chooses them:

1. ``dali-gpu``: DALI's video reader on NVDEC when frames are wanted on a CUDA device and DALI
   imports. Frames come on that device.
2. ``dali-cpu``: DALI's CPU video reader when the codec is one it decodes
   (:data:`~lightning_dlc.data.dali_reader.DALI_CPU_CODECS`: VP8, VP9, MJPEG; H.264 and HEVC it refuses).
3. ``opencv``: OpenCV (FFmpeg) in a background thread, for everything else.

The choice is logged once per process for each kind of choice. If DALI cannot open a file, ``auto``
falls back to OpenCV with one warning; ``reader="dali"`` raises
:class:`~lightning_dlc.data.video_reader.VideoError` instead.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from lightning_dlc.data.dali_reader import DALI_CPU_CODECS, DALI_GPU_CODECS, DaliReader, dali_available
from lightning_dlc.data.devices import resolve_device
from lightning_dlc.data.opencv_reader import OpenCVReader
from lightning_dlc.data.video_reader import VideoError, VideoInfo, VideoReader, log_once, parse_crop, probe_video

__all__ = ["choose_reader", "open_video"]

logger = logging.getLogger(__name__)


def _reader_device(device) -> torch.device:
    """Where frames are decoded to: the CPU or a CUDA device (what the readers know)."""
    device = resolve_device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    return device


def choose_reader(info: VideoInfo, device) -> tuple[str, str]:
    """What ``reader="auto"`` picks for this video and device: (``dali-gpu``|``dali-cpu``|``opencv``, why)."""
    device = _reader_device(device)
    dali = dali_available()
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
               start: int = 0, stop: int | None = None, prefetch: int = 2,
               info: VideoInfo | None = None, ranges=None) -> "VideoReader":
    """A reader over frames ``[start, stop)`` of one video, or over ``ranges``; iterate it for
    :class:`~lightning_dlc.data.video_reader.FrameBatch` es.

    reader: ``auto`` (see the module doc), ``dali`` (GPU when ``device`` is CUDA, else CPU) or
    ``opencv``. device: where DALI decodes and where its frames land (None: CUDA when available);
    OpenCV frames are always on the CPU (pinned when CUDA is available). crop: DeepLabCut's
    ``x1, x2, y1, y2``. stop: None or past the end means the probe's frame count. info: this file's
    :func:`probe_video`, when the caller has it already (reading many short stretches of one video).
    ranges: instead of ``[start, stop)``, a list of ``(start, stop)`` of this video or ``(video, start, stop)``
    (a path or a :class:`VideoInfo`) of any videos; the reader yields one batch per range, in this order
    (training sequences: one reader for many of them). ``auto`` then picks the decoder every video gets
    (else OpenCV); DALI needs ranges of one length.
    """
    if reader not in ("auto", "dali", "opencv"):
        raise ValueError(f"reader must be auto, dali or opencv, got {reader!r}")
    if int(batch_size) < 1 or int(prefetch) < 1:
        raise ValueError(f"batch_size and prefetch must be >= 1, got {batch_size}, {prefetch}")
    info = probe_video(path) if info is None else info
    dev = _reader_device(device)
    box = parse_crop(crop, info)
    start = int(start)
    stop = info.n_frames if stop is None else min(int(stop), info.n_frames)
    if not 0 <= start <= stop:
        raise VideoError(info.path, f"frames start={start}, stop={stop} are not a range inside its "
                                    f"{info.n_frames} frames")
    videos = [info]
    if ranges is not None:
        ranges = _check_ranges(ranges, info, box)
        videos = list({i.path: i for i, _, _ in ranges}.values())
    kw = dict(batch_size=int(batch_size), crop=box, start=start, stop=stop, prefetch=int(prefetch), ranges=ranges)
    if reader == "opencv":
        return OpenCVReader(info, **kw)
    if reader == "dali":
        if not dali_available():
            raise VideoError(info.path, "reader='dali' asked for, but DALI (nvidia-dali-cuda120) "
                                        "does not import")
        return DaliReader(info, device=dev, fallback=False, **kw)
    choices = {choose_reader(video, dev) for video in videos}
    backend, why = choices.pop() if len(choices) == 1 else ("opencv", "its videos need different decoders")
    log_once(logger, ("choice", backend, why), logging.INFO, "video reader: %s (%s); first video %s",
             backend, why, info.path)
    if backend == "opencv":
        return OpenCVReader(info, **kw)
    try:
        return DaliReader(info, device=dev if backend == "dali-gpu" else torch.device("cpu"),
                          fallback=True, **kw)
    except VideoError as e:
        logger.warning("%s; reading it with OpenCV instead", e)
        return OpenCVReader(info, **kw)


def _check_ranges(ranges, info: VideoInfo, box) -> list[tuple[VideoInfo, int, int]]:
    """``ranges`` as ``(info, start, stop)``: probed, ``stop`` past the end clipped, each non-empty, the crop
    inside every video."""
    infos = {info.path: info}
    out = []
    for item in ranges:
        video, (r0, r1) = (info, item) if len(item) == 2 else (item[0], item[1:])
        if not isinstance(video, VideoInfo):
            video = infos.get(Path(video)) or probe_video(video)
        infos.setdefault(video.path, video)
        if box is not None:
            parse_crop(box, video)
        r0, r1 = int(r0), min(int(r1), video.n_frames)
        if not 0 <= r0 < r1:
            raise VideoError(video.path, f"range start={int(item[-2])}, stop={int(item[-1])} holds none of its "
                                         f"{video.n_frames} frames")
        out.append((video, r0, r1))
    return out
