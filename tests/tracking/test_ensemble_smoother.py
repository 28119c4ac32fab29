"""Ensemble Kalman smoothing on the demo project's true tracks: members are the truth plus independent noise."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.tracking import ensemble_smoother
from lightning_dlc.tracking.ensemble_smoother import kalman_smooth, match_tracks, smooth_ensemble

N_FRAMES, NOISE = 200, 3.0


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> np.ndarray:
    """The single-animal demo's true keypoints ``[T, 5, 2]``."""
    config = make_demo_project(tmp_path_factory.mktemp("eks") / "fish", multianimal=False, n_frames=N_FRAMES,
                               n_labeled=5, size=128)
    df = pd.read_hdf(config.parent / "videos" / "fishtank_groundtruth.h5")
    return df.to_numpy(np.float64).reshape(N_FRAMES, -1, 3)[..., :2]


def _members(truth: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = truth[None] + rng.normal(0, NOISE, (n, *truth.shape))
    return np.concatenate([xy, np.full((*xy.shape[:-1], 1), 0.9)], -1)


def _error(points: np.ndarray, truth: np.ndarray) -> float:
    seen = np.isfinite(truth).all(-1)
    return float(np.sqrt(np.mean(np.sum((points[..., :2] - truth) ** 2, -1)[seen])))


def test_smoothed_track_beats_every_member_and_their_mean(truth):
    members = _members(truth, 2)
    result = smooth_ensemble(members)
    smoothed = _error(result.points, truth)
    assert smoothed < 0.8 * min(_error(m, truth) for m in members), smoothed
    assert smoothed < _error(members.mean(0), truth)
    assert result.points.shape == (N_FRAMES, 5, 3) and result.variance.shape == (N_FRAMES, 5, 2)
    np.testing.assert_allclose(result.points[..., 2], 0.9)       # the members' mean likelihood
    assert (result.smoothing > 0).all() and np.isfinite(result.variance[np.isfinite(truth).all(-1)]).all()


def test_variance_is_higher_where_members_disagree(truth):
    members = _members(truth, 2, seed=1)
    members[1, 80:100, 0, :2] += 20.0                              # member 2 loses the snout for 20 frames
    variance = smooth_ensemble(members).variance[:, 0].sum(-1)
    assert variance[85:95].mean() > 5 * np.median(variance)


def test_frames_no_member_sees_are_bridged_with_growing_variance(truth):
    members = _members(truth, 3, seed=2)
    members[:, 60:70, 2, :2] = np.nan                              # nobody sees the dorsal fin there
    members[0, 120:130, 2, 2] = 0.01                               # one member unsure: left out
    result = smooth_ensemble(members, min_likelihood=0.1)
    assert np.isfinite(result.points[60:70, 2]).all()
    gap = result.variance[60:70, 2].sum(-1)
    assert gap[5] > gap[0] and gap.min() > 2 * np.median(result.variance[:, 2].sum(-1))
    assert _error(result.points[60:70, 2], truth[60:70, 2]) < 4 * NOISE


def test_fixed_smoothing_and_bad_input(truth):
    members = _members(truth, 2, seed=3)
    stiff, loose = smooth_ensemble(members, smoothing=1e-3), smooth_ensemble(members, smoothing=1e3)
    follows = lambda r: np.abs(r.points[..., :2] - members[..., :2].mean(0)).mean()  # noqa: E731
    assert follows(loose) < follows(stiff)
    np.testing.assert_allclose(stiff.smoothing, 1e-3)
    with pytest.raises(ValueError, match="M >= 2"):
        smooth_ensemble(members[:1])


def test_kalman_smoother_on_a_constant_is_the_mean():
    observed = np.array([[1.0], [3.0], [np.nan], [2.0]])
    mean, var, loglik = kalman_smooth(observed, np.ones_like(observed), np.array([0.0]))
    np.testing.assert_allclose(mean[:, 0], 2.0, atol=1e-3)         # no steps: every frame is the average
    np.testing.assert_allclose(var[:, 0], 1 / 3, rtol=1e-3)
    assert np.isfinite(loglik).all()


def test_match_tracks_recovers_the_order_of_another_members_animals(tmp_path):
    config = make_demo_project(tmp_path / "fish", n_frames=40, n_labeled=5, size=128)
    df = pd.read_hdf(config.parent / "videos" / "fishtank_groundtruth.h5")
    tracks = df.to_numpy(np.float64).reshape(40, 3, 5, 3)
    shuffled = tracks[:, [2, 0, 1]] + np.random.default_rng(0).normal(0, 1, tracks.shape)
    order = match_tracks(tracks, shuffled)
    np.testing.assert_array_equal(order, [1, 2, 0])
    np.testing.assert_allclose(shuffled[:, order], tracks, atol=6)


def test_a_lone_members_glitch_is_not_trusted_over_frames_where_members_agree(truth):
    members = _members(truth, 3, seed=4)
    members[1:, 100, 1, :2] = np.nan                               # the others drop the point there...
    members[0, 100, 1, :2] += 60.0                                 # ...where the one left glitches
    result = smooth_ensemble(members)
    assert np.linalg.norm(result.points[100, 1, :2] - truth[100, 1]) < 4 * NOISE
    assert (result.ensemble_variance[100, 1] > 10 * np.median(result.ensemble_variance[:, 1], 0)).all()


def test_match_tracks_in_frame_chunks_prices_pairs_as_the_mean_over_every_frame(monkeypatch):
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 30, (50, 4, 6, 3))
    other = reference[:, [3, 1, 0, 2]] + rng.normal(0, 40, reference.shape)   # close calls between animals
    other[rng.random(other.shape[:3]) < 0.3] = np.nan
    other[:, 2, 1] = np.nan                                           # a keypoint never seen in one track
    distance = np.linalg.norm(reference[:, :, None, :, :2] - other[:, None, :, :, :2], axis=-1)
    with np.errstate(invalid="ignore"):
        cost = np.nanmean(np.moveaxis(distance, 0, 2).reshape(4, 4, -1), -1)
    rows, cols = linear_sum_assignment(cost)
    monkeypatch.setattr(ensemble_smoother, "MATCH_CHUNK", 1)        # one frame at a time
    np.testing.assert_array_equal(match_tracks(reference, other), cols[np.argsort(rows)])
    monkeypatch.setattr(ensemble_smoother, "MATCH_CHUNK", 7 * 16 * 6)  # chunks of 7 frames, the last one short
    np.testing.assert_array_equal(match_tracks(reference, other), cols[np.argsort(rows)])
