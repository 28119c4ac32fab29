"""Detection RMSE (DeepLabCut 2.x's, without assembly) on hand-computed cases; RMSE itself: test_metrics.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_dlc.evaluation import rmse_detections
from pose_arrays import gt_ind  # tests/pose_arrays.py


def test_detection_rmse():
    gt = np.stack([gt_ind([(0, 0)]), gt_ind([(10, 0)])])[None]  # 2 animals, 1 bodypart
    det = np.array([[[1, 0, 1.0]], [[12, 0, 1.0]], [[100, 100, 1.0]]])[None]
    r = rmse_detections(det, gt)
    assert r["rmse_detections"] == pytest.approx(1.5)
    # one detection between two animals: the GT nearest to it takes it
    gt = np.stack([gt_ind([(0, 0)]), gt_ind([(3, 0)])])[None]
    det = np.array([[[1, 0, 0.5]]])[None]
    r = rmse_detections(det, gt, pcutoff=0.6)
    assert r["rmse_detections"] == pytest.approx(1.0) and math.isnan(r["rmse_detections_pcutoff"])


def test_detection_rmse_uses_the_score_in_its_nearest_neighbour_search():
    """DeepLabCut's quirk: candidates are ranked in 3-D, (x, y, visibility vs score)."""
    gt = gt_ind([(0, 0)])[None, None]  # visibility 2
    det = np.array([[[1.0, 0, 0.0]], [[1.2, 0, 1.0]]])[None]  # 3-D: sqrt(1 + 4) > sqrt(1.44 + 1)
    assert rmse_detections(det, gt)["rmse_detections"] == pytest.approx(1.2)
