"""Ensembles on the demo project: fake member analyses (ground truth plus independent noise) -> one smoothed
analysis that opens like DeepLabCut's, beats each member, and is drawn by create_labeled_video."""
from __future__ import annotations

import subprocess
import textwrap

import cv2
import numpy as np
import pandas as pd
import pytest

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.pipelines.ensemble import ensemble_analyses, is_ensemble_scorer, read_ensemble_variance
from lightning_dlc.project.predictions import write_predictions

N_FRAMES, NOISE = 60, 3.0
MEMBERS = ["DLC_Resnet50_fishDec4shuffle1_snapshot_010", "DLC_Resnet50_fishDec4shuffle2_snapshot_010"]


@pytest.fixture
def project(tmp_path):
    """A single-animal demo project and two members' analyses of its video (truth + noise, snout lost by one)."""
    config = make_demo_project(tmp_path / "fish", multianimal=False, n_frames=N_FRAMES, n_labeled=5, size=96)
    videos = config.parent / "videos"
    truth = pd.read_hdf(videos / "fishtank_groundtruth.h5")
    rng = np.random.default_rng(0)
    prefixes = []
    for i, scorer in enumerate(MEMBERS):
        values = truth.to_numpy(np.float64).reshape(N_FRAMES, -1, 3).copy()
        values[..., :2] += rng.normal(0, NOISE, values[..., :2].shape)
        values[..., 2] = np.where(np.isfinite(values[..., 0]), 0.8 + 0.1 * i, np.nan)
        if i:
            values[20:30, 0, :2] += 15.0
        df = pd.DataFrame(values.reshape(N_FRAMES, -1), index=truth.index,
                          columns=truth.columns.set_levels([scorer], level="scorer"))
        write_predictions(df, videos / f"fishtank{scorer}.h5", h5_format="table")
        prefixes.append(videos / f"fishtank{scorer}")
    return config, videos / "fishtank.mp4", truth, prefixes


def _error(df: pd.DataFrame, truth: pd.DataFrame) -> float:
    a = df.to_numpy(np.float64).reshape(N_FRAMES, -1, 3)[..., :2]
    b = truth.to_numpy(np.float64).reshape(N_FRAMES, -1, 3)[..., :2]
    return float(np.sqrt(np.nanmean(np.sum((a - b) ** 2, -1))))


def test_ensemble_file_is_a_deeplabcut_analysis_that_beats_each_member(project):
    config, video, truth, prefixes = project
    result = ensemble_analyses(video, prefixes)
    assert result.status == "written" and is_ensemble_scorer(result.scorer)
    assert result.scorer == "DLC_ensemble2_Resnet50_fishDec4shuffle1_snapshot_010"
    assert result.h5 == video.parent / f"fishtank{result.scorer}.h5"
    df = pd.read_hdf(result.h5)                                   # no key: one table, as DeepLabCut reads it
    member = pd.read_hdf(f"{prefixes[0]}.h5")
    assert df.columns.droplevel("scorer").equals(member.columns.droplevel("scorer"))
    assert list(df.columns.get_level_values("scorer").unique()) == [result.scorer]
    assert (df.index == member.index).all()
    errors = [_error(pd.read_hdf(f"{p}.h5"), truth) for p in prefixes]
    assert _error(df, truth) < min(errors), (_error(df, truth), errors)
    likelihood = df.xs("likelihood", level="coords", axis=1).to_numpy()
    np.testing.assert_allclose(likelihood[np.isfinite(likelihood)], 0.85)   # the members' mean

    variance = read_ensemble_variance(result.h5)
    assert variance.shape == (N_FRAMES, 10) and list(variance.columns.get_level_values("coords")[:2]) == ["x_var",
                                                                                                        "y_var"]
    snout = variance["snout"].sum(axis=1)
    assert snout[22:28].mean() > 3 * snout.median()              # the members disagree there

    again = ensemble_analyses(video, prefixes)
    assert again.status == "kept" and again.h5 == result.h5
    before = result.h5.stat().st_mtime_ns
    assert ensemble_analyses(video, prefixes, overwrite=True, smoothing=1.0).status == "written"
    assert result.h5.stat().st_mtime_ns != before


def test_create_labeled_video_draws_the_ensemble(project):
    config, video, _, prefixes = project
    result = ensemble_analyses(video, prefixes)
    out, = api.create_labeled_video(config, [video], snapshot=result.scorer)
    assert out.name.startswith(f"fishtank{result.scorer}") and out.suffix == ".mp4"
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES
    capture.release()


def test_filterpredictions_takes_the_ensemble_as_a_model(project):
    config, video, _, prefixes = project
    result = ensemble_analyses(video, prefixes)
    filtered, = api.filterpredictions(config, [video], snapshot=result.scorer, save_as_csv=False)
    assert filtered == video.parent / f"fishtank{result.scorer}_filtered.h5"
    assert pd.read_hdf(filtered).columns.equals(pd.read_hdf(result.h5).columns)


def test_bad_members_are_refused(project, tmp_path):
    _, video, _, prefixes = project
    with pytest.raises(ValueError, match="at least two"):
        ensemble_analyses(video, prefixes[:1])
    with pytest.raises(Exception, match="no such analysis file"):
        ensemble_analyses(video, [prefixes[0], video.parent / "fishtankDLC_Other_fishDec4shuffle9_snapshot_001"])
    with pytest.raises(ValueError, match="at least two members"):
        api.analyze_videos_ensemble(project[0], [video], shuffles=[1], snapshots=["best"])
    with pytest.raises(ValueError, match="must start with"):
        api.analyze_videos_ensemble(project[0], [video], shuffles=[1, 2], scorer="mine")
    assert not list(video.parent.glob("fishtankDLC_ensemble*"))  # nothing half-written


@pytest.mark.slow
def test_deeplabcut_reads_our_ensemble(project):
    """DeepLabCut 3.0.2's own file search and reader (in its environment) open the ensemble as an analysis."""
    from dlc_peer import peer_python

    python = peer_python()
    _, video, _, prefixes = project
    result = ensemble_analyses(video, prefixes)
    script = textwrap.dedent(f"""
        from deeplabcut.utils.auxiliaryfunctions import load_analyzed_data
        df, path, scorer, _ = load_analyzed_data({str(video.parent)!r}, "fishtank", {result.scorer!r})
        print(path, scorer, df.shape, list(df.columns.names))
        _, member_path, _, _ = load_analyzed_data({str(video.parent)!r}, "fishtank", {MEMBERS[0]!r})
        print(member_path)
    """)
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found, member = run.stdout.strip().splitlines()[-2:]
    assert found.startswith(str(result.h5)) and f"({N_FRAMES}, 15)" in found
    assert "['scorer', 'bodyparts', 'coords']" in found
    assert member == f"{prefixes[0]}.h5"                          # the member's own search does not find the ensemble


@pytest.mark.slow
def test_analyze_videos_ensemble_of_two_snapshots_reuses_the_analyses(tmp_path):
    """A tiny model trained 2 epochs (a snapshot each); the api analyzes the video with both and smooths."""
    config = make_demo_project(tmp_path / "fish", multianimal=False, n_frames=30, n_labeled=20, size=96)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=2, save_epochs=1, batch_size=8, net_type="resnet_18",
                      overrides=["model.backbone.name=regnetx_002", "model.backbone.pretrained=false",
                                 "data.num_workers=0", "eval_interval=0", "augment=none", "logger=csv",
                                 "trainer.enable_progress_bar=false"])
    video = config.parent / "videos" / "fishtank.mp4"
    options = dict(snapshots=[0, -1], device="cpu", progress=False, verbose=False)
    result, = api.analyze_videos_ensemble(config, [video], **options)
    members = sorted(p for p in video.parent.glob("fishtankDLC_*.h5") if not is_ensemble_scorer(
        p.stem.removeprefix("fishtank")))
    assert len(members) == 2 and result.members == members and result.status == "written"
    assert result.h5.is_file() and (video.parent / f"fishtank{result.scorer}_meta.pickle").is_file()
    df = pd.read_hdf(result.h5)
    assert df.shape == (30, 15) and df.columns.droplevel("scorer").equals(
        pd.read_hdf(members[0]).columns.droplevel("scorer"))
    stamps = [p.stat().st_mtime_ns for p in members]
    again, = api.analyze_videos_ensemble(config, [video], **options)
    assert again.status == "kept" and [p.stat().st_mtime_ns for p in members] == stamps   # nothing re-run


def test_multi_animal_tracks_are_matched_then_smoothed(tmp_path):
    """Two members' stitched tracks (_el.h5) of the 3-fish demo, the second with its tracks in another order."""
    config = make_demo_project(tmp_path / "fish", n_frames=N_FRAMES, n_labeled=5, size=128, unique_bodyparts=True)
    videos = config.parent / "videos"
    truth = pd.read_hdf(videos / "fishtank_groundtruth.h5")
    rng = np.random.default_rng(1)
    prefixes = []
    for i, scorer in enumerate(MEMBERS):
        values = truth.to_numpy(np.float64).reshape(N_FRAMES, -1, 3).copy()
        values[..., :2] += rng.normal(0, NOISE, values[..., :2].shape)
        values[..., 2] = np.where(np.isfinite(values[..., 0]), 0.9, np.nan)
        if i:  # fish3's track is this member's first, and so on; the unique bodypart stays last
            fish = values[:, :15].reshape(N_FRAMES, 3, 5, 3)[:, [2, 0, 1]]
            values[:, :15] = fish.reshape(N_FRAMES, 15, 3)
        df = pd.DataFrame(values.reshape(N_FRAMES, -1), index=truth.index,
                          columns=truth.columns.set_levels([scorer], level="scorer"))
        write_predictions(df, videos / f"fishtank{scorer}_el.h5", h5_format="table")
        prefixes.append(videos / f"fishtank{scorer}")
    result = ensemble_analyses(videos / "fishtank.mp4", prefixes, multianimal=True, track_method="ellipse")
    assert result.h5 == videos / f"fishtank{result.scorer}_el.h5"
    df = pd.read_hdf(result.h5)
    assert list(df.columns.get_level_values("individuals").unique()) == ["fish1", "fish2", "fish3", "single"]
    first = pd.read_hdf(f"{prefixes[0]}_el.h5")
    assert _error(df, truth) < 0.8 * _error(first, truth)          # tracks lined up: fish averaged with itself
    assert read_ensemble_variance(result.h5).shape == (N_FRAMES, 32)


@pytest.mark.slow  # two Hydra apps in subprocesses (~3 s each)
def test_command_composes_and_needs_videos(tmp_path):
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "lightning-dlc"
    shown = subprocess.run([str(cli), "analyze-ensemble", "--cfg", "job", "shuffles=[1,2]"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "average: median" in shown.stdout, shown.stderr
    assert "- 1\n- 2" in shown.stdout
    empty = subprocess.run([str(cli), "analyze-ensemble", "config=/nowhere/config.yaml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode != 0 and "no videos given" in empty.stderr + empty.stdout
