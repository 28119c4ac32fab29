"""Re-ID glue without a network: tracklet rows, triplet mining (NaN keypoints), the embedding stitching cost."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_dlc.tracking.metrics import tracking_metrics
from lightning_dlc.tracking.reid import EmbeddingCost, fragment_tracklets, reid_tracks_path
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.tracklets import Tracklet, link_detections
from lightning_dlc.tracking.triplets import Triplets, isolated_samples, mine_triplets, tracklet_rows


def _analysis(scene, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    """float32 ``[T, 3, K, 3]`` keypoints as an analysis would store them: row n = fish n, hidden points NaN."""
    rng = np.random.default_rng(seed)
    truth = scene.truth
    xy = truth[..., :2] + rng.normal(0, noise, truth[..., :2].shape)
    xy[truth[..., 2] <= 0] = np.nan
    return np.concatenate([xy, np.ones_like(xy[..., :1])], -1).astype(np.float32)


def test_tracklet_rows_find_the_analysis_rows_their_points_were_copied_from(scene):
    keypoints = _analysis(scene)
    frames = np.arange(10, 20)
    data = keypoints[frames, 2].astype(np.float64)
    data[3, 1] = np.nan                      # a keypoint dropped by the tracker's pcutoff
    data[5] += 3.0                           # a frame that is not in this analysis
    rows = tracklet_rows(Tracklet(frames, data), keypoints)
    assert rows.tolist() == [2] * 5 + [-1] + [2] * 4
    assert (tracklet_rows(Tracklet([len(keypoints) + 5], data[:1]), keypoints) == -1).all()


def test_triplets_pair_one_tracklet_against_an_overlapping_one_and_skip_sparse_samples(scene):
    keypoints = _analysis(scene)
    keypoints[::7, 1, 1:] = np.nan           # fish 1 has a single keypoint in every 7th frame: never a sample
    half = len(keypoints) // 2
    # fish 0 and 1 in two tracklets each (first and second half), fish 2 in one
    tracklets = [Tracklet(np.arange(a, b), keypoints[a:b, n]) for n in (0, 1)
                 for a, b in ((0, half), (half, len(keypoints)))]
    tracklets.append(Tracklet(np.arange(len(keypoints)), keypoints[:, 2]))
    triplets = mine_triplets(tracklets, keypoints, n_triplets=400, frames=(0, 200), seed=0)
    assert len(triplets) == 400
    a, p, n = triplets.anchor, triplets.positive, triplets.negative
    assert (a[:, 1] == p[:, 1]).all() and (a[:, 1] != n[:, 1]).all()      # rows are the fish here
    assert (a[:, 0] != p[:, 0]).all() and (a[:, 0] == n[:, 0]).all()      # negatives: another animal, same frame
    same_half = (a[:, 0] < half) == (p[:, 0] < half)
    assert same_half[a[:, 1] < 2].all()                                    # positives from the anchor's tracklet
    for samples in (a, p, n):
        assert (samples[:, 0] < 200).all()
        assert np.isfinite(keypoints[samples[:, 0], samples[:, 1], :, 0]).sum(-1).min() >= 3
    assert not ((a[:, 1] == 1) & (a[:, 0] % 7 == 0)).any()
    alone = mine_triplets(tracklets[:1], keypoints, n_triplets=10)         # no other animal: no negatives
    assert len(alone) == 0


def test_samples_in_close_encounters_are_not_isolated():
    keypoints = np.full((2, 3, 2, 3), np.nan)
    keypoints[:, 0, :, :2] = [[0, 0], [10, 0]]        # body size 10 px
    keypoints[:, 1, :, :2] = [[40, 0], [50, 0]]       # 40 px (4 body sizes) from animal 0
    keypoints[1, 2, :, :2] = [[44, 0], [54, 0]]       # frame 1: 4 px (0.4 body sizes) from animal 1
    assert isolated_samples(keypoints, 0.5).tolist() == [[True, True, True], [True, False, False]]
    assert isolated_samples(keypoints, 0.0).all()


def test_the_calibrated_cost_rewards_look_alike_links_and_penalises_the_others():
    keypoints = np.zeros((4, 2, 1, 3))
    keypoints[:, 1] = 100                               # two animals, apart
    embeddings = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 4)
    triplets = Triplets(np.array([[0, 0], [0, 1]]), np.array([[2, 0], [2, 1]]), np.array([[0, 1], [0, 0]]))
    cost = EmbeddingCost.calibrated(embeddings, keypoints, triplets, weight=0.5)
    assert (cost.same, cost.different) == (0.0, pytest.approx(np.sqrt(2)))
    tracklets = [Tracklet([0, 1], keypoints[:2, n]) for n in (0, 1)] + [Tracklet([2, 3], keypoints[2:, n])
                                                                       for n in (0, 1)]
    links = cost(tracklets[:2], np.array([0, 0, 1]), tracklets[2:], np.array([0, 1, 1]))
    np.testing.assert_allclose(links, [-0.5, 0.5, -0.5])
    with pytest.raises(ValueError, match="does not tell the animals apart"):
        EmbeddingCost(embeddings, keypoints, same=1.0, different=1.0)


def test_reid_tracks_are_named_as_deeplabcuts(tmp_path):
    assert reid_tracks_path(tmp_path / "fishDLC_x", "ellipse") == tmp_path / "fishDLC_x_el_tr.h5"


@pytest.mark.parametrize("seed", [0, 1])
def test_an_embedding_that_knows_the_fish_cuts_identity_switches_of_fragmented_tracklets(scene, seed):
    keypoints = _analysis(scene, seed=seed)
    rng = np.random.default_rng(seed)
    identity = np.eye(3)[None].repeat(len(keypoints), 0) + rng.normal(0, 0.3, (len(keypoints), 3, 3))
    embeddings = (identity / np.linalg.norm(identity, axis=-1, keepdims=True)).astype(np.float32)
    tracklets = link_detections(keypoints)
    pieces = fragment_tracklets(tracklets, mean_length=20, max_gap=25, seed=seed)
    assert len(pieces) > 3 * len(tracklets)
    truth = scene.truth.copy()
    truth[..., :2][truth[..., 2] <= 0] = np.nan
    scores = {}
    train = mine_triplets(tracklets, keypoints, n_triplets=300, frames=(0, len(keypoints) // 2), seed=seed)
    for name, cost in (("motion", None), ("reid", EmbeddingCost.calibrated(embeddings, keypoints, train,
                                                                           weight=0.5))):
        tracks = stitch_tracklets(pieces, 3, n_frames=len(keypoints), extra_cost=cost)
        scores[name] = tracking_metrics(truth, tracks, threshold=0.5 * scene.length)
    print({k: (v["switches"], round(v["idf1"], 3)) for k, v in scores.items()})
    assert scores["reid"]["switches"] < scores["motion"]["switches"]
    assert scores["reid"]["idf1"] > scores["motion"]["idf1"]
