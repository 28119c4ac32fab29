"""Keypoint arrays in pixels -> FiftyOne labels: one ``fo.Keypoint`` per individual, the project's skeleton.

FiftyOne stores points relative to the image, ``[0, 1]`` from its left/top edge to its right/bottom
edge. Our pixels (DeepLabCut's) put pixel centres at integer coordinates, so a point at pixel x sits
at ``(x + 0.5) / width``; missing points are NaN, as FiftyOne expects.
"""
from __future__ import annotations

from collections.abc import Sequence

import fiftyone as fo
import numpy as np

from lightning_dlc.project.records import ProjectMeta

__all__ = ["keypoints_label", "normalized_points", "project_skeletons", "skeleton"]


def normalized_points(xy: np.ndarray, width: int, height: int) -> list[list[float]]:
    """``[K, >=2]`` pixel points -> FiftyOne's relative ``[[x, y], ...]`` (NaN stays NaN)."""
    xy = np.asarray(xy, dtype=np.float64)[:, :2]
    return ((xy + 0.5) / np.array([width, height], dtype=np.float64)).tolist()


def keypoints_label(points: np.ndarray, width: int, height: int, names: Sequence[str], *,
                    confidence: bool, attributes: Sequence[dict] | None = None) -> fo.Keypoints:
    """``[N, K, 3]`` points of N individuals -> ``fo.Keypoints``.

    The third value is a score (``confidence=True``: predictions, stored per point) or a
    visibility flag (ground truth: points with visibility <= 0 become NaN). Each individual is one
    ``fo.Keypoint`` labelled with its name and indexed by its row (its track id in a video);
    individuals without any point are left out. ``attributes``: extra fields per individual.
    """
    points = np.array(points, dtype=np.float64)
    if not confidence:
        with np.errstate(invalid="ignore"):
            points[points[..., 2] <= 0, :2] = np.nan
    found = ~np.isnan(points[..., :2]).any(-1)  # [N, K]
    labels = []
    for i in np.flatnonzero(found.any(-1)):
        extra = dict(attributes[i]) if attributes is not None else {}
        if confidence:
            scores = np.where(found[i], points[i, :, 2], np.nan)
            extra["confidence"] = scores.tolist()
        labels.append(fo.Keypoint(label=str(names[i]), index=int(i),
                                  points=normalized_points(points[i], width, height), **extra))
    return fo.Keypoints(keypoints=labels)


def skeleton(bodyparts: Sequence[str], edges: Sequence[tuple[str, str]]) -> fo.KeypointSkeleton:
    """The skeleton over ``bodyparts`` (their names as node labels); edges naming other parts are skipped."""
    index = {name: i for i, name in enumerate(bodyparts)}
    pairs = [[index[a], index[b]] for a, b in edges if a in index and b in index]
    return fo.KeypointSkeleton(labels=list(bodyparts), edges=pairs)


def project_skeletons(meta: ProjectMeta, fields: Sequence[str], unique_fields: Sequence[str]) -> dict:
    """``dataset.skeletons`` for bodypart fields and unique-bodypart fields (each their own point set)."""
    out = {field: skeleton(meta.bodyparts, meta.skeleton) for field in fields}
    out.update({field: skeleton(meta.unique_bodyparts, meta.skeleton) for field in unique_fields})
    return out
