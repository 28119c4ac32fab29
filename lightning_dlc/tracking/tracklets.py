"""Tracklets: per-frame detections linked into short tracks of one animal each (arrays in, tracklets out).

Detections are, per frame, ``[n, K, 3 or 4]`` (x, y, likelihood[, identity]), as the assemblies
pickle holds them: NaN or a negative value marks a missing keypoint (DeepLabCut writes -1).
:func:`link_detections` runs a :class:`~lightning_dlc.tracking.trackers.SortTracker` over every
frame (frames without detections included, so predictions move on) and returns one
:class:`Tracklet` per track id.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lightning_dlc.tracking.trackers import SortTracker

__all__ = ["Tracklet", "clean_detections", "frames_of", "link_detections"]


@dataclass
class Tracklet:
    """One animal over some frames: ``frames`` int64 ``[n]`` increasing, ``data`` ``[n, K, C]`` (x, y, likelihood[, id])."""

    frames: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        self.frames = np.asarray(self.frames, np.int64)
        self.data = np.asarray(self.data, np.float64)
        if self.data.ndim != 3 or self.data.shape[-1] not in (3, 4) or len(self.data) != len(self.frames):
            raise ValueError(f"a tracklet is frames [n] and data [n, K, 3 or 4]; got {self.frames.shape} "
                             f"and {self.data.shape}")
        order = np.argsort(self.frames, kind="stable")
        self.frames, self.data = self.frames[order], self.data[order]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        return int(self.frames[-1])

    def centroids(self) -> np.ndarray:
        """``[n, 2]`` mean of each frame's finite keypoints (NaN for a frame without any)."""
        xy = self.data[..., :2]
        count = np.isfinite(xy[..., 0]).sum(1)
        total = np.nansum(xy, axis=1)
        return np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], np.nan)

    def frame_votes(self, n_identities: int) -> np.ndarray:
        """``[n, n_identities]``: each frame's share of likelihood per identity its keypoints carry (rows sum to
        1; 0 where a frame has no identity: no identity column, -1, or an identity beyond ``n_identities``)."""
        votes = np.zeros((len(self), n_identities))
        if self.data.shape[-1] < 4 or n_identities < 1:
            return votes
        ids, scores = self.data[..., 3], np.nan_to_num(self.data[..., 2], nan=0.0).clip(0)
        known = np.isfinite(ids) & (ids >= 0) & (ids < n_identities) & np.isfinite(self.data[..., 0])
        rows = np.broadcast_to(np.arange(len(self))[:, None], ids.shape)
        np.add.at(votes, (rows[known], ids[known].astype(np.int64)), scores[known] + 1e-9)
        total = votes.sum(1, keepdims=True)
        return np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)

    def identity(self) -> int:
        """The identity most keypoints vote for (likelihood-weighted), -1 without an identity column."""
        if self.data.shape[-1] < 4:
            return -1
        ids, scores = self.data[..., 3].ravel(), self.data[..., 2].ravel()
        known = np.isfinite(ids) & (ids >= 0) & np.isfinite(scores)
        if not known.any():
            return -1
        return int(np.argmax(np.bincount(ids[known].astype(np.int64), weights=scores[known])))


def clean_detections(animals: np.ndarray, pcutoff: float = 0.0) -> np.ndarray:
    """One frame's ``[n, K, C]`` with missing keypoints (negative, NaN, likelihood < pcutoff) as NaN x, y;
    animals left without any keypoint are dropped."""
    animals = np.array(animals, np.float64, ndmin=3, copy=True)
    if animals.size == 0:
        return animals.reshape(0, *animals.shape[1:]) if animals.ndim == 3 else np.zeros((0, 0, 3))
    missing = (animals[..., :3] < 0).any(-1) | ~(animals[..., 2] >= pcutoff)
    animals[..., :2][missing] = np.nan
    return animals[np.isfinite(animals[..., :2]).all(-1).any(-1)]


def frames_of(detections, n_frames: int | None) -> Iterable[tuple[int, np.ndarray | None]]:
    """(frame, its animals or None) for every frame of ``detections`` (see :func:`link_detections`)."""
    if isinstance(detections, Mapping):
        frames = [k for k in detections if isinstance(k, (int, np.integer))]
        total = n_frames if n_frames is not None else (max(frames) + 1 if frames else 0)
        return ((i, detections.get(i)) for i in range(total))
    total = len(detections) if n_frames is None else min(n_frames, len(detections))
    return ((i, detections[i]) for i in range(total))


def link_detections(detections: Mapping[int, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
                    method: str = "ellipse", n_frames: int | None = None, pcutoff: float = 0.0,
                    max_age: int = 3, min_similarity: float | None = None, box_slack: float = 0.0,
                    bodyparts: Sequence[int] | None = None) -> list[Tracklet]:
    """Link per-frame detections into tracklets.

    Args:
        detections: ``{frame: [n, K, C]}`` (the assemblies pickle; non-integer keys such as
            ``single`` are ignored), or a sequence / array indexed by frame (``[T, N, K, C]`` with
            NaN for absent animals works).
        method: ``box``, ``ellipse`` or ``skeleton`` (see :mod:`~lightning_dlc.tracking.trackers`).
        n_frames: frames to run over (default: up to the last frame given).
        pcutoff: keypoints below this likelihood count as missing.
        bodyparts: indices of the keypoints the tracker looks at (default: all); tracklets keep all.
    Returns the tracklets ordered by track id (their order of appearance).
    """
    tracker = SortTracker(method, max_age=max_age, min_similarity=min_similarity, box_slack=box_slack)
    ids, frames, rows = [], [], []
    for frame, animals in frames_of(detections, n_frames):
        animals = clean_detections(animals if animals is not None else np.zeros((0, 0, 3)), pcutoff)
        xy = animals[..., :2] if bodyparts is None else animals[:, list(bodyparts), :2]
        found = tracker.step(xy)
        linked = found >= 0
        ids.append(found[linked])
        frames.append(np.full(linked.sum(), frame, np.int64))
        rows.append(animals[linked])
    if not any(len(i) for i in ids):
        return []
    ids, frames = np.concatenate(ids), np.concatenate(frames)
    rows = np.concatenate([r for r in rows if len(r)])
    order = np.lexsort((frames, ids))
    ids, frames, rows = ids[order], frames[order], rows[order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    return [Tracklet(f, d) for f, d in zip(np.split(frames, cuts), np.split(rows, cuts))]
