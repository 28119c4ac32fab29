"""Frame-to-frame trackers (SORT-like): each animal's shape, predicted by a Kalman filter, matched by Hungarian.

Three shapes, as DeepLabCut names them:

- ``box``: the keypoints' bounding box (plus ``slack`` px), matched by IoU;
- ``ellipse``: the keypoints' mean and covariance, i.e. a Gaussian ellipse, matched by the
  Bhattacharyya coefficient (1 for equal ellipses, 0 far apart; smooth, unlike polygon overlap,
  and orientation-aware, which separates crossing animals);
- ``skeleton``: the keypoints themselves, matched by object keypoint similarity (OKS).

A :class:`SortTracker` is fed one frame at a time; it returns a track id per animal. Tracks not
matched for more than ``max_age`` frames end; unmatched animals start new tracks.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

from lightning_dlc.evaluation.boxes import box_iou
from lightning_dlc.tracking.kalman import ConstantVelocityKalman

TRACK_METHODS = {"box": "bx", "ellipse": "el", "skeleton": "sk"}  # DeepLabCut's file suffixes
DEFAULT_MIN_SIMILARITY = {"box": 0.3, "ellipse": 0.4, "skeleton": 0.3}
_ELLIPSE_FLOOR = 0.3   # minor axis at least this fraction of the major one: nearly collinear keypoints
_MIN_STD = 1.0         # px: one keypoint still makes a (small) ellipse
_OKS_KAPPA = 0.25      # OKS tolerance per keypoint, as a fraction of the animal's size

__all__ = ["DEFAULT_MIN_SIMILARITY", "TRACK_METHODS", "SortTracker", "bhattacharyya_similarity",
           "body_sizes", "boxes_from_keypoints", "ellipses_from_keypoints", "keypoint_similarity", "median_size"]


def check_method(method: str) -> str:
    if method not in TRACK_METHODS:
        raise ValueError(f"track_method must be one of {sorted(TRACK_METHODS)}, got {method!r}")
    return method


# --------------------------------------------------------------------------- shapes
def boxes_from_keypoints(xy: np.ndarray, slack: float = 0.0) -> np.ndarray:
    """``[n, K, 2]`` -> ``[n, 4]`` x1, y1, x2, y2 around the finite keypoints, widened by ``slack``."""
    xy = np.asarray(xy, np.float64)
    if xy.size == 0:
        return np.zeros((len(xy), 4))
    with _quiet_nan():
        lo, hi = np.nanmin(xy, axis=1) - slack, np.nanmax(xy, axis=1) + slack
    return np.concatenate([lo, hi], axis=1)


def body_sizes(xy: np.ndarray) -> np.ndarray:
    """``[..., K, 2]`` -> ``[...]`` each animal's size: the diagonal of its keypoints' box (px; NaN without any).
    The diagonal, unlike the box area, does not vanish for elongated animals."""
    xy = np.asarray(xy, np.float64)
    box = boxes_from_keypoints(xy.reshape(-1, *xy.shape[-2:]))
    return np.linalg.norm(box[:, 2:] - box[:, :2], axis=-1).reshape(xy.shape[:-2])


def median_size(xy: np.ndarray, default: float = float("nan")) -> float:
    """The median :func:`body_sizes` of the animals ``[..., K, 2]`` that have one (two distinct keypoints or
    more); ``default`` when none has: the one yardstick of tracking's distances."""
    sizes = body_sizes(xy)
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return float(np.median(sizes)) if len(sizes) else default


def ellipses_from_keypoints(xy: np.ndarray) -> np.ndarray:
    """``[n, K, 2]`` -> ``[n, 5]`` (cx, cy, sxx, sxy, syy): mean and covariance of the finite keypoints."""
    xy = np.asarray(xy, np.float64)
    if xy.size == 0:
        return np.zeros((len(xy), 5))
    with _quiet_nan():
        center = np.nanmean(xy, axis=1)                       # [n, 2]
        d = xy - center[:, None]
        sxx, syy = np.nanmean(d[..., 0] ** 2, 1), np.nanmean(d[..., 1] ** 2, 1)
        sxy = np.nanmean(d[..., 0] * d[..., 1], 1)
    return np.stack([center[:, 0], center[:, 1], sxx, sxy, syy], axis=1)


def _covariances(ellipses: np.ndarray) -> np.ndarray:
    """``[n, 5]`` -> ``[n, 2, 2]`` covariances, made positive definite with the minor-axis floor."""
    cov = np.stack([ellipses[:, 2], ellipses[:, 3], ellipses[:, 3], ellipses[:, 4]], 1).reshape(-1, 2, 2)
    cov = (cov + cov.transpose(0, 2, 1)) / 2  # a predicted covariance can drift from symmetric
    values, vectors = np.linalg.eigh(np.nan_to_num(cov))
    major = np.maximum(values[:, -1:], _MIN_STD ** 2)
    values = np.maximum(values, _ELLIPSE_FLOOR ** 2 * major)
    return np.einsum("nij,nj,nkj->nik", vectors, values, vectors)


def bhattacharyya_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ellipses ``a [n, 5]``, ``b [m, 5]`` -> ``[n, m]`` Bhattacharyya coefficients of their Gaussians."""
    ca, cb = _covariances(a), _covariances(b)
    cov = (ca[:, None] + cb[None]) / 2                       # [n, m, 2, 2]
    delta = a[:, None, :2] - b[None, :, :2]
    mahalanobis = np.einsum("nmi,nmij,nmj->nm", delta, np.linalg.inv(cov), delta)
    log_det = np.log(np.linalg.det(cov)) - 0.5 * (np.log(np.linalg.det(ca))[:, None]
                                                   + np.log(np.linalg.det(cb))[None])
    return np.nan_to_num(np.exp(-(mahalanobis / 8 + log_det / 2)))


def keypoint_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Poses ``a [n, K, 2]``, ``b [m, K, 2]`` -> ``[n, m]`` OKS over the keypoints both have.

    The scale is the geometric mean of the pair's :func:`body_sizes` (symmetric).
    """
    def size(xy):
        return np.maximum(body_sizes(xy), _MIN_STD)

    scale = np.sqrt(size(a)[:, None] * size(b)[None]) * _OKS_KAPPA     # [n, m]
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)                          # [n, m, K], NaN where either lacks it
    both = np.isfinite(d2)
    oks = np.where(both, np.exp(-np.nan_to_num(d2) / (2 * scale[..., None] ** 2)), 0.0).sum(-1)
    return np.where(both.any(-1), oks / np.maximum(both.sum(-1), 1), 0.0)


@contextlib.contextmanager
def _quiet_nan():
    """Silence numpy's 'all-NaN slice' warnings: an animal without a keypoint is a normal case here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --------------------------------------------------------------------------- the tracker
class SortTracker:
    """Link animals frame to frame: Kalman-predicted shapes, Hungarian matching, ``min_similarity`` gate.

    Args:
        method: ``box``, ``ellipse`` or ``skeleton``.
        max_age: frames a track lives on, predicted, without a match.
        min_similarity: the least similarity (IoU, Bhattacharyya, OKS) of a match
            (default :data:`DEFAULT_MIN_SIMILARITY`).
        box_slack: px added around boxes (``box``; DeepLabCut's ``boundingboxslack``).
    """

    def __init__(self, method: str = "ellipse", max_age: int = 3, min_similarity: float | None = None,
                 box_slack: float = 0.0):
        self.method = check_method(method)
        self.max_age = int(max_age)
        self.min_similarity = DEFAULT_MIN_SIMILARITY[method] if min_similarity is None else float(min_similarity)
        self.box_slack = float(box_slack)
        self._kalman: ConstantVelocityKalman | None = None
        self._ids = np.zeros(0, np.int64)
        self._age = np.zeros(0, np.int64)
        self._next_id = 0

    def _features(self, xy: np.ndarray) -> np.ndarray:
        if self.method == "box":
            return boxes_from_keypoints(xy, self.box_slack)
        if self.method == "ellipse":
            return ellipses_from_keypoints(xy)
        return xy.reshape(len(xy), -1)

    def _similarity(self, detected: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        if self.method == "box":
            return box_iou(detected, predicted)
        if self.method == "ellipse":
            return bhattacharyya_similarity(detected, predicted)
        return keypoint_similarity(detected.reshape(len(detected), -1, 2), predicted.reshape(len(predicted), -1, 2))

    def step(self, xy: np.ndarray) -> np.ndarray:
        """One frame's animals ``[n, K, 2]`` (NaN: missing) -> ``[n]`` track ids (-1: no keypoint at all)."""
        xy = np.asarray(xy, np.float64)
        ids = np.full(len(xy), -1, np.int64)
        rows = np.flatnonzero(np.isfinite(xy).all(-1).any(-1)) if xy.size else np.zeros(0, np.int64)
        features = self._features(xy[rows]) if len(rows) else None
        if self._kalman is None:
            if features is None:
                return ids
            self._kalman = ConstantVelocityKalman(features.shape[1])
        predicted = self._kalman.predict()
        matched_det = matched_trk = np.zeros(0, np.int64)
        if features is not None and len(predicted):
            similarity = self._similarity(features, predicted)
            det, trk = linear_sum_assignment(similarity, maximize=True)
            good = similarity[det, trk] >= self.min_similarity
            matched_det, matched_trk = det[good], trk[good]
            self._kalman.update(matched_trk, features[matched_det])
            ids[rows[matched_det]] = self._ids[matched_trk]
        self._age += 1
        self._age[matched_trk] = 0
        alive = self._age <= self.max_age
        self._kalman.keep(alive)
        self._ids, self._age = self._ids[alive], self._age[alive]
        if features is not None:
            self._start_tracks(rows, features, matched_det, ids)
        return ids

    def _start_tracks(self, rows: np.ndarray, features: np.ndarray, matched: np.ndarray, ids: np.ndarray) -> None:
        """New tracks for the animals no track matched; their ids go into ``ids``."""
        new = np.setdiff1d(np.arange(len(rows)), matched)
        new_ids = self._next_id + np.arange(len(new))
        self._next_id += len(new)
        self._kalman.add(features[new])
        self._ids = np.concatenate([self._ids, new_ids])
        self._age = np.concatenate([self._age, np.zeros(len(new), np.int64)])
        ids[rows[new]] = new_ids
