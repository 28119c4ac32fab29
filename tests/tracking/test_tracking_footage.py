"""benchmarks/tracking_footage.py: ground truth from a project's labeled frames or track file, scores, api
variants picked up by signature. The whole benchmark (training included) is benchmarks/tracking_accuracy.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.demo import make_demo_project

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tracking_footage", REPO / "benchmarks" / "tracking_footage.py")
footage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(footage)

BODYPARTS = ("snout", "head", "dorsal", "tailbase", "tailtip")
SIZE = 96


@pytest.fixture(scope="module")
def hard_project(tmp_path_factory):
    return make_demo_project(tmp_path_factory.mktemp("footage") / "hard", n_frames=150, n_labeled=60, size=SIZE,
                             scene="hard", identity=True)


def test_labeled_frames_are_the_ground_truth(hard_project):
    video = hard_project.parent / "videos" / "fishtank.mp4"
    frames, truth = footage.labeled_truth(hard_project, video)
    assert np.array_equal(frames, np.linspace(0, 149, 60).round().astype(int))
    every = footage.read_tracks(hard_project.parent / "videos" / "fishtank_groundtruth.h5", BODYPARTS)
    assert every.shape == (150, 3, 5, 3)
    labeled = np.isfinite(truth[..., 0])
    np.testing.assert_allclose(truth[..., :2][labeled], every[frames][..., :2][labeled], atol=1e-3)
    # Labels leave out hidden and out-of-view keypoints; in_view drops the out-of-view ones of a track file.
    assert (~labeled).any()
    out = footage.in_view(every, SIZE, SIZE)
    assert np.isnan(out[..., 0]).any() and not np.isnan(every[..., 0]).any()
    assert not (np.isnan(out[frames][..., 0]) & labeled).any(), "labeled keypoints are all in view"
    assert footage.frame_number("labeled-data/v/img0042.png") == 42
    with pytest.raises(ValueError, match="frame number"):
        footage.frame_number("labeled-data/v/frame.png")
    with pytest.raises(FileNotFoundError, match="no labels"):
        footage.labeled_truth(hard_project, hard_project.parent / "videos" / "other.mp4")


def test_scores_see_swaps_and_names(hard_project):
    frames, truth = footage.track_file_truth(hard_project.parent / "videos" / "fishtank_groundtruth.h5", BODYPARTS)
    truth = footage.in_view(truth, SIZE, SIZE)
    length = float(np.nanmedian(np.linalg.norm(truth[..., 0, :2] - truth[..., -1, :2], axis=-1)))
    perfect = footage.score(truth, truth, 0.5 * length, names_match=True)
    assert perfect["idf1"] == 1 and perfect["switches"] == 0 and perfect["found"] == 1
    assert perfect["named_correctly"] == 1
    swapped = truth.copy()
    swapped[75:, [0, 1]] = truth[75:, [1, 0]]
    s = footage.score(truth, swapped, 0.5 * length, names_match=True)
    assert s["switches"] >= 2 and s["idf1"] < 0.8 and s["found"] == 1
    assert 0.55 < s["named_correctly"] < 0.75  # fish3 all along, fish1 and fish2 half the time
    lost = truth.copy()
    lost[:, 2] = np.nan
    assert footage.score(truth, lost, 0.5 * length, names_match=False)["found"] == pytest.approx(
        1 - np.isfinite(truth[:, 2, :, 0]).any(-1).sum() / np.isfinite(truth[..., 0]).any(-1).sum())


def test_api_keywords_are_used_only_where_they_exist():
    seen = {}

    def old_api(config, videos, track_method="ellipse"):
        seen.update(track_method=track_method)
        return [config]

    assert footage._call(old_api, "c", ["v"], track_method="box", identity_only=True) == ["c"]
    assert seen == {"track_method": "box"}
    assert footage._accepts(old_api, "track_method") and not footage._accepts(old_api, "use_identity")


def test_read_tracks_rejects_single_animal_tables(tmp_path):
    columns = pd.MultiIndex.from_product([["s"], ["snout"], ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    pd.DataFrame(np.zeros((2, 3)), columns=columns).to_hdf(tmp_path / "one.h5", key="df_with_missing")
    with pytest.raises(ValueError, match="not a multi-animal"):
        footage.read_tracks(tmp_path / "one.h5", ["snout"])


def test_animals_found_before_tracking_and_assemblable_animals(hard_project, tmp_path):
    frames, truth = footage.track_file_truth(hard_project.parent / "videos" / "fishtank_groundtruth.h5", BODYPARTS)
    truth = footage.in_view(truth, SIZE, SIZE)
    # Animals with fewer than 3 keypoints in view (the hard scene's fish leave the frame) are left out on request.
    n_in_view = np.isfinite(truth[..., 0]).sum(-1)
    assert ((n_in_view > 0) & (n_in_view < 3)).any()
    three = footage.in_view(truth, SIZE, SIZE, min_keypoints=3)
    assert np.array_equal(np.isfinite(three[..., 0]).any(-1), n_in_view >= 3)
    # Poses of every frame (assemblies or tracklets) find every animal; dropping fish 2 loses its frames.
    per_frame = {int(t): truth[t] for t in frames}
    assert footage.found_before_tracking(per_frame, frames, truth, 5.0) == 1
    without = {t: poses[:2] for t, poses in per_frame.items()}
    present = np.isfinite(truth[..., 0]).any(-1)
    assert footage.found_before_tracking(without, frames, truth, 5.0) == pytest.approx(
        present[:, :2].sum() / present.sum())
    # The same from a tracklet pickle, as convert_detections2tracklets writes it.
    from lightning_dlc.tracking.files import write_tracklets
    from lightning_dlc.tracking.tracklets import Tracklet
    tracklets = [Tracklet(list(frames), truth[:, i]) for i in range(2)]
    path = write_tracklets(tmp_path / "t_el.pickle", tracklets, "s", BODYPARTS, len(frames))
    assert footage.found_before_tracking(footage.tracklet_poses(path), frames, truth, 5.0) == pytest.approx(
        present[:, :2].sum() / present.sum())
