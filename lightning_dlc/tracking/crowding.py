"""More animals than tracks: frames where stitching into ``n_tracks`` tracks must drop animals.

A video can show more animals than the project has individuals (a visitor in the arena, a
``n_tracks`` set too low); stitching then keeps ``n_tracks`` of them and drops the rest. That is
the user's call to make, so it is reported, never an error: runs of at least ``min_frames``
consecutive frames where more than ``n_tracks`` tracklets each have an animal (short overlaps are
the trackers' own duplicates around encounters, not extra animals).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["animals_per_frame", "crowded_runs", "warn_too_many_animals"]


def animals_per_frame(tracklets: Sequence, n_frames: int | None = None) -> np.ndarray:
    """``[n_frames]`` how many tracklets have an animal (a finite keypoint) in each frame."""
    frames = [t.frames[np.isfinite(t.data[..., :2]).all(-1).any(-1)] for t in tracklets]
    last = max((int(f.max()) for f in frames if len(f)), default=-1)
    counts = np.zeros(max(last + 1, n_frames or 0), np.int64)
    for f in frames:
        np.add.at(counts, f[f < len(counts)], 1)
    return counts


def crowded_runs(counts: np.ndarray, n_tracks: int, min_frames: int = 5) -> list[tuple[int, int, int]]:
    """(first frame, last frame, most animals) of each run of >= ``min_frames`` frames with more than
    ``n_tracks`` animals."""
    over = np.asarray(counts) > n_tracks
    edges = np.flatnonzero(np.diff(np.r_[0, over.astype(np.int8), 0]))
    return [(int(a), int(b - 1), int(np.max(counts[a:b]))) for a, b in zip(edges[::2], edges[1::2])
            if b - a >= min_frames]


def warn_too_many_animals(tracklets: Sequence, n_tracks: int, source, n_frames: int | None = None,
                          min_frames: int = 5, shown: int = 10) -> list[tuple[int, int, int]]:
    """Log one warning naming the frames where more than ``n_tracks`` animals appear; return the runs."""
    runs = crowded_runs(animals_per_frame(tracklets, n_frames), n_tracks, min_frames)
    if runs:
        listed = ", ".join(f"{a}-{b} ({m} animals)" for a, b, m in runs[:shown])
        more = f" and {len(runs) - shown} more runs" if len(runs) > shown else ""
        log.warning("%s: more animals than the %d tracks in frames %s%s; stitching keeps %d of them there. "
                    "If the video has more animals, pass n_tracks (or add individuals to config.yaml).",
                    source, n_tracks, listed, more, n_tracks)
    return runs
