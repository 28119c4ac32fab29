"""Metric inputs: the accepted forms of predictions and ground truth, cleaned as DeepLabCut cleans them.

``predictions``: per image ``[n_pred, K, 3]`` (x, y, score) and ``ground_truth``:
per image ``[n_gt, K, 3]`` (x, y, visibility), given as

* one array ``[n_images, n_individuals, K, 3]`` (padded: rows of NaN, or
  visibility 0 / score < 0, are "no individual"),
* a 3-D array ``[n_images, K, 3]`` (one individual per image),
* a list of per-image arrays (``[n, K, 3]``, ``[K, 3]`` for one individual,
  ``None`` or an empty array for none), whose individual counts may differ,
* a dict ``{image: array}`` like DeepLabCut's (predictions are looked up by the
  ground truth's keys).

Predictions with more than 3 values per keypoint (e.g. PAF outputs) keep the
first 3; with only (x, y) the score is 1. Ground truth with only (x, y) gets
visibility 2 (COCO "labeled", what DeepLabCut's loader writes).

Cleaning: ground-truth keypoints with visibility <= 0 and predicted keypoints
with score < 0 become NaN. A keypoint is *valid* when x, y and the third value
are all non-NaN. Individuals without any valid keypoint are dropped. Score of a
predicted individual: the mean of its keypoint scores (NaN ignored). Predictions
are ranked by it, ties kept in input order (stable).

Per-bodypart arrays have length ``K + U`` (bodyparts, then unique bodyparts); a
per-bodypart ``pcutoff`` follows the same order, like DeepLabCut's.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PreparedData", "PreparedImage", "cutoffs", "pair_inputs", "prepare_all", "prepare_image", "prepare_unique",
           "sigmas"]


def _as_images(data, name: str, third: float) -> list[np.ndarray]:
    """Any accepted input form -> list of float64 arrays [n, K, 3] (copies)."""
    if data is None:
        raise ValueError(f"{name} is None")
    if isinstance(data, np.ndarray) or hasattr(data, "__array__") and not isinstance(data, (list, tuple)):
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 4:
            items = list(arr)
        elif arr.ndim == 3:
            items = list(arr[:, None])
        else:
            raise ValueError(
                f"{name}: expected [n_images, n_individuals, K, C] or [n_images, K, C], got {arr.shape}"
            )
    elif isinstance(data, Sequence):
        items = list(data)
    else:
        raise TypeError(f"{name}: expected an array, a list of arrays or a dict, got {type(data).__name__}")

    out = []
    for i, item in enumerate(items):
        a = np.zeros((0, 0, 3)) if item is None else np.array(item, dtype=np.float64)
        if a.size == 0:
            k = a.shape[-2] if a.ndim >= 2 else 0
            out.append(np.zeros((0, k, 3)))
            continue
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[-1] < 2:
            raise ValueError(f"{name}[{i}]: expected [n_individuals, K, C>=2], got {a.shape}")
        if a.shape[-1] == 2:
            col = np.where(np.isnan(a).any(-1, keepdims=True), np.nan, third)
            a = np.concatenate([a, col], axis=-1)
        out.append(np.ascontiguousarray(a[..., :3]))
    return out


def pair_inputs(predictions, ground_truth) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if isinstance(ground_truth, Mapping):
        if not isinstance(predictions, Mapping):
            raise TypeError("ground_truth is a dict: predictions must be a dict with the same keys")
        missing = [k for k in ground_truth if k not in predictions]
        if missing:
            raise ValueError(f"no predictions for {len(missing)} image(s), e.g. {missing[:3]}")
        keys = list(ground_truth)
        ground_truth = [ground_truth[k] for k in keys]
        predictions = [predictions[k] for k in keys]
    elif isinstance(predictions, Mapping):
        raise TypeError("predictions is a dict: ground_truth must be a dict with the same keys")
    gts = _as_images(ground_truth, "ground_truth", 2.0)
    preds = _as_images(predictions, "predictions", 1.0)
    if len(gts) != len(preds):
        raise ValueError(f"{len(preds)} prediction images but {len(gts)} ground-truth images")
    k_all = {a.shape[1] for a in gts + preds if a.shape[0] > 0}
    if len(k_all) > 1:
        raise ValueError(f"different numbers of keypoints across images/inputs: {sorted(k_all)}")
    k = k_all.pop() if k_all else max((a.shape[1] for a in gts + preds), default=0)
    gts = [a if a.shape[0] else np.zeros((0, k, 3)) for a in gts]
    preds = [a if a.shape[0] else np.zeros((0, k, 3)) for a in preds]
    return preds, gts


@dataclass
class PreparedImage:
    """One image after DeepLabCut's cleaning (see the module docstring)."""

    gt: np.ndarray  # [G, K, 3], individuals with >= 1 valid keypoint
    gt_valid: np.ndarray  # [G, K] x, y, visibility all non-NaN
    gt_index: np.ndarray  # [G] index in the input
    pred: np.ndarray  # [P, K, 3], >= 1 valid keypoint, sorted by score (desc, stable)
    pred_valid: np.ndarray  # [P, K]
    pred_index: np.ndarray  # [P] index in the input
    score: np.ndarray  # [P] mean keypoint score


def prepare_image(pred: np.ndarray, gt: np.ndarray) -> PreparedImage:
    gt = gt.copy()
    with np.errstate(invalid="ignore"):
        gt[gt[..., 2] <= 0] = np.nan
    gt_valid = ~np.isnan(gt).any(-1)
    gt_index = np.flatnonzero(gt_valid.any(-1))

    pred = pred.copy()
    with np.errstate(invalid="ignore"):
        pred[pred[..., 2] < 0] = np.nan
    pred_valid = ~np.isnan(pred).any(-1)
    keep = np.flatnonzero(pred_valid.any(-1))
    s = pred[keep, :, 2]
    n = (~np.isnan(s)).sum(-1)  # >= 1 for kept rows
    score = np.nansum(s, -1) / np.maximum(n, 1)
    order = np.argsort(-score, kind="stable")
    keep = keep[order]
    return PreparedImage(
        gt=gt[gt_index],
        gt_valid=gt_valid[gt_index],
        gt_index=gt_index,
        pred=pred[keep],
        pred_valid=pred_valid[keep],
        pred_index=keep,
        score=score[order],
    )


@dataclass
class PreparedData:
    images: list[PreparedImage]
    k: int  # bodyparts
    at_most_one: bool  # every input image has <= 1 GT and <= 1 predicted individual


def prepare_all(predictions, ground_truth) -> PreparedData:
    preds, gts = pair_inputs(predictions, ground_truth)
    k = max((a.shape[1] for a in preds + gts), default=0)
    return PreparedData(
        images=[prepare_image(p, g) for p, g in zip(preds, gts)],
        k=k,
        at_most_one=all(len(a) <= 1 for a in preds + gts),
    )


def prepare_unique(unique_predictions, unique_ground_truth, n_images: int) -> PreparedData | None:
    if (unique_predictions is None) != (unique_ground_truth is None):
        raise ValueError("give both unique_predictions and unique_ground_truth, or neither")
    if unique_predictions is None:
        return None
    data = prepare_all(unique_predictions, unique_ground_truth)
    if len(data.images) != n_images:
        raise ValueError(f"{len(data.images)} unique-bodypart images but {n_images} images")
    return data


def cutoffs(pcutoff, k: int, u: int) -> tuple[np.ndarray, np.ndarray]:
    """pcutoff (None, scalar, or K (+U) values) -> per-bodypart arrays [K], [U]."""
    if pcutoff is None:
        pcutoff = -np.inf  # every keypoint with a score (scores < 0 are already NaN)
    p = np.asarray(pcutoff, dtype=np.float64)
    if p.ndim == 0:
        return np.full(k, float(p)), np.full(u, float(p))
    p = p.ravel()
    if p.size != k + u:
        want = f"{k}" if not u else f"{k} + {u} unique"
        raise ValueError(f"pcutoff has {p.size} values; expected one per bodypart ({want})")
    return p[:k], p[k:]


def sigmas(oks_sigma, k: int) -> np.ndarray:
    s = np.asarray(oks_sigma, dtype=np.float64)
    if s.ndim and s.size != k:
        raise ValueError(f"oks_sigma has {s.size} values for {k} bodyparts")
    return np.broadcast_to(s.ravel() if s.ndim else s, (k,))
