"""Triplets for re-identification, mined from tracklets: (anchor, positive) of one tracklet, a negative of another.

A sample is one animal in one frame: ``(frame, row)``, the row of the video analysis' ``[frames, N, K]``
arrays (the features file's). Tracklets hold copies of those keypoints, so :func:`tracklet_rows` finds each
tracklet frame's row by position. Two tracklets present in the same frames are two animals, so the negative
is the other tracklet's sample nearest in time to the anchor; the positive is another frame of the anchor's
tracklet. Samples with fewer than ``min_keypoints`` keypoints are not used (their features are mostly
missing: NaN). numpy only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_dlc.tracking.tracklets import Tracklet

__all__ = ["Triplets", "default_min_keypoints", "mine_triplets", "tracklet_rows", "usable_samples"]

_SAME_POINT_PX = 1e-2  # a tracklet's keypoint and the analysis' are copies of one number (float32 -> float64)


@dataclass
class Triplets:
    """``anchor``, ``positive``, ``negative``: int64 ``[M, 2]`` (frame, row)."""

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)


def default_min_keypoints(n_bodyparts: int) -> int:
    """Half the bodyparts (rounded up): fewer, and an animal's features say too little."""
    return max(1, math.ceil(n_bodyparts / 2))


def tracklet_rows(tracklet: Tracklet, keypoints: np.ndarray) -> np.ndarray:
    """int64 ``[len(tracklet)]``: for each tracklet frame the row of ``keypoints [T, N, K, >=2]`` holding the
    same points (every keypoint both have within 0.01 px), -1 where none does."""
    frames = tracklet.frames
    inside = frames < len(keypoints)
    rows = np.full(len(frames), -1, np.int64)
    if not inside.any():
        return rows
    candidates = keypoints[frames[inside], :, :, :2].astype(np.float64)           # [n, N, K, 2]
    mine = tracklet.data[inside][:, None, :, :2]                                  # [n, 1, K, 2]
    shared = np.isfinite(candidates).all(-1) & np.isfinite(mine).all(-1)          # [n, N, K]
    close = np.abs(np.nan_to_num(candidates - mine)).max(-1) <= _SAME_POINT_PX
    same = (close | ~shared).all(-1) & shared.any(-1)                             # [n, N]
    rows[inside] = np.where(same.any(1), same.argmax(1), -1)
    return rows


def usable_samples(keypoints: np.ndarray, min_keypoints: int) -> np.ndarray:
    """bool ``[T, N]``: rows with at least ``min_keypoints`` keypoints."""
    return np.isfinite(keypoints[..., :2]).all(-1).sum(-1) >= min_keypoints


def _tracklet_samples(tracklets: Sequence[Tracklet], keypoints: np.ndarray, usable: np.ndarray,
                      frames: tuple[int, int]) -> list[np.ndarray]:
    """Per tracklet, its usable (frame, row) samples within ``frames`` [first, stop), in frame order."""
    out = []
    for t in tracklets:
        rows = tracklet_rows(t, keypoints)
        ok = (rows >= 0) & (t.frames >= frames[0]) & (t.frames < frames[1])
        ok[ok] = usable[t.frames[ok], rows[ok]]
        out.append(np.stack([t.frames[ok], rows[ok]], 1))
    return out


def mine_triplets(tracklets: Sequence[Tracklet], keypoints: np.ndarray, n_triplets: int,
                  frames: tuple[int, int] | None = None, min_keypoints: int | None = None,
                  seed: int = 0) -> Triplets:
    """Up to ``n_triplets`` triplets from tracklets, every sample in ``frames`` [first, stop) (default: all).

    ``keypoints``: the analysis' ``[T, N, K, 3]`` (the features file's). An anchor tracklet needs two usable
    samples and another tracklet with a usable sample within its span; anchors are drawn in proportion to
    tracklet size. Returns fewer triplets (possibly none) when the tracklets allow no more.
    """
    frames = frames or (0, len(keypoints))
    min_keypoints = default_min_keypoints(keypoints.shape[2]) if min_keypoints is None else min_keypoints
    samples = _tracklet_samples(tracklets, keypoints, usable_samples(keypoints, min_keypoints), frames)
    spans = np.array([(s[0, 0], s[-1, 0]) if len(s) else (0, -1) for s in samples]).reshape(-1, 2)
    overlapping = [np.flatnonzero((spans[:, 0] <= spans[k, 1]) & (spans[:, 1] >= spans[k, 0])
                                  & (np.arange(len(samples)) != k)) for k in range(len(samples))]
    anchors = np.array([k for k, s in enumerate(samples) if len(s) >= 2 and len(overlapping[k])], np.int64)
    empty = np.zeros((0, 2), np.int64)
    if not len(anchors) or n_triplets < 1:
        return Triplets(empty, empty.copy(), empty.copy())
    rng = np.random.default_rng(seed)
    sizes = np.array([len(samples[k]) for k in anchors], np.float64)
    chosen = rng.choice(anchors, size=int(n_triplets), p=sizes / sizes.sum())
    out = np.zeros((3, len(chosen), 2), np.int64)
    for m, k in enumerate(chosen):
        own = samples[k]
        a, p = rng.choice(len(own), 2, replace=False)
        other = samples[rng.choice(overlapping[k])]
        out[:, m] = own[a], own[p], other[np.abs(other[:, 0] - own[a, 0]).argmin()]
    return Triplets(*out)
