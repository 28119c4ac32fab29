"""Labels that cannot teach identities: with ``identity: true`` each individual must be one animal.

DeepLabCut's identity head learns "fish1 looks like this" from every labeled image, so an animal
labeled fish1 in one frame and fish2 in the next teaches it nonsense, silently. Only labeled images
of the same video that are near in time can be compared (frames picked by k-means are far apart and
animals move anywhere in between), so the rule looks at pairs of labeled frames at most
``max_gap`` frames apart (frame numbers from DeepLabCut's ``img<frame>.png`` names):

- swapped: matching the animals of the two frames by position (the pairing with the least total
  mean keypoint distance) pairs some individual with another name, and that pairing is less than half
  as far as keeping the names, by more than half a body length;
- jumped: an individual moves more than one body length, or half a body length per frame of the gap
  when that is more (animals filmed at video rates move far less between frames).

A body length is the median, over the labeled animals, of the largest distance between two of
their keypoints. Numpy and scipy only (``project/`` never imports torch).
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

log = logging.getLogger(__name__)

__all__ = ["IdentityIssue", "check_identity_labels", "warn_inconsistent_identities"]


@dataclass(frozen=True)
class IdentityIssue:
    kind: str              # "swapped" or "jumped"
    images: tuple[str, str]
    individuals: tuple[str, ...]

    def __str__(self) -> str:
        who = " and ".join(self.individuals)
        if self.kind == "swapped":
            return f"{who} swapped between {self.images[0]} and {self.images[1]}"
        return f"{who} jumped between {self.images[0]} and {self.images[1]}"


def _frame(key: str) -> tuple[str, int] | None:
    """(video folder, frame number) of a labeled image key ``labeled-data/<video>/img<frame>.png``."""
    path = PurePosixPath(key.replace("\\", "/"))
    match = re.search(r"(\d+)$", path.stem)
    return (str(path.parent), int(match.group(1))) if match else None


def _mean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[n, n]`` mean distance over the keypoints both have (NaN: none shared); a, b ``[n, K, >=2]``."""
    d = np.linalg.norm(a[:, None, :, :2] - b[None, :, :, :2], axis=-1)
    shared = np.isfinite(d).sum(-1)
    return np.where(shared > 0, np.nansum(d, -1) / np.maximum(shared, 1), np.nan)


def body_length(keypoints: np.ndarray) -> float:
    """Median over labeled animals of the largest distance between two of their keypoints (px)."""
    kp = np.asarray(keypoints, np.float64)[..., :2].reshape(-1, keypoints.shape[-2], 2)
    d = np.linalg.norm(kp[:, :, None] - kp[:, None], axis=-1)
    spans = np.nanmax(np.where(np.isfinite(d), d, -1.0).reshape(len(kp), -1), axis=1)
    spans = spans[spans > 0]
    return float(np.median(spans)) if len(spans) else float("nan")


def check_identity_labels(keys: Sequence[str], keypoints: np.ndarray, individuals: Sequence[str],
                          max_gap: int = 5) -> list[IdentityIssue]:
    """Inconsistent individuals between labeled frames at most ``max_gap`` frames apart (see the module).

    ``keys``: image paths (``labeled-data/<video>/img<frame>.png``); ``keypoints`` ``[n_images,
    n_individuals, K, >=2]`` (NaN: unlabeled), in the order of ``individuals``.
    """
    keypoints = np.asarray(keypoints, np.float64)
    length = body_length(keypoints)
    if not np.isfinite(length) or keypoints.shape[1] < 1:
        return []
    by_video: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, key in enumerate(keys):
        where = _frame(key)
        if where is not None:
            by_video[where[0]].append((where[1], i))
    issues = []
    for frames in by_video.values():
        frames.sort()
        for (f0, i0), (f1, i1) in zip(frames, frames[1:]):
            gap = f1 - f0
            if not 0 < gap <= max_gap:
                continue
            issues += _pair_issues(keypoints[i0], keypoints[i1], gap, length, (keys[i0], keys[i1]), individuals)
    return issues


def _pair_issues(a, b, gap, length, images, individuals) -> list[IdentityIssue]:
    d = _mean_distances(a, b)
    issues = []
    same = np.diag(d)
    jumped = np.flatnonzero(np.nan_to_num(same, nan=0.0) > length * max(1.0, 0.5 * gap))
    big = 1e6 * length
    rows, cols = linear_sum_assignment(np.nan_to_num(d, nan=big))
    pairs = [(r, c) for r, c in zip(rows, cols) if np.isfinite(d[r, c])]
    moved = [(r, c) for r, c in pairs if r != c]
    if moved:
        involved = sorted({r for r, c in moved} | {c for r, c in moved})
        kept = np.array([same[i] for i in involved])
        if np.isfinite(kept).all():
            matched = sum(d[r, c] for r, c in moved)
            keep_cost = float(kept.sum())
            if matched < 0.5 * keep_cost and keep_cost - matched > 0.5 * length:
                issues.append(IdentityIssue("swapped", images, tuple(individuals[i] for i in involved)))
                jumped = np.setdiff1d(jumped, involved)  # a swap, not separate jumps
    if len(jumped):
        issues.append(IdentityIssue("jumped", images, tuple(individuals[i] for i in jumped)))
    return issues


def warn_inconsistent_identities(records, individuals: Sequence[str], source: str, max_gap: int = 5,
                                 shown: int = 10) -> list[IdentityIssue]:
    """Log one warning naming the frames whose individuals look inconsistent (``identity: true`` projects)
    and return the issues; never raises. ``records``: objects with ``key`` and ``keypoints``."""
    records = list(records)
    if not records or len(individuals) < 2:
        return []
    issues = check_identity_labels([r.key for r in records], np.stack([r.keypoints for r in records]),
                                   individuals, max_gap)
    if issues:
        listed = "; ".join(str(issue) for issue in issues[:shown])
        more = f" (and {len(issues) - shown} more)" if len(issues) > shown else ""
        log.warning("%s: identity: true, but labeled individuals look inconsistent in %d pairs of nearby frames: "
                    "%s%s. The identity head learns each name as one animal: fix these labels (the same animal "
                    "keeps its name in every frame) or set identity: false.", source, len(issues), listed, more)
    return issues
