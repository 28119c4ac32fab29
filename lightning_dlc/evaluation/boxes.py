"""Boxes compared: IoU (the box tracker's too) and COCO-style mAP and mAR over IoU 0.50:0.05:0.95, in numpy.

The numbers follow COCO's evaluation (as DeepLabCut reports it for detectors, in percent) for
one category, area range "all" and at most ``max_detections`` per image: detections are matched
greedily by score to the unmatched ground-truth box of highest IoU (at least the threshold);
precision is made monotone and read at 101 recall points; AP averages it over recall points and
IoU thresholds, AR the final recall over IoU thresholds. No crowd boxes, nothing ignored.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[n, m]`` of xyxy boxes ``a [n, 4]`` and ``b [m, 4]`` (area = width x height)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _rows(boxes, width: int) -> np.ndarray:
    """Finite rows of an ``[n, width]`` array (NaN-padded rows dropped)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, width)
    return boxes[np.isfinite(boxes).all(axis=1)]


def _match(predicted: np.ndarray, truth: np.ndarray, max_detections: int):
    """Scores and per-threshold true-positive flags ``[T, d]`` of one image's top detections."""
    order = np.argsort(-predicted[:, 4], kind="mergesort")[:max_detections]
    predicted = predicted[order]
    tp = np.zeros((len(IOU_THRESHOLDS), len(predicted)), dtype=bool)
    if len(truth) and len(predicted):
        iou = box_iou(predicted[:, :4], truth)
        for t, threshold in enumerate(IOU_THRESHOLDS):
            taken = np.zeros(len(truth), dtype=bool)
            for d in range(len(predicted)):
                # the free box of highest IoU >= threshold; on a tie the last one, as COCO's loop
                candidates = np.where(taken | (iou[d] < min(threshold, 1 - 1e-10)), -1.0, iou[d])
                match = len(truth) - 1 - int(np.argmax(candidates[::-1]))
                if candidates[match] >= 0:
                    taken[match] = tp[t, d] = True
    return predicted[:, 4], tp


def box_metrics(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                max_detections: int = 100) -> dict[str, float]:
    """Box mAP and mAR (percent) of detections against ground truth, over a list of images.

    Args:
        predicted: per image, ``[n, 5]`` (x1, y1, x2, y2, score); rows with NaN are padding.
            Also accepted: one ``[I, n, 5]`` array.
        truth: per image, ``[m, 4]`` xyxy ground-truth boxes; rows with NaN are padding.
        max_detections: only each image's this many highest-scoring detections count.

    Returns:
        ``mAP`` (IoU 0.50:0.95), ``mAP50``, ``mAP75``, ``mAR``, ``mAR50``, ``mAR75``, in [0, 100];
        NaN when there is no ground-truth box at all (as COCO's -1), 0 when there is some but
        nothing was detected.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} images of predictions but {len(truth)} of ground truth")
    scores, hits, n_truth = [], [], 0
    for pred, gt in zip(predicted, truth):
        pred, gt = _rows(pred, 5), _rows(gt, 4)
        n_truth += len(gt)
        s, tp = _match(pred, gt, max_detections)
        scores.append(s)
        hits.append(tp)
    names = ("mAP", "mAP50", "mAP75", "mAR", "mAR50", "mAR75")
    if n_truth == 0:
        return dict.fromkeys(names, float("nan"))
    scores = np.concatenate(scores)
    hits = np.concatenate(hits, axis=1)
    order = np.argsort(-scores, kind="mergesort")
    hits = hits[:, order]
    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
    recall = np.zeros(len(IOU_THRESHOLDS))
    for t, tp in enumerate(hits):
        tp_sum = np.cumsum(tp, dtype=np.float64)
        fp_sum = np.cumsum(~tp, dtype=np.float64)
        if not len(tp):
            continue
        rc = tp_sum / n_truth
        pr = tp_sum / (tp_sum + fp_sum + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision at recall r: the best at recall >= r
        idx = np.searchsorted(rc, RECALL_POINTS, side="left")
        ok = idx < len(pr)
        precision[t, ok] = pr[idx[ok]]
    at = {50: 0, 75: 5}
    return {
        "mAP": 100 * float(precision.mean()),
        "mAP50": 100 * float(precision[at[50]].mean()),
        "mAP75": 100 * float(precision[at[75]].mean()),
        "mAR": 100 * float(recall.mean()),
        "mAR50": 100 * float(recall[at[50]]),
        "mAR75": 100 * float(recall[at[75]]),
    }
