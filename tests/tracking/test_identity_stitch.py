"""Known animals: stitching with the identity head's votes (cuts, link costs, tracks named by identity) and
DeepLabCut's identity_only tracklets, on the demo's fish with identities as a noisy head gives them."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from lightning_dlc.tracking.identity import (IdentityCost, identity_tracklets, name_tracks_by_identity,
                                             split_at_identity_changes)
from lightning_dlc.tracking.metrics import pose_distances, tracking_metrics
from lightning_dlc.tracking.reid import fragment_tracklets
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.tracklets import Tracklet, link_detections


def _with_identities(truth: np.ndarray, error: float, seed: int = 0, noise: float = 1.0) -> dict[int, np.ndarray]:
    """Per frame the animals in random order, ``[n, K, 4]``, each keypoint's identity its animal's index except a
    share ``error`` of the animals per frame, whose identity is another one (a head wrong now and then)."""
    rng = np.random.default_rng(seed)
    n_frames, n = truth.shape[:2]
    out = {}
    for t in range(n_frames):
        xy = truth[t, ..., :2] + rng.normal(0, noise, truth[t, ..., :2].shape)
        seen = truth[t, ..., 2] > 0
        ids = np.arange(n, dtype=float)
        wrong = rng.random(n) < error
        ids[wrong] = (ids[wrong] + rng.integers(1, n, wrong.sum())) % n
        rows = np.concatenate([np.where(seen[..., None], xy, np.nan), np.where(seen, 0.9, np.nan)[..., None],
                               np.broadcast_to(ids[:, None, None], (n, truth.shape[2], 1))], -1)
        out[t] = rows[rng.permutation(n)]
    return out


def _swap_after(a: Tracklet, b: Tracklet, frame: int) -> tuple[Tracklet, Tracklet]:
    """Two tracklets over the same frames whose animals the tracker swapped from ``frame`` on."""
    data_a, data_b = a.data.copy(), b.data.copy()
    later = a.frames >= frame
    data_a[later], data_b[later] = b.data[later], a.data[later]
    return Tracklet(a.frames, data_a), Tracklet(b.frames, data_b)


def _truth(scene) -> np.ndarray:
    truth = scene.truth.copy()
    truth[..., :2][truth[..., 2] <= 0] = np.nan
    return truth


def test_frame_votes_cuts_and_costs():
    data = np.zeros((20, 2, 4))
    data[..., 2] = 0.9
    data[:12, :, 3], data[12:, :, 3] = 0, 1
    data[3, :, 3] = 1                                   # one wrong frame: no cut
    t = Tracklet(np.arange(20), data)
    np.testing.assert_allclose(t.frame_votes(2)[:2], [[1, 0], [1, 0]])
    assert t.frame_votes(1)[12:].sum() == 0             # identities beyond the count are no votes
    parts = split_at_identity_changes([t], 2, min_run=5)
    assert [(p.start, p.end) for p in parts] == [(0, 11), (12, 19)]
    cost = IdentityCost(2, weight=2.0)
    unknown = Tracklet(np.arange(3), np.concatenate([data[:3, :, :3], -np.ones((3, 2, 1))], -1))
    links = cost(parts + [unknown], np.array([0, 0, 2]), parts + [unknown], np.array([0, 1, 1]))
    assert links[0] < -1.5 and links[1] > 1.5 and links[2] == 0.0
    with pytest.raises(ValueError, match="2 identities"):
        IdentityCost(1)


def test_tracks_are_named_by_identity_and_confident_tracklets_move_to_their_track():
    def piece(frames, identity):
        data = np.zeros((len(frames), 1, 4))
        data[..., 2], data[..., 3] = 0.9, identity
        return Tracklet(frames, data)
    a, b, c = piece(np.arange(0, 50), 1), piece(np.arange(0, 40), 0), piece(np.arange(60, 90), 0)
    named = name_tracks_by_identity([[a, c], [b]], 2)         # c was linked to the wrong animal
    assert named[0] == [b, c] and named[1] == [a]


@pytest.mark.parametrize("seed", [0, 1])
def test_known_identities_hold_through_tracker_swaps_and_fragments(scene, seed):
    detections = _with_identities(scene.truth, error=0.2, seed=seed)
    tracklets = link_detections(detections)
    longest = sorted(tracklets, key=len, reverse=True)
    a, b = longest[0], next(t for t in longest[1:] if t.start <= longest[0].start + 20)
    frames = np.intersect1d(a.frames, b.frames)
    swapped = _swap_after(Tracklet(frames, a.data[np.isin(a.frames, frames)]),
                          Tracklet(frames, b.data[np.isin(b.frames, frames)]), int(frames[len(frames) // 2]))
    rest = [t for t in tracklets if t is not a and t is not b]
    rest += [Tracklet(t.frames[~np.isin(t.frames, frames)], t.data[~np.isin(t.frames, frames)])
             for t in (a, b) if (~np.isin(t.frames, frames)).any()]
    pieces = fragment_tracklets([*swapped, *rest], mean_length=40, max_gap=25, seed=seed)
    truth = _truth(scene)
    scores = {}
    for name, identity in (("motion", False), ("identity", None)):
        tracks = stitch_tracklets(pieces, 3, n_frames=len(truth), use_identity=identity)
        scores[name] = tracking_metrics(truth, tracks, threshold=0.5 * scene.length)
        if identity is None:  # track i is fish i: the frames where track i is on fish i
            named = int((np.diagonal(pose_distances(truth, tracks), axis1=1, axis2=2) < 0.5 * scene.length).sum())
    # fragmenting drops frames: the best any stitching can do is every kept frame on its own fish's track
    recall = sum(len(p) for p in pieces) / np.isfinite(truth[..., 0]).any(-1).sum()
    best = 2 * recall / (1 + recall)
    print(named, round(best, 3), {k: (v["switches"], round(v["idf1"], 3)) for k, v in scores.items()})
    assert scores["identity"]["switches"] <= 2 and scores["identity"]["idp"] > 0.99  # a cut may be a frame off
    assert scores["identity"]["idf1"] > 0.98 * best and scores["identity"]["idf1"] > scores["motion"]["idf1"]
    assert named == scores["identity"]["idtp"]  # the best pairing of tracks and fish is track i = fish i


def test_identity_only_assigns_by_identity_alone(scene):
    detections = _with_identities(scene.truth, error=0.0, seed=0)
    tracklets = identity_tracklets(detections, 3, n_frames=len(scene.truth))
    assert [t.identity() for t in tracklets] == [0, 1, 2]
    tracks = stitch_tracklets(tracklets, 3, n_frames=len(scene.truth))
    truth = _truth(scene)
    for k in range(3):
        assert tracking_metrics(truth[:, k:k + 1], tracks[:, k:k + 1], 0.5 * scene.length)["idf1"] > 0.99


def test_files_identity_only_and_tracks_named_by_identity(scene, tmp_path, write_analysis):
    import pandas as pd

    from lightning_dlc.project.errors import ProjectError
    from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file

    prefix = write_analysis(tmp_path, scene.truth)              # identities -1: a model without identity head
    with pytest.raises(ProjectError, match="identity: true"):
        convert_to_tracklets(prefix, identity_only=True)
    with open(f"{prefix}_assemblies.pickle", "wb") as f:
        pickle.dump({"single": {}, **_with_identities(scene.truth, error=0.1, seed=0)}, f)
    truth = _truth(scene)
    right = {}
    for identity_only in (True, False):
        convert_to_tracklets(prefix, identity_only=identity_only, overwrite=True)
        h5 = stitch_tracklet_file(prefix, overwrite=True)
        table = pd.read_hdf(h5)
        assert list(table.columns.get_level_values("individuals").unique()) == ["fish1", "fish2", "fish3"]
        tracks = table.to_numpy().reshape(len(truth), 3, -1, 3)
        on_own_fish = np.diagonal(pose_distances(truth, tracks), axis1=1, axis2=2) < 0.5 * scene.length
        right[identity_only] = on_own_fish.mean()               # fish1's track on fish 0, and so on
    # identity alone is frame by frame (a head wrong in 10 % of the frames scrambles some of them); tracking
    # plus the whole video's votes is not
    assert right[True] > 0.8 and right[False] > 0.98, right
