"""RMSE, OKS mAP/mAR and compute_metrics on hand-computed cases (DeepLabCut's definitions)."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from lightning_dlc.evaluation import compute_metrics, oks_map, rmse
from pose_arrays import NAN, gt_ind, ind  # tests/pose_arrays.py


# two well-separated animals, 4 keypoints each, non-degenerate bounding boxes
A = [(0, 0), (10, 20), (30, 5), (15, 15)]
B = [(200, 100), (230, 130), (210, 140), (220, 90)]


def two_animals(n_images=3):
    gt = np.stack([np.stack([gt_ind(A), gt_ind(B)]) + [i * 7, i * 3, 0] for i in range(n_images)])
    return gt


# --------------------------------------------------------------------------- perfect, shift
def test_perfect_prediction():
    gt = two_animals()
    pred = gt.copy()
    pred[..., 2] = 0.9
    scores = compute_metrics(pred, gt)
    assert scores == {"rmse": 0.0, "rmse_pcutoff": 0.0, "mAP": 100.0, "mAR": 100.0}
    # single animal
    single = compute_metrics(pred[:, :1], gt[:, :1])
    assert single == {"rmse": 0.0, "rmse_pcutoff": 0.0, "mAP": 100.0, "mAR": 100.0}


def test_known_shift_gives_that_error():
    gt = two_animals()
    pred = gt.copy()
    pred[..., 0] += 3
    pred[..., 1] -= 4
    pred[..., 2] = 0.8
    pred = pred[:, ::-1]  # order of predicted individuals does not matter
    r = rmse(pred, gt, pcutoff=0.6)
    assert r["rmse"] == pytest.approx(5.0) and r["rmse_pcutoff"] == pytest.approx(5.0)
    np.testing.assert_allclose(r["rmse_per_bodypart"], 5.0)
    np.testing.assert_array_equal(r["n_per_bodypart"], [6, 6, 6, 6])
    assert math.isnan(compute_metrics(pred, gt, pcutoff=0.85)["rmse_pcutoff"])  # every score is 0.8


# --------------------------------------------------------------------------- missing data
def test_missing_keypoints_are_not_counted():
    gt = np.stack([gt_ind([(0, 0), (10, 20), (5, 5)])])[None]
    gt[0, 0, 2, 2] = 0  # unlabeled (visibility 0), as DeepLabCut's loader writes it
    pred = np.stack([ind([(2, 0), None, (100, 100)], 0.9)])[None]  # keypoint 1 not predicted
    r = rmse(pred, gt, single_animal=False)
    assert r["rmse"] == pytest.approx(2.0)
    np.testing.assert_array_equal(r["n_per_bodypart"], [1, 0, 0])
    assert r["rmse_per_bodypart"][0] == pytest.approx(2.0) and np.isnan(r["rmse_per_bodypart"][1:]).all()
    # a keypoint with score < 0 is missing too
    pred[0, 0, 0, 2] = -1
    assert math.isnan(rmse(pred, gt, single_animal=False)["rmse"])


def test_missing_individual_does_not_raise_rmse_but_lowers_recall():
    gt = two_animals(1)
    pred = gt[:, :1].copy()  # only animal A predicted, perfectly
    pred[..., 2] = 0.9
    scores = compute_metrics(pred, gt)
    assert scores["rmse"] == 0.0
    assert scores["mAR"] == pytest.approx(50.0)
    # precision 1 up to recall 0.5 (51 of the 101 recall points), 0 beyond
    assert scores["mAP"] == pytest.approx(100 * 51 / 101)


@pytest.mark.parametrize("extra_score, expected_map", [(0.95, 200 / 3), (0.1, 100.0)])
def test_extra_individual(extra_score, expected_map):
    gt = two_animals(1)
    far = gt_ind([(900, 900), (950, 930), (920, 990), (990, 905)])
    far[:, 2] = extra_score
    good = gt.copy()
    good[..., 2] = 0.5
    pred = np.concatenate([good, far[None, None]], axis=1)
    scores = compute_metrics(pred, gt)
    assert scores["rmse"] == 0.0  # the extra prediction is not matched: it does not count
    assert scores["mAR"] == pytest.approx(100.0)
    # ranked first, the false positive caps the (monotone) precision at 2/3 everywhere
    assert scores["mAP"] == pytest.approx(expected_map)


# --------------------------------------------------------------------------- pcutoff
def test_pcutoff_scalar_and_per_bodypart():
    gt = gt_ind([(0, 0), (10, 10)])[None, None]
    pred = gt.copy()
    pred[0, 0] = [[2, 0, 0.9], [10, 14, 0.3]]  # errors 2 and 4
    assert rmse(pred, gt)["rmse"] == pytest.approx(3.0)
    assert rmse(pred, gt)["rmse_pcutoff"] == pytest.approx(3.0)  # None: no cutoff
    assert rmse(pred, gt, 0.6)["rmse_pcutoff"] == pytest.approx(2.0)
    assert rmse(pred, gt, [0.2, 0.2])["rmse_pcutoff"] == pytest.approx(3.0)
    assert rmse(pred, gt, np.array([0.95, 0.2]))["rmse_pcutoff"] == pytest.approx(4.0)
    assert math.isnan(rmse(pred, gt, 0.99)["rmse_pcutoff"])
    np.testing.assert_array_equal(rmse(pred, gt, 0.6)["n_pcutoff_per_bodypart"], [1, 0])
    with pytest.raises(ValueError, match="pcutoff"):
        rmse(pred, gt, [0.5, 0.5, 0.5])


# --------------------------------------------------------------------------- single animal
def test_single_animal_pairs_directly_multi_animal_needs_an_oks_match():
    gt = np.stack([gt_ind(A)[None], gt_ind(B)[None]])  # 2 images, 1 animal each
    pred = gt.copy()
    pred[..., 0] += 500  # far off: OKS ~ 0
    pred[..., 2] = 0.9
    assert rmse(pred, gt)["rmse"] == pytest.approx(500.0)  # inferred single-animal
    assert rmse(pred, gt, single_animal=True)["rmse"] == pytest.approx(500.0)
    assert math.isnan(rmse(pred, gt, single_animal=False)["rmse"])  # nothing matched
    # a 3-D array is one individual per image
    assert rmse(pred[:, 0], gt[:, 0])["rmse"] == pytest.approx(500.0)
    with pytest.raises(ValueError, match="single-animal"):
        rmse(np.concatenate([pred, pred], axis=1), gt, single_animal=True)


# --------------------------------------------------------------------------- inputs and robustness
def test_input_forms_agree():
    gt = two_animals(3)
    pred = gt.copy()
    pred[..., :2] += np.random.default_rng(0).normal(0, 2, pred[..., :2].shape)
    pred[..., 2] = 0.7
    ragged_pred = [pred[0], pred[1, :1], pred[2, 1]]  # 2, 1 and (as [K, 3]) 1 individuals
    padded = np.full_like(pred, NAN)
    padded[0], padded[1, :1], padded[2, :1] = pred[0], pred[1, :1], pred[2, 1]
    ref = compute_metrics(ragged_pred, gt)
    assert compute_metrics(padded, gt) == ref
    as_dict = compute_metrics({f"i{i}": p for i, p in enumerate(ragged_pred)}, {f"i{i}": g for i, g in enumerate(gt)})
    assert as_dict == ref
    five = np.concatenate([padded, np.zeros(padded.shape[:-1] + (2,))], axis=-1)  # e.g. PAF outputs
    assert compute_metrics(five, gt) == ref
    assert compute_metrics(padded, list(gt[..., :2])) == ref  # GT without visibility
    assert 0 < ref["mAP"] < 100 and ref["rmse"] > 0


@pytest.mark.parametrize(
    "pred",
    [
        np.full((4, 3, 4, 3), NAN),
        np.zeros((4, 0, 4, 3)),
        [None, None, None, None],
        [np.zeros((0, 4, 3))] * 4,
        np.full((4, 2, 4, 3), -1.0),  # scores < 0
    ],
)
def test_empty_or_missing_predictions(pred):
    gt = two_animals(4)
    scores, table = compute_metrics(pred, gt, detections=pred, return_per_bodypart=True)
    assert math.isnan(scores["rmse"]) and math.isnan(scores["rmse_pcutoff"])
    assert scores["mAP"] == 0.0 and scores["mAR"] == 0.0
    assert math.isnan(scores["rmse_detections"])
    assert table["bodypart"] == ["0", "1", "2", "3"] and table["n"] == [0, 0, 0, 0]


def test_untrained_noise_many_individuals_is_fast_and_bounded():
    rng = np.random.default_rng(0)
    gt = np.stack([two_animals(1)[0] + [i, 0, 0] for i in range(50)])
    pred = rng.uniform(-50, 300, (50, 400, 4, 3))
    pred[..., 2] = rng.random((50, 400, 4))
    t0 = time.perf_counter()
    scores = compute_metrics(pred, gt, detections=pred)
    assert time.perf_counter() - t0 < 10
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["mAP"] < 1 and scores["mAR"] < 5  # noise over a 350 px range hardly ever lands within OKS


def test_unique_bodyparts_and_table():
    gt = two_animals(2)
    pred = gt.copy()
    pred[..., 2] = 0.9  # bodyparts: error 0 on 16 keypoints
    u_gt = np.array([[[0, 0, 2], [5, 5, 2]], [[1, 1, 2], [6, 6, 0]]], float)  # [n_images, U, 3]
    u_pred = u_gt.copy()
    u_pred[..., 0] += 4  # error 4 on the 3 labeled unique keypoints
    u_pred[..., 2] = [[0.9, 0.1], [0.9, 0.9]]
    scores, table = compute_metrics(
        pred,
        gt,
        pcutoff=0.6,
        unique_predictions=u_pred,
        unique_ground_truth=u_gt,
        bodyparts=["nose", "ear", "tail", "back"],
        unique_bodyparts=["food", "water"],
        return_per_bodypart=True,
    )
    assert scores["rmse"] == pytest.approx(12 / 19)
    assert scores["rmse_pcutoff"] == pytest.approx(8 / 18)
    assert table["bodypart"] == ["nose", "ear", "tail", "back", "food", "water"]
    assert table["unique"] == [False] * 4 + [True] * 2
    assert table["rmse"][4:] == pytest.approx([4.0, 4.0]) and table["n"][4:] == [2, 1]
    with pytest.raises(ValueError, match="pcutoff"):
        compute_metrics(pred, gt, pcutoff=[0.6] * 4, unique_predictions=u_pred, unique_ground_truth=u_gt)


def test_map_sigma_matters():
    gt = two_animals(2)
    pred = gt.copy()
    pred[..., 0] += 4
    pred[..., 2] = 0.9
    loose, tight = oks_map(pred, gt, oks_sigma=0.5), oks_map(pred, gt, oks_sigma=0.02)
    assert loose["mAP"] == 100.0 and tight["mAP"] < loose["mAP"]
    # sigma does not change the RMSE matching (DeepLabCut always matches with 0.1)
    assert compute_metrics(pred, gt, oks_sigma=0.02)["rmse"] == pytest.approx(4.0)
