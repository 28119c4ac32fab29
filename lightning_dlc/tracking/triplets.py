"""Triplets for re-identification, mined from tracklets: (anchor, positive) of one tracklet, a negative of another.

A sample is one animal in one frame: ``(frame, row)``, the row of the video analysis' ``[frames, N, K]``
arrays (the features file's). Tracklets hold copies of those keypoints, so :func:`tracklet_rows` finds each
tracklet frame's row by position. Two detections in one frame are two animals, so the negative is another
tracklet's sample **in the anchor's frame** (a sample of another tracklet at another time may well be the
same animal: measured on the demo, a quarter of those were); the positive is another frame of the anchor's
tracklet, from the same stretch between close encounters. Samples are skipped with fewer than ``min_keypoints`` keypoints (their features are mostly
missing: NaN) or closer than ``min_separation`` body sizes to another detection: in close encounters
features mix and trackers swap identities (on the demo such samples were most of the tracklets' wrong
labels). numpy only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_dlc.tracking.trackers import median_size
from lightning_dlc.tracking.tracklets import Tracklet

__all__ = ["Triplets", "default_min_keypoints", "isolated_samples", "mine_triplets", "tracklet_rows",
           "usable_samples"]

_SAME_POINT_PX = 1e-2  # a tracklet's keypoint and the analysis' are copies of one number (float32 -> float64)
MIN_SEPARATION = 0.5   # body sizes between a sample's centroid and any other detection's


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


def isolated_samples(keypoints: np.ndarray, min_separation: float = MIN_SEPARATION) -> np.ndarray:
    """bool ``[T, N]``: rows whose keypoint centroid is at least ``min_separation`` body sizes (the median
    diagonal of the detections' keypoint boxes) from every other detection's in the frame."""
    xy = np.asarray(keypoints[..., :2], np.float64)
    found = np.isfinite(xy).all(-1)
    if min_separation <= 0 or not found.any():
        return np.ones(xy.shape[:2], bool)
    body = median_size(xy, default=1.0)
    centroid = np.nansum(np.where(found[..., None], xy, 0), 2) / np.maximum(found.sum(-1), 1)[..., None]
    centroid[~found.any(-1)] = np.nan
    distance = np.linalg.norm(centroid[:, :, None] - centroid[:, None], axis=-1)      # [T, N, N]
    n = distance.shape[1]
    distance[:, np.arange(n), np.arange(n)] = np.inf
    return np.nan_to_num(distance, nan=np.inf).min(-1) >= min_separation * body


def _tracklet_samples(tracklets: Sequence[Tracklet], keypoints: np.ndarray, usable: np.ndarray,
                      isolated: np.ndarray, frames: tuple[int, int]) -> list[np.ndarray]:
    """Usable, isolated (frame, row) samples within ``frames`` [first, stop), in frame order, per stretch of a
    tracklet between close encounters: a stretch ends at a frame where the tracklet's animal is not isolated
    or not found, since trackers swap identities there (on the demo that halved the wrong positives)."""
    out = []
    for t in tracklets:
        rows = tracklet_rows(t, keypoints)
        found = rows >= 0
        alone = found & isolated[t.frames, np.maximum(rows, 0)]
        gap = np.r_[False, np.diff(t.frames) > 1]                     # frames the tracklet skips
        stretch = np.cumsum(~alone | gap)                                # a new stretch after each break
        ok = alone & (t.frames >= frames[0]) & (t.frames < frames[1])
        ok[ok] = usable[t.frames[ok], rows[ok]]
        for s in np.unique(stretch[ok]):
            keep = ok & (stretch == s)
            out.append(np.stack([t.frames[keep], rows[keep]], 1))
    return out


def mine_triplets(tracklets: Sequence[Tracklet], keypoints: np.ndarray, n_triplets: int,
                  frames: tuple[int, int] | None = None, min_keypoints: int | None = None,
                  min_separation: float = MIN_SEPARATION, seed: int = 0) -> Triplets:
    """Up to ``n_triplets`` triplets from tracklets, every sample in ``frames`` [first, stop) (default: all).

    ``keypoints``: the analysis' ``[T, N, K, 3]`` (the features file's). An anchor is a usable sample of a
    tracklet with another usable sample in the same stretch between close encounters (the positive), in a
    frame where another tracklet has a usable sample too (the negative); anchors are drawn uniformly, so
    tracklets in proportion to their usable frames. Returns
    fewer triplets (possibly none) when the tracklets allow no more.
    """
    frames = frames or (0, len(keypoints))
    min_keypoints = default_min_keypoints(keypoints.shape[2]) if min_keypoints is None else min_keypoints
    samples = _tracklet_samples(tracklets, keypoints, usable_samples(keypoints, min_keypoints),
                                isolated_samples(keypoints, min_separation), frames)
    owner = np.concatenate([np.full(len(s), k) for k, s in enumerate(samples)] + [np.zeros(0, np.int64)])
    flat = np.concatenate([*samples, np.zeros((0, 2), np.int64)]).astype(np.int64)
    sizes = np.array([len(s) for s in samples], np.int64)
    order = np.argsort(flat[:, 0], kind="stable")                       # samples grouped by frame
    first = np.searchsorted(flat[order, 0], flat[:, 0], side="left")
    in_frame = np.searchsorted(flat[order, 0], flat[:, 0], side="right") - first
    anchors = np.flatnonzero((in_frame >= 2) & (sizes[owner] >= 2))  # a tracklet has one sample a frame
    empty = np.zeros((0, 2), np.int64)
    if not len(anchors) or n_triplets < 1:
        return Triplets(empty, empty.copy(), empty.copy())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(anchors, size=int(n_triplets))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    out = np.zeros((3, len(chosen), 2), np.int64)
    for m, a in enumerate(chosen):
        k = owner[a]
        p = starts[k] + (a - starts[k] + rng.integers(1, sizes[k])) % sizes[k]       # another sample of k
        others = order[first[a]: first[a] + in_frame[a]]
        out[:, m] = flat[a], flat[p], flat[rng.choice(others[owner[others] != k])]
    return Triplets(*out)
