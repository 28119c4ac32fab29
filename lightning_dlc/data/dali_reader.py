"""DALI video reader (``fn.experimental.readers.video``) on the GPU (NVDEC) or the CPU, and what it decodes."""
from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from lightning_dlc.data.opencv_reader import OpenCVReader
from lightning_dlc.data.video_reader import BadFrames, FrameBatch, VideoError, VideoInfo, VideoReader, first_line

__all__ = ["DALI_CPU_CODECS", "DALI_GPU_CODECS", "DaliReader", "dali_available"]

logger = logging.getLogger(__name__)

# DALI 2.4's video reader, from its documentation; VP9 and MJPEG decoded and H.264 refused on the
# CPU measured here. The GPU set needs NVDEC support for the codec on the card as well.
DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
DALI_GPU_CODECS = DALI_CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}


@functools.lru_cache(maxsize=None)
def dali_available() -> bool:
    try:
        import nvidia.dali.fn  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except Exception as e:  # not installed, or its libraries do not load here
        logger.debug("DALI unavailable: %s", e)
        return False
    return True


class DaliReader(VideoReader):
    """DALI's video reader (``fn.experimental.readers.video``) on the CPU or the GPU (NVDEC).

    One pipeline over one file: each sample is a sequence of ``batch_size`` consecutive frames
    starting at ``start`` (``file_list`` with frame numbers), no shuffling. The reader pads the last
    sequence (frame number -1) and gives frames it could not decode a timestamp of -1: both are
    dropped or reported invalid, so each frame number in ``[start, stop)`` appears once.
    With ``fallback`` (``reader="auto"``), a decoding error mid-video continues with OpenCV.

    With ``ranges`` (all of one length), one pipeline reads them all, in order, whichever videos they are
    of: its file list has a line per range, labelled with the range's position, and sequences as long as a
    range. A range DALI drops (outside the frames it finds) comes invalid; one whose decoding fails is read
    by OpenCV with ``fallback``, else comes invalid, and the pipeline is built again for the ranges after it.
    """

    def __init__(self, info: VideoInfo, device: torch.device, fallback: bool = False, **kw):
        super().__init__(info, **kw)
        self.device = torch.device(device)
        self.gpu = self.device.type == "cuda"
        self.backend = "dali-gpu" if self.gpu else "dali-cpu"
        self.fallback = fallback
        self._tmp = None
        self._pipe = None
        if self.ranges is not None and len({e - s for _, s, e in self.ranges}) > 1:
            raise VideoError(info.path, "DALI reads ranges of one length only (its sequence_length); got lengths "
                                        f"{sorted({e - s for _, s, e in self.ranges})}")
        if self.n_frames:
            self._tmp = tempfile.TemporaryDirectory(prefix="lightning_dlc_video_")
            self._links: dict[Path, Path] = {}
            for video in [info] + [i for i, _, _ in self.ranges or []]:
                if video.path not in self._links:
                    # DALI's file_list is whitespace separated: name each video by a link with a plain name.
                    link = Path(self._tmp.name) / f"video{len(self._links)}{video.path.suffix}"
                    if any(c.isspace() for c in str(link)):
                        raise VideoError(video.path, f"DALI's file list cannot name {link} "
                                                     "(whitespace in the temporary folder)")
                    os.symlink(video.path.resolve(), link)
                    self._links[video.path] = link
            self._list = Path(self._tmp.name) / "file_list.txt"
            self._pipe = self._build()

    def _build(self, first: int = 0):
        """A pipeline over ``[start, stop)`` in sequences of ``batch_size``, or over ``ranges[first:]``."""
        from nvidia.dali import fn
        from nvidia.dali.pipeline import Pipeline

        if self.ranges is None:
            lines, length = f"{self._links[self.info.path]} 0 {self.start} {self.stop}\n", self.batch_size
        else:  # label: the range's position, so that a range DALI drops is noticed
            lines = "".join(f"{self._links[i.path]} {k} {s} {e}\n"
                            for k, (i, s, e) in enumerate(self.ranges[first:], first))
            length = self.ranges[0][2] - self.ranges[0][1]
        self._list.write_text(lines)
        device_id = None
        if self.gpu:
            device_id = self.device.index if self.device.index is not None else torch.cuda.current_device()
        pipe = Pipeline(batch_size=1, num_threads=max(1, min(4, os.cpu_count() or 1)),
                        device_id=device_id, prefetch_queue_depth=self.prefetch, seed=0)
        with pipe:
            video, labels, frame_num, timestamps = fn.experimental.readers.video(
                device="gpu" if self.gpu else "cpu", name="reader",
                file_list=str(self._list), file_list_format="frames", file_list_include_end=False,
                sequence_length=length, step=length, stride=1,
                pad_mode="constant", fill_value=0, enable_frame_num="sequence", enable_timestamps=True,
                random_shuffle=False)
            if self.crop is not None:
                x1, x2, y1, y2 = self.crop
                video = video[:, y1:y2, x1:x2, :]
            pipe.set_outputs(fn.transpose(video, perm=[0, 3, 1, 2]), frame_num, timestamps, labels)
        try:
            pipe.build()
        except Exception as e:
            raise VideoError(self.info.path, self._open_problem(e)) from None
        return pipe

    def _open_problem(self, error: Exception) -> str:
        where = "GPU (NVDEC)" if self.gpu else "CPU"
        supported = DALI_GPU_CODECS if self.gpu else DALI_CPU_CODECS
        videos = [self.info] + [i for i, _, _ in self.ranges or [] if i.path != self.info.path]
        others = f" (or one of the other {len(self._links) - 1} videos of its ranges)" if len(self._links) > 1 else ""
        for video in videos:
            if video.codec not in supported:
                return (f"DALI's {where} video reader cannot open {video.path}: codec {video.codec} is not one "
                        f"it decodes ({', '.join(sorted(supported))})")
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "assert" in ln.lower() or "failed" in ln.lower()),
                      lines[-1] if lines else type(error).__name__)
        return f"DALI's {where} video reader cannot open it{others} (codec {self.info.codec}): {detail}"

    def __iter__(self) -> Iterator[FrameBatch]:
        if self.n_frames == 0:
            return
        if self._tmp is None:
            raise VideoError(self.info.path, "this reader is closed")
        if self.ranges is not None:
            yield from self._iter_ranges()
            return
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            pipe = self._build()
        bad = BadFrames(self.info.path, self.backend)
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
                                                         f"{first_line(e)}") from e
                    logger.warning("%s: %s failed at frames %d-%d (%s); continuing with OpenCV",
                                   self.info.path, self.backend, b0, b1 - 1, first_line(e))
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

    def _iter_ranges(self) -> Iterator[FrameBatch]:
        """One FrameBatch per range, in order (the class doc)."""
        pipe, self._pipe = self._pipe, None
        k = runs = n_seq = 0
        try:
            while k < len(self.ranges):
                info, b0, b1 = self.ranges[k]
                if pipe is None:
                    pipe, runs = self._build(k), 0
                if runs == 0:
                    n_seq = pipe.epoch_size("reader")
                if runs >= n_seq:  # the pipeline gave every sequence it found: it dropped the rest
                    yield self._invalid_range(info, b0, b1, "DALI found no such frames")
                    k += 1
                    continue
                try:
                    outputs = pipe.run()
                    runs += 1
                    label = int(np.asarray(_host(outputs[3])[0]).reshape(-1)[0])
                    while k < label:  # ranges DALI dropped (outside the frames it finds)
                        yield self._invalid_range(*self.ranges[k], "DALI found no such frames")
                        k += 1
                    info, b0, b1 = self.ranges[k]
                    batch, valid = self._batch(outputs, b0, b1, info)
                except Exception as e:
                    del pipe
                    pipe = None  # built again for the ranges after this one
                    yield self._range_failed(info, b0, b1, e)
                    k += 1
                    continue
                if not valid.all():
                    bad = BadFrames(info.path, self.backend)
                    for j in (np.flatnonzero(~valid) + b0).tolist():
                        bad.bad(j)
                    bad.flush()
                yield batch
                k += 1
        finally:
            del pipe

    def _invalid_range(self, info: VideoInfo, b0: int, b1: int, why: str) -> FrameBatch:
        logger.warning("%s: frames %d-%d could not be decoded (%s: %s); reported with valid=False",
                       info.path, b0, b1 - 1, self.backend, why)
        return self._invalid_batch(b0, b1, self.device if self.gpu else None, info=info)

    def _range_failed(self, info: VideoInfo, b0: int, b1: int, error: Exception) -> FrameBatch:
        """A range whose decoding failed: read by OpenCV with ``fallback``, else invalid."""
        if not self.fallback:
            return self._invalid_range(info, b0, b1, f"failed: {first_line(error)}")
        logger.warning("%s: %s failed at frames %d-%d (%s); reading them with OpenCV",
                       info.path, self.backend, b0, b1 - 1, first_line(error))
        batch, = OpenCVReader(info, crop=self.crop, ranges=[(info, b0, b1)], prefetch=1)
        return batch

    def _batch(self, outputs, b0: int, b1: int, info: VideoInfo | None = None) -> tuple[FrameBatch, np.ndarray]:
        from nvidia.dali.plugin.pytorch import feed_ndarray

        video, frame_num, timestamps = outputs[:3]
        frame_num, timestamps = _host(frame_num), _host(timestamps)
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
            frames = self._empty(n, self.device if self.gpu else None, zero=True, info=info)
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


def _host(output):
    """A DALI output on the host (the GPU reader gives frame numbers, timestamps and labels on the GPU)."""
    return output.as_cpu() if hasattr(output, "as_cpu") else output
