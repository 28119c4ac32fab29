"""Box mAP/mAR: COCO's numbers (as DeepLabCut reports them, in percent) from numpy."""
import math

import numpy as np
import pytest

from lightning_dlc.evaluation.boxes import box_iou, box_metrics

TRUTH = [np.array([[10, 10, 50, 60], [60, 20, 100, 90.0]]), np.array([[0, 0, 30, 30.0]]), np.zeros((0, 4)),
         np.array([[100, 100, 150, 160.0]])]


def with_scores(boxes, scores):
    return np.concatenate([boxes, np.asarray(scores, dtype=float)[:, None]], axis=1)


def test_iou():
    iou = box_iou(np.array([[0, 0, 10, 10.0]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30.0]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_perfect_boxes_score_100_and_shifted_ones_less():
    perfect = box_metrics([with_scores(t, np.linspace(0.9, 0.5, len(t))) for t in TRUTH], TRUTH)
    assert all(value == pytest.approx(100.0) for value in perfect.values())
    shifted = box_metrics([with_scores(t + 4, np.full(len(t), 0.9)) for t in TRUTH], TRUTH)
    assert 0 < shifted["mAP"] < 100 and 0 < shifted["mAR"] < 100
    assert shifted["mAP50"] == pytest.approx(100.0)  # still an IoU above 0.5
    far = box_metrics([with_scores(t + 40, np.full(len(t), 0.9)) for t in TRUTH], TRUTH)
    assert far["mAP"] == 0 and far["mAR"] == 0


def test_numbers_equal_pycocotools():
    # computed by pycocotools' COCOeval through deeplabcut.core.metrics.compute_bbox_metrics (DeepLabCut 3.0.2)
    predicted = [with_scores([[12, 11, 50, 62], [60, 20, 100, 90], [0, 0, 20, 20]], [0.9, 0.8, 0.95]),
                 with_scores([[5, 5, 35, 35]], [0.6]), with_scores([[10, 10, 40, 40]], [0.7]), np.zeros((0, 5))]
    metrics = box_metrics(predicted, TRUTH)
    expected = {"mAP": 30.132013201320127, "mAP50": 48.514851485148505, "mAP75": 33.663366336633665,
                "mAR": 47.5, "mAR50": 75.0, "mAR75": 50.0}
    assert metrics == pytest.approx(expected, abs=1e-9)


def test_one_of_two_found_and_hand_computed():
    truth = [np.array([[0, 0, 10, 10], [20, 20, 40, 40.0]])]
    metrics = box_metrics([with_scores([[0, 0, 10, 10]], [0.9])], truth)
    assert metrics["mAP"] == pytest.approx(100 * 51 / 101)  # precision 1 up to recall 0.5: 51 of 101 points
    assert metrics["mAR"] == pytest.approx(50.0)


def test_empty_cases():
    nothing = box_metrics([np.zeros((0, 5))], [np.zeros((0, 4))])
    assert all(math.isnan(v) for v in nothing.values())  # no ground truth: undefined (COCO's -1)
    assert all(math.isnan(v) for v in box_metrics([], []).values())
    missed = box_metrics([np.zeros((0, 5)), np.zeros((0, 5))], TRUTH[:2])
    assert all(v == 0 for v in missed.values())
    only_false = box_metrics([with_scores([[0, 0, 5, 5]], [0.5])], [np.zeros((0, 4))])
    assert all(math.isnan(v) for v in only_false.values())


def test_nan_padding_and_max_detections():
    truth = np.full((2, 3, 4), np.nan)
    truth[0, 0] = [0, 0, 10, 10]
    truth[1, :2] = [[0, 0, 10, 10], [20, 20, 30, 30]]
    predicted = np.full((2, 4, 5), np.nan)
    predicted[0, 0] = [0, 0, 10, 10, 0.9]
    predicted[1, :3] = [[50, 50, 60, 60, 0.99], [0, 0, 10, 10, 0.8], [20, 20, 30, 30, 0.7]]
    padded = box_metrics(predicted, truth)
    plain = box_metrics([predicted[0, :1], predicted[1, :3]], [truth[0, :1], truth[1, :2]])
    assert padded == plain
    capped = box_metrics(predicted, truth, max_detections=2)  # the 0.7 box no longer counts
    assert capped["mAR"] == pytest.approx(100 * 2 / 3)
    with pytest.raises(ValueError, match="images"):
        box_metrics(predicted[:1], truth)
