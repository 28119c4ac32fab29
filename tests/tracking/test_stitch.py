"""Tracklets and stitching on the demo's fish: identities through crossings, gaps, degenerate inputs."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_dlc.tracking.metrics import tracking_metrics
from lightning_dlc.tracking.stitch import fill_gaps, stitch_tracklets
from lightning_dlc.tracking.synthetic import noisy_detections
from lightning_dlc.tracking.tracklets import Tracklet, link_detections


def _crossings(truth: np.ndarray, closer_than: float) -> int:
    centroids = truth[..., :2].mean(2)
    d = np.linalg.norm(centroids[:, :, None] - centroids[:, None], axis=-1)
    return int((d[:, [0, 0, 1], [1, 2, 2]] < closer_than).any(1).sum())


@pytest.mark.parametrize("method", ["ellipse", "skeleton"])
@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_ground_truth_gives_three_tracks_without_identity_switches(scene, method, seed):
    assert _crossings(scene.truth, 0.3 * scene.length) > 10, "the scene must make the fish cross"
    detections = noisy_detections(scene.truth, noise=1.0, drop_keypoint=0.1, drop_animal=0.05,
                                  false_positives=0.2, seed=seed)
    tracklets = link_detections(detections, method)
    assert len(tracklets) > 3  # drops and false positives break the tracks up
    tracks = stitch_tracklets(tracklets, n_tracks=3, n_frames=len(scene.truth), fill=3)
    assert tracks.shape == (len(scene.truth), 3, 5, 4)
    scores = tracking_metrics(scene.truth, tracks, threshold=0.5 * scene.length)
    assert scores["switches"] == 0
    assert scores["idf1"] > 0.95 and scores["mota"] > 0.95


def test_box_tracking_keeps_most_identities(scene):
    """Boxes lose the heading that tells crossing fish apart (2 switches at one crossing here), but hold elsewhere."""
    detections = noisy_detections(scene.truth, seed=0, false_positives=0.2)
    tracks = stitch_tracklets(link_detections(detections, "box"), 3, n_frames=len(scene.truth), fill=3)
    scores = tracking_metrics(scene.truth, tracks, threshold=0.5 * scene.length)
    assert scores["switches"] <= 2 and scores["idf1"] > 0.9


def test_without_stitching_the_tracklets_alone_score_worse(scene):
    """Stitching is what carries identities across the drops: the raw tracklets' IDF1 is far lower."""
    detections = noisy_detections(scene.truth, seed=0)
    tracklets = link_detections(detections, "ellipse")
    raw = np.full((len(scene.truth), len(tracklets), 5, 4), np.nan)
    for k, t in enumerate(tracklets):
        raw[t.frames, k] = t.data
    raw_idf1 = tracking_metrics(scene.truth, raw, 0.5 * scene.length)["idf1"]
    stitched = stitch_tracklets(tracklets, 3, n_frames=len(scene.truth))
    assert raw_idf1 < 0.85
    assert tracking_metrics(scene.truth, stitched, 0.5 * scene.length)["idf1"] > raw_idf1 + 0.15


def test_fewer_animals_than_tracks(scene):
    detections = noisy_detections(scene.truth[:, :2], seed=0, false_positives=0.0)  # two fish only
    tracks = stitch_tracklets(link_detections(detections), n_tracks=3, n_frames=len(scene.truth))
    present = np.isfinite(tracks[..., 0]).any(-1).mean(0)
    assert sorted(present.round(1).tolist())[0] == 0.0       # one track stays empty
    assert (np.sort(present)[1:] > 0.9).all()


def test_empty_single_frame_and_no_detections():
    assert link_detections({}) == []
    assert link_detections({0: np.zeros((0, 5, 4)), 1: np.zeros((0, 5, 4))}) == []
    assert stitch_tracklets([], n_tracks=2, n_frames=4).shape == (4, 2, 0, 3)
    one = {0: np.array([[[10.0, 10, 0.9, -1], [20, 12, 0.8, -1]]])}
    tracklets = link_detections(one)
    assert len(tracklets) == 1 and tracklets[0].frames.tolist() == [0]
    tracks = stitch_tracklets(tracklets, n_tracks=2, n_frames=1, min_length=1)
    np.testing.assert_allclose(tracks[0, 0], one[0][0])
    assert np.isnan(tracks[0, 1]).all()
    with pytest.raises(ValueError, match="n_tracks"):
        stitch_tracklets(tracklets, n_tracks=0)


def test_low_likelihood_and_negative_keypoints_are_missing():
    frame = np.array([[[10.0, 10, 0.9, -1], [-1, -1, -1, -1], [30, 30, 0.05, -1]]])
    (t,) = link_detections({0: frame}, pcutoff=0.1)
    assert np.isfinite(t.data[0, 0, :2]).all() and np.isnan(t.data[0, 1:, :2]).all()


def test_fill_gaps_interpolates_only_short_gaps():
    track = np.full((10, 1, 1, 3), np.nan)
    track[[0, 3, 4, 9], 0, 0] = [[0, 0, 1], [3, 6, 1], [4, 8, 1], [9, 18, 1]]
    filled = fill_gaps(track, max_gap=2)
    np.testing.assert_allclose(filled[:5, 0, 0, :2], [[0, 0], [1, 2], [2, 4], [3, 6], [4, 8]])
    assert np.isnan(filled[5:9]).all()  # a 4-frame gap stays open


def test_tracklet_identity_vote_and_validation():
    data = np.array([[[0, 0, 0.9, 1], [0, 0, 0.9, 1]], [[0, 0, 0.5, 0], [0, 0, 0.2, 1]]], float)
    assert Tracklet([5, 6], data).identity() == 1
    with pytest.raises(ValueError, match="frames"):
        Tracklet([1, 2, 3], data)
