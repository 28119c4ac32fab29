import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
from ruamel.yaml import YAML

from lightning_dlc import api
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.shuffles import (
    documentation_path,
    load_shuffle,
    merged_labels_path,
    read_merged_labels,
    read_shuffle,
)


def test_openfield_95_percent_split(openfield):
    (shuffle,) = api.create_training_dataset(openfield)
    assert (len(shuffle.train_indices), len(shuffle.test_indices)) == (110, 6)
    cfg = ProjectConfig.read(openfield)
    folder = openfield.parent / "training-datasets/iteration-0/UnaugmentedDataSet_openfieldOct30"
    assert documentation_path(cfg, 0.95, 1) == folder / "Documentation_data-openfield_95shuffle1.pickle"
    assert merged_labels_path(cfg) == folder / "CollectedData_Pranav.h5"
    assert (folder / "CollectedData_Pranav.csv").exists()
    with open(documentation_path(cfg, 0.95, 1), "rb") as f:
        data, train, test, fraction = pickle.load(f)
    assert fraction == 0.95 and list(train) == list(shuffle.train_indices) and list(test) == list(shuffle.test_indices)
    assert len(data) == 110 and data[0]["image"][0] == "labeled-data" and list(data[0]["size"]) == [3, 480, 640]
    assert data[0]["joints"].shape == (4, 3)
    meta = YAML(typ="safe").load((folder / "metadata.yaml").read_text())
    assert meta["shuffles"]["openfieldOct30-trainset95shuffle1"] == {
        "train_fraction": 0.95, "index": 1, "split": 1, "engine": "pytorch"}

    train, test = load_shuffle(openfield, 1)
    assert (len(train), len(test)) == (110, 6)
    merged = read_merged_labels(openfield)
    assert [r.key for r in test.records] == [merged.index[i] for i in shuffle.test_indices]
    assert not {r.key for r in train.records} & {r.key for r in test.records}


def test_splits_are_reproducible_and_differ_by_shuffle(openfield, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(openfield.parent, other)
    first = api.create_training_dataset(openfield, num_shuffles=3, seed=7)
    again = api.create_training_dataset(other / "config.yaml", num_shuffles=3, seed=7)
    assert first == again
    assert len({s.test_indices for s in first}) == 3
    reseeded = api.create_training_dataset(openfield, Shuffles=[1], seed=8, overwrite=True)
    assert reseeded[0].test_indices != first[0].test_indices


def test_several_train_fractions(openfield):
    cfg = ProjectConfig.read(openfield)
    cfg.data["TrainingFraction"] = [0.5, 0.95]
    cfg.save(overwrite=True)
    shuffles = api.create_training_dataset(openfield, num_shuffles=2)
    assert [(s.train_fraction, s.index, len(s.train_indices)) for s in shuffles] == [
        (0.5, 1, 58), (0.5, 2, 58), (0.95, 1, 110), (0.95, 2, 110)]
    assert read_shuffle(openfield, 2, trainset_index=0).train_fraction == 0.5
    assert len(load_shuffle(openfield, 2, trainset_index=1)[1]) == 6


def test_user_given_indices_add_their_fraction_to_the_config(openfield):
    train, test = list(range(0, 87)), list(range(87, 116))
    (shuffle,) = api.create_training_dataset(openfield, Shuffles=[4], trainIndices=[train], testIndices=[test])
    assert shuffle.train_fraction == 0.75 and shuffle.test_indices == tuple(test)
    text = openfield.read_text()
    assert "TrainingFraction:\n- 0.95\n- 0.75\n" in text
    assert "# Training,Evaluation and Analysis configuration" in text, "comments are kept"
    assert read_shuffle(openfield, 4, trainset_index=1).test_indices == tuple(test)


@pytest.mark.parametrize("train, test, message", [
    ([0, 1, 2], [2, 3], "in both train and test: \\[2\\]"),
    ([0, 500], [3], "outside: \\[500\\]"),
])
def test_bad_user_indices(openfield, train, test, message):
    with pytest.raises(ValueError, match=message):
        api.create_training_dataset(openfield, Shuffles=[1], trainIndices=[train], testIndices=[test])


def _add_second_video(openfield):
    """A copy of m4s1's labels as a second labeled video, m4s2."""
    root = openfield.parent
    shutil.copytree(root / "labeled-data/m4s1", root / "labeled-data/m4s2")
    for suffix in (".h5", ".csv"):
        (root / f"labeled-data/m4s2/CollectedData_Pranav{suffix}").unlink()
    df = pd.read_hdf(root / "labeled-data/m4s1/CollectedData_Pranav.h5").iloc[:20]
    df.index = [k.replace("m4s1", "m4s2") for k in df.index]
    df.to_hdf(root / "labeled-data/m4s2/CollectedData_Pranav.h5", key="df_with_missing")


def test_leave_one_video_out(openfield):
    _add_second_video(openfield)
    (shuffle,) = api.create_training_dataset(openfield, Shuffles=[9], leave_out_video="m4s2")
    train, test = load_shuffle(openfield, 9, trainset_index=1)
    assert len(test) == 20 and all("/m4s2/" in r.key for r in test.records)
    assert len(train) == 116 and all("/m4s1/" in r.key for r in train.records)
    with pytest.raises(ProjectError, match="no labeled images in a folder of that name"):
        api.create_training_dataset(openfield, Shuffles=[10], leave_out_video="m9")


def test_existing_shuffle_is_kept(openfield):
    (first,) = api.create_training_dataset(openfield)
    with pytest.raises(ProjectError, match="shuffle exists; pass overwrite=True"):
        api.create_training_dataset(openfield, seed=3)
    assert read_shuffle(openfield, 1) == first


def test_changed_labels_do_not_silently_replace_the_merged_table(openfield):
    api.create_training_dataset(openfield)
    _add_second_video(openfield)
    with pytest.raises(ProjectError, match="labels changed since the existing shuffles were made"):
        api.create_training_dataset(openfield, Shuffles=[2])
    assert len(read_merged_labels(openfield)) == 116
    api.create_training_dataset(openfield, Shuffles=[2], overwrite=True)
    assert len(read_merged_labels(openfield)) == 136


def test_missing_and_corrupt_shuffle_files(openfield):
    with pytest.raises(ProjectError, match="no such shuffle \\(shuffle=3"):
        read_shuffle(openfield, 3)
    api.create_training_dataset(openfield)
    doc = documentation_path(ProjectConfig.read(openfield), 0.95, 1)
    doc.write_bytes(b"garbage")
    with pytest.raises(ProjectError, match=f"{doc}: not a readable DeepLabCut Documentation pickle"):
        read_shuffle(openfield, 1)


def test_documentation_pickle_is_loaded_without_running_code(openfield):
    api.create_training_dataset(openfield)
    doc = documentation_path(ProjectConfig.read(openfield), 0.95, 1)

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(openfield.parent),))

    doc.write_bytes(pickle.dumps([Evil(), [0], [1], 0.95]))
    with pytest.raises(ProjectError, match="refusing to load shutil.rmtree"):
        read_shuffle(openfield, 1)
    assert openfield.exists()


def test_merged_table_follows_config_order(openfield):
    api.create_training_dataset(openfield)
    merged = read_merged_labels(openfield)
    assert list(dict.fromkeys(merged.columns.get_level_values("bodyparts"))) == [
        "snout", "leftear", "rightear", "tailbase"]
    assert list(merged.index) == sorted(merged.index)
    assert np.isfinite(merged.to_numpy()).all()
