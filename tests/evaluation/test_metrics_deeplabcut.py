"""Our metrics equal DeepLabCut 3's own (``deeplabcut.core.metrics``) on random data.

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI);
.ci/run runs it in DeepLabCut's environment:

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/evaluation/test_metrics_deeplabcut.py
"""
from __future__ import annotations

import numpy as np
import pytest

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
import_deeplabcut()

from deeplabcut.core.metrics import compute_metrics as dlc_compute_metrics  # noqa: E402
from deeplabcut.core.metrics import distance_metrics as dlc_distance  # noqa: E402
from deeplabcut.core.metrics import matching as dlc_matching  # noqa: E402
from deeplabcut.core.metrics.api import prepare_evaluation_data  # noqa: E402

from lightning_dlc.evaluation import compute_metrics, match_individuals, oks_matrix  # noqa: E402

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

ATOL = 1e-6
SEEDS = range(8)


def _close(ours, theirs, what):
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), rtol=0, atol=ATOL, err_msg=what)


def _individual(rng, k, center, spread):
    kp = center + rng.normal(0, spread, (k, 2))
    return np.concatenate([kp, np.full((k, 1), 2.0)], axis=1)


def random_case(rng, k=6, max_gt=4, single=False, tie_scores=False):
    """GT / prediction dicts with missing keypoints, missed and extra individuals."""
    gts, preds = {}, {}
    n_images = int(rng.integers(4, 10))
    for i in range(n_images):
        n_gt = 1 if single else int(rng.integers(0, max_gt + 1))
        gt = np.array([_individual(rng, k, rng.uniform(50, 450, 2), rng.uniform(5, 40)) for _ in range(n_gt)])
        gt = gt.reshape(n_gt, k, 3)
        for g in range(n_gt):
            r = rng.random()
            if r < 0.15:  # a single labeled keypoint
                gt[g, rng.permutation(k)[1:]] = 0.0
            elif r < 0.25:  # two keypoints on one horizontal line: zero area
                gt[g, 2:] = 0.0
                gt[g, 1, 1] = gt[g, 0, 1]
            elif r < 0.3:  # nothing labeled
                gt[g] = 0.0
            else:  # some unlabeled keypoints, as DeepLabCut's loader (0, 0, 0) or as NaN
                miss = rng.random(k) < 0.25
                gt[g, miss] = 0.0 if rng.random() < 0.5 else np.nan
        pred = []
        for g in range(n_gt):
            if rng.random() < 0.2 and not single:  # missed animal
                continue
            p = gt[g].copy()
            base = np.where(gt[g, :, 2:] > 0, gt[g, :, :2], rng.uniform(0, 500, (k, 2)))
            p[:, :2] = base + rng.normal(0, rng.choice([0.3, 1.0, 5.0, 30.0]), (k, 2))
            p[:, 2] = rng.random(k)
            p[rng.random(k) < 0.15, :] = np.nan
            p[rng.random(k) < 0.05, 2] = -1.0
            pred.append(p)
        n_extra = 0 if single else int(rng.integers(0, 3))
        for _ in range(n_extra):
            p = _individual(rng, k, rng.uniform(0, 500, 2), rng.uniform(5, 60))
            p[:, 2] = rng.random(k) * 0.7
            p[rng.random(k) < 0.3, :] = np.nan
            pred.append(p)
        if single and rng.random() < 0.2:
            pred = []
        pred = np.array(pred).reshape(-1, k, 3)
        pred = pred[rng.permutation(len(pred))]
        if tie_scores:
            pred[..., 2] = np.round(pred[..., 2], 1)
        gts[f"img{i:03d}.png"] = gt
        preds[f"img{i:03d}.png"] = pred
    return gts, preds


def _compare(gts, preds, *, single, pcutoff, sigma, margin, unique=None, per_keypoint=True):
    u_gt, u_pred = unique if unique else (None, None)
    theirs = dlc_compute_metrics(
        gts,
        preds,
        single_animal=single,
        unique_bodypart_gt=u_gt,
        unique_bodypart_poses=u_pred,
        pcutoff=pcutoff,
        oks_bbox_margin=margin,
        oks_sigma=sigma,
        per_keypoint_rmse=per_keypoint,  # DeepLabCut fails on it when nothing is matched
        compute_detection_rmse=not single,
    )
    ours, table = compute_metrics(
        preds,
        gts,
        pcutoff=pcutoff,
        oks_sigma=sigma,
        oks_bbox_margin=margin,
        single_animal=single,
        unique_predictions=u_pred,
        unique_ground_truth=u_gt,
        detections=None if single else preds,
        return_per_bodypart=True,
    )
    for key in ("rmse", "rmse_pcutoff", "mAP", "mAR"):
        _close(ours[key], theirs[key], key)
    if not single:
        _close(ours["rmse_detections"], theirs["rmse_detections"], "rmse_detections")
        _close(ours["rmse_detections_pcutoff"], theirs["rmse_detections_pcutoff"], "rmse_detections_pcutoff")
    k = next(iter(gts.values())).shape[1]
    for i in range(k):
        if f"rmse_keypoint_{i}" in theirs:
            _close(table["rmse"][i], theirs[f"rmse_keypoint_{i}"], f"rmse_keypoint_{i}")
    if unique:
        for i in range(len(table["rmse"]) - k):
            _close(table["rmse"][k + i], theirs[f"rmse_unique_keypoint_{i}"], f"rmse_unique_keypoint_{i}")
    return ours


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_animal_equals_deeplabcut(seed):
    rng = np.random.default_rng(seed)
    gts, preds = random_case(rng, tie_scores=seed % 3 == 2)
    ours = _compare(gts, preds, single=False, pcutoff=0.6, sigma=0.1, margin=0.0)
    assert 0 < ours["mAP"] < 100 and 0 < ours["mAR"] < 100 and ours["rmse"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_animal_options_equal_deeplabcut(seed):
    """Per-bodypart pcutoff and sigma, a bbox margin, unique bodyparts."""
    rng = np.random.default_rng(100 + seed)
    k = 5
    gts, preds = random_case(rng, k=k)
    sigma = rng.uniform(0.025, 0.15, k)
    u = 2
    u_gt, u_pred = {}, {}
    for name in gts:
        g = rng.uniform(0, 500, (1, u, 3))
        g[..., 2] = 2.0
        if rng.random() < 0.2:
            g[0, 0] = 0.0
        p = g.copy()
        p[..., :2] += rng.normal(0, 4, (1, u, 2))
        p[..., 2] = rng.random((1, u))
        u_gt[name], u_pred[name] = g, p
    pcutoff = list(rng.uniform(0.2, 0.8, k + u))
    _compare(gts, preds, single=False, pcutoff=pcutoff, sigma=sigma, margin=float(seed % 3) * 5, unique=(u_gt, u_pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_single_animal_equals_deeplabcut(seed):
    rng = np.random.default_rng(200 + seed)
    gts, preds = random_case(rng, single=True)
    _compare(gts, preds, single=True, pcutoff=0.5, sigma=0.1, margin=0.0)
    # the same data treated as multi-animal (as DeepLabCut's validation during training does)
    _compare(gts, preds, single=False, pcutoff=0.5, sigma=0.1, margin=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_oks_and_matching_equal_deeplabcut(seed):
    rng = np.random.default_rng(300 + seed)
    k = 6
    gts, preds = random_case(rng, k=k)
    sigma = 0.1 if seed % 2 else rng.uniform(0.025, 0.15, k)
    margin = float(seed % 3)
    for gt, pred in prepare_evaluation_data(gts, preds):
        theirs = dlc_distance.compute_oks_matrix(gt[:, :, :2], pred[:, :, :2], oks_sigma=sigma, oks_bbox_margin=margin)
        ours = oks_matrix(pred, gt, sigma, margin)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        for threshold in (1e-6, 0.5, 0.8):
            dlc_matches = dlc_matching.match_greedy_oks(gt, pred, oks_matrix=theirs, oks_threshold=threshold)
            gt_index, oks = match_individuals(
                pred, gt, oks_sigma=sigma, oks_threshold=threshold, oks_bbox_margin=margin
            )
            for m, g, o in zip(dlc_matches, gt_index, oks):
                if m.gt is None:
                    assert g == -1
                else:
                    assert g >= 0 and np.array_equal(m.gt, gt[g], equal_nan=True)
                    assert o == pytest.approx(m.oks, abs=1e-12)


def test_no_ground_truth_and_no_predictions_like_deeplabcut():
    rng = np.random.default_rng(7)
    k = 4
    pred = rng.uniform(0, 100, (3, k, 3))
    gts = {"a": np.zeros((0, k, 3)), "b": np.zeros((2, k, 3))}
    preds = {"a": pred, "b": pred[:1]}
    with np.errstate(all="ignore"):  # DeepLabCut divides by 0 ground-truth individuals
        ours = _compare(gts, preds, single=False, pcutoff=0.6, sigma=0.1, margin=0.0, per_keypoint=False)
    assert ours["mAP"] == 0 and np.isnan(ours["mAR"]) and np.isnan(ours["rmse"])
    gts = {"a": rng.uniform(0, 100, (2, k, 3)) + [0, 0, 1]}
    preds = {"a": np.full((2, k, 3), np.nan)}
    ours = _compare(gts, preds, single=False, pcutoff=0.6, sigma=0.1, margin=0.0, per_keypoint=False)
    assert ours["mAP"] == 0 and ours["mAR"] == 0 and np.isnan(ours["rmse"])
