"""More animals in a video than tracks: a warning naming the frames, and stitching still works."""
from __future__ import annotations

import logging

import numpy as np

from lightning_dlc.tracking.crowding import animals_per_frame, crowded_runs, warn_too_many_animals
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.synthetic import noisy_detections
from lightning_dlc.tracking.tracklets import Tracklet, link_detections


def _walker(frames, y: float, k: int = 3) -> Tracklet:
    frames = np.asarray(frames)
    data = np.zeros((len(frames), k, 3))
    data[..., 0] = frames[:, None] * 2.0 + np.arange(k) * 5
    data[..., 1] = y
    data[..., 2] = 0.9
    return Tracklet(frames, data)


def test_runs_of_extra_animals_are_named(caplog):
    # Three residents all along; a visitor in frames 40-69; a 3-frame duplicate at 90-92 (not an animal).
    tracklets = [_walker(range(120), y) for y in (10.0, 60.0, 110.0)]
    tracklets += [_walker(range(40, 70), 160.0), _walker(range(90, 93), 10.5)]
    counts = animals_per_frame(tracklets, n_frames=130)
    assert counts.shape == (130,) and counts[45] == 4 and counts[91] == 4 and counts[125] == 0
    assert crowded_runs(counts, 3) == [(40, 69, 4)]
    assert crowded_runs(counts, 3, min_frames=3) == [(40, 69, 4), (90, 92, 4)]
    assert crowded_runs(counts, 4) == []
    with caplog.at_level(logging.WARNING):
        runs = warn_too_many_animals(tracklets, 3, "video.mp4")
    assert runs == [(40, 69, 4)]
    assert "video.mp4" in caplog.text and "40-69 (4 animals)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert warn_too_many_animals(tracklets, 4, "video.mp4") == []
    assert caplog.text == ""


def test_a_video_with_more_animals_than_tracks_is_tracked_without_a_crash(caplog):
    # Four animals' detections, tracked as three: the warning names frames and stitching still gives 3 tracks.
    rng = np.random.default_rng(0)
    t = np.arange(60)
    truth = np.zeros((60, 4, 3, 3))
    for i in range(4):
        truth[:, i, :, 0] = 20 + 40 * i + np.arange(3)[None] * 6 + 0.5 * t[:, None]
        truth[:, i, :, 1] = 50 + 5 * np.sin(t / 7 + i)[:, None] + rng.normal(0, 0.2, (60, 3))
    truth[..., 2] = 1.0
    tracklets = link_detections(noisy_detections(truth, noise=0.3, seed=1), "box")
    with caplog.at_level(logging.WARNING):
        runs = warn_too_many_animals(tracklets, 3, "four.mp4", n_frames=60)
    assert runs and runs[0][2] == 4 and "four.mp4" in caplog.text
    tracks = stitch_tracklets(tracklets, 3, n_frames=60)
    assert tracks.shape[:2] == (60, 3)


def test_stitching_a_video_with_more_animals_than_individuals_warns_with_its_frames(tmp_path, caplog):
    # The user's path: a tracklet file of a video showing 4 animals in a 3-individual project.
    from lightning_dlc.project.records import ProjectMeta
    from lightning_dlc.tracking import files
    from lightning_dlc.tracking.pipeline import stitch_tracklet_file

    tracklets = [_walker(range(0, 60), y) for y in (10.0, 40.0, 70.0)] + [_walker(range(20, 45), 100.0)]
    prefix = tmp_path / "videoDLC_Resnet50"
    files.write_tracklets(files.tracklet_path(tmp_path, prefix.name, "box"), tracklets, "DLC_Resnet50",
                          ("a", "b", "c"), n_frames=60)
    meta = ProjectMeta(bodyparts=("a", "b", "c"), individuals=("fish1", "fish2", "fish3"))
    with caplog.at_level(logging.WARNING):
        out = stitch_tracklet_file(prefix, "box", meta=meta)
    assert out.is_file()
    assert str(prefix) in caplog.text and "20-44 (4 animals)" in caplog.text
