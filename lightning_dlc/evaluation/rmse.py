"""Pixel errors as DeepLabCut reports them: RMSE of matched individuals, and detection RMSE.

* Multi-animal RMSE: match with OKS (sigma 0.1 always, threshold 1e-6;
  :mod:`~lightning_dlc.evaluation.matching`), then average the Euclidean error
  over all keypoints of all matched pairs that are non-NaN in both. Unmatched
  predictions and unmatched GT individuals do not count at all (a missed animal
  does not raise the RMSE). ``rmse_pcutoff`` keeps keypoints whose score >= pcutoff.
* Single-animal RMSE: the (at most one) prediction is paired with the (at most
  one) GT individual directly, without OKS.
* Detection RMSE (DeepLabCut 2.x's multi-animal RMSE, without assembly): per
  image and bodypart, GT keypoints are taken in order of the distance to their
  nearest detection; each one takes the nearest still-free detection among its 3
  nearest (none if those 3 are taken). Quirk kept for equality: these distances
  are measured in 3-D over (x, y, visibility-vs-score), the reported error is
  the 2-D (x, y) distance.
"""
from __future__ import annotations

import numpy as np

from lightning_dlc.evaluation.inputs import (PreparedData, PreparedImage, cutoffs, prepare_all,
                                             prepare_unique)
from lightning_dlc.evaluation.matching import RMSE_MATCH_SIGMA, RMSE_MATCH_THRESHOLD, best_gt, greedy, oks_matrix

__all__ = ["rmse", "rmse_detections", "rmse_detections_prepared", "rmse_prepared"]


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


def _single_pairs(images: list[PreparedImage], k: int, what: str) -> tuple[np.ndarray, np.ndarray]:
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


def _matched_pairs(images: list[PreparedImage], k: int, sigma,
                   margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors and scores [M, K] of predictions OKS-matched to GT (DeepLabCut's rule)."""
    errs, scores = [], []
    for img in images:
        if len(img.pred) == 0 or len(img.gt) == 0:
            continue
        best, value = best_gt(oks_matrix(img.pred, img.gt, sigma, margin))
        m = greedy(best, value, RMSE_MATCH_THRESHOLD)
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
    data = prepare_all(predictions, ground_truth)
    uniq = prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    return rmse_prepared(data, uniq, pcutoff, single_animal, oks_bbox_margin)


def _pooled_with_unique(err: np.ndarray, score: np.ndarray, cut_k: np.ndarray, uniq: PreparedData | None,
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


def rmse_prepared(data: PreparedData, uniq: PreparedData | None, pcutoff, single_animal, margin: float) -> dict:
    """:func:`rmse` of inputs already prepared (:func:`~lightning_dlc.evaluation.inputs.prepare_all`)."""
    if single_animal is None:
        single_animal = data.at_most_one
    cut_k, cut_u = cutoffs(pcutoff, data.k, uniq.k if uniq else 0)
    if single_animal:
        err, score = _single_pairs(data.images, data.k, "rmse")
    else:
        err, score = _matched_pairs(data.images, data.k, RMSE_MATCH_SIGMA, margin)
    tot = _pooled_with_unique(err, score, cut_k, uniq, cut_u, "rmse")
    return {**_error_scores(tot, "rmse"), "n_per_bodypart": tot["n"], "n_pcutoff_per_bodypart": tot["n_c"]}


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
    data = prepare_all(detections, ground_truth)
    uniq = prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    return rmse_detections_prepared(data, uniq, pcutoff)


def rmse_detections_prepared(data: PreparedData, uniq: PreparedData | None, pcutoff) -> dict:
    """:func:`rmse_detections` of inputs already prepared."""
    k = data.k
    cut_k, cut_u = cutoffs(pcutoff, k, uniq.k if uniq else 0)
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
