"""CTD tracking: a conditional top-down model tracks by refining the previous frame's poses.

DeepLabCut 3's ``ctd_tracking`` (``CTDInferenceRunner``): the poses the CTD model predicted in frame
t are its conditions in frame t + 1, so an animal keeps its row (its track) without tracklets or
stitching. The bottom-up model runs on the first frame, when no pose is left, and, with
``bu_on_lost_idv``, when fewer animals than the project's are tracked (at most every
``bu_max_frequency`` frames; every ``bu_min_frequency`` frames in any case if set); its animals that
match no tracked one (OKS below ``threshold_bu_add``) fill the free rows. After each frame, keypoints
scoring at most ``threshold_ctd`` or outside the frame are dropped from the next conditions, and
two tracks that converged on one animal (OKS above ``threshold_nms``) are reduced to the older one.
Ours, off by default: ``drop_unconfirmed`` drops a track the bottom-up model has not found in that many runs
in a row (DeepLabCut's tracks live on while the CTD model scores them, even where the animal left or merged).

:class:`CTDTracker` holds that state for one video (plain numpy, one frame at a time);
:class:`TrackingPredictor` runs it inside the ordinary video analysis (batches are split into
frames), so the analysis writes DeepLabCut's files with the tracks as individuals, and
:func:`write_ctd_tracks` adds DeepLabCut's ``<prefix>_ctd.h5``.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from lightning_dlc.data.ctd_conditions import unseen_keypoints
from lightning_dlc.evaluation.matching import oks_matrix
from lightning_dlc.inference.ctd import ConditionalPredictor
from lightning_dlc.project.io import atomic_path

log = logging.getLogger(__name__)

OKS_SIGMA = 0.1  # DeepLabCut's sigma for the tracker's OKS (NMS and matching bottom-up animals)


@dataclass
class CTDTrackingConfig:
    """DeepLabCut's ``CTDTrackingConfig``: names, meanings and defaults (see the module doc), and
    ``drop_unconfirmed`` (ours; None, off, by default)."""

    bu_on_lost_idv: bool = True
    bu_min_frequency: int | None = None
    bu_max_frequency: int | None = 100
    threshold_bu_add: float = 0.25
    threshold_ctd: float = 0.01
    threshold_nms: float = 0.9
    # ours, not DeepLabCut's: a track that no bottom-up animal confirms (OKS >= threshold_bu_add) in this many runs
    # of the bottom-up model in a row is dropped, freeing its row for the animals it finds (None: DeepLabCut's
    # tracker, whose tracks live on while the CTD model scores them, even on an animal that left or merged)
    drop_unconfirmed: int | None = None

    @classmethod
    def build(cls, config: bool | dict | CTDTrackingConfig | None, video_fps: float | None = None) -> CTDTrackingConfig:
        """From ``True`` (defaults), a dict or a config; with ``video_fps`` the frequencies are in seconds."""
        if isinstance(config, cls):
            return config
        values = dict(config) if isinstance(config, dict) else {}
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"ctd_tracking: unknown options {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        if video_fps is not None:
            for key in ("bu_min_frequency", "bu_max_frequency"):
                if values.get(key) is not None:
                    values[key] = int(values[key] * video_fps)
        return cls(**values)


def nms_oks(poses: np.ndarray, threshold: float, score_threshold: float, order: np.ndarray | None = None,
            margin: float = 1.0) -> np.ndarray:
    """DeepLabCut's ``nms_oks``: which poses ``[N, K, 3]`` to keep, best first (by mean score, or ``order``),
    dropping any whose OKS with a kept one reaches ``threshold``. Unlike DeepLabCut, a lone pose without two
    keypoints is not kept (there it would be kept, empty, and tracking would never restart)."""
    if len(poses) == 0:
        return np.zeros(0, bool)
    poses = poses.copy()
    poses[poses[..., 2] < score_threshold] = np.nan
    seen = ~np.isnan(poses).any(-1)
    countable = seen.sum(-1) > 1  # OKS needs two keypoints
    if not countable.any():
        return np.zeros(len(poses), bool)
    poses[~seen] = np.nan
    if order is None:
        scores = np.zeros(len(poses))
        scores[countable] = np.nanmean(poses[countable, :, 2], -1)
        order = scores.argsort()[::-1]
        order = order[scores[order] > 0]
    keep = np.zeros(len(poses), bool)
    order = list(order)
    while order:
        i, order = order[0], order[1:]
        keep[i] = True
        if order:
            oks = oks_matrix(poses[i:i + 1], poses[order], OKS_SIGMA, margin)[0]
            order = [j for j, s in zip(order, oks) if s < threshold and not np.isnan(s)]
    return keep


class CTDTracker:
    """One video's CTD tracking state: :meth:`conditions` before a frame, :meth:`update` after it."""

    def __init__(self, config: CTDTrackingConfig | None = None):
        self.config = config or CTDTrackingConfig()
        self.bu_age = -1
        self.missing = False
        self.previous: np.ndarray | None = None  # [T, K, 3] the tracked poses, as conditions
        self.order: np.ndarray | None = None  # rows of the next prediction -> track ids
        self.ages: np.ndarray | None = None
        self.unconfirmed: np.ndarray | None = None  # per track: bottom-up runs in a row that did not find it

    def conditions(self, bottom_up: Callable[[], np.ndarray]) -> np.ndarray:
        """The next frame's conditions ``[N, K, 3]``; ``bottom_up()`` gives the bottom-up animals when needed."""
        cfg = self.config
        self.bu_age += 1
        run_bu = (self.previous is None
                  or (self.missing and cfg.bu_on_lost_idv
                      and (cfg.bu_max_frequency is None or self.bu_age >= cfg.bu_max_frequency))
                  or (cfg.bu_min_frequency is not None and self.bu_age >= cfg.bu_min_frequency))
        if not run_bu:
            return self.previous
        self.bu_age = 0
        proposed = _proposals(np.asarray(bottom_up(), np.float32)[..., :3])
        if self.previous is None:
            return proposed
        confident = proposed.copy()  # what matches tracks: keypoints scoring at least threshold_ctd
        confident[confident[..., 2] < self.config.threshold_ctd] = np.nan
        if self.config.drop_unconfirmed is not None:
            self._drop_unconfirmed(confident)
        return self._merge(confident)

    def _drop_unconfirmed(self, confident: np.ndarray) -> None:
        """Count, per track, the bottom-up runs in a row that found no animal on it (``confident``: the bottom-up
        animals, low-scoring keypoints NaN); drop the tracks at ``drop_unconfirmed`` (their rows go to the end of
        the order, free for new animals)."""
        cfg = self.config
        tracks = self.order[: len(self.previous)]
        if self.unconfirmed is None:
            self.unconfirmed = np.zeros(len(self.order), int)
        best = np.nan_to_num(oks_matrix(self.previous, confident, OKS_SIGMA), nan=0.0).max(-1, initial=0.0)
        confirmed = best >= cfg.threshold_bu_add
        self.unconfirmed[tracks[confirmed]] = 0
        self.unconfirmed[tracks[~confirmed]] += 1
        drop = self.unconfirmed[tracks] >= cfg.drop_unconfirmed
        if not drop.any():
            return
        self.unconfirmed[tracks[drop]] = 0
        self.ages[tracks[drop]] = 0
        self.order = np.concatenate([tracks[~drop], tracks[drop], self.order[len(tracks):]])
        self.previous = self.previous[~drop]
        self.missing = True

    def _merge(self, confident: np.ndarray) -> np.ndarray:
        """Tracked poses, then the bottom-up animals that match none (least similar first) in the free rows."""
        cond = confident
        countable = (~np.isnan(cond).any(-1)).sum(-1) > 1
        if not countable.any():
            return self.previous
        cond = cond[countable]
        best = np.nan_to_num(oks_matrix(cond, self.previous, OKS_SIGMA), nan=0.0).max(-1, initial=0.0)
        new = np.where(best < self.config.threshold_bu_add)[0]
        if not len(new):
            return self.previous
        added = cond[new[np.argsort(best[new], kind="stable")]]
        return np.concatenate([self.previous, added])[: len(self.order)]

    def update(self, predicted: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """The frame's refined poses ``[N, K, 3]`` (row n refines condition n) -> the same rows ordered by track
        (returned; written as the frame's individuals); the state for the next frame."""
        cfg = self.config
        if self.order is not None:  # row j refined condition j, which is track order[j]
            predicted = _place(predicted, self.order)
        poses = predicted[..., :3].copy()
        poses[poses[..., 2] <= cfg.threshold_ctd] = np.nan
        w, h = image_size
        outside = (poses[..., 0] < 0) | (poses[..., 1] < 0) | (poses[..., 0] >= w) | (poses[..., 1] >= h)
        poses[outside] = np.nan
        order = None
        if self.ages is not None:  # older tracks first, then by mean score
            ranking = self.ages.copy()
            seen = (~np.isnan(poses).any(-1)).sum(-1) > 1
            ranking[seen] += np.nanmean(poses[seen, :, 2], -1)
            order = ranking.argsort()[::-1]
            order = order[ranking[order] > 0]
        keep = nms_oks(poses, cfg.threshold_nms, cfg.threshold_ctd, order)
        if keep.any():
            self.previous = poses[keep]
            self.order = np.concatenate([np.where(keep)[0], np.where(~keep)[0]])
            if self.ages is None:
                self.ages = np.zeros(len(self.order))
            self.ages[keep] += 1
            self.ages[~keep] = 0
            self.missing = len(self.previous) != len(self.order)
        else:
            self.previous = self.order = self.ages = self.unconfirmed = None
        return predicted


def _place(predicted: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Prediction j to row ``order[j]`` (its track). DeepLabCut writes ``predictions[idx_to_id]``, the same
    while no track is lost; once one is, that moves tracks between rows, so we place them by track."""
    n = min(len(predicted), len(order))
    out = np.full((len(order), *predicted.shape[1:]), np.nan, np.float32)
    out[order[:n]] = predicted[:n]
    return out


def _proposals(poses: np.ndarray) -> np.ndarray:
    """Bottom-up animals with at least one keypoint (DeepLabCut's ``add_conditions`` filter)."""
    return poses[(~unseen_keypoints(poses)).any(-1)]


class TrackingPredictor(ConditionalPredictor):
    """A :class:`ConditionalPredictor` that tracks: frames one by one through a :class:`CTDTracker`; row n of the
    output is track n (``max_individuals`` rows, NaN where fewer tracks)."""

    def __init__(self, predictor: ConditionalPredictor, config: CTDTrackingConfig | None = None):
        self.__dict__.update(predictor.__dict__)  # the same model, device and settings
        self.tracker = CTDTracker(config)

    def __call__(self, images, boxes=None, features: bool = False, conditions=None) -> dict[str, np.ndarray]:
        if conditions is not None:
            raise ValueError("CTD tracking makes its own conditions")
        n_rows, k = self.meta.max_individuals, len(self.meta.bodyparts)
        frames = [images[i: i + 1] for i in range(len(images))]
        out = {"bodypart": np.full((len(frames), n_rows, k, 3), np.nan, np.float32),
               "unique_bodypart": np.full((len(frames), len(self.meta.unique_bodyparts), 3), np.nan, np.float32)}
        for i, frame in enumerate(frames):
            unique = {}

            def bottom_up(frame=frame, unique=unique):
                proposed = self.proposals(frame)
                unique["value"] = proposed.get("unique_bodypart")
                return proposed["bodypart"][0]

            cond = self.tracker.conditions(bottom_up)[:n_rows]
            h, w = (frame.shape[1:3] if isinstance(frame, np.ndarray) and frame.shape[-1] == 3 else frame.shape[-2:])
            refined = np.full((n_rows, k, 3), np.nan, np.float32)  # one row per individual, as DeepLabCut pads
            if len(cond):
                refined[: len(cond)] = super().__call__(frame, conditions=cond[None])["bodypart"][0]
            tracked = self.tracker.update(refined, (w, h))
            out["bodypart"][i, : len(tracked)] = tracked[:n_rows]
            if unique.get("value") is not None:
                out["unique_bodypart"][i] = unique["value"][0]
        return out


def write_ctd_tracks(h5: str | Path, overwrite: bool = False) -> Path:
    """DeepLabCut's ``<prefix>_ctd.h5`` beside the analysis ``<prefix>.h5`` of a CTD-tracking run (the same
    table: its individuals are already the tracks); an existing one is replaced only with ``overwrite``."""
    h5 = Path(h5)
    target = h5.with_name(f"{h5.stem}_ctd.h5")
    with atomic_path(target, overwrite=overwrite) as tmp:
        shutil.copyfile(h5, tmp)
    return target


def analyze_videos_tracking(predictor: ConditionalPredictor, videos, destfolder=None, config=None, videotype=None,
                            verbose: bool = True, **options) -> list:
    """DeepLabCut's ``analyze_videos(..., ctd_tracking=...)``: each video analyzed with a fresh tracker (its files,
    individuals = tracks) and ``<prefix>_ctd.h5`` beside them. ``options``: those of
    :func:`~lightning_dlc.inference.analyze.analyze_video`. Returns one summary per video."""
    from lightning_dlc.data.discovery import find_videos
    from lightning_dlc.inference.analyze import VideoSummary, analyze_video

    config = CTDTrackingConfig.build(config)
    summaries = []
    for video in find_videos(videos, videotype):
        try:
            summary = analyze_video(TrackingPredictor(predictor, config), video, destfolder, verbose=verbose, **options)
        except Exception as e:  # as analyze_videos: a failed video is reported, the others run
            summary = VideoSummary(str(video), "failed", scorer=predictor.scorer, error=str(e))
            if verbose:
                print(f"{video}: failed: {e}", flush=True)
        if summary.status in ("analyzed", "resumed"):  # a skipped analysis may not have been tracked
            if summary.status == "resumed":  # the tracker's state is not saved with the chunks
                log.warning("%s: CTD tracking resumed after an interruption: from frame %d the tracks restarted "
                            "from the bottom-up model, so a row may be another animal before and after it; "
                            "overwrite=True tracks the whole video in one pass", video,
                            summary.frames - summary.analyzed_frames)
            write_ctd_tracks(summary.h5, overwrite=bool(options.get("overwrite")))  # as the analysis was
        summaries.append(summary)
    return summaries
