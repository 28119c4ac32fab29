import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project import ProjectConfig, ProjectError, load_dlc_project


def test_demo_is_a_multi_animal_dlc_project(demo_source):
    data = load_dlc_project(demo_source)
    assert 60 <= len(data) <= 120
    assert data.meta.individuals == ("fish1", "fish2", "fish3")
    assert data.meta.bodyparts == ("snout", "head", "dorsal", "tailbase", "tailtip")
    assert data.meta.unique_bodyparts == ("feeder",)
    assert len(data.meta.skeleton) == 4
    kpts = np.stack([r.keypoints for r in data.records])
    assert kpts.shape == (len(data), 3, 5, 3)
    labeled = np.isfinite(kpts[..., 0])
    assert labeled.mean() > 0.8, "most keypoints are visible and labeled"
    assert not labeled.all(), "fish hide each other: some keypoints are unlabeled"
    root = demo_source.parent
    for suffix in (".h5", ".csv"):
        assert (root / f"labeled-data/fishtank/CollectedData_synthetic{suffix}").exists()


def test_demo_labels_match_ground_truth_tracks_and_video(demo_source):
    root = demo_source.parent
    tracks = pd.read_hdf(root / "videos/fishtank_groundtruth.h5")
    video = cv2.VideoCapture(str(root / "videos/fishtank.mp4"))
    n_frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    assert len(tracks) == n_frames and 300 <= n_frames <= 600, "a 10-20 s clip at 30 fps"
    assert tracks.columns.get_level_values("coords").unique().tolist() == ["x", "y", "likelihood"]
    record = load_dlc_project(demo_source).records[7]
    frame = int(record.key.split("img")[1].split(".")[0])
    truth = tracks.loc[frame].xs("fish2", level="individuals").unstack("coords").droplevel("scorer")
    truth = truth.loc[["snout", "head", "dorsal", "tailbase", "tailtip"]]
    visible = truth["likelihood"].to_numpy() == 1
    np.testing.assert_allclose(record.keypoints[1, visible, :2], truth[["x", "y"]].to_numpy()[visible], atol=1e-4)
    # The labeled image is the video's frame (up to H.264 compression).
    video.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, decoded = video.read()
    assert ok
    assert np.abs(decoded.astype(int) - cv2.imread(str(record.image)).astype(int)).mean() < 6


def test_demo_is_deterministic(demo_source, tmp_path):
    again = make_demo_project(tmp_path / "again", unique_bodyparts=True)
    a, b = load_dlc_project(demo_source), load_dlc_project(again)
    assert all(x.same_labels(y) for x, y in zip(a.records, b.records))
    first = a.records[3].image.read_bytes()
    assert first == b.records[3].image.read_bytes()


def test_demo_refuses_to_overwrite(demo_source):
    with pytest.raises(ProjectError, match="already exists"):
        make_demo_project(demo_source.parent)


def test_single_animal_variant(tmp_path):
    config = make_demo_project(tmp_path / "single", multianimal=False, n_frames=60, n_labeled=20)
    cfg = ProjectConfig.read(config)
    assert not cfg.multianimal and cfg.bodyparts == ("snout", "head", "dorsal", "tailbase", "tailtip")
    data = load_dlc_project(config)
    assert len(data) == 20 and data.records[0].keypoints.shape == (1, 5, 3)
    table = pd.read_hdf(tmp_path / "single/labeled-data/fishtank/CollectedData_synthetic.h5")
    assert table.columns.names == ["scorer", "bodyparts", "coords"], "DeepLabCut's single-animal layout"


def test_demo_dlc_and_coco_records_are_equal(demo, coco_round_trip):
    out = coco_round_trip(demo)
    assert (out / "images/labeled-data/fishtank").is_dir()
