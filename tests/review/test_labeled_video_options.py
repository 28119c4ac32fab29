"""create_labeled_video's DeepLabCut options: displayed bodyparts/individuals, Frames2plot, outputframerate,
confidence_to_alpha, filtered."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.review.labeled_video import TablePoses, confidence_alpha, draw_poses, labeled_video
from lightning_dlc.tracking.filtering import filter_file
from noisy_analysis import noisy_analysis

N_FRAMES, SIZE = 20, 96


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_project(tmp_path_factory.mktemp("options") / "fishtank", n_frames=N_FRAMES, n_labeled=5,
                             size=SIZE)


def _read(path):
    cap = cv2.VideoCapture(str(path))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames, fps


def test_only_chosen_points_and_frames_at_the_chosen_rate(demo, tmp_path):
    video = demo.parent / "videos" / "fishtank.mp4"
    truth = demo.parent / "videos" / "fishtank_groundtruth.h5"
    out = labeled_video(video, truth, tmp_path / "snouts.mp4", pcutoff=0.5, dotsize=2, keypoints_only=True,
                        bodyparts=["snout"], individuals=["fish2"], frames=[0, 5, 10], fps=10, lock=None)
    frames, fps = _read(out)
    assert len(frames) == 3 and fps == pytest.approx(10.0)
    points = TablePoses(truth).rows(5, 6)[0].reshape(3, 5, 3)
    lit = np.argwhere(frames[1].max(-1) > 60)  # frame 5 of the video
    assert len(lit) > 0
    snout = points[1, 0, :2]
    assert np.abs(lit[:, ::-1] - snout).max() < 5  # every lit pixel is fish2's snout's dot


def test_confidence_to_alpha_fades_points():
    fade = confidence_alpha(True, 0.6)
    np.testing.assert_allclose(fade(np.array([0.6, 0.8, 1.0, 0.3])), [0, 0.5, 1, 0])
    assert confidence_alpha(False, 0.6) is None
    assert confidence_alpha(lambda p: 0.25, 0.6)(np.array([0.9]))[0] == 0.25
    canvas = np.full((20, 40, 3), 100, np.uint8)
    points = np.array([[10.0, 10.0, 1.0], [30.0, 10.0, 0.8]])
    draw_poses(canvas, points, np.array([[200, 0, 0], [200, 0, 0]]), np.zeros((0, 2)), 0.6, 3,
               alpha=fade(points[:, 2]))
    assert tuple(canvas[10, 10]) == (200, 0, 0)            # likelihood 1: opaque
    assert tuple(canvas[10, 30]) == (150, 50, 50)          # 0.8: half-way between the dot and the frame


def test_api_draws_filtered_tracks(demo, tmp_path, monkeypatch):
    video = demo.parent / "videos" / "fishtank.mp4"
    prefix, _ = noisy_analysis(demo, tmp_path, tracked=True)
    monkeypatch.setattr(api, "_analysis_prefixes", lambda cfg, videos, *a: [(video, prefix)])
    with pytest.raises(ProjectError, match="_el_filtered.h5.*filterpredictions"):
        api.create_labeled_video(demo, [video], filtered=True)
    filter_file(f"{prefix}_el.h5", save_as_csv=False)
    out, = api.create_labeled_video(demo, [video], filtered=True, Frames2plot=range(4), displayedindividuals="fish1",
                                    confidence_to_alpha=True)
    assert out == tmp_path / f"{prefix.name}_el_filtered_bp_p60_labeled.mp4"
    assert len(_read(out)[0]) == 4
