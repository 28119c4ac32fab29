"""Trained models cross between the engines (issue 16), checked against DeepLabCut 3.0.2 in its own environment.

DeepLabCut -> here: a tiny model DeepLabCut trained (resnet_50, 64 px demo frames, 1 epoch, from scratch)
is evaluated and analyzed here from its model folder (pytorch_config.yaml + snapshot-001.pt) with
DeepLabCut's numbers, predictions and scorer names, and fine-tuned here (``model.weights=``).
Here -> DeepLabCut: our tiny run exported (scripts/export.py's export_run) is evaluated by DeepLabCut's
own evaluate_network with our numbers.
"""
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from dlc_peer import run_peer
from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.evaluation.report import evaluate_snapshots
from lightning_dlc.lit.train import train
from lightning_dlc.models.export import export_run
from lightning_dlc.models.snapshot_files import find_snapshots, load_snapshot
from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, read_pytorch_config

pytestmark = pytest.mark.slow
CONF = Path(__file__).resolve().parents[2] / "conf"
SIDE = "dlc_model_folder_side"  # tests/peer/dlc_model_folder_side.py, on DeepLabCut's path
TINY = ["data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1", "snapshots.save_epochs=1",
        "trainer.enable_progress_bar=false", "~logger", "model.backbone.pretrained=false"]


def call(function: str, *args) -> dict:
    return {"kind": "call", "function": f"{SIDE}:{function}", "args": [str(a) for a in args]}


def metrics_equal(dlc_row: dict, ours: pd.DataFrame) -> None:
    """DeepLabCut's results row (rounded to 2 decimals) equals ours, split by split."""
    for split in ("train", "test"):
        row = ours[ours.split == split].iloc[0]
        for name in ("rmse", "rmse_pcutoff", "mAP", "mAR"):
            theirs, mine = dlc_row[f"{split} {name}"], row[name]
            assert (np.isnan(theirs) and np.isnan(mine)) or theirs == pytest.approx(round(mine, 2), abs=0.011), \
                (split, name, theirs, mine)


def ours_train(config: Path, out: Path, *extra: str) -> Path:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dlc", f"data.project={config}", "model=resnet_50",
                                          "net_type=resnet_50", f"output_dir={out}", *TINY, *extra])
    train(cfg)
    return out


@pytest.fixture(scope="module", params=["single", "multi"])
def dlc_trained(request, tmp_path_factory):
    """A demo project whose shuffle 1 DeepLabCut trained, evaluated and analyzed (one DeepLabCut session)."""
    root = tmp_path_factory.mktemp(f"dlc_{request.param}")
    config = make_demo_project(root / "p", multianimal=request.param == "multi", n_frames=12, n_labeled=10, size=64)
    video = config.parent / "videos" / "fishtank.mp4"
    trained, evaluated, analyzed = run_peer([call("train_tiny", config, "resnet_50"), call("evaluate", config),
                                             call("analyze", config, video, root / "dlc_analysis")])
    return config, video, Path(trained["value"]), evaluated["value"], analyzed["value"], root


def test_deeplabcut_model_folder_evaluates_here_with_its_numbers(dlc_trained):
    config, _, train_dir, dlc, _, root = dlc_trained
    assert [p.name for p in find_snapshots(train_dir, "all")] == ["snapshot-001.pt"]
    ours = evaluate_snapshots(train_dir, -1, out_dir=root / "ours_eval", device="cpu", verbose=False)
    assert ours.scorer[0] == dlc["scorer"]  # DeepLabCut's scorer name, from its pytorch_config's net_type
    metrics_equal(dlc["row"], ours)
    table = pd.read_hdf(root / "ours_eval" / f"{dlc['scorer']}.h5")
    keys = ["/".join(i) if isinstance(i, tuple) else str(i) for i in table.index]
    order = [keys.index(k) for k in dlc["index"]]
    assert table.shape == dlc["values"].shape
    mine, theirs = table.to_numpy()[order], dlc["values"].copy()
    if "individuals" in table.columns.names and table.columns.get_level_values("individuals").nunique() > 1:
        # evaluate_network pruned the PAF graph (benchmark_paf_graphs wrote edges_to_keep): we assemble with it too
        predictor = read_pytorch_config(train_dir / PYTORCH_CONFIG)["model"]["heads"]["bodypart"]["predictor"]
        head = load_snapshot(train_dir / "snapshot-001.pt")["run_config"]["model"]["heads"]["multi"]["bodypart"]
        assert head["edges_to_keep"] == predictor["edges_to_keep"]
        # an assembled animal's undetected bodypart: DeepLabCut writes likelihood 0 beside NaN x, y; we write NaN
        missing = np.isnan(theirs[:, 0::3])
        np.testing.assert_array_equal(np.isnan(mine[:, 0::3]), missing)
        theirs[:, 2::3][missing] = np.nan
    np.testing.assert_allclose(mine, theirs, atol=1e-3)


def test_deeplabcut_model_analyzes_videos_here_as_deeplabcut(dlc_trained):
    config, video, _, _, dlc, root = dlc_trained
    (summary,) = api.analyze_videos(config, [video], destfolder=root / "ours_analysis", snapshot=None, device="cpu",
                                    progress=False)
    assert summary.scorer == dlc["scorer"]
    prefix = f"{video.stem}{dlc['scorer']}"
    written = sorted(p.name[len(prefix):] for p in (root / "ours_analysis").glob(f"{prefix}*"))
    assert set(dlc["files"]) <= set(written), (dlc["files"], written)
    if dlc["values"] is not None:  # multi-animal: a table only after tracking; the _full.pickle below
        ours = pd.read_hdf(summary.h5).to_numpy(dtype="float64")
        assert ours.shape == dlc["values"].shape
        np.testing.assert_allclose(ours, dlc["values"], atol=1e-2, equal_nan=True)
    with open(root / "ours_analysis" / f"{prefix}_full.pickle", "rb") as stream:
        full = pickle.load(stream)
    for frame, theirs in dlc["full"].items():  # every animal's bodyparts, as DeepLabCut found them
        mine_parts, their_parts = full[frame]["coordinates"][0], theirs["coordinates"][0]
        assert len(mine_parts) == len(their_parts)
        for m, t in zip(mine_parts, their_parts):
            m, t = np.asarray(m, dtype=float).reshape(-1, 2), np.asarray(t, dtype=float).reshape(-1, 2)
            assert m.shape == t.shape
            missing = (t == -1).all(1) | np.isnan(t).any(1)  # DeepLabCut writes -1 where we write NaN
            np.testing.assert_array_equal(np.isnan(m).any(1), missing)
            np.testing.assert_allclose(m[~missing], t[~missing], atol=1e-2)


def test_deeplabcut_snapshot_fine_tunes_here(dlc_trained, caplog):
    config, _, train_dir, _, _, root = dlc_trained
    start = train_dir / "snapshot-001.pt"
    with caplog.at_level(logging.INFO, logger="lightning_dlc.models.snapshot_files"):
        out = ours_train(config, root / "fine_tuned", f"model.weights={start}", "eval_interval=0",
                         "+trainer.limit_train_batches=1")
    assert "whole model initialised" in caplog.text
    tuned = load_snapshot(out / "snapshot-001.ckpt")  # epochs counted from 0: its first epoch
    assert tuned["epoch"] == 0 and (out / "snapshot-001.pt").is_file()


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_our_run_exported_evaluates_in_deeplabcut_with_our_numbers(kind, tmp_path):
    config = make_demo_project(tmp_path / "p", multianimal=kind == "multi", n_frames=12, n_labeled=10, size=64)
    api.create_training_dataset(config)
    run = ours_train(config, tmp_path / "run", "eval_interval=1")
    assert {p.name for p in run.glob("snapshot-*.pt")} == {"snapshot-001.pt", "snapshot-best-001.pt"}
    train_dir = export_run(run, config)
    with pytest.raises(Exception, match="overwrite"):
        export_run(run, config)
    assert export_run(run, config, overwrite=True) == train_dir
    ours = evaluate_snapshots(run, "best", out_dir=tmp_path / "ours_eval", device="cpu", verbose=False)
    (dlc,) = run_peer([call("evaluate", config)])
    assert dlc["value"]["scorer"] == ours.scorer[0]
    if kind == "multi":
        # DeepLabCut's first evaluation of a model with every PAF edge kept prunes its graph (benchmark_paf_graphs,
        # best test mAP of 10 candidate graphs) and writes edges_to_keep beside our snapshot; we build no such
        # search, so our numbers for DeepLabCut's are those of the exported folder, assembled with its edges
        ours = evaluate_snapshots(train_dir, -1, out_dir=tmp_path / "ours_eval_export", device="cpu", verbose=False)
    metrics_equal(dlc["value"]["row"], ours)
    shutil.rmtree(train_dir)
