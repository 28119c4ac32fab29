"""DeepLabCut 3 itself reads our machinelabels-iter<i>.h5, judges our refined folders and merges our labels.

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI); .ci/run runs it in
DeepLabCut's own environment:

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/project/test_merge_datasets_peer.py

Uses the real openfield project from ../shared beside the checkout, copied to a temporary folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
deeplabcut = import_deeplabcut()

from deeplabcut.generate_training_dataset.trainingsetmanipulation import merge_annotateddatasets  # noqa: E402
from deeplabcut.utils import auxiliaryfunctions, conversioncode  # noqa: E402

from lightning_dlc.project.config import ProjectConfig  # noqa: E402
from lightning_dlc.project.machine_labels import (accept_machine_labels, machine_labels_path,  # noqa: E402
                                                  machine_labels_table, write_machine_labels)

OPENFIELD = Path(__file__).resolve().parents[3] / "shared" / "data" / "openfield-Pranav-2018-10-30"
pytestmark = [pytest.mark.skipif(not OPENFIELD.is_dir(), reason=f"real data not here: {OPENFIELD}"),
              pytest.mark.slow]  # runs DeepLabCut 3.0.2 beside ours
SCORER = "DLC_Resnet50_openfieldOct30shuffle1_snapshot_200"
FRAMES = (5, 42, 77)


@pytest.fixture
def config(openfield) -> Path:
    """Openfield with a second video whose outlier frames carry machine labels (and no human labels yet)."""
    root = openfield.parent
    cfg = ProjectConfig.read(openfield)
    cfg.data["project_path"] = str(root)
    cfg.data["video_sets"] = {str(root / "videos" / name): {"crop": "0, 640, 0, 480"} for name in ("m4s1.mp4",
                                                                                                  "newvid.mp4")}
    cfg.save(overwrite=True)
    folder = root / "labeled-data" / "newvid"
    folder.mkdir()
    write_machine_labels(folder, cfg.iteration, machine_labels_table(analysis(cfg), {f: f"img{f:02d}.png"
                                                                                     for f in FRAMES}, "newvid"))
    return root / "config.yaml"


def analysis(cfg: ProjectConfig) -> pd.DataFrame:
    """A 100-frame single-animal analysis table in DeepLabCut's layout."""
    columns = pd.MultiIndex.from_product([[SCORER], list(cfg.bodyparts), ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    values = np.random.default_rng(0).uniform(0, 1, (100, len(columns))) * np.tile([640, 480, 1], len(cfg.bodyparts))
    return pd.DataFrame(values, columns=columns)


def test_deeplabcut_reads_our_machine_labels(config):
    cfg = ProjectConfig.read(config)
    path = machine_labels_path(config.parent / "labeled-data" / "newvid", 0)
    table = pd.read_hdf(path, "df_with_missing")
    conversioncode.guarantee_multiindex_rows(table)
    assert table.index.tolist() == [("labeled-data", "newvid", f"img{f:02d}.png") for f in FRAMES]
    assert list(table.columns.names) == ["scorer", "bodyparts", "coords"]
    np.testing.assert_array_equal(table.to_numpy(), analysis(cfg).loc[list(FRAMES)].to_numpy())
    csv = pd.read_csv(path.parent / "machinelabels.csv", header=[0, 1, 2], index_col=[0, 1, 2])
    np.testing.assert_allclose(csv.to_numpy(), table.to_numpy())


def test_deeplabcut_merges_only_once_we_accepted_the_labels(config, capsys):
    deeplabcut.merge_datasets(str(config))
    assert "not manually refined" in capsys.readouterr().out
    assert auxiliaryfunctions.read_config(str(config))["iteration"] == 0

    accept_machine_labels(config, config.parent / "labeled-data" / "newvid")
    deeplabcut.merge_datasets(str(config))
    dlc_cfg = auxiliaryfunctions.read_config(str(config))
    assert dlc_cfg["iteration"] == 1 and ProjectConfig.read(config).iteration == 1
    (config.parent / "merged").mkdir()
    merged = merge_annotateddatasets(dlc_cfg, config.parent / "merged")
    new = merged.loc[[("labeled-data", "newvid", f"img{f:02d}.png") for f in FRAMES]]
    source = analysis(ProjectConfig.read(config)).loc[list(FRAMES)]
    for bodypart in dlc_cfg["bodyparts"]:
        sure = source[(SCORER, bodypart, "likelihood")].to_numpy() > dlc_cfg["pcutoff"]
        for coord in ("x", "y"):
            expected = np.where(sure, source[(SCORER, bodypart, coord)].to_numpy(), np.nan)
            np.testing.assert_array_equal(new[("Pranav", bodypart, coord)].to_numpy(), expected)
