"""Pose metrics as DeepLabCut 3 reports them: RMSE, OKS mAP/mAR, detection RMSE.

Plain functions over numpy arrays, used by validation during training and by
evaluation. Numbers equal those of ``deeplabcut.core.metrics`` (checked by
``tests/evaluation/test_metrics_deeplabcut.py``); everything is vectorized, the
only Python loops run over images (and, for detection RMSE, over the ground-truth
individuals of an image).

Inputs
------
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

DeepLabCut's conventions, which these functions follow
------------------------------------------------------
* Cleaning: ground-truth keypoints with visibility <= 0 and predicted keypoints
  with score < 0 become NaN. A keypoint is *valid* when x, y and the third value
  are all non-NaN. Individuals without any valid keypoint are dropped (RMSE and
  detection RMSE); OKS mAP/mAR only keeps individuals with >= 2 valid keypoints.
* Score of a predicted individual: the mean of its keypoint scores (NaN
  ignored). Predictions are ranked by it, ties kept in input order (stable).
* OKS between a prediction and a ground-truth individual, over the GT keypoints
  that are not NaN: ``mean(exp(-d^2 / (2 * area * (2 * sigma)^2)))``; a missing
  predicted keypoint scores 0. ``area`` is the product of the GT keypoints'
  bounding-box width and height, each plus ``np.spacing(1)`` plus
  ``2 * margin`` (margin 0 by default). OKS is undefined (NaN) when the GT has
  fewer than 2 such keypoints or the area is ~0 (``np.isclose(area, 0)``), e.g.
  all its keypoints on one horizontal or vertical line.
* Matching (``match_individuals``): greedy, not Hungarian. Predictions are
  visited by decreasing score; each one looks only at its single best-OKS GT and
  takes it if the OKS >= threshold and that GT is still free. If its best GT is
  already taken, the prediction stays unmatched: it does NOT fall back to its
  second-best GT (unlike pycocotools).
* Multi-animal RMSE: match with OKS (sigma 0.1 always, threshold 1e-6), then
  average the Euclidean error over all keypoints of all matched pairs that are
  non-NaN in both. Unmatched predictions and unmatched GT individuals do not
  count at all (a missed animal does not raise the RMSE).
  ``rmse_pcutoff`` keeps keypoints whose score >= pcutoff.
* Single-animal RMSE: the (at most one) prediction is paired with the (at most
  one) GT individual directly, without OKS.
* mAP/mAR (in percent): for each OKS threshold 0.50:0.05:0.95, match per image,
  rank all predictions of the data set by score, precision made monotone
  (running max from the end) and read at the 101 recall points 0:0.01:1 (first
  rank reaching each recall; 0 if never reached); mAP averages those 10 x 101
  precisions, mAR the 10 final recalls. No predictions at all: mAP = mAR = 0.
  Predictions but no ground truth: mAP = 0 and mAR = NaN.
* Detection RMSE (DeepLabCut 2.x's multi-animal RMSE, without assembly): per
  image and bodypart, GT keypoints are taken in order of the distance to their
  nearest detection; each one takes the nearest still-free detection among its 3
  nearest (none if those 3 are taken). Quirk kept for equality: these distances
  are measured in 3-D over (x, y, visibility-vs-score), the reported error is
  the 2-D (x, y) distance.

Per-bodypart arrays have length ``K + U`` (bodyparts, then unique bodyparts); a
per-bodypart ``pcutoff`` follows the same order, like DeepLabCut's.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
RMSE_MATCH_SIGMA = 0.1
RMSE_MATCH_THRESHOLD = 1e-6
_EPS = np.spacing(1)

__all__ = [
    "OKS_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "compute_metrics",
    "match_individuals",
    "oks_map",
    "oks_matrix",
    "rmse",
    "rmse_detections",
]


# --------------------------------------------------------------------------- inputs
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


def _pair_inputs(predictions, ground_truth) -> tuple[list[np.ndarray], list[np.ndarray]]:
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
class _Image:
    """One image after DeepLabCut's cleaning (see module docstring)."""

    gt: np.ndarray  # [G, K, 3], individuals with >= 1 valid keypoint
    gt_valid: np.ndarray  # [G, K] x, y, visibility all non-NaN
    gt_index: np.ndarray  # [G] index in the input
    pred: np.ndarray  # [P, K, 3], >= 1 valid keypoint, sorted by score (desc, stable)
    pred_valid: np.ndarray  # [P, K]
    pred_index: np.ndarray  # [P] index in the input
    score: np.ndarray  # [P] mean keypoint score


def _prepare(pred: np.ndarray, gt: np.ndarray) -> _Image:
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
    return _Image(
        gt=gt[gt_index],
        gt_valid=gt_valid[gt_index],
        gt_index=gt_index,
        pred=pred[keep],
        pred_valid=pred_valid[keep],
        pred_index=keep,
        score=score[order],
    )


@dataclass
class _Data:
    images: list[_Image]
    k: int  # bodyparts
    at_most_one: bool  # every input image has <= 1 GT and <= 1 predicted individual


def _prepare_all(predictions, ground_truth) -> _Data:
    preds, gts = _pair_inputs(predictions, ground_truth)
    k = max((a.shape[1] for a in preds + gts), default=0)
    return _Data(
        images=[_prepare(p, g) for p, g in zip(preds, gts)],
        k=k,
        at_most_one=all(len(a) <= 1 for a in preds + gts),
    )


def _prepare_unique(unique_predictions, unique_ground_truth, n_images: int) -> _Data | None:
    if (unique_predictions is None) != (unique_ground_truth is None):
        raise ValueError("give both unique_predictions and unique_ground_truth, or neither")
    if unique_predictions is None:
        return None
    data = _prepare_all(unique_predictions, unique_ground_truth)
    if len(data.images) != n_images:
        raise ValueError(f"{len(data.images)} unique-bodypart images but {n_images} images")
    return data


def _cutoffs(pcutoff, k: int, u: int) -> tuple[np.ndarray, np.ndarray]:
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


def _sigma(oks_sigma, k: int) -> np.ndarray:
    s = np.asarray(oks_sigma, dtype=np.float64)
    if s.ndim and s.size != k:
        raise ValueError(f"oks_sigma has {s.size} values for {k} bodyparts")
    return np.broadcast_to(s.ravel() if s.ndim else s, (k,))


# --------------------------------------------------------------------------- OKS, matching
def oks_matrix(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    sigma: float | np.ndarray = 0.1,
    margin: float = 0.0,
) -> np.ndarray:
    """OKS between every prediction and every GT individual of one image.

    ``pred_xy`` [P, K, >=2], ``gt_xy`` [G, K, >=2] (only x, y are used; NaN =
    missing). ``sigma``: scalar or one per bodypart. Returns [P, G], NaN where
    the GT has < 2 keypoints or a ~zero bounding-box area (see module docstring).
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64)[..., :2]
    gt_xy = np.asarray(gt_xy, dtype=np.float64)[..., :2]
    n_p, n_g, k = pred_xy.shape[0], gt_xy.shape[0], gt_xy.shape[1]
    if n_p == 0 or n_g == 0:
        return np.zeros((n_p, n_g))
    sigma = _sigma(sigma, k)
    vis = ~np.isnan(gt_xy).all(-1)  # [G, K]
    n_vis = vis.sum(-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        lo = np.min(np.where(vis[..., None], gt_xy, np.inf), axis=1)  # NaN propagates
        hi = np.max(np.where(vis[..., None], gt_xy, -np.inf), axis=1)
        area = np.prod(hi - lo + _EPS + margin * 2, axis=-1)  # [G]
        bad = (n_vis < 2) | np.isclose(area, 0) | np.isnan(area)
        denom = 2 * area[:, None] * (2 * sigma[None, :]) ** 2  # [G, K]
        pred = np.where(np.isnan(pred_xy), np.inf, pred_xy)
        d2 = ((pred[:, None] - gt_xy[None]) ** 2).sum(-1)  # [P, G, K]
        sim = np.exp(-d2 / denom[None])
        sim = np.where(vis[None], sim, 0.0).sum(-1) / np.maximum(n_vis, 1)[None]
    sim[:, bad] = np.nan
    return sim


def _best_gt(oks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction: index of its best GT (first on ties, NaN ignored) and that OKS
    (-inf where every OKS is NaN or there is no GT)."""
    n_p, n_g = oks.shape
    if n_g == 0:
        return np.zeros(n_p, dtype=np.int64), np.full(n_p, -np.inf)
    filled = np.where(np.isnan(oks), -np.inf, oks)
    best = filled.argmax(1)
    return best, filled[np.arange(n_p), best]


def _greedy(best: np.ndarray, value: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy matching given each prediction's best GT and its OKS.

    ``best`` are GT ids (unique over all images when several are matched at
    once); predictions must be in visiting order (image by image, by score
    within an image). Returns a bool mask of the matched predictions: the first
    one (in order) whose best GT is g and whose OKS >= threshold takes g; later
    ones with the same best GT stay unmatched. Matched GT of prediction i:
    ``best[i]``.
    """
    ok = np.isfinite(value) & (value >= threshold)
    rows = np.flatnonzero(ok)
    matched = np.zeros(len(best), dtype=bool)
    if rows.size:
        _, first = np.unique(best[rows], return_index=True)
        matched[rows[first]] = True
    return matched


def match_individuals(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    *,
    oks_sigma: float | np.ndarray = RMSE_MATCH_SIGMA,
    oks_threshold: float = RMSE_MATCH_THRESHOLD,
    oks_bbox_margin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """DeepLabCut's greedy OKS matching of predicted to GT individuals in one image.

    ``predictions`` [P, K, 3] (x, y, score) in any order, ``ground_truth``
    [G, K, 3] (x, y, visibility). Defaults are those DeepLabCut uses to match
    for RMSE (sigma 0.1, threshold 1e-6). Predictions are cleaned and ranked as
    in the module docstring, then each takes its best-OKS GT if OKS >=
    threshold and that GT is free (no fall-back to the second best).

    Returns ``(gt_index, oks)``, both [P] in the input order: the matched GT
    row (-1 if unmatched, always for predictions or GTs without valid
    keypoints) and its OKS (NaN if unmatched).
    """
    (pred,), (gt,) = _pair_inputs([predictions], [ground_truth])
    img = _prepare(pred, gt)
    gt_index = np.full(len(pred), -1, dtype=np.int64)
    oks_out = np.full(len(pred), np.nan)
    if len(img.pred) == 0 or len(img.gt) == 0:
        return gt_index, oks_out
    oks = oks_matrix(img.pred, img.gt, oks_sigma, oks_bbox_margin)
    best, value = _best_gt(oks)
    matched = _greedy(best, value, oks_threshold)
    gt_index[img.pred_index[matched]] = img.gt_index[best[matched]]
    oks_out[img.pred_index[matched]] = value[matched]
    return gt_index, oks_out


# --------------------------------------------------------------------------- RMSE
def _pooled(err: np.ndarray, score: np.ndarray, cut: np.ndarray) -> dict[str, np.ndarray]:
    """Sums and counts per bodypart of errors [M, K] (NaN = not counted)."""
    ok = ~np.isnan(err)
    with np.errstate(invalid="ignore"):
        ok_c = ok & (score >= cut[None, :])
    return {
        "sum": np.where(ok, err, 0.0).sum(0),
        "n": ok.sum(0),
        "sum_c": np.where(ok_c, err, 0.0).sum(0),
        "n_c": ok_c.sum(0),
    }


def _ratio(s, n):
    s, n = np.asarray(s, dtype=np.float64), np.asarray(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _single_pairs(images: list[_Image], k: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Errors and scores [M, K] of single-animal pairs (one GT, one prediction)."""
    errs, scores = [], []
    for i, img in enumerate(images):
        if len(img.gt) > 1 or len(img.pred) > 1:
            raise ValueError(
                f"{what}: image {i} has {len(img.gt)} ground-truth individuals and "
                f"{len(img.pred)} predictions; single-animal RMSE needs at most one of each"
            )
        if len(img.gt) == 1 and len(img.pred) == 1:
            errs.append(np.sqrt(((img.pred[0, :, :2] - img.gt[0, :, :2]) ** 2).sum(-1)))
            scores.append(img.pred[0, :, 2])
    if not errs:
        return np.zeros((0, k)), np.zeros((0, k))
    return np.stack(errs), np.stack(scores)


def _matched_pairs(images: list[_Image], k: int, sigma, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors and scores [M, K] of predictions OKS-matched to GT (DeepLabCut's rule)."""
    errs, scores = [], []
    for img in images:
        if len(img.pred) == 0 or len(img.gt) == 0:
            continue
        best, value = _best_gt(oks_matrix(img.pred, img.gt, sigma, margin))
        m = _greedy(best, value, RMSE_MATCH_THRESHOLD)
        if m.any():
            d = img.pred[m, :, :2] - img.gt[best[m], :, :2]
            errs.append(np.sqrt((d**2).sum(-1)))
            scores.append(img.pred[m, :, 2])
    if not errs:
        return np.zeros((0, k)), np.zeros((0, k))
    return np.concatenate(errs), np.concatenate(scores)


def rmse(
    predictions,
    ground_truth,
    pcutoff=None,
    *,
    single_animal: bool | None = None,
    unique_predictions=None,
    unique_ground_truth=None,
    oks_bbox_margin: float = 0.0,
) -> dict:
    """Mean Euclidean pixel error, as DeepLabCut reports it ("RMSE").

    Multi-animal: predictions are matched to GT individuals by
    :func:`match_individuals` (OKS sigma 0.1, threshold 1e-6, ``oks_bbox_margin``)
    and the error averages every keypoint that is present in both members of a
    matched pair; unmatched predictions and GT individuals are ignored.
    Single-animal (``single_animal=True``; ``None`` infers it when every image
    has at most one GT and one predicted individual): the prediction and the GT
    are paired directly. Unique bodyparts (``[n_images, K_u, 3]`` or per-image
    ``[1, K_u, 3]``) are paired directly too and pooled into the totals.

    ``pcutoff``: scalar, or one value per bodypart (K, or K + U with unique
    bodyparts); ``rmse_pcutoff`` keeps keypoints with score >= pcutoff. ``None``
    keeps every keypoint that has a score.

    Returns a dict: ``rmse``, ``rmse_pcutoff`` (floats, NaN when nothing counts),
    and arrays of length K + U: ``rmse_per_bodypart``,
    ``rmse_pcutoff_per_bodypart``, ``n_per_bodypart``, ``n_pcutoff_per_bodypart``
    (number of keypoints averaged).
    """
    data = _prepare_all(predictions, ground_truth)
    uniq = _prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    return _rmse(data, uniq, pcutoff, single_animal, oks_bbox_margin)


def _pooled_with_unique(err: np.ndarray, score: np.ndarray, cut_k: np.ndarray, uniq: _Data | None,
                        cut_u: np.ndarray, what: str) -> dict[str, np.ndarray]:
    """:func:`_pooled` sums and counts of the K bodyparts, then of the U unique ones (paired directly)."""
    parts = [_pooled(err, score, cut_k)]
    if uniq is not None:
        u_err, u_score = _single_pairs(uniq.images, uniq.k, f"{what} (unique bodyparts)")
        parts.append(_pooled(u_err, u_score, cut_u))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _error_scores(tot: dict[str, np.ndarray], name: str) -> dict:
    """Mean errors, all and above pcutoff, pooled and per bodypart, as ``name``, ``name_pcutoff``, ..."""
    return {
        name: float(_ratio(tot["sum"].sum(), tot["n"].sum())),
        f"{name}_pcutoff": float(_ratio(tot["sum_c"].sum(), tot["n_c"].sum())),
        f"{name}_per_bodypart": _ratio(tot["sum"], tot["n"]),
        f"{name}_pcutoff_per_bodypart": _ratio(tot["sum_c"], tot["n_c"]),
    }


def _rmse(data: _Data, uniq: _Data | None, pcutoff, single_animal, margin: float) -> dict:
    if single_animal is None:
        single_animal = data.at_most_one
    cut_k, cut_u = _cutoffs(pcutoff, data.k, uniq.k if uniq else 0)
    if single_animal:
        err, score = _single_pairs(data.images, data.k, "rmse")
    else:
        err, score = _matched_pairs(data.images, data.k, RMSE_MATCH_SIGMA, margin)
    tot = _pooled_with_unique(err, score, cut_k, uniq, cut_u, "rmse")
    return {**_error_scores(tot, "rmse"), "n_per_bodypart": tot["n"], "n_pcutoff_per_bodypart": tot["n_c"]}


# --------------------------------------------------------------------------- mAP / mAR
def oks_map(
    predictions,
    ground_truth,
    *,
    oks_sigma: float | np.ndarray = 0.1,
    oks_bbox_margin: float = 0.0,
) -> dict[str, float]:
    """OKS mAP and mAR in percent, as DeepLabCut computes them (module docstring).

    ``oks_sigma``: scalar or one per bodypart. Only individuals (GT and
    predicted) with >= 2 valid keypoints take part. Returns ``{"mAP", "mAR"}``.
    """
    return _oks_map(_prepare_all(predictions, ground_truth).images, oks_sigma, oks_bbox_margin)


def _oks_map(images: list[_Image], oks_sigma, margin: float) -> dict[str, float]:
    values, gids, scores = [], [], []
    total_gt = 0
    for img in images:
        g_keep = img.gt_valid.sum(-1) > 1
        p_keep = img.pred_valid.sum(-1) > 1
        gt, pred = img.gt[g_keep], img.pred[p_keep]
        if len(pred):
            best, value = _best_gt(oks_matrix(pred, gt, oks_sigma, margin))
            values.append(value)
            gids.append(best + total_gt)
            scores.append(img.score[p_keep])
        total_gt += len(gt)
    if not scores:
        return {"mAP": 0.0, "mAR": 0.0}
    value = np.concatenate(values)
    gid = np.concatenate(gids)
    score = np.concatenate(scores)
    order = np.argsort(-score, kind="stable")
    n = np.arange(1, len(score) + 1)

    precisions = np.zeros((len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS)))
    recalls = np.zeros(len(OKS_THRESHOLDS))
    for t, thr in enumerate(OKS_THRESHOLDS):
        hit = _greedy(gid, value, thr)[order]
        tp = np.cumsum(hit)
        fp = n - tp
        if total_gt == 0:  # no GT: recall undefined, every prediction a false positive
            recalls[t] = np.nan
            continue
        rc = tp / total_gt
        pr = tp / (fp + tp + _EPS)
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        valid = idx < len(pr)
        precisions[t, valid] = pr[idx[valid]]
        recalls[t] = rc[-1]
    return {"mAP": 100 * float(precisions.mean()), "mAR": 100 * float(recalls.mean())}


# --------------------------------------------------------------------------- detection RMSE
def _assign_detections(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """DeepLabCut 2.x's per-bodypart greedy assignment in one image.

    ``gt`` [G, K, 3], ``pred`` [P, K, 3] (rows with any NaN are absent).
    Returns [K, G] indices into ``pred`` (-1: no detection assigned).
    """
    n_g, k = gt.shape[:2]
    n_p = pred.shape[0]
    out = np.full((k, n_g), -1, dtype=np.int64)
    if n_g == 0 or n_p == 0:
        return out
    gv = ~np.isnan(gt).any(-1)  # [G, K]
    pv = ~np.isnan(pred).any(-1)  # [P, K]
    d = np.sqrt(((gt[:, None] - pred[None]) ** 2).sum(-1))  # [G, P, K], over x, y and the 3rd value
    d = np.where(gv[:, None] & pv[None], d, np.inf).transpose(2, 0, 1)  # [K, G, P]
    nn = np.argsort(d, axis=-1, kind="stable")[..., :3]  # [K, G, <=3]
    nn_d = np.take_along_axis(d, nn, -1)
    nn_ok = np.isfinite(nn_d)
    gorder = np.argsort(nn_d[..., 0], axis=-1, kind="stable")  # [K, G], GTs without detection last
    picked = np.zeros((k, n_p), dtype=bool)
    rows = np.arange(k)
    for r in range(n_g):
        g = gorder[:, r]
        cand = nn[rows, g]  # [K, <=3]
        free = nn_ok[rows, g] & ~picked[rows[:, None], cand]
        has = free.any(-1)
        sel = cand[rows, free.argmax(-1)]
        out[rows[has], g[has]] = sel[has]
        picked[rows[has], sel[has]] = True
    return out


def rmse_detections(
    detections,
    ground_truth,
    pcutoff=None,
    *,
    unique_predictions=None,
    unique_ground_truth=None,
) -> dict:
    """Error of detections regardless of assembly (DeepLabCut 2.x's multi-animal RMSE).

    ``detections`` is any prediction input (``[n, K, 3]`` per image); individuals
    are ignored, so unassembled peaks can be passed as rows padded with NaN
    (e.g. row j holds the j-th peak of every bodypart). Per image and bodypart,
    each GT keypoint is assigned greedily to one of its 3 nearest detections
    (module docstring, incl. the 3-D distance quirk); the result is the mean 2-D
    distance of the assigned pairs; ``_pcutoff`` keeps pairs whose detection
    score >= pcutoff. Unique bodyparts are paired directly and pooled.

    Returns ``rmse_detections``, ``rmse_detections_pcutoff`` (NaN if nothing
    counts) and arrays of length K + U: ``rmse_detections_per_bodypart``,
    ``rmse_detections_pcutoff_per_bodypart``.
    """
    data = _prepare_all(detections, ground_truth)
    uniq = _prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    return _rmse_detections(data, uniq, pcutoff)


def _rmse_detections(data: _Data, uniq: _Data | None, pcutoff) -> dict:
    k = data.k
    cut_k, cut_u = _cutoffs(pcutoff, k, uniq.k if uniq else 0)
    errs, scores = [np.zeros((0, k))], [np.zeros((0, k))]
    for img in data.images:
        a = _assign_detections(img.gt, img.pred)  # [K, G]
        kk, gg = np.nonzero(a >= 0)
        if not kk.size:
            continue
        p = a[kk, gg]
        e = np.full((img.gt.shape[0], k), np.nan)
        s = np.full((img.gt.shape[0], k), np.nan)
        e[gg, kk] = np.sqrt(((img.gt[gg, kk, :2] - img.pred[p, kk, :2]) ** 2).sum(-1))
        s[gg, kk] = img.pred[p, kk, 2]
        errs.append(e)
        scores.append(s)
    tot = _pooled_with_unique(np.concatenate(errs), np.concatenate(scores), cut_k, uniq, cut_u, "rmse_detections")
    return _error_scores(tot, "rmse_detections")


# --------------------------------------------------------------------------- all at once
def compute_metrics(
    predictions,
    ground_truth,
    pcutoff=0.6,
    oks_sigma: float | np.ndarray = 0.1,
    *,
    oks_bbox_margin: float = 0.0,
    single_animal: bool | None = None,
    unique_predictions=None,
    unique_ground_truth=None,
    detections=None,
    bodyparts: Sequence[str] | None = None,
    unique_bodyparts: Sequence[str] | None = None,
    return_per_bodypart: bool = False,
):
    """RMSE, OKS mAP/mAR (and detection RMSE) like DeepLabCut's ``compute_metrics``.

    Returns a flat dict of floats: ``rmse``, ``rmse_pcutoff``, ``mAP``, ``mAR``
    (percent), plus ``rmse_detections`` and ``rmse_detections_pcutoff`` when
    ``detections`` is given (pass ``detections=predictions`` for DeepLabCut's
    own variant, computed on the assembled predictions). As in DeepLabCut,
    ``oks_sigma`` and ``oks_bbox_margin`` apply to mAP/mAR; matching for RMSE
    always uses sigma 0.1 and no margin. DeepLabCut's evaluation uses
    ``single_animal = (max_num_animals == 1)`` and pcutoff from config.yaml
    (0.6); its validation during training uses ``single_animal=False`` and 0.6.

    With ``return_per_bodypart=True`` returns ``(scores, table)``, ``table`` a
    dict of equal-length lists (one row per bodypart, then unique bodypart;
    ``pandas.DataFrame(table)``): ``bodypart``, ``unique``, ``rmse``,
    ``rmse_pcutoff``, ``n``, ``n_pcutoff`` (and ``rmse_detections``,
    ``rmse_detections_pcutoff`` with ``detections``).

    Empty or all-NaN predictions give NaN RMSE and mAP = mAR = 0; cost is linear
    in the number of predicted individuals (no combinatorial matching).
    """
    data = _prepare_all(predictions, ground_truth)
    uniq = _prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    r = _rmse(data, uniq, pcutoff, single_animal, 0.0)
    scores = {"rmse": r["rmse"], "rmse_pcutoff": r["rmse_pcutoff"]}
    scores.update(_oks_map(data.images, oks_sigma, oks_bbox_margin))
    det = None
    if detections is not None:
        det_data = data if detections is predictions else _prepare_all(detections, ground_truth)
        if len(det_data.images) != len(data.images):
            raise ValueError(f"{len(det_data.images)} detection images but {len(data.images)} images")
        det = _rmse_detections(det_data, uniq, pcutoff)
        scores["rmse_detections"] = det["rmse_detections"]
        scores["rmse_detections_pcutoff"] = det["rmse_detections_pcutoff"]
    if not return_per_bodypart:
        return scores

    n_all = len(r["rmse_per_bodypart"])
    k = data.k
    names = list(bodyparts) if bodyparts is not None else [str(i) for i in range(k)]
    u_names = (
        list(unique_bodyparts) if unique_bodyparts is not None else [f"unique_{i}" for i in range(n_all - k)]
    )
    if len(names) != k or len(u_names) != n_all - k:
        raise ValueError(
            f"{len(names)} bodypart and {len(u_names)} unique bodypart names for "
            f"{k} bodyparts and {n_all - k} unique bodyparts"
        )
    table = {
        "bodypart": names + u_names,
        "unique": [False] * k + [True] * (n_all - k),
        "rmse": r["rmse_per_bodypart"].tolist(),
        "rmse_pcutoff": r["rmse_pcutoff_per_bodypart"].tolist(),
        "n": r["n_per_bodypart"].tolist(),
        "n_pcutoff": r["n_pcutoff_per_bodypart"].tolist(),
    }
    if det is not None:
        table["rmse_detections"] = det["rmse_detections_per_bodypart"].tolist()
        table["rmse_detections_pcutoff"] = det["rmse_detections_pcutoff_per_bodypart"].tolist()
    return scores, table
