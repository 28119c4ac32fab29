"""OpenCV (FFmpeg) video reader: decoding in a background thread, corrupt stretches reported frame by frame."""
from __future__ import annotations

import logging
import math
import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from lightning_dlc.data.video_reader import BadFrames, FrameBatch, VideoError, VideoInfo, VideoReader, log_once

__all__ = ["OpenCVReader"]

logger = logging.getLogger(__name__)

_SEEK_AFTER = 32  # consecutive OpenCV read failures before it seeks past them
_READ_AHEAD = 16  # a range starting at most this many frames after the last one ends is read on to, not sought
_MAX_OPEN = 8     # captures a reader of many videos keeps open
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

    With ``ranges``, each video's capture stays open across its ranges (up to 8 videos at a time), and a
    range is sought to, or read on to when it starts at most ``read_ahead`` frames after where the capture
    stands. A video of ``ranges`` that cannot be opened gives its ranges as invalid frames.
    """

    backend = "opencv"

    def __init__(self, info: VideoInfo, seek_after: int = _SEEK_AFTER, read_ahead: int = _READ_AHEAD, **kw):
        super().__init__(info, **kw)
        if seek_after < 1 or read_ahead < 0:
            raise ValueError(f"seek_after must be >= 1 and read_ahead >= 0, got {seek_after}, {read_ahead}")
        self.seek_after, self.read_ahead = seek_after, read_ahead
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
        captures: OrderedDict[Path, _Capture] = OrderedDict()  # open captures, least recently used first
        try:
            self._batches(captures, q, stop_event)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(q, e, stop_event)
            return
        finally:
            for capture in captures.values():
                capture.cap.release()
        self._put(q, _END, stop_event)

    def _capture(self, captures: OrderedDict, info: VideoInfo) -> "_Capture | None":
        """This video's open capture, opened when needed (None: a video of ``ranges`` that cannot be opened)."""
        capture = captures.pop(info.path, None)
        if capture is None:
            try:
                capture = _Capture(info)
            except VideoError as e:
                if self.ranges is None:
                    raise
                log_once(logger, ("reopen", str(info.path)), logging.WARNING,
                         "%s; its ranges are reported invalid", e)
                return None
            while len(captures) >= _MAX_OPEN:
                captures.popitem(last=False)[1].cap.release()
        captures[info.path] = capture
        return capture

    def _batches(self, captures: OrderedDict, q: queue.Queue, stop_event: threading.Event) -> None:
        for info, r0, r1, size in self._reads():
            x1, x2, y1, y2 = self.crop if self.crop is not None else (0, info.width, 0, info.height)
            capture = self._capture(captures, info)
            frames_iter = None if capture is None else self._frames(capture, info, r0, r1, stop_event)
            for b0 in range(r0, r1, size):
                b1 = min(b0 + size, r1)
                if frames_iter is None:
                    if not self._put(q, self._invalid_batch(b0, b1, info=info), stop_event):
                        return
                    continue
                frames = self._empty(b1 - b0, info=info)
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

    @staticmethod
    def _timestamp_index(cap, fps: float, stamped: bool) -> int | None:
        """The number of the frame just read, from its timestamp; None when the video has none.

        OpenCV reports 0 for a frame without a timestamp: trusted as frame 0 only once other
        frames of this video had real (positive) timestamps.
        """
        if fps <= 0:
            return None
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        if not math.isfinite(ms) or ms < 0 or (ms == 0 and not stamped):
            return None
        return int(round(ms * fps / 1000.0))

    def _frames(self, capture: "_Capture", info: VideoInfo, start: int, stop: int,
                 stop_event: threading.Event) -> Iterator[tuple[int, np.ndarray | None]]:
        """(frame number, BGR frame or None) for every frame number in [start, stop), in order.

        Reads on from where the capture stands when ``start`` is at most ``read_ahead`` frames ahead (a seek
        decodes from the keyframe before ``start``), else seeks.
        """
        bad = BadFrames(info.path, self.backend)
        read_on = 0 <= start - capture.pos <= self.read_ahead
        try:
            for j, frame in self._decode(capture, info, capture.pos if read_on else start, stop, not read_on,
                                         stop_event):
                if j < start:  # read past on the way to start
                    continue
                if frame is None:
                    bad.bad(j)
                else:
                    bad.flush()
                yield j, frame
        finally:
            bad.flush()

    def _decode(self, capture: "_Capture", info: VideoInfo, i: int, stop: int, seek: bool,
                stop_event: threading.Event) -> Iterator[tuple[int, np.ndarray | None]]:
        """(frame number, BGR frame or None) for frames [i, stop) of the capture (after seeking to ``i``)."""
        cap = capture.cap
        resync = capture.resync  # after a failure or seek: number the next frame by its timestamp
        failures = 0        # consecutive read failures
        jump = 0            # frames to skip at the next seek (0, then seek_after, doubling)
        if seek:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            resync = True
        while i < stop:
            capture.pos, capture.resync = i, resync  # where a later stretch reads on from
            if stop_event.is_set():
                return
            try:
                ok, frame = cap.read()
            except cv2.error:
                ok, frame = False, None
            if ok and (frame is None or frame.shape != (info.height, info.width, 3)):
                log_once(logger, ("size", str(info.path)), logging.WARNING,
                         "%s: a decoded frame has shape %s, not (%d, %d, 3); such frames are "
                         "reported invalid", info.path, None if frame is None else frame.shape,
                         info.height, info.width)
                ok = False
            if ok:
                if resync:
                    t = self._timestamp_index(cap, info.fps, capture.stamped)
                    if t is not None and t < i:
                        continue  # already reported (invalid) or decoded again after a seek: drop it
                    if t is not None and t > i:
                        for j in range(i, min(t, stop)):
                            capture.pos = j + 1
                            yield j, None
                        i = min(t, stop)
                        if i >= stop:  # frame t is read: a later stretch reading on loses it (reported invalid)
                            return
                    resync = False
                capture.stamped = capture.stamped or cap.get(cv2.CAP_PROP_POS_MSEC) > 0
                failures, jump = 0, 0
                capture.pos, capture.resync = i + 1, False
                yield i, frame
                i += 1
                continue
            # A failed read while the probe says frames remain: this frame is lost.
            capture.pos, capture.resync = i + 1, True
            yield i, None
            i += 1
            failures += 1
            resync = True
            if failures % self.seek_after == 0 and i < stop:
                # Seek past the bad stretch; each seek that lands in more damage jumps twice as far.
                for j in range(i, min(i + jump, stop)):
                    capture.pos = j + 1
                    yield j, None
                i = min(i + jump, stop)
                jump = max(self.seek_after, 2 * jump)
                if i < stop:
                    logger.info("%s: %d failed reads in a row; seeking to frame %d", info.path, failures, i)
                    cap.set(cv2.CAP_PROP_POS_FRAMES, i)


class _Capture:
    """An open OpenCV capture of one video and where its decoding stands: ``pos``, the frame number its next
    read is taken for; ``resync``, whether that read must be numbered by its timestamp instead (after a
    failure or a seek, as within one stretch); ``stamped``, whether its frames had real timestamps."""

    def __init__(self, info: VideoInfo):
        self.cap = cv2.VideoCapture(str(info.path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.cap.release()
            raise VideoError(info.path, "OpenCV could not open it again to decode")
        self.pos = 0
        self.resync = False
        self.stamped = False
