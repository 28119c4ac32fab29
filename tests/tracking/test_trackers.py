"""Kalman prediction, shape similarities and the frame-to-frame tracker."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_dlc.evaluation.boxes import box_iou
from lightning_dlc.tracking.kalman import ConstantVelocityKalman
from lightning_dlc.tracking.trackers import (SortTracker, bhattacharyya_similarity, ellipses_from_keypoints,
                                             keypoint_similarity)


def test_kalman_learns_constant_velocity_and_skips_missing_coordinates():
    kf = ConstantVelocityKalman(2, measurement_noise=0.01)
    kf.add(np.array([[0.0, 0.0]]))
    for t in range(1, 8):
        kf.predict()
        kf.update(np.array([0]), np.array([[2.0 * t, np.nan]]))
    np.testing.assert_allclose(kf.predict()[0, 0], 16.0, atol=0.2)
    assert kf.position[0, 1] == 0.0


def test_similarities_are_one_for_equal_shapes_and_small_far_apart():
    fish = np.array([[[0.0, 0], [10, 1], [20, 0], [30, 1]]])
    far = fish + 200
    ellipses = ellipses_from_keypoints(np.concatenate([fish, far]))
    np.testing.assert_allclose(np.diag(bhattacharyya_similarity(ellipses, ellipses)), 1, atol=1e-9)
    assert bhattacharyya_similarity(ellipses[:1], ellipses[1:])[0, 0] < 1e-6
    turned = fish[:, :, ::-1] - fish[:, :, ::-1].mean(1) + fish.mean(1)  # same centre, at right angles
    assert bhattacharyya_similarity(ellipses[:1], ellipses_from_keypoints(turned))[0, 0] < 0.8
    boxes = np.array([[0.0, 0, 10, 10], [5, 0, 15, 10]])
    np.testing.assert_allclose(box_iou(boxes, boxes), [[1, 1 / 3], [1 / 3, 1]])
    assert keypoint_similarity(fish, fish)[0, 0] == 1 and keypoint_similarity(fish, far)[0, 0] < 1e-6


@pytest.mark.parametrize("method", ["box", "ellipse", "skeleton"])
def test_tracker_keeps_ids_of_animals_passing_each_other(method):
    """Two fish swim towards each other on lanes 12 px apart and pass; each is missed once; order varies."""
    body = np.array([[0.0, 0], [8, 2], [16, 0], [24, 2]])
    tracker = SortTracker(method)
    seen = {"a": set(), "b": set()}
    for t in range(40):
        present = {"a": body + [3.0 * t, 0], "b": body[::-1] + [120 - 3.0 * t, 12]}
        present.pop("a" if t == 15 else "b" if t == 25 else "none", None)
        names = list(present)[::-1] if t % 2 else list(present)
        ids = tracker.step(np.stack([present[n] for n in names]))
        for name, i in zip(names, ids):
            seen[name].add(int(i))
    assert seen == {"a": {0}, "b": {1}}


def test_tracker_empty_frames_and_animals_without_keypoints():
    tracker = SortTracker("ellipse", max_age=1)
    assert tracker.step(np.zeros((0, 4, 2))).tolist() == []
    ids = tracker.step(np.array([[[np.nan, np.nan]] * 4, [[1.0, 1], [2, 2], [3, 3], [4, 4]]]))
    assert ids.tolist() == [-1, 0]
    for _ in range(3):
        tracker.step(np.zeros((0, 4, 2)))
    assert tracker.step(np.array([[[1.0, 1], [2, 2], [3, 3], [4, 4]]])).tolist() == [1]  # the old track ended
