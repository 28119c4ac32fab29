"""Machine labels -> CollectedData -> merge_datasets (lightning_dlc.project.machine_labels) on the demo project."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.dlc import read_project_labels
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.labels import read_collected_data
from lightning_dlc.project.machine_labels import (MACHINE_CSV, machine_labels_path, machine_labels_table,
                                                  merge_datasets, write_machine_labels)

SCORER = "DLC_Resnet50_fishtankJan1shuffle1_snapshot_010"


@pytest.fixture(scope="module", params=[False, True], ids=["single", "multi"])
def source(request, tmp_path_factory) -> Path:
    return make_demo_project(tmp_path_factory.mktemp("merge") / "fishtank", multianimal=request.param, n_frames=30,
                             n_labeled=10, size=96, unique_bodyparts=request.param)


@pytest.fixture
def project(source, tmp_path) -> Path:
    root = tmp_path / "fishtank"
    shutil.copytree(source.parent, root)
    return root / "config.yaml"


def predictions(config: Path) -> pd.DataFrame:
    """The true tracks as a model's analysis, one likelihood per point spread over [0, 1)."""
    table = pd.read_hdf(config.parent / "videos" / "fishtank_groundtruth.h5")
    table.columns = table.columns.set_levels([SCORER], level="scorer")
    likelihood = table.columns.get_level_values("coords") == "likelihood"
    table.loc[:, likelihood] = np.random.default_rng(0).uniform(0, 1, (len(table), likelihood.sum()))
    return table


def add_machine_labels(config: Path, stem: str, frames) -> pd.DataFrame:
    table = machine_labels_table(predictions(config), {f: f"img{f:02d}.png" for f in frames}, stem)
    folder = config.parent / "labeled-data" / stem
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        (folder / f"img{f:02d}.png").write_bytes(b"")  # the images are not read here
    cfg = ProjectConfig.read(config)
    cfg.data["video_sets"][str(config.parent / "videos" / f"{stem}.mp4")] = {"crop": "0, 96, 0, 96"}
    cfg.save(overwrite=True)
    write_machine_labels(folder, cfg.iteration, table)
    return table


def test_an_unrefined_folder_stops_the_merge(project):
    add_machine_labels(project, "second", [3, 7])
    before = project.read_text()
    with pytest.raises(ProjectError, match="not refined") as error:
        merge_datasets(project)
    assert str(project.parent / "labeled-data" / "second") in str(error.value)
    assert project.read_text() == before


def test_accepted_machine_labels_merge_into_the_next_iteration(project):
    machine = add_machine_labels(project, "second", [3, 7, 11])
    written = api.accept_machine_labels(project)
    folder = project.parent / "labeled-data" / "second"
    assert written == [folder / "CollectedData_synthetic.h5"]  # fishtank has no machine labels: left alone
    labels = read_collected_data(written[0])
    cfg = ProjectConfig.read(project)
    assert set(labels.columns.get_level_values("scorer")) == {"synthetic"}
    assert labels.index.tolist() == [f"labeled-data/second/img{f:02d}.png" for f in (3, 7, 11)]
    # x, y where the model was sure enough (likelihood > pcutoff), unlabeled elsewhere
    for key, row in machine.iterrows():
        for column in labels.columns:
            _, individual, bodypart, coord = column
            source = (SCORER, bodypart) if not cfg.multianimal else (SCORER, individual, bodypart)
            sure = machine.loc[key, (*source, "likelihood")] > cfg.pcutoff
            expected = machine.loc[key, (*source, coord)] if sure else np.nan
            np.testing.assert_equal(labels.loc["/".join(key), column], expected)

    assert api.merge_datasets(project) == 1
    text = project.read_text()
    assert "iteration: 1" in text and "# Refinement" in text  # comments and order kept
    merged = read_project_labels(project)
    assert {k for k in merged.index if "/second/" in k} == set(labels.index)
    assert ProjectConfig.read(project).training_datasets_dir.parent.name == "iteration-1"
    assert api.merge_datasets(project, forceiterate=5) == 5


def test_accepting_keeps_the_existing_labels_exactly(project):
    folder = project.parent / "labeled-data" / "fishtank"
    before = read_collected_data(folder / "CollectedData_synthetic.h5")
    labeled = sorted(int(Path(k).stem[3:]) for k in before.index)
    new = [f for f in range(1, 30) if f not in labeled][:2]
    add_machine_labels(project, "fishtank", [labeled[0], *new])  # one frame labeled already
    api.accept_machine_labels(project, videos=["fishtank.mp4"])
    after = read_collected_data(folder / "CollectedData_synthetic.h5")
    assert len(after) == len(before) + 2
    pd.testing.assert_frame_equal(after.loc[before.index, before.columns], before)
    assert after.equals(read_collected_data(folder / "CollectedData_synthetic.csv"))
    api.accept_machine_labels(project)  # nothing new: untouched
    assert read_collected_data(folder / "CollectedData_synthetic.h5").equals(after)


def test_machine_labels_keep_rows_already_there(project):
    folder = project.parent / "labeled-data" / "second"
    first = add_machine_labels(project, "second", [3, 7])
    changed = machine_labels_table(predictions(project) + 1.0, {7: "img07.png", 9: "img09.png"}, "second")
    write_machine_labels(folder, 0, changed)
    stored = pd.read_hdf(machine_labels_path(folder, 0), "df_with_missing")
    assert [k[2] for k in stored.index] == ["img03.png", "img07.png", "img09.png"]
    pd.testing.assert_series_equal(stored.iloc[1], first.iloc[1])  # DeepLabCut keeps the first of duplicates


def test_machine_labels_are_written_as_deeplabcut_writes_them(project, tmp_path):
    """The prediction tables' writer: fixed-format h5 under df_with_missing (DeepLabCut's to_hdf), and the csv."""
    table = machine_labels_table(predictions(project), {3: "img03.png", 7: "img07.png"}, "second")
    path = write_machine_labels(tmp_path / "second", 0, table)
    with pd.HDFStore(path, "r") as store:
        assert store.keys() == ["/df_with_missing"] and store.get_storer("df_with_missing").format_type == "fixed"
        pd.testing.assert_frame_equal(store["df_with_missing"], table, check_index_type=False,
                                      check_column_type=False)
    csv = pd.read_csv(tmp_path / "second" / MACHINE_CSV, header=list(range(table.columns.nlevels)),
                      index_col=[0, 1, 2])
    np.testing.assert_allclose(csv.to_numpy(), table.to_numpy())
