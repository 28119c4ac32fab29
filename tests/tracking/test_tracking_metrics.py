"""Tracking scores on hand-made cases whose IDF1, MOTA and switches are known."""
from __future__ import annotations

import numpy as np

from lightning_dlc.tracking.metrics import tracking_metrics


def _two_animals(n=10):
    """Two animals 100 px apart, one keypoint each: [n, 2, 1, 2]."""
    truth = np.zeros((n, 2, 1, 2))
    truth[:, 1, 0, 0] = 100.0
    return truth


def test_perfect_tracks():
    truth = _two_animals()
    scores = tracking_metrics(truth, truth[:, ::-1], threshold=5)  # track order does not matter
    assert scores["idf1"] == 1 and scores["mota"] == 1 and scores["switches"] == 0


def test_swap_halfway_counts_two_switches_and_halves_idf1():
    truth = _two_animals(10)
    tracks = truth.copy()
    tracks[5:] = truth[5:, ::-1]
    scores = tracking_metrics(truth, tracks, threshold=5)
    assert scores["switches"] == 2
    assert scores["idf1"] == 0.5
    assert np.isclose(scores["mota"], 1 - 2 / 20)


def test_misses_and_false_positives():
    truth = _two_animals(10)
    tracks = np.concatenate([truth, np.full((10, 1, 1, 2), 50.0)], axis=1)  # a third, false track
    tracks[:4, 1] = np.nan                                                  # animal 2 missed 4 frames
    scores = tracking_metrics(truth, tracks, threshold=5)
    assert (scores["misses"], scores["false_positives"], scores["switches"]) == (4, 10, 0)
    assert np.isclose(scores["mota"], 1 - 14 / 20)
    assert np.isclose(scores["idf1"], 2 * 16 / (20 + 26))
