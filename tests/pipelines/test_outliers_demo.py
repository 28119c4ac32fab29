"""Outlier frames on the demo project: its ground truth, with errors injected at known frames, plays the analysis."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.data.video_reader import FrameBatch
from lightning_dlc.pipelines import refine
from lightning_dlc.pipelines.refine import extract_outliers
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.machine_labels import MACHINE_CSV, machine_labels_path

SCORER = "DLC_Resnet50_fishtankJan1shuffle1_snapshot_010"
N_FRAMES = 40
JUMP, UNCERTAIN = 12, 25  # frames where the "model" goes wrong


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_demo_project(tmp_path_factory.mktemp("outliers") / "fishtank", multianimal=False,
                             n_frames=N_FRAMES, n_labeled=10, size=96)


def analysis_from_truth(config: Path, stem: str = "fishtank") -> Path:
    """``videos/<stem><SCORER>.h5``: the true track, the snout 30 px off in frame JUMP, unsure in frame UNCERTAIN."""
    videos = config.parent / "videos"
    table = pd.read_hdf(videos / "fishtank_groundtruth.h5")
    table.columns = table.columns.set_levels([SCORER], level="scorer")
    table.loc[JUMP, (SCORER, "snout", "x")] += 30.0
    table.loc[UNCERTAIN, (SCORER, "tailtip", "likelihood")] = 0.001
    if stem != "fishtank":
        shutil.copy(videos / "fishtank.mp4", videos / f"{stem}.mp4")
    path = videos / f"{stem}{SCORER}.h5"
    table.to_hdf(path, key="df_with_missing", mode="w")
    return path


@pytest.fixture
def project(source, tmp_path) -> Path:
    root = tmp_path / "fishtank"
    shutil.copytree(source.parent, root)
    analysis_from_truth(root / "config.yaml")
    return root / "config.yaml"


def extract(config: Path, stem: str = "fishtank", **options):
    cfg = ProjectConfig.read(config)
    video = config.parent / "videos" / f"{stem}.mp4"
    return extract_outliers(cfg, video, video.parent / f"{stem}{SCORER}", **options)


def test_jump_finds_the_injected_jump_and_writes_images_and_machine_labels(project):
    folder = project.parent / "labeled-data" / "fishtank"
    labeled_before = {p.name for p in folder.glob("*.png")}
    labels_before = (folder / "CollectedData_synthetic.h5").read_bytes()
    result = extract(project, outlieralgorithm="jump", epsilon=20, extractionalgorithm="uniform")
    assert {JUMP, JUMP + 1} <= set(result.flagged.tolist()) and len(result.flagged) <= 4  # away and back
    assert set(result.picked.tolist()) == set(result.flagged.tolist()) - {0}  # few: all of them are picked
    written = {p.name for p in result.extracted.written}
    assert written == {f"img{f:02d}.png" for f in result.picked} - labeled_before
    assert {p.name for p in result.extracted.kept} == {f"img{f:02d}.png" for f in result.picked} & labeled_before
    assert (folder / "CollectedData_synthetic.h5").read_bytes() == labels_before  # the user's labels untouched

    machine = pd.read_hdf(machine_labels_path(folder, 0), "df_with_missing")
    analysis = pd.read_hdf(project.parent / "videos" / f"fishtank{SCORER}.h5")
    assert machine.columns.equals(analysis.columns)  # DeepLabCut's: the analysis' scorer, bodyparts, x/y/likelihood
    assert sorted(machine.index.tolist()) == sorted(("labeled-data", "fishtank", name) for name in written)
    for (_, _, name), row in machine.iterrows():
        np.testing.assert_array_equal(row.to_numpy(), analysis.loc[int(name[3:-4])].to_numpy())
    assert (folder / MACHINE_CSV).is_file()


@pytest.mark.slow  # k-means over decoded frames (~8 s)
def test_uncertain_and_kmeans_on_a_new_video(project):
    analysis_from_truth(project, "second")
    cfg = ProjectConfig.read(project)
    cfg.data["numframes2pick"] = 4
    cfg.save(overwrite=True)
    uncertain = extract(project, "second", outlieralgorithm="uncertain", p_bound=0.01, extractionalgorithm="uniform")
    table = pd.read_hdf(project.parent / "videos" / f"second{SCORER}.h5")
    low = (table.xs("likelihood", level="coords", axis=1) < 0.01).any(axis=1)
    assert UNCERTAIN in uncertain.flagged and uncertain.flagged.tolist() == np.flatnonzero(low).tolist()
    listed = extract(project, "second", outlieralgorithm="list", frames2use=range(1, N_FRAMES),
                     extractionalgorithm="kmeans", cluster_resizewidth=30)
    assert len(listed.picked) == 4 and len(set(listed.picked.tolist())) == 4
    folder = project.parent / "labeled-data" / "second"
    machine = pd.read_hdf(machine_labels_path(folder, 0), "df_with_missing")
    assert len(machine) == len({*uncertain.picked.tolist(), *listed.picked.tolist()}) == len(list(folder.glob("*.png")))
    assert [s.stem for s in ProjectConfig.read(project).video_sets()] == ["fishtank", "second"]
    again = extract(project, "second", outlieralgorithm="uncertain", p_bound=0.01, extractionalgorithm="uniform")
    assert not again.extracted.written and again.machine_labels is None  # images there: skipped, nothing rewritten
    assert pd.read_hdf(machine_labels_path(folder, 0), "df_with_missing").equals(machine)


def test_unanalyzed_or_untracked_videos_are_named(project, tmp_path):
    with pytest.raises(ProjectError, match="no analysis of this video") as error:
        extract(project, "never_analyzed")
    assert "never_analyzed" in str(error.value)
    with pytest.raises(ProjectError, match="convert_detections2tracklets"):
        extract(project, track_method="ellipse")
    with pytest.raises(ValueError, match="frames2use"):
        extract(project, outlieralgorithm="list")
    with pytest.raises(ValueError, match="manual"):
        extract(project, outlieralgorithm="manual")


def test_frames_that_do_not_decode_are_left_out_of_the_clustering(source, monkeypatch):
    video = source.parent / "videos" / "fishtank.mp4"
    real_open = refine.open_video
    broken = {5, 20}

    @contextlib.contextmanager
    def open_video(*args, **kwargs):  # the reader's contract: an undecodable frame comes as zeros, valid=False
        with real_open(*args, **kwargs) as reader:
            yield (FrameBatch(b.frames * ~bad[:, None, None, None], b.indices, b.valid & ~bad)
                   for b in reader for bad in [torch.tensor([i in broken for i in b.indices.tolist()])])

    monkeypatch.setattr(refine, "open_video", open_video)
    frames, images = refine._downsampled(video, np.array([0, 5, 10, 20, 30]), 30, color=False)
    np.testing.assert_array_equal(frames, [0, 10, 30])              # no blank rows to cluster and pick
    assert images.shape[:1] == (3,) and images.shape[2] == 30 and (images.reshape(3, -1).max(1) > 0).all()
    with pytest.raises(ProjectError, match="fishtank.mp4: none of the 2 frames"):
        refine._downsampled(video, np.array([5, 20]), 30, color=False)
