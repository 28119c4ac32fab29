"""CTD tracking's state machine (DeepLabCut's CTDInferenceRunner): conditions from the previous frame, the
bottom-up model only to start and to fill lost tracks, NMS of converged tracks, DeepLabCut's options."""
import numpy as np
import pytest

from lightning_dlc.tracking.ctd import CTDTracker, CTDTrackingConfig, nms_oks


def pose(x, y, score=0.9, k=4):
    """An animal: k keypoints on a 20-pixel-wide curve from (x, y) (OKS needs a box with an area)."""
    p = np.zeros((k, 3), np.float32)
    p[:, 0], p[:, 1], p[:, 2] = x + np.arange(k) * 20 / (k - 1), y + np.arange(k) ** 2 * 3, score
    return p


class Counter:
    def __init__(self, poses):
        self.poses, self.calls = poses, 0

    def __call__(self):
        self.calls += 1
        return self.poses


def test_config_has_deeplabcuts_defaults_and_builds_from_seconds():
    cfg = CTDTrackingConfig.build(True)
    assert (cfg.bu_on_lost_idv, cfg.bu_min_frequency, cfg.bu_max_frequency) == (True, None, 100)
    assert (cfg.threshold_bu_add, cfg.threshold_ctd, cfg.threshold_nms) == (0.25, 0.01, 0.9)
    assert CTDTrackingConfig.build({"bu_max_frequency": 2}, video_fps=30).bu_max_frequency == 60
    with pytest.raises(ValueError, match="unknown options"):
        CTDTrackingConfig.build({"bu_every": 3})


def test_previous_poses_are_the_next_conditions_and_tracks_keep_their_rows():
    tracker = CTDTracker()
    bu = Counter(np.stack([pose(10, 10), pose(100, 100), np.full((4, 3), np.nan, np.float32)]))
    cond = tracker.conditions(bu)
    assert bu.calls == 1 and len(cond) == 2  # the empty bottom-up row is no condition
    # the CTD model moved both animals a little; three rows (the project's individuals)
    refined = np.stack([pose(12, 10), pose(103, 100), np.full((4, 3), np.nan, np.float32)])
    out = tracker.update(refined, (200, 200))
    np.testing.assert_allclose(out[:2], refined[:2])
    cond = tracker.conditions(bu)
    assert bu.calls == 1, "a tracked animal needs no bottom-up model"
    np.testing.assert_allclose(cond, refined[:2])
    # next frame: each condition's refinement lands in its track's row
    out = tracker.update(np.stack([pose(14, 10), pose(106, 100), np.full((4, 3), np.nan, np.float32)]), (200, 200))
    assert out[0, 0, 0] == pytest.approx(14) and out[1, 0, 0] == pytest.approx(106)


def test_converged_tracks_are_reduced_to_one_and_lost_rows_refilled_by_the_bottom_up_model():
    tracker = CTDTracker(CTDTrackingConfig(bu_max_frequency=1))
    tracker.conditions(Counter(np.stack([pose(10, 10), pose(100, 100)])))
    tracker.update(np.stack([pose(10, 10), pose(100, 100)]), (200, 200))
    # both tracks converged on the first animal: NMS keeps one (the older, better scored)
    out = tracker.update(np.stack([pose(10, 10, 0.95), pose(10.5, 10, 0.5)]), (200, 200))
    assert tracker.missing and len(tracker.previous) == 1
    assert out.shape == (2, 4, 3)
    # the bottom-up model runs again (bu_max_frequency=1) and its unmatched animal fills the free row
    bu = Counter(np.stack([pose(10, 10), pose(150, 50)]))
    cond = tracker.conditions(bu)
    assert bu.calls == 1 and len(cond) == 2 and cond[1, 0, 0] == pytest.approx(150)


def test_keypoints_below_threshold_or_outside_the_frame_are_not_conditions():
    tracker = CTDTracker()
    tracker.conditions(Counter(pose(10, 10)[None]))
    refined = pose(10, 10)[None].copy()
    refined[0, 0, 2] = 0.005  # <= threshold_ctd
    refined[0, 3, 0] = 250  # outside a 200-pixel-wide frame
    tracker.update(refined, (200, 200))
    cond = tracker.conditions(Counter(None))
    assert np.isnan(cond[0, 0]).all() and np.isnan(cond[0, 3]).all() and np.isfinite(cond[0, 1]).all()


def test_nothing_left_restarts_from_the_bottom_up_model():
    tracker = CTDTracker()
    tracker.conditions(Counter(pose(10, 10)[None]))
    tracker.update(np.full((1, 4, 3), np.nan, np.float32), (200, 200))
    bu = Counter(pose(50, 50)[None])
    assert tracker.conditions(bu)[0, 0, 0] == pytest.approx(50) and bu.calls == 1


@pytest.mark.parametrize("drop", [None, 3])
def test_a_track_no_bottom_up_animal_confirms_is_dropped_only_when_asked(drop):
    """The CTD model keeps a confident pose where the animal was (it left, or merged with another); the bottom-up
    model, run every frame, finds the first animal and a new one elsewhere. DeepLabCut's tracker keeps the stale
    track in its row forever; ``drop_unconfirmed=3`` frees the row after 3 runs and the new animal takes it."""
    tracker = CTDTracker(CTDTrackingConfig(bu_min_frequency=1, drop_unconfirmed=drop))
    tracker.conditions(Counter(np.stack([pose(10, 10), pose(100, 100)])))
    tracker.update(np.stack([pose(10, 10), pose(100, 100)]), (200, 200))
    bottom_up = Counter(np.stack([pose(10, 10), pose(150, 20)]))
    stale = np.stack([pose(10, 10), pose(100, 100)])
    for _ in range(2):  # the CTD model returns the stale pose whatever its conditions
        cond = tracker.conditions(bottom_up)
        np.testing.assert_allclose(cond[1], stale[1])  # unconfirmed once, twice: kept either way
        tracker.update(stale, (200, 200))
    cond = tracker.conditions(bottom_up)  # the third bottom-up run without it
    if drop is None:
        np.testing.assert_allclose(cond[1], stale[1])
        assert len(cond) == 2
    else:
        assert len(cond) == 2 and cond[1, 0, 0] == pytest.approx(150)  # the new animal in the freed row
        np.testing.assert_allclose(cond[0], stale[0])  # the confirmed track is untouched
        out = tracker.update(np.stack([pose(11, 10), pose(151, 20)]), (200, 200))
        assert out[0, 0, 0] == pytest.approx(11) and out[1, 0, 0] == pytest.approx(151)


def test_nms_oks_keeps_the_best_of_overlapping_poses():
    poses = np.stack([pose(10, 10, 0.5), pose(10.2, 10, 0.9), pose(100, 100, 0.7)])
    assert nms_oks(poses, 0.9, 0.01).tolist() == [False, True, True]
