"""Labeled videos: a video's keypoints (tracks or every detection) drawn on its frames, as an H.264 mp4.

Frames stream from :func:`~lightning_dlc.data.video.open_video` (OpenCV, a batch at a time)
and go straight into :class:`~lightning_dlc.data.video_writer.VideoEncoder` (imageio-ffmpeg's ffmpeg,
H.264 yuv420p: every common player opens it), so memory holds one batch of frames and one chunk of
poses, however long the video. A video of odd width or height gets one black pixel row / column
added, as H.264 in 4:2:0 needs even sizes. The output is written under a temporary name and
renamed when complete; an existing one is kept unless ``overwrite``. While it writes, it holds the
video's output lock (``<prefix>.lock``, :mod:`lightning_dlc.project.locks`: the lock video analysis
and tracking hold), so a video is never drawn from results another process is rewriting.

- :func:`labeled_video`: a prediction or tracks table (``.h5``, DeepLabCut's layout), coloured by
  bodypart or by individual, skeleton edges, a trail of the last ``trail_points`` positions,
  points under ``pcutoff`` left out, optionally on black (``keypoints_only``); DeepLabCut's options:
  only some bodyparts / individuals shown, only some frames written (``frames``), another output frame
  rate (``fps``), points faded by their confidence (``confidence_to_alpha``).
- :func:`video_with_all_detections`: every assembly of the ``_assemblies.pickle`` (before tracking),
  coloured by bodypart.
"""
from __future__ import annotations

import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lightning_dlc.data.video_writer import VideoEncoder
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.locks import lock_path, output_lock
from lightning_dlc.data.draw import bodypart_colors

log = logging.getLogger(__name__)

__all__ = ["TablePoses", "analysis_lock", "confidence_alpha", "draw_poses", "labeled_video", "render_video",
           "video_with_all_detections"]

# One frame's drawing: points [P, 3] (x, y, likelihood), their RGB colours [P, 3], skeleton edges [E, 2] (point indices).
FramePoses = tuple[np.ndarray, np.ndarray, np.ndarray]
_CHUNK = 256            # frames of poses read at a time
_EDGE_WHITE = (255, 255, 255)
_TRACKED = re.compile(r"_(el|bx|sk)(_tr)?$")  # tracks' names: <prefix>_el.h5, re-ID's <prefix>_el_tr.h5


def analysis_lock(h5: str | Path) -> Path:
    """The output lock of the analysis a table belongs to: ``<prefix>.lock`` for ``<prefix>.h5`` and its
    tracks ``<prefix>_<el|bx|sk>[_tr].h5``."""
    h5 = Path(h5)
    return lock_path(h5.parent / _TRACKED.sub("", h5.stem))


def confidence_alpha(confidence_to_alpha: bool | Callable[[float], float] | None,
                     pcutoff: float) -> Callable[[np.ndarray], np.ndarray] | None:
    """DeepLabCut's ``confidence_to_alpha``: False/None: opaque points; True: alpha = (likelihood - pcutoff)
    / (1 - pcutoff) clipped to [0, 1] (the likelihood itself when pcutoff is 0); a function: its value."""
    if confidence_to_alpha is None or confidence_to_alpha is False:
        return None
    if confidence_to_alpha is True:
        return (lambda p: np.asarray(p)) if pcutoff == 0 else (lambda p: np.clip((p - pcutoff) / (1 - pcutoff), 0, 1))
    return np.vectorize(confidence_to_alpha, otypes=[np.float64])


def draw_poses(canvas: np.ndarray, points: np.ndarray, colors: np.ndarray, edges: np.ndarray, pcutoff: float,
               radius: int, edge_colors: np.ndarray | None = None, alpha: np.ndarray | None = None) -> np.ndarray:
    """Draw edges (between points both shown) then points scoring at least ``pcutoff`` on ``canvas`` (in place).

    alpha: ``[P]`` opacity of each point (None: opaque), blended over what is under it."""
    shown = np.isfinite(points[:, :2]).all(1) & (np.nan_to_num(points[:, 2], nan=-1) >= pcutoff)
    xy = np.rint(np.nan_to_num(points[:, :2]) * 16).astype(np.int64)  # 4 fractional bits: subpixel drawing
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    for k in np.flatnonzero(shown[edges].all(1)) if len(edges) else ():
        a, b = edges[k]
        color = _EDGE_WHITE if edge_colors is None else tuple(int(c) for c in edge_colors[k])
        cv2.line(canvas, tuple(xy[a]), tuple(xy[b]), color, max(1, radius // 3), cv2.LINE_AA, 4)
    for p in np.flatnonzero(shown):
        color = tuple(int(c) for c in colors[p])
        a = 1.0 if alpha is None else float(np.nan_to_num(alpha[p]))
        if a >= 1:
            cv2.circle(canvas, tuple(xy[p]), radius * 16, color, -1, cv2.LINE_AA, 4)
        elif a > 0:  # blend within the dot's box only
            (x0, y0), (x1, y1) = np.clip([xy[p] // 16 - radius - 1, xy[p] // 16 + radius + 2], 0,
                                         [canvas.shape[1], canvas.shape[0]])
            if x1 > x0 and y1 > y0:
                box = canvas[y0:y1, x0:x1]
                layer = box.copy()
                cv2.circle(layer, tuple(xy[p] - 16 * np.array([x0, y0])), radius * 16, color, -1, cv2.LINE_AA, 4)
                cv2.addWeighted(layer, a, box, 1 - a, 0, dst=box)
    return canvas


def render_video(video: str | Path, out: str | Path, poses: Callable[[int, int], Sequence[FramePoses]], *,
                 pcutoff: float = 0.6, dotsize: int = 4, keypoints_only: bool = False, trail_points: int = 0,
                 offset: tuple[float, float] = (0.0, 0.0), color_edges: bool = False, overwrite: bool = False,
                 batch_size: int = 16, lock: str | Path | None = None, fps: float | None = None,
                 frames: Collection[int] | None = None,
                 confidence_to_alpha: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """Draw ``poses(first, stop)`` (one entry per frame in ``[first, stop)``) on every frame of ``video``.

    offset: added to x, y (a crop's x1, y1: analysis coordinates are the crop's). color_edges:
    edges take their first point's colour (else white). lock: an output lock file held while writing
    (:func:`~lightning_dlc.project.locks.output_lock`; another process holding it raises
    :class:`~lightning_dlc.project.locks.OutputLocked`). fps: the output's frame rate (None: the video's).
    frames: write only these frame indices (None: all). confidence_to_alpha: likelihoods -> point opacities
    (:func:`confidence_alpha`). Returns the written path.
    """
    if lock is not None:
        with output_lock(lock):
            return render_video(video, out, poses, pcutoff=pcutoff, dotsize=dotsize, keypoints_only=keypoints_only,
                                trail_points=trail_points, offset=offset, color_edges=color_edges,
                                overwrite=overwrite, batch_size=batch_size, fps=fps, frames=frames,
                                confidence_to_alpha=confidence_to_alpha)
    from lightning_dlc.data.video import open_video  # torch: only when a video is drawn

    out = Path(out)
    if out.exists() and not overwrite:
        raise ProjectError(out, "already exists; pass overwrite=True to replace it")
    reader = open_video(video, reader="opencv", device="cpu", batch_size=batch_size)
    info = reader.info
    height, width = info.height + info.height % 2, info.width + info.width % 2
    shift = np.array([*offset, 0.0])
    trail: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=max(int(trail_points), 0))
    canvas = np.zeros((height, width, 3), np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = None if frames is None else {int(f) for f in frames}
    with reader, VideoEncoder(out, width, height, fps or info.fps or 30.0) as encoder:
        for batch in reader:
            first = int(batch.indices[0])
            chunk = poses(first, first + len(batch))
            images = batch.frames.permute(0, 2, 3, 1).numpy()
            for index, frame, (points, colors, edges) in zip(batch.indices, images, chunk):
                if keep is not None and int(index) not in keep:
                    continue
                canvas[:] = 0
                if not keypoints_only:
                    canvas[:info.height, :info.width] = frame
                points = points + shift
                for old_points, old_colors in trail:
                    draw_poses(canvas, old_points, old_colors, np.zeros((0, 2)), pcutoff, max(1, dotsize // 2))
                draw_poses(canvas, points, colors, edges, pcutoff, dotsize,
                           colors[np.asarray(edges, np.int64).reshape(-1, 2)[:, 0]] if color_edges else None,
                           None if confidence_to_alpha is None else confidence_to_alpha(points[:, 2]))
                if trail.maxlen:
                    trail.append((points, colors))
                encoder.write(canvas)
    return out


# --------------------------------------------------------------------------- tables
class TablePoses:
    """A prediction or tracks table (.h5) read a chunk of frames at a time, as drawable points.

    Columns ``scorer/[individuals/]bodyparts/coords``; each (individual, bodypart) is one point.
    Table-format files (video analysis, stitching) are read by frame range; fixed-format ones whole.
    shown_bodyparts / shown_individuals: only these are drawn (None: all); colours stay those of the whole table.
    """

    def __init__(self, path: str | Path, skeleton: Sequence[Sequence[str]] = (), color_by: str = "bodypart",
                 shown_bodyparts: Collection[str] | None = None, shown_individuals: Collection[str] | None = None):
        if color_by not in ("bodypart", "individual"):
            raise ValueError(f"color_by must be 'bodypart' or 'individual', got {color_by!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ProjectError(self.path, "no such predictions file (analyze the video first)")
        with pd.HDFStore(self.path, mode="r") as store:
            keys = store.keys()
            if not keys:
                raise ProjectError(self.path, "holds no table")
            self.key = "/df_with_missing" if "/df_with_missing" in keys else keys[0]
            storer = store.get_storer(self.key)
            self._table = storer.is_table
            columns = store.select(self.key, start=0, stop=0).columns if self._table else None
            self._whole = None if self._table else store.select(self.key)
            columns = columns if columns is not None else self._whole.columns
        names = list(columns.names)
        individuals = columns.get_level_values("individuals") if "individuals" in names else [""] * len(columns)
        bodyparts, coords = columns.get_level_values("bodyparts"), columns.get_level_values("coords")
        if len(columns) % 3 or list(coords[:3]) != ["x", "y", "likelihood"]:
            raise ProjectError(self.path, "columns are not x, y, likelihood per bodypart")
        self.individuals = list(individuals[::3])
        self.bodyparts = list(bodyparts[::3])
        parts, part_index = np.unique(self.bodyparts, return_inverse=True)
        people, person_index = np.unique(self.individuals, return_inverse=True)
        self.colors = (bodypart_colors(len(parts))[part_index] if color_by == "bodypart"
                       else bodypart_colors(len(people))[person_index])
        where = {(ind, bp): p for p, (ind, bp) in enumerate(zip(self.individuals, self.bodyparts))}
        self.edges = np.array([(where[(ind, a)], where[(ind, b)]) for ind in dict.fromkeys(self.individuals)
                               for a, b in skeleton if (ind, a) in where and (ind, b) in where],
                              np.int64).reshape(-1, 2)
        self.hidden = np.array([(shown_bodyparts is not None and bp not in shown_bodyparts)
                                or (shown_individuals is not None and ind not in shown_individuals)
                                for ind, bp in zip(self.individuals, self.bodyparts)], bool)

    def rows(self, first: int, stop: int) -> np.ndarray:
        """``[stop - first, P, 3]`` points of frames ``[first, stop)`` (NaN for frames the table lacks)."""
        if self._table:
            df = pd.read_hdf(self.path, self.key, where=f"index >= {int(first)} & index < {int(stop)}")
        else:
            df = self._whole[(self._whole.index >= first) & (self._whole.index < stop)]
        df = df[~df.index.duplicated()].reindex(range(first, stop))
        points = df.to_numpy(np.float64, copy=True).reshape(stop - first, -1, 3)
        points[:, self.hidden] = np.nan
        return points

    def __call__(self, first: int, stop: int) -> list[FramePoses]:
        return [(points, self.colors, self.edges) for points in self.rows(first, stop)]


def labeled_video(video: str | Path, h5: str | Path, out: str | Path, *, skeleton: Sequence[Sequence[str]] = (),
                  color_by: str = "bodypart", pcutoff: float = 0.6, dotsize: int = 4, trail_points: int = 0,
                  keypoints_only: bool = False, offset: tuple[float, float] = (0.0, 0.0),
                  overwrite: bool = False, lock: str | Path | None = "auto",
                  bodyparts: Collection[str] | None = None, individuals: Collection[str] | None = None,
                  fps: float | None = None, frames: Collection[int] | None = None,
                  confidence_to_alpha: bool | Callable[[float], float] = False) -> Path:
    """``video`` with the keypoints of ``h5`` (a video analysis ``.h5`` or stitched ``_el.h5``) -> ``out``.

    lock: the output lock held while reading and writing (``auto``: the analysis' ``<prefix>.lock``,
    :func:`analysis_lock`; None: none). bodyparts / individuals: only these drawn (None: all); skeleton
    edges only between bodyparts drawn. fps, frames: see :func:`render_video`. confidence_to_alpha:
    DeepLabCut's (:func:`confidence_alpha`)."""
    auto = isinstance(lock, str) and lock == "auto"
    lock = analysis_lock(h5) if auto else lock
    with contextlib.ExitStack() as stack:
        try:
            if lock is not None:
                stack.enter_context(output_lock(lock))
        except OSError as e:  # auto: a read-only analysis folder (out elsewhere) is drawn without a lock
            if not auto:
                raise
            log.debug("%s: no output lock (%s); drawing without one", lock, e)
        poses = TablePoses(h5, skeleton, color_by, bodyparts, individuals)
        return render_video(video, out, poses, pcutoff=pcutoff, dotsize=dotsize, keypoints_only=keypoints_only,
                            trail_points=trail_points, offset=offset, color_edges=color_by == "individual",
                            overwrite=overwrite, fps=fps, frames=frames,
                            confidence_to_alpha=confidence_alpha(confidence_to_alpha, pcutoff))


# --------------------------------------------------------------------------- detections
def video_with_all_detections(video: str | Path, assemblies: dict[int, np.ndarray], out: str | Path, *,
                              bodyparts: Sequence[str], skeleton: Sequence[Sequence[str]] = (),
                              pcutoff: float = 0.1, dotsize: int = 4, offset: tuple[float, float] = (0.0, 0.0),
                              overwrite: bool = False, lock: str | Path | None = None) -> Path:
    """``video`` with every assembly of each frame (``{frame: [n, K, >=3]}``), coloured by bodypart -> ``out``.

    lock: an output lock held while writing (the api passes the analysis' ``<prefix>.lock``)."""
    n_parts = len(bodyparts)
    colors = bodypart_colors(n_parts)
    index = {bp: k for k, bp in enumerate(bodyparts)}
    edges = np.array([(index[a], index[b]) for a, b in skeleton if a in index and b in index], np.int64).reshape(-1, 2)

    def poses(first: int, stop: int) -> list[FramePoses]:
        chunk = []
        for frame in range(first, stop):
            animals = np.asarray(assemblies.get(frame, np.zeros((0, n_parts, 3))), np.float64)[..., :3]
            animals = np.where(animals < 0, np.nan, animals)   # DeepLabCut's -1: missing
            n = len(animals)
            chunk.append((animals.reshape(-1, 3), np.tile(colors, (n, 1)),
                          (edges[None] + n_parts * np.arange(n)[:, None, None]).reshape(-1, 2)))
        return chunk

    return render_video(video, out, poses, pcutoff=pcutoff, dotsize=dotsize, offset=offset, overwrite=overwrite,
                        lock=lock)
