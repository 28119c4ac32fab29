"""We read a split made by DeepLabCut 3.0.2 itself exactly (no DeepLabCut needed here).

The fixture (tests/fixtures/openfield_dlc_split, see its README) is DeepLabCut's own
training-datasets output for openfield; the images come from ../shared beside the checkout.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ruamel.yaml import YAML

from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.shuffles import (
    create_training_dataset,
    load_shuffle,
    merged_labels_path,
    read_merged_labels,
    read_shuffle,
)

# tests/project/this_file -> parents[3] is the folder holding the checkout and shared/.
OPENFIELD = Path(__file__).resolve().parents[3] / "shared" / "data" / "openfield-Pranav-2018-10-30"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "openfield_dlc_split"
pytestmark = pytest.mark.skipif(not OPENFIELD.is_dir(), reason=f"real data not here: {OPENFIELD}")


def copy_openfield(dest: Path) -> Path:
    root = dest / OPENFIELD.name
    shutil.copytree(OPENFIELD, root, ignore=shutil.ignore_patterns("videos"))
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return root / "config.yaml"


@pytest.fixture
def config(tmp_path) -> Path:
    """openfield with DeepLabCut's shuffle 1 in place."""
    config = copy_openfield(tmp_path)
    shutil.copytree(FIXTURE / "training-datasets", config.parent / "training-datasets")
    return config


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURE / "expected_split.json").read_text())


@pytest.fixture(scope="module")
def dlc_table() -> pd.DataFrame:
    """DeepLabCut's merged table, read with pandas alone (not our reader)."""
    return pd.read_hdf(next(FIXTURE.rglob("CollectedData_Pranav.h5")))


def test_fixture_is_deeplabcuts_95_percent_split(expected):
    assert (len(expected["train"]), len(expected["test"])) == (110, 6)
    assert not set(expected["train"]) & set(expected["test"])
    assert sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file()) < 200_000


def test_load_shuffle_gives_deeplabcuts_images(config, expected):
    train, test = load_shuffle(config, 1)
    assert sorted(r.key for r in train.records) == sorted(expected["train"])
    assert sorted(r.key for r in test.records) == sorted(expected["test"])
    assert all(r.image == config.parent / r.key and r.image.is_file() for r in train.records + test.records)
    shuffle = read_shuffle(config, 1)
    assert shuffle.train_fraction == 0.95
    assert shuffle.train_indices == tuple(sorted(expected["train_indices"]))
    assert shuffle.test_indices == tuple(sorted(expected["test_indices"]))


def test_records_hold_deeplabcuts_labels(config, dlc_table):
    assert dlc_table.columns.nlevels == 3  # single animal: scorer, bodyparts, coords
    bodyparts = ProjectConfig.read(config).bodyparts
    train, test = load_shuffle(config, 1)
    for r in train.records + test.records:
        row = dlc_table.loc[tuple(r.key.split("/"))]
        xy = np.array([[row[("Pranav", bp, c)] for c in "xy"] for bp in bodyparts])
        assert r.keypoints.shape == (1, len(bodyparts), 3)
        np.testing.assert_allclose(r.keypoints[0, :, :2], xy, rtol=0, atol=1e-4)  # NaN == NaN
        assert (r.keypoints[0, :, 2] > 0).tolist() == np.isfinite(xy).all(axis=1).tolist()
    # The indices are row positions in DeepLabCut's table.
    keys = ["/".join(k) for k in dlc_table.index]
    assert [r.key for r in test.records] == [keys[i] for i in read_shuffle(config, 1).test_indices]


def test_our_merge_is_deeplabcuts_and_adding_a_shuffle_keeps_its_files(config, dlc_table, tmp_path):
    folder = merged_labels_path(ProjectConfig.read(config)).parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # Our merge of the labels equals DeepLabCut's, so we keep its table and add our shuffle.
    create_training_dataset(config, shuffles=[2])
    for name in ("CollectedData_Pranav.h5", "CollectedData_Pranav.csv",
                 "Documentation_data-openfield_95shuffle1.pickle"):
        assert (folder / name).read_bytes() == before[name], name
    meta = YAML(typ="safe").load((folder / "metadata.yaml").read_text())
    assert list(meta["shuffles"]) == ["openfieldOct30-trainset95shuffle1", "openfieldOct30-trainset95shuffle2"]
    assert meta["shuffles"]["openfieldOct30-trainset95shuffle1"] == {
        "train_fraction": 0.95, "index": 1, "split": 1, "engine": "pytorch"}
    assert read_merged_labels(config).index.tolist() == ["/".join(k) for k in dlc_table.index]

    # In a fresh project, the merged table we write is DeepLabCut's: same frame, same CSV bytes.
    fresh = copy_openfield(tmp_path / "fresh")
    create_training_dataset(fresh)
    ours_merged = merged_labels_path(ProjectConfig.read(fresh))
    pd.testing.assert_frame_equal(pd.read_hdf(ours_merged), dlc_table)
    assert ours_merged.with_suffix(".csv").read_bytes() == before["CollectedData_Pranav.csv"]
    assert ours_merged.with_name("metadata.yaml").read_bytes() == before["metadata.yaml"]
