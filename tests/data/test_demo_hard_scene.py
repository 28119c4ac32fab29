"""The hard demo scene: fish that touch, leave the frame and come back, and look (nearly) alike;
the default scene is unchanged, bit for bit."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.data.demo_scene import HardScene, render_scene
from lightning_dlc.project import ProjectConfig, load_dlc_project

W = H = 128
LENGTH = 0.23 * W


def _digest(scene) -> str:
    h = hashlib.sha256()
    for a in (scene.frames, scene.keypoints, scene.visible, scene.landmark):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_default_scene_is_unchanged():
    # Hashes taken before the hard scene existed: the README's demo numbers and every test rely on it.
    assert _digest(render_scene(n_frames=60, n_fish=4, width=128, height=96, seed=3)) == \
        "9be1723dc8f24a58ff7192fd880f917c589f8f0bf45d5f332bcb60d309d88600"
    assert _digest(render_scene(n_frames=300, n_fish=3, width=128, height=128)) == \
        "ffb430f25bba4d778a1b02457f032326acf1edd8259bb47aabc921602f31b57a"


@pytest.fixture(scope="module")
def hard():
    return render_scene(n_frames=300, n_fish=3, width=W, height=H, scene="hard")


@pytest.fixture(scope="module")
def look_alike():
    return render_scene(n_frames=300, n_fish=3, width=W, height=H, scene="hard", look_alike=True)


def _inside(kp):
    return (kp[..., 0] >= 0) & (kp[..., 0] <= W - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= H - 1)


def _pixels(frames, kp):
    col = np.clip(np.rint(kp[..., 0]), 0, frames.shape[2] - 1).astype(int)
    row = np.clip(np.rint(kp[..., 1]), 0, frames.shape[1] - 1).astype(int)
    return frames[np.arange(len(frames))[:, None, None], row, col]


@pytest.mark.parametrize("which", ["hard", "look_alike"])
def test_consecutive_fish_swim_touching(which, request):
    scene = request.getfixturevalue(which)
    dorsal = scene.keypoints[:, :, 2]
    for a, b in ((0, 1), (1, 2)):
        d = np.linalg.norm(dorsal[:, a] - dorsal[:, b], axis=-1)
        # Side by side: centres about two half-widths apart (bodies touching) for over a second.
        side_by_side = (d < 0.25 * LENGTH) & (d > 0.1 * LENGTH)
        assert side_by_side.sum() >= 30, (a, b, side_by_side.sum())
        # Heading the same way while they touch.
        axis = scene.keypoints[:, :, 0] - scene.keypoints[:, :, 3]
        cos = (axis[:, a] * axis[:, b]).sum(-1) / np.linalg.norm(axis[:, a], axis=-1) / np.linalg.norm(axis[:, b], axis=-1)
        assert np.median(cos[side_by_side]) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fish_leave_the_frame_and_come_back(seed):
    scene = render_scene(n_frames=300, n_fish=3, width=W, height=H, scene="hard", seed=seed)
    inside = _inside(scene.keypoints)
    gone = ~inside[:, 0].any(-1)
    assert gone.sum() >= 15, "fish 1 wholly out of view for a while"
    first, last = np.flatnonzero(gone)[[0, -1]]
    assert inside[:first, 0].all(-1).any() and inside[last + 1:, 0].all(-1).any(), "... and back in view"
    partly = (~inside[:, 2]).any(-1) & inside[:, 2].any(-1)
    assert partly.sum() >= 10, "fish 3 partly out"
    assert inside[:, 1].all(-1).mean() > 0.9, "fish 2 stays in"
    # Ground truth stays exact out there: out of the image means not visible, positions continue.
    assert not scene.visible[~inside].any()
    step = np.linalg.norm(np.diff(scene.keypoints[:, :, 2], axis=0), axis=-1)
    assert step.max() < 0.3 * LENGTH and step.min() > 0.005 * LENGTH, "smooth and always moving"


def test_hard_scene_motion_is_fish_like(hard):
    kp = hard.keypoints.astype(np.float64)
    along = np.linalg.norm(np.diff(kp, axis=2), axis=-1).sum(-1)
    sizes = HardScene().size_factors(3) * LENGTH
    assert (along <= sizes + 0.05).all() and (along > 0.95 * sizes).all()
    # The snout leads (heading follows the velocity) nearly always, turns included.
    vel = np.gradient(kp[:, :, 2], axis=0)
    axis = kp[:, :, 0] - kp[:, :, 3]
    cos = (vel * axis).sum(-1) / (np.linalg.norm(vel, axis=-1) * np.linalg.norm(axis, axis=-1))
    assert np.mean(cos > 0.5) > 0.97


def test_visible_keypoints_lie_on_the_fish(hard):
    empty = render_scene(n_frames=300, n_fish=0, width=W, height=H, scene="hard")
    diff = np.abs(_pixels(hard.frames, hard.keypoints).astype(int) - _pixels(empty.frames, hard.keypoints)).sum(-1)
    assert hard.visible.mean() > 0.6
    assert (diff[hard.visible] > 30).mean() > 0.995
    # Hidden inside the image: under a fish drawn later (touching and crossing make many).
    assert (_inside(hard.keypoints) & ~hard.visible).sum() > 100


def test_known_identities_differ_slightly_look_alikes_not_at_all(hard, look_alike):
    def body_colours(scene):
        # Between head and dorsal fin: the plain body, away from eyes and saddle.
        mid = 0.5 * (scene.keypoints[:, :, 1:2] + scene.keypoints[:, :, 2:3])
        px = _pixels(scene.frames, mid)[:, :, 0].astype(float)
        seen = scene.visible[:, :, 1] & scene.visible[:, :, 2]
        return np.array([np.median(px[seen[:, i], i], axis=0) for i in range(3)])

    known, alike = body_colours(hard), body_colours(look_alike)
    for a, b in ((0, 1), (1, 2)):
        assert 15 < np.abs(known[a] - known[b]).sum() < 200, "slightly different colours"
        assert np.abs(alike[a] - alike[b]).sum() < 8, "the same colour"
    lengths = np.linalg.norm(np.diff(hard.keypoints, axis=2), axis=-1).sum(-1).mean(0)
    assert lengths[0] < lengths[1] < lengths[2] < 1.2 * lengths[0]
    alike_lengths = np.linalg.norm(np.diff(look_alike.keypoints, axis=2), axis=-1).sum(-1).mean(0)
    assert np.ptp(alike_lengths) < 0.01 * LENGTH


def test_knobs_and_bad_arguments():
    a = render_scene(n_frames=150, n_fish=2, width=W, height=H, scene="hard", seed=5)
    b = render_scene(n_frames=150, n_fish=2, width=W, height=H, scene=HardScene(), seed=5)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.keypoints, b.keypoints)
    calm = render_scene(n_frames=150, n_fish=2, width=W, height=H, seed=5,
                        scene=HardScene(contact_seconds=0, exit_reach=0))
    assert not np.array_equal(a.keypoints, calm.keypoints)
    with pytest.raises(ValueError, match="look_alike"):
        render_scene(n_frames=4, look_alike=True)
    with pytest.raises(ValueError, match="scene"):
        render_scene(n_frames=4, scene="harder")
    with pytest.raises(ValueError, match="pattern"):
        HardScene(pattern="stars")


def test_hard_demo_project_with_identity(tmp_path, hard):
    config = make_demo_project(tmp_path / "hard", n_frames=300, n_labeled=40, size=W, scene="hard", identity=True)
    assert ProjectConfig.read(config).identity is True
    data = load_dlc_project(config)
    assert data.meta.individuals == ("fish1", "fish2", "fish3")
    frames = np.linspace(0, 299, 40).round().astype(int)
    kp = np.stack([r.keypoints for r in data.records])
    # fish1 is fish 0 of the scene in every labeled frame: names are consistent identities.
    truth = np.where(hard.visible[frames][..., None], hard.keypoints[frames], np.nan)
    np.testing.assert_allclose(kp[..., :2], truth, atol=1e-3)
    assert np.isnan(kp[..., 0]).any(axis=-1).any(), "some frames have fish out of view or hidden"
