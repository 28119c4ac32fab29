"""identity: true with labels whose individuals are not one animal each: a warning naming the frames."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.datamodule import PoseDataModule
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project import load_dlc_project
from lightning_dlc.project.identity_checks import check_identity_labels, warn_inconsistent_identities
from lightning_dlc.project.labels import write_collected_data
from lightning_dlc.project.shuffles import create_training_dataset


@pytest.fixture(scope="module")
def hard_project(tmp_path_factory):
    # Every 3rd frame of the hard scene: touching, crossing and leaving fish, consistently named.
    return make_demo_project(tmp_path_factory.mktemp("ids") / "hard", n_frames=150, n_labeled=50, size=96,
                             scene="hard", identity=True)


def _arrays(config):
    data = load_dlc_project(config)
    return [r.key for r in data.records], np.stack([r.keypoints for r in data.records]), data.meta.individuals


def test_consistent_labels_raise_nothing(hard_project, caplog):
    keys, kp, individuals = _arrays(hard_project)
    assert check_identity_labels(keys, kp, individuals) == []
    with caplog.at_level(logging.WARNING):
        assert warn_inconsistent_identities(load_dlc_project(hard_project).records, individuals, "x") == []
    assert "inconsistent" not in caplog.text


def test_swapped_and_jumping_individuals_are_named(hard_project):
    keys, kp, individuals = _arrays(hard_project)
    length = np.nanmedian(np.linalg.norm(kp[:, :, 0, :2] - kp[:, :, -1, :2], axis=-1))
    # Images whose neighbours show all three fish, fish1 and fish2 apart (else a swap cannot show).
    seen = np.isfinite(kp[..., 0]).sum(-1) >= 3
    apart = np.linalg.norm(kp[:, 0, 2, :2] - kp[:, 1, 2, :2], axis=-1) > 1.5 * length
    usable = [r for r in range(1, len(kp) - 1) if seen[r - 1:r + 2].all() and apart[r]]
    s, j = usable[0], next(r for r in usable if r > usable[0] + 2)
    bad = kp.copy()
    bad[s, [0, 1]] = kp[s, [1, 0]]   # fish1 and fish2 swapped in one image
    bad[j, 2, :, 0] += 3 * length    # fish3 three body lengths away for one image
    issues = check_identity_labels(keys, bad, individuals)
    text = [str(i) for i in issues]
    swapped = [i for i in issues if i.kind == "swapped"]
    # The swap shows on both sides of the swapped image.
    assert {i.images for i in swapped} == {(keys[s - 1], keys[s]), (keys[s], keys[s + 1])}, text
    assert all(i.individuals == ("fish1", "fish2") for i in swapped)
    jumped = [i for i in issues if i.kind == "jumped"]
    assert {i.images for i in jumped} == {(keys[j - 1], keys[j]), (keys[j], keys[j + 1])}, text
    assert all(i.individuals == ("fish3",) for i in jumped)
    assert len(issues) == 4
    # Frames far apart (k-means picks) are not compared: animals move anywhere in between.
    assert check_identity_labels(keys, bad, individuals, max_gap=2) == []


def test_training_start_warns_naming_the_frames(tmp_path, caplog):
    config = make_demo_project(tmp_path / "swapped", n_frames=40, n_labeled=20, size=64, identity=True)
    h5 = config.parent / "labeled-data/fishtank/CollectedData_synthetic.h5"
    table = pd.read_hdf(h5)
    row = table.index[5]
    who = table.columns.get_level_values("individuals")
    values = table.to_numpy().copy()
    values[5, who == "fish1"], values[5, who == "fish2"] = values[5, who == "fish2"], values[5, who == "fish1"]
    write_collected_data(pd.DataFrame(values, index=table.index, columns=table.columns), h5, overwrite=True)
    create_training_dataset(config)
    with caplog.at_level(logging.WARNING):
        PoseDataModule("dlc", str(config), batch_size=2, num_workers=0, pin_memory=False).setup()
    assert "fish1 and fish2 swapped" in caplog.text
    name = row[-1] if isinstance(row, tuple) else str(row).split("/")[-1]
    assert name in caplog.text
    # Without identity: true nothing is checked.
    caplog.clear()
    text = config.read_text().replace("identity: true", "identity: false")
    config.write_text(text)
    with caplog.at_level(logging.WARNING):
        PoseDataModule("dlc", str(config), batch_size=2, num_workers=0, pin_memory=False).setup()
    assert "swapped" not in caplog.text
