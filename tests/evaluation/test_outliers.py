"""DeepLabCut's outlier-frame rules on arrays with known answers (lightning_dlc.evaluation.outliers)."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_dlc.evaluation import outliers


def smooth_tracks(n_frames=120, n_columns=3, seed=0) -> np.ndarray:
    """``[T, C, 2]`` slow circular motion, a few px per frame."""
    t = np.arange(n_frames)[:, None]
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, n_columns)
    x = 100 + 30 * np.cos(t / 15 + phase)
    y = 100 + 30 * np.sin(t / 15 + phase)
    return np.stack([x, y], axis=-1)


def test_jump_finds_the_injected_jumps_and_the_frames_after_them():
    xy = smooth_tracks()
    xy[40, 1] += (25, 0)   # one frame away and back: frames 40 and 41 jump
    xy[90:, 2] += (0, 30)  # a lasting shift: only frame 90
    assert outliers.jump_frames(xy, epsilon=20).tolist() == [40, 41, 90]
    assert outliers.jump_frames(xy, epsilon=40).tolist() == []


def test_jump_sums_the_columns_of_a_bodypart_and_counts_nan_as_no_move():
    xy = smooth_tracks(n_frames=10, n_columns=2)
    xy[5, 0] += (15, 0)
    xy[5, 1] += (15, 0)  # 15 px each: under 20 alone, sqrt(2) * 15 = 21.2 px summed
    assert outliers.jump_frames(xy, 20).tolist() == []
    assert outliers.jump_frames(xy, 20, groups=["snout", "snout"]).tolist() == [5, 6]
    xy[7, 0] = np.nan  # gone: no jump into or out of it
    assert outliers.jump_frames(xy, 20).tolist() == []


def test_uncertain_finds_frames_with_a_low_likelihood():
    likelihood = np.full((50, 4), 0.9)
    likelihood[[3, 17, 44], [0, 2, 3]] = 0.001
    likelihood[20, 1] = 0.5
    assert outliers.uncertain_frames(likelihood, p_bound=0.01).tolist() == [3, 17, 44]
    assert outliers.uncertain_frames(likelihood, p_bound=0.6).tolist() == [3, 17, 20, 44]


@pytest.mark.slow  # statsmodels fits (tens of seconds on a busy CPU)
def test_fitting_flags_spikes_off_the_sarimax_fit():
    xy = smooth_tracks(n_frames=100, n_columns=1) + np.random.default_rng(1).normal(0, 0.5, (100, 1, 2))
    likelihood = np.full((100, 1), 0.95)
    spikes = [30, 55, 80]
    xy[spikes, 0] += 60
    distance = outliers.fitting_distance(xy, likelihood, p_bound=0.01, alpha=0.01, ar_degree=3, ma_degree=1)
    assert distance.shape == (100,)
    found = outliers.fitting_frames(distance, epsilon=20, numframes2pick=1)
    assert set(spikes) <= set(found.tolist())
    # the spikes and the AR(3) predictions they throw off, frame 0 (no past to predict from), none of the rest
    assert set(found.tolist()) <= {0} | {s + k for s in spikes for k in range(4)}


def test_fitting_with_few_points_is_nan_and_too_few_found_takes_the_most_distant():
    mean, interval = outliers.fit_sarimax(np.arange(20.0), np.full(20, 0.001), 0.01, 0.01, 3, 1)
    assert np.isnan(mean).all() and interval.shape == (20, 2)
    distance = np.array([1.0, 5, 2, 9, 3, 8, 0.5, 4])
    assert outliers.fitting_frames(distance, epsilon=7, numframes2pick=1).tolist() == [3, 5]
    assert outliers.fitting_frames(distance, epsilon=4.5, numframes2pick=1).tolist() == [1, 3, 5]


def test_picking_range_and_inside_follow_deeplabcut():
    assert outliers.picking_range(100, 0, 1) == (0, 100)
    assert outliers.picking_range(99, 0.1, 0.5) == (9, 50)
    # strictly inside: frame 0 (start * n) is never picked, as in DeepLabCut's frame selection
    assert outliers.inside_range([0, 1, 50, 99], 0, 100).tolist() == [1, 50, 99]


def test_uniform_pick_is_a_reproducible_sample_of_the_flagged_frames():
    flagged = np.arange(0, 100, 3)
    a = outliers.uniform_pick(flagged, 5, 0, 100, np.random.default_rng(3))
    b = outliers.uniform_pick(flagged, 5, 0, 100, np.random.default_rng(3))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5 and set(a.tolist()) <= set(flagged[1:].tolist())
    assert outliers.uniform_pick([4, 8], 5, 0, 100, np.random.default_rng(0)).tolist() == [4, 8]


def test_kmeans_picks_one_frame_from_each_look():
    rng = np.random.default_rng(0)
    frames = np.arange(10, 40)
    looks = np.repeat([0, 1, 2], 10)  # three kinds of image, ten frames each
    images = np.stack([np.full((6, 8), 80.0 * k) for k in looks]) + rng.normal(0, 1, (30, 6, 8))
    picked = outliers.kmeans_pick(frames, images, 3, np.random.default_rng(1), batch_size=10)
    assert sorted(looks[picked - 10].tolist()) == [0, 1, 2]
    assert outliers.kmeans_pick(frames[:2], images[:2], 3, rng).tolist() == [10, 11]


def test_jump_threshold_is_euclidean():
    xy = np.zeros((3, 1, 2))
    xy[1, 0] = (3, 4)  # 5 px there, 5 px back
    assert outliers.jump_frames(xy, 4.99).tolist() == [1, 2]
    assert outliers.jump_frames(xy, 5.0).tolist() == []
