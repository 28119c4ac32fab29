"""The demo at a cichlid lab's size: ten fish, nine bodyparts, 1296x972 frames (benchmarks/multi_animal_speed.py)."""
import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.demo import frame_size, make_demo_project
from lightning_dlc.data.demo_scene import BODYPARTS, BODYPARTS_9, render_scene
from lightning_dlc.project import ProjectConfig, load_dlc_project


def test_ten_fish_nine_bodyparts_wide_frames(tmp_path):
    config = make_demo_project(tmp_path / "cichlids", n_fish=10, n_bodyparts=9, size=[1296, 972], n_frames=4,
                               n_labeled=2)
    cfg = ProjectConfig.read(config)
    assert cfg.individuals == tuple(f"fish{i}" for i in range(1, 11)) and cfg.bodyparts == BODYPARTS_9
    assert cfg.data["x2"] == 1296 and cfg.data["y2"] == 972
    video = cv2.VideoCapture(str(tmp_path / "cichlids/videos/fishtank.mp4"))
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1296, 972)
    data = load_dlc_project(config)
    assert data.records[0].keypoints.shape == (10, 9, 3)
    truth = pd.read_hdf(tmp_path / "cichlids/videos/fishtank_groundtruth.h5")
    xy = truth.to_numpy().reshape(4, 10, 9, 3)
    assert (xy[..., 0] >= 0).all() and (xy[..., 0] <= 1295).all() and (xy[..., 1] <= 971).all()


def test_nine_bodyparts_extend_the_five_on_the_same_fish():
    five = render_scene(n_frames=3, n_fish=2, width=160, height=96)
    nine = render_scene(n_frames=3, n_fish=2, width=160, height=96, n_bodyparts=9)
    assert np.array_equal(five.frames, nine.frames), "the same footage"
    same = [BODYPARTS_9.index(name) for name in BODYPARTS]
    assert np.array_equal(nine.keypoints[:, :, same], five.keypoints)
    # the extra points lie between their neighbours along the body
    spine = np.linalg.norm(np.diff(nine.keypoints, axis=2), axis=-1)
    assert (spine > 0).all()


def test_size_is_a_side_or_width_height():
    assert frame_size(256) == (256, 256) and frame_size([1296, 972]) == (1296, 972)
    with pytest.raises(ValueError, match="width, height"):
        frame_size([1, 2, 3])
    with pytest.raises(ValueError, match="n_bodyparts"):
        render_scene(n_frames=1, n_fish=1, width=64, height=64, n_bodyparts=7)
