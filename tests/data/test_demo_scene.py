"""The synthetic fish tank behind the demo project: ground truth must match the pixels exactly."""
from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from lightning_dlc.data.demo_scene import BODYPARTS, DemoScene, render_scene
from lightning_dlc.data.video_writer import write_video
from video_frames import decode_rgb  # tests/video_frames.py

W = H = 256
LENGTH = 0.23 * W  # snout-to-tailtip length of the spine


@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return render_scene(n_frames=300, n_fish=3, width=W, height=H, fps=30.0, seed=0)


@pytest.fixture(scope="module")
def empty_tank() -> DemoScene:
    # Background and sensor noise do not depend on n_fish: untouched pixels match bit for bit.
    return render_scene(n_frames=300, n_fish=0, width=W, height=H, fps=30.0, seed=0)


def _pixels(frames: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """RGB at the pixel nearest each keypoint: [F, N, B, 3]."""
    col = np.clip(np.rint(kp[..., 0]), 0, frames.shape[2] - 1).astype(int)
    row = np.clip(np.rint(kp[..., 1]), 0, frames.shape[1] - 1).astype(int)
    f = np.arange(len(frames))[:, None, None]
    return frames[f, row, col]


def test_shapes_and_dtypes(scene):
    assert BODYPARTS == ("snout", "head", "dorsal", "tailbase", "tailtip")
    assert scene.frames.shape == (300, H, W, 3) and scene.frames.dtype == np.uint8
    assert scene.keypoints.shape == (300, 3, 5, 2) and scene.keypoints.dtype == np.float32
    assert scene.visible.shape == (300, 3, 5) and scene.visible.dtype == bool
    assert scene.landmark.shape == (2,) and scene.landmark.dtype == np.float32
    assert scene.fps == 30.0
    assert np.isfinite(scene.keypoints).all()
    # Not a flat picture: textured background and sensor noise.
    assert scene.frames[0].std() > 10
    assert not np.array_equal(scene.frames[0], scene.frames[1])


def test_deterministic():
    a = render_scene(n_frames=40, n_fish=4, seed=3)
    b = render_scene(n_frames=40, n_fish=4, seed=3)
    for field in ("frames", "keypoints", "visible", "landmark"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    c = render_scene(n_frames=40, n_fish=4, seed=4)
    assert not np.array_equal(a.keypoints, c.keypoints)
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_fish_cross_and_occlude(scene):
    kp = scene.keypoints
    lo, hi = kp.min(axis=2), kp.max(axis=2)  # keypoint bounding box per fish, [F, N, 2]
    episodes = 0
    for a in range(3):
        for b in range(a + 1, 3):
            overlap = ((lo[:, a] < hi[:, b]) & (lo[:, b] < hi[:, a])).all(axis=-1)
            episodes += int(overlap[0]) + int((np.diff(overlap.astype(int)) == 1).sum())
    assert episodes >= 3
    inside = (kp[..., 0] >= 0) & (kp[..., 0] <= W - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= H - 1)
    assert (inside & ~scene.visible).any(), "no keypoint is ever hidden under another fish"


def test_keypoints_mostly_inside_and_outside_ones_invisible():
    # n_fish=10 makes more of them reach the walls.
    sc = render_scene(n_frames=300, n_fish=10, seed=0)
    kp = sc.keypoints
    outside = (kp[..., 0] < 0) | (kp[..., 0] > W - 1) | (kp[..., 1] < 0) | (kp[..., 1] > H - 1)
    assert outside.any()
    assert outside.mean() < 0.01
    overshoot = np.maximum(np.maximum(-kp, kp - np.array([W - 1, H - 1])), 0).max()
    assert overshoot < 10
    assert not sc.visible[outside].any()


def test_hidden_exactly_where_a_later_fish_covers(scene):
    # Fish 0 is drawn first and looks the same whatever n_fish is: rendered alone, its hidden
    # keypoints become visible and the pixel there changes, since a later fish covered it.
    alone = render_scene(n_frames=300, n_fish=1, seed=0)
    assert np.array_equal(alone.keypoints[:, 0], scene.keypoints[:, 0])
    kp = scene.keypoints[:, :1]
    inside = (kp[..., 0] >= 0) & (kp[..., 0] <= W - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= H - 1)
    hidden = inside & ~scene.visible[:, :1]
    assert hidden.any()
    assert alone.visible[:, :1][hidden].all()
    changed = np.abs(_pixels(scene.frames, kp).astype(int) - _pixels(alone.frames, kp)).sum(-1)
    assert (changed[hidden] > 0).all()
    # The top fish can never be hidden.
    top = scene.keypoints[:, 2]
    top_inside = (top[..., 0] >= 0) & (top[..., 0] <= W - 1) & (top[..., 1] >= 0) & (top[..., 1] <= H - 1)
    assert np.array_equal(scene.visible[:, 2], top_inside)


def test_visible_keypoints_lie_on_the_fish(scene, empty_tank):
    diff = np.abs(_pixels(scene.frames, scene.keypoints).astype(int)
                  - _pixels(empty_tank.frames, scene.keypoints)).sum(-1)
    for j, name in enumerate(BODYPARTS):
        v = scene.visible[..., j]
        assert v.sum() > 800, name
        # Sensor noise is identical in both renders, so any fish pixel shows as a difference;
        # a real one, not an anti-aliased fringe.
        assert (diff[..., j][v] > 30).all(), name


def test_anatomy_and_motion(scene):
    kp = scene.keypoints.astype(np.float64)
    # Keypoints sit in order along a bendable but inextensible spine.
    along = np.linalg.norm(np.diff(kp, axis=2), axis=-1).sum(-1)
    assert (along <= LENGTH + 0.05).all() and (along > 0.95 * LENGTH).all()
    # Heading follows velocity: the snout leads.
    vel = np.gradient(kp[:, :, 2], axis=0)
    axis = kp[:, :, 0] - kp[:, :, 3]
    cos = (vel * axis).sum(-1) / (np.linalg.norm(vel, axis=-1) * np.linalg.norm(axis, axis=-1))
    assert cos.min() > 0.7
    # Smooth: bounded speed and acceleration, and the fish keeps moving.
    step = np.linalg.norm(np.diff(kp[:, :, 2], axis=0), axis=-1)
    assert step.max() < 8 and step.min() > 0.5
    assert np.linalg.norm(np.diff(kp[:, :, 2], 2, axis=0), axis=-1).max() < 2
    # The tail beats: the tail tip swings from side to side relative to the body axis.
    rel = kp[:, :, 4] - kp[:, :, 2]
    side = axis[..., 0] * rel[..., 1] - axis[..., 1] * rel[..., 0]
    assert ((np.diff(np.sign(side), axis=0) != 0).sum(axis=0) >= 10).all()


def test_fish_look_different(scene):
    # Median colour at the dorsal keypoint over the frames where it is visible.
    px = _pixels(scene.frames, scene.keypoints)[:, :, 2].astype(float)
    med = np.array([np.median(px[scene.visible[:, i, 2], i], axis=0) for i in range(3)])
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(med[a] - med[b]).sum() > 60


def test_landmark_never_occluded(scene, empty_tank):
    x, y = scene.landmark
    assert 0 <= x <= W - 1 and 0 <= y <= H - 1
    assert np.array_equal(scene.landmark, empty_tank.landmark)
    r = int(0.04 * W)
    xi, yi = int(round(float(x))), int(round(float(y)))
    patch = (slice(None), slice(yi - r, yi + r + 1), slice(xi - r, xi + r + 1))
    assert np.array_equal(scene.frames[patch], empty_tank.frames[patch])
    # Distinctive: the marker stands out from the sand around it.
    assert empty_tank.frames[0][patch[1:]].std() > 40


@pytest.mark.parametrize("n_fish", [1, 10])
def test_fish_counts(n_fish):
    sc = render_scene(n_frames=30, n_fish=n_fish, seed=1)
    assert sc.keypoints.shape == (30, n_fish, 5, 2)
    assert sc.visible[0].any(axis=-1).all()


def test_other_sizes_and_rates():
    sc = render_scene(n_frames=20, n_fish=2, width=320, height=192, fps=60.0, seed=2)
    assert sc.frames.shape == (20, 192, 320, 3)
    assert sc.fps == 60.0
    kp = sc.keypoints
    assert (kp[..., 0] > -10).all() and (kp[..., 0] < 330).all()
    assert (kp[..., 1] > -10).all() and (kp[..., 1] < 202).all()


def test_render_is_fast():
    render_scene(n_frames=10)  # warm up lazy imports
    start = time.perf_counter()
    render_scene(n_frames=300, n_fish=3)
    assert time.perf_counter() - start < 10  # about 0.3 s here; generous for slow CI machines


def test_module_does_not_import_torch():
    code = "import sys, lightning_dlc.data.demo_scene; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_write_video_h264_round_trip(scene, tmp_path):
    frames = scene.frames[:30]
    path = tmp_path / "demo.mp4"
    write_video(path, frames, scene.fps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4"]  # no temp file left behind
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    # Frame extraction seeks by index: it must land on the right frame.
    cap.set(cv2.CAP_PROP_POS_FRAMES, 17)
    ok, frame17 = cap.read()
    cap.release()
    assert ok
    decoded = decode_rgb(path)
    assert decoded.shape == frames.shape
    mad = np.abs(decoded.astype(int) - frames).mean(axis=(1, 2, 3))
    assert mad.max() < 8
    seek = np.abs(cv2.cvtColor(frame17, cv2.COLOR_BGR2RGB).astype(int)[None] - frames).mean(axis=(1, 2, 3))
    assert int(np.argmin(seek)) == 17
    # Deterministic bytes.
    again = tmp_path / "again.mp4"
    write_video(again, frames, scene.fps)
    assert again.read_bytes() == path.read_bytes()


def test_write_video_vp9_round_trip(scene, tmp_path):
    frames = scene.frames[:20]
    path = tmp_path / "demo.webm"
    write_video(path, frames, scene.fps, codec="libvpx-vp9")
    decoded = decode_rgb(path)
    if len(decoded) == 0:  # an OpenCV build without VP9
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        decoded = np.array([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_write_video_mjpeg_round_trip(scene, tmp_path):
    frames = scene.frames[:10]
    path = tmp_path / "demo.avi"
    write_video(path, frames, scene.fps, codec="mjpeg")
    decoded = decode_rgb(path)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_write_video_errors(scene, tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", scene.frames[:2], 30.0, codec="h265")
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", scene.frames[:2, :, :, 0], 30.0)
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", scene.frames[:2, :255], 30.0)
    # ffmpeg itself fails (no muxer for this suffix): an error, and nothing left on disk.
    with pytest.raises(RuntimeError, match="ffmpeg"):
        write_video(tmp_path / "x.notavideoformat", scene.frames[:2], 30.0)
    assert list(tmp_path.iterdir()) == []
