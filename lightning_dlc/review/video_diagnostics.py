"""A FiftyOne dataset of analyzed videos, with the frames worth relabeling marked.

A video's analysis (``<video><scorer>.h5`` from ``analyze_videos``; the tracked
``<video><scorer>_el.h5`` beside it is preferred when there is one) becomes one video sample whose
frames hold:

- ``predictions``: ``fo.Keypoints``, one ``fo.Keypoint`` per individual column of the table (its name
  as label, its position in the individuals level as ``index``: the track id once tracked), per-point
  ``confidence`` (the likelihood); ``unique`` for unique bodyparts;
- ``mean_confidence`` (of the points found; 0 where none is) and ``max_jump``: how far (px) the
  furthest keypoint of one track moved since the previous frame;
- ``relabel``: why the frame is worth relabeling: ``low_confidence`` (among the ``n_low_confidence``
  frames of lowest mean confidence), ``jump`` (among the ``n_jumps`` largest jumps; without tracking,
  individuals swapping rows also jump). Empty for the other frames.

FiftyOne numbers frames from 1: frame number = table row + 1. Find the marked frames with
``dataset.match_frames(F("relabel").length() > 0)``; :mod:`lightning_dlc.review.relabel` extracts them
into the project.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import numpy as np
import pandas as pd

from lightning_dlc.data.video_reader import probe_video
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.predictions import COORDS, read_predictions
from lightning_dlc.project.records import SINGLE_ANIMAL, UNIQUE_INDIVIDUAL
from lightning_dlc.review.fiftyone_labels import keypoints_label, skeleton
from lightning_dlc.review.fiftyone_session import new_dataset
from lightning_dlc.tracking.analysis_tables import FILTERED, SKELETON

log = logging.getLogger(__name__)

TRACKED = "_el"  # DeepLabCut's suffix of tracked (stitched) predictions
LOW_CONFIDENCE, JUMP = "low_confidence", "jump"

__all__ = ["JUMP", "LOW_CONFIDENCE", "VideoPredictions", "find_analysis", "frames_to_relabel", "largest_jumps",
           "mean_confidence", "read_video_predictions", "video_dataset"]


# --------------------------------------------------------------------------- the analysis files
def find_analysis(video: str | Path, destfolder: str | Path | None = None, scorer: str | None = None,
                  filtered: bool = False) -> Path:
    """The analysis .h5 of ``video`` in ``destfolder`` (default: beside it), the tracked ``_el.h5`` first.

    ``scorer`` picks one when the video was analyzed by several models. ``filtered``: the ``_filtered.h5``
    of ``filterpredictions`` instead; skeleton tables (``_skeleton.h5``) are never picked.
    """
    video = Path(video)
    folder = Path(destfolder) if destfolder is not None else video.parent
    found: dict[str, dict[bool, Path]] = {}
    for path in folder.glob(f"{video.stem}DLC*.h5"):
        tail = path.stem[len(video.stem):]
        if tail.endswith(SKELETON) or tail.endswith(FILTERED) != filtered:
            continue
        tail = tail.removesuffix(FILTERED)
        tracked = tail.endswith(TRACKED)
        found.setdefault(tail[: -len(TRACKED)] if tracked else tail, {})[tracked] = path
    if scorer is not None:
        found = {s: files for s, files in found.items() if s == scorer}
    if not found:
        raise ProjectError(folder / f"{video.stem}{scorer or 'DLC_...'}{FILTERED if filtered else ''}.h5",
                           "no filtered analysis of this video: run filterpredictions first" if filtered else
                           "no analysis of this video: run analyze_videos first (or give destfolder / scorer)")
    if len(found) > 1:
        raise ProjectError(video, f"analyzed by several models {sorted(found)}; pick one with scorer=")
    files = found.popitem()[1]
    return files.get(True) or files[False]


@dataclass
class VideoPredictions:
    """A video's predictions as arrays: ``points`` ``[T, N, K, 3]`` (x, y, likelihood), ``unique`` ``[T, U, 3]``."""

    individuals: tuple[str, ...]
    bodyparts: tuple[str, ...]
    points: np.ndarray
    unique_bodyparts: tuple[str, ...]
    unique: np.ndarray

    def all_points(self) -> np.ndarray:
        """``[T, M, 3]``: every (individual, bodypart) column, unique bodyparts last."""
        t = len(self.points)
        return np.concatenate([self.points.reshape(t, -1, 3), self.unique.reshape(t, -1, 3)], axis=1)


def read_video_predictions(h5: str | Path) -> VideoPredictions:
    """DeepLabCut's video table (``scorer/[individuals/]bodyparts/coords``) -> arrays."""
    table = read_predictions(h5)
    columns = table.columns.droplevel(0)  # the scorer
    if columns.nlevels == 2:  # single animal: no individuals level
        columns = pd.MultiIndex.from_tuples([(SINGLE_ANIMAL, *c) for c in columns])
    table.columns = columns

    def parts(individual: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b for i, b, _ in columns if i == individual))

    individuals = tuple(dict.fromkeys(i for i, _, _ in columns if i != UNIQUE_INDIVIDUAL))
    bodyparts = parts(individuals[0]) if individuals else ()
    unique_bodyparts = parts(UNIQUE_INDIVIDUAL)

    def block(names, parts_) -> np.ndarray:
        wanted = pd.MultiIndex.from_product([names, parts_, COORDS])
        values = table.reindex(columns=wanted).to_numpy(np.float64)
        return values.reshape(len(table), len(names), len(parts_), len(COORDS))

    return VideoPredictions(individuals, bodyparts, block(individuals, bodyparts), unique_bodyparts,
                            block([UNIQUE_INDIVIDUAL], unique_bodyparts)[:, 0])


# --------------------------------------------------------------------------- which frames to relabel
def mean_confidence(points: np.ndarray) -> np.ndarray:
    """``[T]`` mean likelihood of each frame's found points (``[T, M, 3]``); 0 where nothing was found."""
    scores = np.where(np.isnan(points[..., :2]).any(-1), np.nan, points[..., 2])
    found = ~np.isnan(scores)
    return np.where(found.any(-1), np.nansum(scores, -1) / np.maximum(found.sum(-1), 1), 0.0)


def largest_jumps(points: np.ndarray) -> np.ndarray:
    """``[T]`` the largest distance (px) a column of ``[T, M, 3]`` moved since the previous frame (NaN: none)."""
    jumps = np.full(len(points), np.nan)
    if len(points) > 1:
        step = np.linalg.norm(points[1:, :, :2] - points[:-1, :, :2], axis=-1)
        has = ~np.isnan(step).all(-1)
        jumps[1:][has] = np.nanmax(step[has], axis=-1)
    return jumps


def frames_to_relabel(points: np.ndarray, n_low_confidence: int = 10, n_jumps: int = 10) -> dict[int, list[str]]:
    """Frame index -> reasons: the ``n_low_confidence`` least confident frames and the ``n_jumps`` largest jumps."""
    picks: dict[int, list[str]] = {}
    by_confidence = np.argsort(mean_confidence(points), kind="stable")[:max(n_low_confidence, 0)]
    jumps = largest_jumps(points)
    by_jump = [i for i in np.argsort(-np.nan_to_num(jumps, nan=-np.inf), kind="stable")
               if not np.isnan(jumps[i])][:max(n_jumps, 0)]
    for reason, frames in ((LOW_CONFIDENCE, by_confidence), (JUMP, by_jump)):
        for i in frames:
            picks.setdefault(int(i), []).append(reason)
    return dict(sorted(picks.items()))


# --------------------------------------------------------------------------- the dataset
def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _video_sample(video: Path, h5: Path, n_low_confidence: int, n_jumps: int) -> tuple[fo.Sample, tuple]:
    info = probe_video(video)
    predicted = read_video_predictions(h5)
    every = predicted.all_points()
    confidence, jumps = mean_confidence(every), largest_jumps(every)
    picks = frames_to_relabel(every, n_low_confidence, n_jumps)
    size = (info.width, info.height)
    sample = fo.Sample(filepath=str(video.resolve()), analysis=str(h5), tracked=h5.stem.endswith(TRACKED),
                       metadata=fo.VideoMetadata(frame_width=info.width, frame_height=info.height,
                                                 frame_rate=info.fps, total_frame_count=info.n_frames,
                                                 duration=info.n_frames / info.fps if info.fps else None))
    for t in range(len(every)):
        frame = fo.Frame(predictions=keypoints_label(predicted.points[t], *size, predicted.individuals,
                                                     confidence=True),
                         mean_confidence=float(confidence[t]), max_jump=_optional(jumps[t]),
                         relabel=picks.get(t, []))
        if predicted.unique_bodyparts:
            frame["unique"] = keypoints_label(predicted.unique[t][None], *size, [UNIQUE_INDIVIDUAL], confidence=True)
        sample.frames[t + 1] = frame
    if len(every) != info.n_frames:
        log.warning("%s: %d rows for %d frames of %s", h5, len(every), info.n_frames, video)
    return sample, (predicted.bodyparts, predicted.unique_bodyparts)


def video_dataset(videos: Sequence[str | Path], *, destfolder=None, scorer: str | None = None, name: str | None = None,
                  overwrite: bool = False, skeleton_edges: Sequence[tuple[str, str]] = (), n_low_confidence: int = 10,
                  n_jumps: int = 10, filtered: bool = False) -> fo.Dataset:
    """Build the persistent FiftyOne video dataset of analyzed videos (module docstring).

    ``destfolder``/``scorer``: where the analysis files are and which model's (:func:`find_analysis`).
    ``name``: default ``<video>+<video>-<scorer>``; an existing dataset needs ``overwrite``.
    ``skeleton_edges``: bodypart pairs (config.yaml's ``skeleton``) drawn in the App. ``filtered``: the
    ``_filtered.h5`` predictions of ``filterpredictions``.
    """
    videos = [Path(v) for v in videos]
    if not videos:
        raise ValueError("no videos given: videos=[/data/a.mp4, ...]")
    analyses = [find_analysis(v, destfolder, scorer, filtered) for v in videos]
    name = name or "+".join(v.stem for v in videos) + "-" + analyses[0].stem[len(videos[0].stem):]
    if fo.dataset_exists(name) and not overwrite:
        new_dataset(name, overwrite=False)  # raises the explanation before any work
    built = [_video_sample(v, h5, n_low_confidence, n_jumps) for v, h5 in zip(videos, analyses)]
    parts = {names for _, names in built}
    if len(parts) > 1:
        raise ProjectError(analyses[0], f"the videos' analyses have different bodyparts {sorted(parts)}: "
                                        "build one dataset per model")
    bodyparts, unique_bodyparts = parts.pop()
    dataset = new_dataset(name, overwrite=overwrite, media_type="video")
    dataset.add_samples([sample for sample, _ in built], progress=False)
    dataset.skeletons = {"frames.predictions": skeleton(bodyparts, skeleton_edges),
                         **({"frames.unique": skeleton(unique_bodyparts, ())} if unique_bodyparts else {})}
    dataset.default_skeleton = skeleton(bodyparts, skeleton_edges)
    dataset.save()
    marked = dataset.match_frames(fo.ViewField("relabel").length() > 0)
    print(f"FiftyOne dataset {dataset.name}: {len(dataset)} video(s), {marked.count('frames')} frames to relabel "
          f"({', '.join(str(h5.name) for h5 in analyses)})")
    return dataset
