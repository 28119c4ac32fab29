"""Close encounters: no phantom animals, no animal made of two, before tracking sees a frame.

Where animals touch, a model's animals go wrong in two ways (DeepLabCut's assembler, whose output must stay
exact, is left alone; this is a step after it, on the assemblies pickle's animals):

- **phantom** (the same animal twice: two nearly identical poses, from two boxes on one animal, a PAF
  assembly split in two, DEKR centres side by side): two animals of a frame whose keypoints agree
  (object keypoint similarity at least ``same_animal``) are one: the more confident one is kept, and keeps
  the other's keypoints where it has none;
- **merged** (one animal made of two: one's head, the other's tail): an animal larger than
  ``max_size`` x the video's median animal is cut in two (its keypoints split into the two groups
  farthest apart, 2-means); a part that the frame's other animals lack is given to the nearest one that
  lacks all its keypoints and stays within the usual size with it, else it stays an animal of its own.

Body sizes are box diagonals of the animals' keypoints (:func:`~lightning_dlc.tracking.trackers.body_sizes`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lightning_dlc.tracking.trackers import body_sizes, keypoint_similarity, median_size
from lightning_dlc.tracking.tracklets import clean_detections

__all__ = ["MAX_SIZE", "SAME_ANIMAL", "median_body_size", "separate_animals", "separate_frame"]

SAME_ANIMAL = 0.8   # keypoint similarity (OKS) of two poses that are one animal seen twice
MAX_SIZE = 1.6      # x the median body size: larger is two animals' keypoints in one
_FITS = 1.25        # x the median body size: the most a cut part and the animal it completes may span together


def _sizes(animals: np.ndarray) -> np.ndarray:
    return body_sizes(animals[..., :2])


def median_body_size(detections: Mapping[int, np.ndarray], pcutoff: float = 0.0) -> float:
    """The video's median body size (:func:`~lightning_dlc.tracking.trackers.median_size`) over every animal
    with keypoints at or above ``pcutoff`` (px; NaN when there is none)."""
    animals = [a[..., :2] for a in (clean_detections(d, pcutoff) for d in detections.values()) if len(a)]
    return median_size(np.concatenate(animals)) if animals else float("nan")


def _confidence(animal: np.ndarray) -> float:
    return float(np.nansum(np.where(np.isfinite(animal[:, 0]), animal[:, 2], 0.0)))


def _merge_phantoms(animals: np.ndarray, same_animal: float) -> np.ndarray:
    order = np.argsort([-_confidence(a) for a in animals], kind="stable")
    animals = animals[order]
    similarity = keypoint_similarity(animals[..., :2], animals[..., :2])
    kept: list[int] = []
    for k in range(len(animals)):
        twin = next((m for m in kept if similarity[m, k] >= same_animal), None)
        if twin is None:
            kept.append(k)
            continue
        missing = ~np.isfinite(animals[twin, :, 0]) & np.isfinite(animals[k, :, 0])
        animals[twin, missing] = animals[k, missing]
    return animals[sorted(kept)]


def _two_groups(xy: np.ndarray) -> np.ndarray:
    """Labels 0 / 1 of finite keypoints ``[K, 2]`` (NaN rows: -1) by 2-means from the two points farthest apart."""
    labels = np.full(len(xy), -1)
    found = np.flatnonzero(np.isfinite(xy[:, 0]))
    points = xy[found]
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    a, b = np.unravel_index(np.argmax(d), d.shape)
    centres = points[[a, b]]
    for _ in range(10):
        near = np.linalg.norm(points[:, None] - centres[None], axis=-1).argmin(1)
        if near.min() == near.max():
            break
        centres = np.stack([points[near == g].mean(0) for g in (0, 1)])
    labels[found] = near
    return labels


def _split_merged(animals: np.ndarray, body_size: float, max_size: float) -> np.ndarray:
    big = _sizes(animals) > max_size * body_size
    if not big.any():
        return animals
    out = [a for a in animals[~big]]
    parts = []
    for animal in animals[big]:
        groups = _two_groups(animal[:, :2])
        for g in (0, 1):
            part = np.full_like(animal, np.nan)
            part[groups == g] = animal[groups == g]
            parts.append(part)
    for part in sorted(parts, key=_confidence, reverse=True):
        has = np.isfinite(part[:, 0])
        fits = [k for k, a in enumerate(out) if not np.isfinite(a[has, 0]).any()
                and _sizes(np.where(has[:, None], part, a)[None])[0] <= _FITS * body_size]
        if fits:
            centre = np.nanmean(part[:, :2], 0)
            k = min(fits, key=lambda k: np.linalg.norm(np.nanmean(out[k][:, :2], 0) - centre))
            out[k] = np.where(has[:, None], part, out[k])
        else:
            out.append(part)
    return np.stack(out)


def _separate(animals: np.ndarray, body_size: float, same_animal: float, max_size: float
              ) -> tuple[np.ndarray, bool, bool]:
    """(animals, whether one was cut as merged, whether a phantom was merged away)."""
    if len(animals) == 0:
        return animals, False, False
    animals = np.array(animals, np.float64, copy=True)
    merged = bool(np.isfinite(body_size) and body_size > 0 and (_sizes(animals) > max_size * body_size).any())
    if merged:
        animals = _split_merged(animals, body_size, max_size)
    before = len(animals)
    animals = _merge_phantoms(animals, same_animal) if before > 1 else animals
    return animals, merged, len(animals) < before


def separate_frame(animals: np.ndarray, body_size: float, same_animal: float = SAME_ANIMAL,
                   max_size: float = MAX_SIZE) -> np.ndarray:
    """One frame's animals ``[n, K, C]`` (missing keypoints NaN, as :func:`clean_detections` leaves them) without
    phantoms and merged animals (module doc)."""
    return _separate(animals, body_size, same_animal, max_size)[0]


def separate_animals(detections: Mapping[int, np.ndarray], pcutoff: float = 0.0, same_animal: float = SAME_ANIMAL,
                     max_size: float = MAX_SIZE) -> tuple[dict[int, np.ndarray], dict[str, list[int]]]:
    """Every frame of an assemblies pickle's ``{frame: [n, K, C]}`` through :func:`separate_frame` (keypoints
    under ``pcutoff`` missing). Returns the new detections and the frames changed: ``{"phantom": [...],
    "merged": [...]}``."""
    body_size = median_body_size(detections, pcutoff)
    out, changed = {}, {"phantom": [], "merged": []}
    for frame, animals in detections.items():
        if not isinstance(frame, (int, np.integer)):
            continue
        out[int(frame)], merged, phantom = _separate(clean_detections(animals, pcutoff), body_size, same_animal,
                                                     max_size)
        for name, flag in (("merged", merged), ("phantom", phantom)):
            if flag:
                changed[name].append(int(frame))
    return out, changed
