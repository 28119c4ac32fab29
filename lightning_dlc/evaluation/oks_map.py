"""OKS mAP and mAR as DeepLabCut computes them.

In percent: for each OKS threshold 0.50:0.05:0.95, match per image
(:func:`~lightning_dlc.evaluation.matching.match_individuals`' greedy rule), rank
all predictions of the data set by score, precision made monotone (running max
from the end) and read at the 101 recall points 0:0.01:1 (first rank reaching
each recall; 0 if never reached); mAP averages those 10 x 101 precisions, mAR
the 10 final recalls. Only individuals with >= 2 valid keypoints take part. No
predictions at all: mAP = mAR = 0. Predictions but no ground truth: mAP = 0 and
mAR = NaN.
"""
from __future__ import annotations

import numpy as np

from lightning_dlc.evaluation.inputs import PreparedImage, prepare_all
from lightning_dlc.evaluation.matching import EPS, best_gt, greedy, oks_matrix

__all__ = ["OKS_THRESHOLDS", "RECALL_THRESHOLDS", "oks_map", "oks_map_prepared"]

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


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
    return oks_map_prepared(prepare_all(predictions, ground_truth).images, oks_sigma, oks_bbox_margin)


def oks_map_prepared(images: list[PreparedImage], oks_sigma, margin: float) -> dict[str, float]:
    """:func:`oks_map` of images already prepared (:func:`~lightning_dlc.evaluation.inputs.prepare_all`)."""
    values, gids, scores = [], [], []
    total_gt = 0
    for img in images:
        g_keep = img.gt_valid.sum(-1) > 1
        p_keep = img.pred_valid.sum(-1) > 1
        gt, pred = img.gt[g_keep], img.pred[p_keep]
        if len(pred):
            best, value = best_gt(oks_matrix(pred, gt, oks_sigma, margin))
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
        hit = greedy(gid, value, thr)[order]
        tp = np.cumsum(hit)
        fp = n - tp
        if total_gt == 0:  # no GT: recall undefined, every prediction a false positive
            recalls[t] = np.nan
            continue
        rc = tp / total_gt
        pr = tp / (fp + tp + EPS)
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        valid = idx < len(pr)
        precisions[t, valid] = pr[idx[valid]]
        recalls[t] = rc[-1]
    return {"mAP": 100 * float(precisions.mean()), "mAR": 100 * float(recalls.mean())}
