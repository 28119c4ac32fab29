"""OKS between predicted and ground-truth individuals, and DeepLabCut's greedy matching by it.

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
"""
from __future__ import annotations

import numpy as np

from lightning_dlc.evaluation.inputs import pair_inputs, prepare_image, sigmas

__all__ = ["EPS", "RMSE_MATCH_SIGMA", "RMSE_MATCH_THRESHOLD", "best_gt", "greedy", "match_individuals", "oks_matrix"]

RMSE_MATCH_SIGMA = 0.1
RMSE_MATCH_THRESHOLD = 1e-6
EPS = np.spacing(1)


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
    sigma = sigmas(sigma, k)
    vis = ~np.isnan(gt_xy).all(-1)  # [G, K]
    n_vis = vis.sum(-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        lo = np.min(np.where(vis[..., None], gt_xy, np.inf), axis=1)  # NaN propagates
        hi = np.max(np.where(vis[..., None], gt_xy, -np.inf), axis=1)
        area = np.prod(hi - lo + EPS + margin * 2, axis=-1)  # [G]
        bad = (n_vis < 2) | np.isclose(area, 0) | np.isnan(area)
        denom = 2 * area[:, None] * (2 * sigma[None, :]) ** 2  # [G, K]
        pred = np.where(np.isnan(pred_xy), np.inf, pred_xy)
        d2 = ((pred[:, None] - gt_xy[None]) ** 2).sum(-1)  # [P, G, K]
        sim = np.exp(-d2 / denom[None])
        sim = np.where(vis[None], sim, 0.0).sum(-1) / np.maximum(n_vis, 1)[None]
    sim[:, bad] = np.nan
    return sim


def best_gt(oks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction: index of its best GT (first on ties, NaN ignored) and that OKS
    (-inf where every OKS is NaN or there is no GT)."""
    n_p, n_g = oks.shape
    if n_g == 0:
        return np.zeros(n_p, dtype=np.int64), np.full(n_p, -np.inf)
    filled = np.where(np.isnan(oks), -np.inf, oks)
    best = filled.argmax(1)
    return best, filled[np.arange(n_p), best]


def greedy(best: np.ndarray, value: np.ndarray, threshold: float) -> np.ndarray:
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
    in :mod:`~lightning_dlc.evaluation.inputs`, then each takes its best-OKS GT if OKS >=
    threshold and that GT is free (no fall-back to the second best).

    Returns ``(gt_index, oks)``, both [P] in the input order: the matched GT
    row (-1 if unmatched, always for predictions or GTs without valid
    keypoints) and its OKS (NaN if unmatched).
    """
    (pred,), (gt,) = pair_inputs([predictions], [ground_truth])
    img = prepare_image(pred, gt)
    gt_index = np.full(len(pred), -1, dtype=np.int64)
    oks_out = np.full(len(pred), np.nan)
    if len(img.pred) == 0 or len(img.gt) == 0:
        return gt_index, oks_out
    oks = oks_matrix(img.pred, img.gt, oks_sigma, oks_bbox_margin)
    best, value = best_gt(oks)
    matched = greedy(best, value, oks_threshold)
    gt_index[img.pred_index[matched]] = img.gt_index[best[matched]]
    oks_out[img.pred_index[matched]] = value[matched]
    return gt_index, oks_out
