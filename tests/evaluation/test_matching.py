"""OKS and DeepLabCut's greedy matching on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_dlc.evaluation import match_individuals, oks_matrix, rmse
from pose_arrays import NAN, gt_ind  # tests/pose_arrays.py


def test_oks_value_area_and_sigma():
    gt = gt_ind([(0, 0), (10, 10)])[None]
    pred = gt.copy()
    pred[..., 0] += 1  # d^2 = 1 per keypoint; area 10 x 10
    # exp(-d^2 / (2 * area * (2 * sigma)^2)) = exp(-1 / 8)
    assert oks_matrix(pred, gt)[0, 0] == pytest.approx(math.exp(-1 / 8))
    assert oks_matrix(pred, gt, margin=5)[0, 0] == pytest.approx(math.exp(-1 / 32))  # 20 x 20
    assert oks_matrix(pred, gt, sigma=[0.1, 0.2])[0, 0] == pytest.approx(
        (math.exp(-1 / 8) + math.exp(-1 / 32)) / 2
    )
    pred[0, 1] = NAN  # a missing predicted keypoint scores 0
    assert oks_matrix(pred, gt)[0, 0] == pytest.approx(math.exp(-1 / 8) / 2)
    # degenerate ground truth: on one horizontal line, or a single keypoint
    assert np.isnan(oks_matrix(pred, gt_ind([(0, 0), (10, 0)])[None])).all()
    assert np.isnan(oks_matrix(pred, gt_ind([(0, 0), None])[None])).all()
    assert oks_matrix(np.zeros((0, 2, 3)), gt).shape == (0, 1)


def test_greedy_matching_has_no_fallback_to_second_best():
    g0 = gt_ind([(0, 0), (10, 10)])
    g1 = gt_ind([(3, 0), (13, 10)])
    a = g0.copy()
    a[:, 2] = 0.9  # exact on g0
    b = g0.copy()
    b[:, 0] += 1  # best is g0 too (g1 is 2 px away), but g0 is taken by a
    b[:, 2] = 0.8
    gt = np.stack([g0, g1])
    gt_index, oks = match_individuals(np.stack([b, a]), gt)  # input order does not matter: score does
    np.testing.assert_array_equal(gt_index, [-1, 0])
    assert oks[1] == pytest.approx(1.0) and np.isnan(oks[0])
    assert oks_matrix(b[None], g1[None])[0, 0] > 0.5  # b would fit g1 (Hungarian would pair them)
    assert rmse(np.stack([b, a])[None], gt[None])["rmse"] == 0.0  # only a counts
    # threshold
    gt_index, _ = match_individuals(b[None], g0[None], oks_threshold=0.99)
    np.testing.assert_array_equal(gt_index, [-1])
    gt_index, _ = match_individuals(b[None], g0[None])
    np.testing.assert_array_equal(gt_index, [0])
