"""Labeled videos on the demo project's true tracks: frames, size, fps, colours and skeleton drawn."""
from __future__ import annotations

import pickle
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.data.draw import bodypart_colors
from lightning_dlc.review.labeled_video import TablePoses, labeled_video, video_with_all_detections

N_FRAMES, SIZE = 45, 128
SKELETON = [("snout", "head"), ("head", "dorsal"), ("dorsal", "tailbase"), ("tailbase", "tailtip")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = make_demo_project(tmp_path_factory.mktemp("labeled") / "fishtank", n_frames=N_FRAMES, n_labeled=5,
                               size=SIZE)
    videos = config.parent / "videos"
    return videos / "fishtank.mp4", videos / "fishtank_groundtruth.h5"


def _read(path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames, fps
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def test_labeled_video_frames_size_fps_and_colours(demo, tmp_path):
    video, truth = demo
    out = labeled_video(video, truth, tmp_path / "labeled.mp4", skeleton=SKELETON, color_by="bodypart",
                        pcutoff=0.5, dotsize=3, trail_points=3)
    frames, fps = _read(out)
    assert len(frames) == N_FRAMES and frames[0].shape == (SIZE, SIZE, 3) and fps == pytest.approx(30.0)
    cv2.imwrite(str(tmp_path / "frame.png"), cv2.cvtColor(frames[20], cv2.COLOR_RGB2BGR))
    points = TablePoses(truth).rows(20, 21)[0]                 # [15, 3]: fish-major, bodyparts within
    colors = bodypart_colors(5)
    visible = points[:, 2] > 0.5
    drawn = [frames[20][int(round(y)), int(round(x))].astype(int) for x, y, _ in points[visible]]
    expected = np.tile(colors, (3, 1))[visible].astype(int)
    # H.264 blurs colour a little; each dot's centre is still its bodypart's colour
    assert np.median(np.abs(np.array(drawn) - expected)) < 40


def test_keypoints_only_on_black_with_individual_colours_and_skeleton(demo, tmp_path):
    video, truth = demo
    out = labeled_video(video, truth, tmp_path / "dots.mp4", skeleton=SKELETON, color_by="individual",
                        pcutoff=0.5, dotsize=2, keypoints_only=True)
    frame = _read(out)[0][10]
    cv2.imwrite(str(tmp_path / "dots.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    lit = frame.max(-1) > 60
    assert 0.005 < lit.mean() < 0.2                       # dots and lines, the rest black
    points = TablePoses(truth).rows(10, 11)[0].reshape(3, 5, 3)
    fish = bodypart_colors(3).astype(int)
    for k in range(3):  # the middle of the dorsal-tailbase edge is drawn in the fish's colour
        mid = points[k, 2:4, :2].mean(0)
        if (points[k, 2:4, 2] > 0.5).all():
            pixel = frame[int(round(mid[1])), int(round(mid[0]))].astype(int)
            # a thin line, blurred by H.264: dimmer, but the fish's colour dominates
            assert pixel.max() > 100 and pixel.argmax() == fish[k].argmax()


def test_all_detections_video_and_refusals(demo, tmp_path):
    video, truth = demo
    poses = pd.read_hdf(truth).to_numpy().reshape(N_FRAMES, 3, 5, 3)
    assemblies = {t: np.concatenate([poses[t], -np.ones((3, 5, 1))], -1) for t in range(0, N_FRAMES, 2)}
    out = video_with_all_detections(video, assemblies, tmp_path / "full.mp4",
                                    bodyparts=["snout", "head", "dorsal", "tailbase", "tailtip"], skeleton=SKELETON)
    assert len(_read(out)[0]) == N_FRAMES
    with pytest.raises(ProjectError, match="already exists"):
        video_with_all_detections(video, {}, out, bodyparts=["snout"])
    with pytest.raises(ProjectError, match="missing.h5: no such predictions file"):
        labeled_video(video, tmp_path / "missing.h5", tmp_path / "x.mp4")


def test_odd_sized_video_gets_an_even_frame(tmp_path):
    from lightning_dlc.data.video_writer import write_video

    odd = tmp_path / "odd.avi"
    write_video(odd, np.full((3, 33, 41, 3), 90, np.uint8), 10.0, "mjpeg")
    table = tmp_path / "p.h5"
    columns = pd.MultiIndex.from_product([["s"], ["a"], ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    pd.DataFrame([[5.0, 5.0, 1.0]] * 3, columns=columns).to_hdf(table, key="df_with_missing", format="table")
    frames, fps = _read(labeled_video(odd, table, tmp_path / "odd.mp4"))
    assert len(frames) == 3 and frames[0].shape == (34, 42, 3) and fps == pytest.approx(10.0)
