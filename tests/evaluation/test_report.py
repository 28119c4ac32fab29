"""Evaluation reports on a tiny demo run trained once (api.train_network, 2 epochs): numbers, files, images, CLI."""
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.evaluation.report import COMBINED_CSV, RESULTS_CSV, evaluate_snapshots
from lightning_dlc.models.snapshot_files import find_snapshots
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig, ProjectError, load_shuffle
from lightning_dlc.data.draw import bodypart_colors

pytestmark = pytest.mark.slow  # trains a model for its fixture

REPO = Path(__file__).resolve().parents[2]
SCORER = "DLC_Resnet18_fishtankJan1shuffle1_snapshot_{}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A 16-image demo project (3 fish + a unique bodypart) trained 2 epochs: (config.yaml, train folder)."""
    config = make_demo_project(tmp_path_factory.mktemp("eval") / "fishtank", n_frames=24, n_labeled=16, size=128,
                               unique_bodyparts=True)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=2, save_epochs=1, batch_size=8, net_type="resnet_18",
                      overrides=["model.backbone.pretrained=false", "data.num_workers=0", "eval_interval=1",
                                 "augment=none", "logger=csv", "trainer.enable_progress_bar=false"])
    train_dir = next((config.parent / "dlc-models-pytorch/iteration-0").glob("*shuffle1/train"))
    return config, train_dir


PCUTOFF = 0.1


def as_arrays(table: pd.DataFrame, config: Path, records):
    """Prediction table rows of ``records`` -> ([n, N, K, 3], [n, U, 3]) as the report computed them."""
    meta = ProjectConfig.read(config).meta()
    rows = table.loc[[tuple(r.key.split("/")) for r in records]].droplevel("scorer", axis=1)
    bodypart = rows[list(meta.individuals)].to_numpy().reshape(len(records), len(meta.individuals), -1, 3)
    return bodypart, rows["single"].to_numpy().reshape(len(records), -1, 3)


def truth_arrays(records):
    return (np.stack([r.keypoints for r in records]), np.stack([r.unique_keypoints for r in records]))


def test_results_equal_compute_metrics_and_files_follow_deeplabcut(trained, tmp_path, capsys):
    config, train_dir = trained
    out = tmp_path / "evaluation"
    # a low pcutoff: 2 epochs from DeepLabCut's head initialisation leave most scores near 0.5
    results = evaluate_snapshots(train_dir, "best", plotting=True, out_dir=out, device="cpu", pcutoff=PCUTOFF)
    printed = capsys.readouterr().out
    assert "snapshot-best-" in printed and "rmse_pcutoff" in printed and "mAP" in printed

    table = pd.read_csv(out / RESULTS_CSV)
    assert list(table["split"]) == ["train", "test"] and len(results) == 2
    assert table["snapshot"].str.startswith("snapshot-best-").all()
    assert np.isfinite(table[["rmse", "rmse_pcutoff", "mAP", "mAR", "epoch"]].to_numpy()).all()

    best = find_snapshots(train_dir, "best")[0]
    scorer = SCORER.format(f"best-{int(best.stem.split('-')[-1])}")
    predictions = pd.read_hdf(out / f"{scorer}.h5", key="df_with_missing")
    assert predictions.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert set(predictions.columns.get_level_values("coords")) == {"x", "y", "likelihood"}
    assert set(predictions.columns.get_level_values("individuals")) == {"fish1", "fish2", "fish3", "single"}
    assert predictions.xs("single", level="individuals", axis=1).shape[1] == 3  # the feeder's x, y, likelihood
    assert predictions.index.nlevels == 3 and predictions.index[0][0] == "labeled-data"
    assert len(predictions) == 16 and list(predictions.index) == sorted(predictions.index)

    train, test = load_shuffle(config, 1)
    for split, data in (("train", train), ("test", test)):
        predicted, unique = as_arrays(predictions, config, data.records)
        truth, unique_truth = truth_arrays(data.records)
        want = compute_metrics(predicted, truth, pcutoff=PCUTOFF, single_animal=False, unique_predictions=unique,
                               unique_ground_truth=unique_truth)
        row = table[table["split"] == split].iloc[0]
        for name in ("rmse", "rmse_pcutoff", "mAP", "mAR"):
            assert row[name] == pytest.approx(want[name], rel=1e-9, abs=1e-9), (split, name)

    dlc = pd.read_csv(out / f"{scorer}-results.csv", index_col=[0, 1, 2, 3, 4])
    assert list(dlc.index.names) == ["%Training dataset", "Shuffle number", "Training epochs",
                                     "Detector epochs (TD only)", "pcutoff"]
    assert dlc["test rmse"].iloc[0] == pytest.approx(round(table["rmse"].iloc[1], 2))
    per_bodypart = pd.read_csv(out / f"{scorer}-keypoint-results.csv", index_col=0)
    assert {"Train error (px)", "Test error (px)"} <= set(per_bodypart.index)
    assert list(per_bodypart.columns) == ["snout", "head", "dorsal", "tailbase", "tailtip", "feeder"]
    assert (out / COMBINED_CSV).is_file()

    # a labeled image: every predicted point (dot, hollow below pcutoff) is drawn in its bodypart's colour
    record = train.records[0]
    image = cv2.cvtColor(cv2.imread(str(out / "labeled-images" / best.stem / "train" /
                                        f"{record.key.split('/')[1]}-{Path(record.key).stem}.png")), cv2.COLOR_BGR2RGB)
    assert image.shape[:2] == (128, 128)
    predicted, _ = as_arrays(predictions, config, [record])
    colors = bodypart_colors(6).astype(int)
    hits = total = 0
    for n, k in zip(*np.nonzero(np.isfinite(predicted[0, ..., 0]))):
        x, y = np.round(predicted[0, n, k, :2]).astype(int)
        if 2 <= x < 126 and 2 <= y < 126:
            total += 1
            window = image[y - 2: y + 3, x - 2: x + 3].astype(int)
            hits += (np.abs(window - colors[k]).max(-1) <= 30).any()
    assert total and hits >= 0.8 * total, f"{hits} of {total} predicted points drawn in their colour"


def test_all_snapshots_and_overwrite_protection(trained, tmp_path):
    _, train_dir = trained
    out = tmp_path / "evaluation"
    evaluate_snapshots(train_dir, "all", out_dir=out, device="cpu", verbose=False)
    snapshots = [p.stem for p in find_snapshots(train_dir, "all")]
    assert len(snapshots) == 3  # snapshot-001, snapshot-002, snapshot-best-<e>
    table = pd.read_csv(out / RESULTS_CSV)
    assert sorted(table["snapshot"]) == sorted(snapshots * 2)
    assert all(sorted(splits) == ["test", "train"] for _, splits in table.groupby("snapshot")["split"])

    h5 = out / f"{SCORER.format(2)}.h5"
    written = h5.stat().st_mtime_ns
    with pytest.raises(ProjectError, match="overwrite=True"):
        evaluate_snapshots(train_dir, "last", out_dir=out, device="cpu", verbose=False)
    assert h5.stat().st_mtime_ns == written, "a refused evaluation leaves the files alone"
    evaluate_snapshots(train_dir, "last", out_dir=out, device="cpu", verbose=False, overwrite=True)
    assert h5.stat().st_mtime_ns != written
    assert len(pd.read_csv(out / RESULTS_CSV)) == 6, "rows of a re-evaluated snapshot are replaced, not added"


def test_api_evaluate_network_writes_deeplabcut_places(trained):
    config, _ = trained
    results = api.evaluate_network(config, shuffles=[1], plotting=True, snapshots="last")
    assert list(results["split"]) == ["train", "test"] and (results["shuffle"] == 1).all()
    root = config.parent / "evaluation-results-pytorch" / "iteration-0"
    folder = root / "fishtankJan1-trainset90shuffle1"
    scorer = SCORER.format(2)
    assert (folder / f"{scorer}.h5").is_file() and (folder / f"{scorer}-results.csv").is_file()
    assert list((folder / f"LabeledImages_{scorer}").glob("Training-fishtank-img*.png"))
    assert list((folder / f"LabeledImages_{scorer}").glob("Test-fishtank-img*.png"))
    combined = pd.read_csv(root / COMBINED_CSV, index_col=[0, 1, 2, 3, 4])
    assert combined.index.get_level_values("Training epochs").tolist() == [2]
    assert {"train rmse", "test rmse", "test mAP", "test mAR"} <= set(combined.columns)
    with pytest.raises(ProjectError, match="overwrite=True"):
        api.evaluate_network(config, shuffles=[1], snapshots="last")


def test_script_evaluates_a_run(trained, tmp_path):
    _, train_dir = trained
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, str(REPO / "scripts/evaluate.py"), f"run={train_dir}", "snapshots=last",
                             f"out_dir={out}", "device=cpu"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "snapshot-002" in result.stdout and "rmse_pcutoff" in result.stdout
    assert len(pd.read_csv(out / RESULTS_CSV)) == 2
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists(), "no Hydra run folder"


def untrained_snapshot(config: Path, run: Path, *overrides: str) -> Path:
    """A snapshot of a freshly built (untrained) demo-preset model, as training would store it."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.project={config.parent}", "data.num_workers=0",
                                          f"output_dir={run}", *overrides])
    meta = ProjectConfig.read(config).meta()
    model = model_from_config(cfg.model, meta)
    run.mkdir(parents=True)
    path = run / "snapshot-000.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0,
                "run_config": OmegaConf.to_container(cfg, resolve=True),
                "project_meta": {k: list(map(list, v)) if k == "skeleton" else list(v) if isinstance(v, tuple)
                                 else v for k, v in asdict(meta).items()}}, path)
    return path


def test_untrained_paf_model_on_50_images_completes(tmp_path):
    """Noisy maps of an untrained multi-animal model: bounded peaks keep assembly fast (time printed)."""
    config = make_demo_project(tmp_path / "fish50", n_frames=60, n_labeled=50)
    api.create_training_dataset(config)
    snapshot = untrained_snapshot(config, tmp_path / "run")
    assert "PafHead" in str(torch.load(snapshot, weights_only=True)["run_config"]["model"]["heads"]["multi"])
    start = time.perf_counter()
    results = evaluate_snapshots(tmp_path / "run", "last", device="cpu", verbose=False)
    print(f"untrained PAF model, 50 images (256x256, 3 fish): evaluated in {time.perf_counter() - start:.1f} s")
    assert results["n_images"].sum() == 50 and np.isfinite(results["rmse"]).all()


def test_single_animal_predictions_have_three_column_levels(tmp_path):
    config = make_demo_project(tmp_path / "one", multianimal=False, n_frames=12, n_labeled=10, size=96)
    api.create_training_dataset(config)
    untrained_snapshot(config, tmp_path / "run", "data.demo.multianimal=false")
    results = evaluate_snapshots(tmp_path / "run", "best", device="cpu", verbose=False)  # no best: the last
    assert list(results["split"]) == ["train", "test"] and np.isfinite(results["rmse"]).all()
    table = pd.read_hdf(tmp_path / "run/evaluation/DLC_Resnet18_fishtankJan1shuffle1_snapshot_0.h5")
    assert table.columns.names == ["scorer", "bodyparts", "coords"] and table.shape == (10, 15)
