"""Video files from RGB frames: imageio-ffmpeg's bundled ffmpeg, written atomically and bit-exactly.

The package's one video writer: the demo project's video and labeled videos are written with it. It
runs imageio-ffmpeg's ffmpeg itself rather than through ``imageio_ffmpeg.write_frames``, because
write_frames neither checks ffmpeg's exit status nor keeps its log: a failed encode would be renamed
into place as a broken video, and the reason printed to the terminal instead of raised.
"""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lightning_dlc.project.io import atomic_path

_CODEC_ARGS = {
    # No B-frames: OpenCV's frame-index seeking (used for frame extraction) is exact without them.
    "libx264": ["-c:v", "libx264", "-preset", "medium", "-crf", "17", "-bf", "0",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    "libvpx-vp9": ["-c:v", "libvpx-vp9", "-crf", "24", "-b:v", "0", "-deadline", "good",
                   "-cpu-used", "4", "-row-mt", "0", "-pix_fmt", "yuv420p"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"],
}


def write_video(path, frames: np.ndarray, fps: float, codec: str = "libx264") -> None:
    """Encode RGB frames ``[n, height, width, 3]`` uint8 with :class:`VideoEncoder` (atomic, deterministic)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [n, height, width, 3] RGB, got {frames.dtype} {frames.shape}")
    with VideoEncoder(path, frames.shape[2], frames.shape[1], fps, codec) as encoder:
        for frame in frames:
            encoder.write(frame)


class VideoEncoder:
    """Stream RGB frames into a video with imageio-ffmpeg's bundled ffmpeg, one frame at a time.

    codec 'libx264' -> H.264 mp4 with pix_fmt yuv420p (plays everywhere); 'libvpx-vp9' -> VP9 (.webm
    or .mp4); 'mjpeg' -> MJPEG (.avi). Writes a temporary file in the same folder, renamed into place
    when the ``with`` block ends without an error (else removed); deterministic output; ffmpeg's log
    is kept in a file and shown only if it fails.
    """

    def __init__(self, path, width: int, height: int, fps: float, codec: str = "libx264"):
        import imageio_ffmpeg  # only video writing needs it

        if codec not in _CODEC_ARGS:
            raise ValueError(f"codec must be one of {sorted(_CODEC_ARGS)}, got {codec!r}")
        if codec != "mjpeg" and (width % 2 or height % 2):
            raise ValueError(f"{codec} with 4:2:0 chroma needs even width and height, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.codec, self.shape = Path(path), codec, (height, width, 3)
        # Beside the file (an atomic rename), with its suffix: ffmpeg picks the container from it. Callers
        # decide about replacing a video before they encode one.
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path, overwrite=True, keep_suffix=True))
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", repr(float(fps)),
            "-i", "-", "-an", *_CODEC_ARGS[codec],
            # Bit-exact: no encoder version strings or timestamps in the container.
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            str(self._tmp),
        ]
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        self._broken = False

    def write(self, frame: np.ndarray) -> None:
        """One RGB frame ``[height, width, 3]`` uint8."""
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 {self.shape}, got {frame.dtype} {frame.shape}")
        if not self._broken:
            try:
                self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                self._broken = True  # ffmpeg died; its log says why at close

    def close(self, keep: bool = True) -> None:
        """Finish the file and rename it into place (``keep``), or discard it."""
        failure = None
        try:
            self._proc.stdin.close()
            rc = self._proc.wait()
            if keep and rc != 0:
                self._log.seek(0)
                msg = self._log.read().decode(errors="replace").strip()[-2000:]
                failure = RuntimeError(f"ffmpeg failed ({rc}) writing {self.path} with {self.codec}: {msg}")
        finally:
            self._log.close()
            if keep and failure is None:
                self._stack.close()  # renamed into place
            else:  # atomic_path removes the temporary file when its block fails
                discarded = failure or RuntimeError("discarded")
                self._stack.__exit__(type(discarded), discarded, None)
        if failure is not None:
            raise failure

    def __enter__(self) -> "VideoEncoder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None)
