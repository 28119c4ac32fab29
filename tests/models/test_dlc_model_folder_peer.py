"""Trained models cross between the engines (issue 16), checked against DeepLabCut 3.0.2 in its own environment.

DeepLabCut -> here: a tiny model DeepLabCut trained (resnet_50; top_down_resnet_50 on 64 px crops with an
ssdlite detector; 64 px demo frames, 1 epoch, from scratch) is evaluated and analyzed here from its model
folder (pytorch_config.yaml + snapshot-001.pt [+ snapshot-detector-001.pt]) with DeepLabCut's numbers,
predictions and scorer names, and fine-tuned here (``model.weights=``).
Here -> DeepLabCut: our tiny run exported (scripts/export.py's export_run) is evaluated by DeepLabCut's
own evaluate_network with our numbers.
"""
import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from dlc_peer import run_peer
from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.evaluation.report import evaluate_snapshots, ground_truth, load_run_data
from lightning_dlc.lit.train import train
from lightning_dlc.models.detectors import build_detector
from lightning_dlc.models.export import export_run
from lightning_dlc.models.snapshot_files import DETECTOR as DETECTOR_PREFIX
from lightning_dlc.models.snapshot_files import find_snapshots, load_snapshot
from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, read_pytorch_config

pytestmark = pytest.mark.slow
SIDE = "dlc_model_folder_side"  # tests/peer/dlc_model_folder_side.py, on DeepLabCut's path
TINY = ["data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1", "snapshots.save_epochs=1",
        "trainer.enable_progress_bar=false", "~logger"]
DETECTOR = "ssdlite"  # DeepLabCut's default detector_type, the cheapest on a CPU
CROP = 64  # top-down crops (DeepLabCut's default 256), set in both engines' configs
# per kind of model: DeepLabCut's net_type and detector_type, our overrides training the same model
KINDS = {
    "single": ("resnet_50", None, ["model=resnet_50"]),
    "multi": ("resnet_50", None, ["model=resnet_50"]),
    "top_down": ("top_down_resnet_50", DETECTOR, [
        "model=top_down_resnet_50", f"model.top_down.crop_size=[{CROP},{CROP}]", f"detector={DETECTOR}",
        "detector.model.pretrained=false", "detector.train.epochs=1", "detector.train.save_epochs=1",
        "detector.train.eval_interval=1"]),
}


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


def ours_train(config: Path, out: Path, kind: str, *extra: str) -> Path:
    net_type, _, overrides = KINDS[kind]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dlc", f"data.project={config}", f"net_type={net_type}",
                                          f"output_dir={out}", *overrides, "model.backbone.pretrained=false",
                                          *TINY, *extra])
    train(cfg)
    return out


def top_down_equal(mine_xy: np.ndarray, their_xy: np.ndarray, mine_score: np.ndarray, their_score: np.ndarray
                   ) -> np.ndarray:
    """A top-down model's keypoints ``[..., 2]`` and scores ``[...]`` from the two engines: equal, but at a few
    near-ties. DeepLabCut crops with OpenCV's fixed-point bilinear weights, one grey level from ours
    (tests/models/test_dlc_top_down.py): a model trained one epoch has heatmap peaks of almost equal height, and
    where two are that close the engines pick different ones, whose scores are still as high. Returns the
    keypoints placed elsewhere."""
    moved = ~np.isclose(mine_xy, their_xy, atol=0.05, equal_nan=True).all(-1)
    np.testing.assert_allclose(mine_score, their_score, atol=5e-3, equal_nan=True)  # near-ties too: peaks as high
    assert moved.mean() <= 0.1, f"{moved.sum()} of {moved.size} keypoints placed elsewhere"
    return moved


def in_order(h5: Path, index: list[str]) -> np.ndarray:
    """Our evaluation's predictions table, rows in DeepLabCut's order (its ``index``)."""
    table = pd.read_hdf(h5)
    keys = ["/".join(i) if isinstance(i, tuple) else str(i) for i in table.index]
    return table.to_numpy(dtype="float64")[[keys.index(k) for k in index]]


def top_down_evaluation_equal(dlc: dict, mine: np.ndarray, ours: pd.DataFrame, train_dir: Path) -> None:
    """A top-down model's evaluation in both engines: predictions equal but at near-ties (:func:`top_down_equal`);
    DeepLabCut's predictions score here as there, and ours give its numbers where no keypoint is a near-tie."""
    theirs = dlc["values"]
    moved = top_down_equal(np.stack([mine[:, 0::3], mine[:, 1::3]], -1), np.stack([theirs[:, 0::3],
                           theirs[:, 1::3]], -1), mine[:, 2::3], theirs[:, 2::3])
    print(f"\n[top_down] DeepLabCut's {dlc['row']}; ours {ours.to_dict('records')}; {moved.sum()} near-ties")
    metrics_equal(dlc["row"], metrics_of(train_dir, dlc["index"], theirs))
    if not moved.any():
        metrics_equal(dlc["row"], ours)


def metrics_of(train_dir: Path, keys: list[str], values: np.ndarray) -> pd.DataFrame:
    """Our metrics (evaluation/metrics.py) of a predictions table of a model folder's project, rows named by
    ``keys``, split as the folder's shuffle."""
    header = load_snapshot(train_dir / "snapshot-001.pt")
    data = load_run_data(header["run_config"]["data"], None, None, 0, None)
    meta, rows = data.meta, []
    for split, labeled in data.splits.items():
        predicted = np.stack([values[keys.index(r.key)] for r in labeled.records]).reshape(
            len(labeled.records), meta.max_individuals, len(meta.bodyparts), 3)
        scores = compute_metrics(predicted, ground_truth(labeled.records, meta)[0], pcutoff=data.pcutoff,
                                 single_animal=not meta.multianimal, bodyparts=meta.bodyparts)
        rows.append({"split": split, **scores})
    return pd.DataFrame(rows)


def demo(root: Path, kind: str) -> Path:
    return make_demo_project(root / "p", multianimal=kind != "single", n_frames=12, n_labeled=10, size=64)


def detector_start(config: Path, path: Path) -> Path:
    """Where both engines' detectors start training: torchvision's from-scratch SSDLite with BatchNorm statistics
    of the project's images. Straight from scratch its activations vanish under the frozen statistics (DeepLabCut
    trains detectors with freeze_bn_stats), every box scores the same after an epoch, and which of the tied boxes
    come first differs between the engines; from here boxes score apart and both engines crop the same animals."""
    torch.manual_seed(0)
    detector = build_detector(DETECTOR, pretrained=False).eval()
    for module in detector.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # cumulative statistics of one pass over the images
            module.reset_running_stats()
            module.momentum = None
            module.train()
    images = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255
              for p in sorted((config.parent / "labeled-data").rglob("*.png"))]
    with torch.no_grad():
        detector(images)
    torch.save({"model": detector.state_dict(), "metadata": {"epoch": 0}}, path)
    return path


@pytest.fixture(scope="module", params=list(KINDS))
def dlc_trained(request, tmp_path_factory):
    """A demo project whose shuffle 1 DeepLabCut trained, evaluated and analyzed (one DeepLabCut session)."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"dlc_{kind}")
    config = demo(root, kind)
    video = config.parent / "videos" / "fishtank.mp4"
    net_type, detector, _ = KINDS[kind]
    crop = {"width": CROP, "height": CROP}
    updates = {f"data.{split}.top_down_crop": crop for split in ("train", "inference")} if detector else {}
    start = [detector, json.dumps(updates), detector_start(config, root / "detector-start.pt")] if detector else []
    trained, evaluated, analyzed = run_peer([
        call("train_tiny", config, net_type, 1, *start),
        call("evaluate", config), call("analyze", config, video, root / "dlc_analysis")])
    return config, video, Path(trained["value"]), evaluated["value"], analyzed["value"], root, kind


def test_deeplabcut_model_folder_evaluates_here_with_its_numbers(dlc_trained):
    config, _, train_dir, dlc, _, root, kind = dlc_trained
    assert [p.name for p in find_snapshots(train_dir, "all")] == ["snapshot-001.pt"]
    if kind == "top_down":  # the detector DeepLabCut trained first, named in the scorer as DeepLabCut names it
        assert [p.name for p in find_snapshots(train_dir, "all", prefix=DETECTOR_PREFIX)] == ["snapshot-detector-001.pt"]
        assert dlc["scorer"].startswith("DLC_Resnet50_") and dlc["scorer"].endswith("_detector_1_snapshot_1")
    ours = evaluate_snapshots(train_dir, -1, out_dir=root / "ours_eval", device="cpu", verbose=False,
                              precision="32")  # DeepLabCut evaluates in fp32
    assert ours.scorer[0] == dlc["scorer"]  # DeepLabCut's scorer name, from its pytorch_config's net_type
    mine, theirs = in_order(root / "ours_eval" / f"{dlc['scorer']}.h5", dlc["index"]), dlc["values"].copy()
    assert mine.shape == theirs.shape
    if kind == "multi":
        # evaluate_network pruned the PAF graph (benchmark_paf_graphs wrote edges_to_keep): we assemble with it too
        predictor = read_pytorch_config(train_dir / PYTORCH_CONFIG)["model"]["heads"]["bodypart"]["predictor"]
        head = load_snapshot(train_dir / "snapshot-001.pt")["run_config"]["model"]["heads"]["multi"]["bodypart"]
        assert head["edges_to_keep"] == predictor["edges_to_keep"]
        # an assembled animal's undetected bodypart: DeepLabCut writes likelihood 0 beside NaN x, y; we write NaN
        missing = np.isnan(theirs[:, 0::3])
        np.testing.assert_array_equal(np.isnan(mine[:, 0::3]), missing)
        theirs[:, 2::3][missing] = np.nan
    if kind == "top_down":
        top_down_evaluation_equal(dlc, mine, ours, train_dir)
        return
    np.testing.assert_allclose(mine, theirs, atol=1e-3)
    metrics_equal(dlc["row"], ours)


def test_deeplabcut_model_analyzes_videos_here_as_deeplabcut(dlc_trained):
    config, video, _, _, dlc, root, kind = dlc_trained
    # DeepLabCut's analyze_videos crops every box its detector returns (no min_bbox_score); ours drops boxes scoring
    # under box_threshold (0.5) unless told
    options = {"box_threshold": 0.0} if kind == "top_down" else {}
    (summary,) = api.analyze_videos(config, [video], destfolder=root / "ours_analysis", snapshot=None, device="cpu",
                                    progress=False, precision="32", **options)  # DeepLabCut's fp32
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
    if kind == "top_down":  # one crop per box: every animal's every bodypart, near-ties aside
        frames = sorted(dlc["full"])
        mine_xy, their_xy = (np.stack([np.stack([np.asarray(c, float).reshape(-1, 2) for c in source[f]["coordinates"][0]])
                                       for f in frames]) for source in (full, dlc["full"]))
        mine_score, their_score = (np.stack([np.stack([np.asarray(c, float).reshape(-1) for c in source[f]["confidence"]])
                                             for f in frames]) for source in (full, dlc["full"]))
        top_down_equal(mine_xy, their_xy, mine_score, their_score)
        return
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
    config, _, train_dir, _, _, root, kind = dlc_trained
    start = train_dir / "snapshot-001.pt"
    with caplog.at_level(logging.INFO, logger="lightning_dlc.models.snapshot_files"):
        out = ours_train(config, root / "fine_tuned", kind, f"model.weights={start}", "eval_interval=0",
                         "+trainer.limit_train_batches=1", "stages=[pose]")
    assert "whole model initialised" in caplog.text
    tuned = load_snapshot(out / "snapshot-001.ckpt")  # epochs counted from 0: its first epoch
    assert tuned["epoch"] == 0 and (out / "snapshot-001.pt").is_file()


@pytest.mark.parametrize("kind", list(KINDS))
def test_our_run_exported_evaluates_in_deeplabcut_with_our_numbers(kind, tmp_path):
    config = demo(tmp_path, kind)
    api.create_training_dataset(config)
    start = [f"detector.model.weights={detector_start(config, tmp_path / 'detector-start.pt')}"] \
        if KINDS[kind][1] else []
    run = ours_train(config, tmp_path / "run", kind, "eval_interval=1", *start)
    expected = {"snapshot-001.pt", "snapshot-best-001.pt"}
    if kind == "top_down":
        expected |= {"snapshot-detector-001.pt", "snapshot-detector-best-001.pt"}
    assert {p.name for p in run.glob("snapshot-*.pt")} == expected
    train_dir = export_run(run, config)
    with pytest.raises(Exception, match="overwrite"):
        export_run(run, config)
    assert export_run(run, config, overwrite=True) == train_dir
    ours = evaluate_snapshots(run, "best", out_dir=tmp_path / "ours_eval", device="cpu", verbose=False,
                              precision="32")  # DeepLabCut evaluates in fp32
    (dlc,) = run_peer([call("evaluate", config)])
    assert dlc["value"]["scorer"] == ours.scorer[0]
    if kind == "multi":
        # DeepLabCut's first evaluation of a model with every PAF edge kept prunes its graph (benchmark_paf_graphs,
        # best test mAP of 10 candidate graphs) and writes edges_to_keep beside our snapshot; we build no such
        # search, so our numbers for DeepLabCut's are those of the exported folder, assembled with its edges
        ours = evaluate_snapshots(train_dir, -1, out_dir=tmp_path / "ours_eval_export", device="cpu", verbose=False,
                                  precision="32")
    if kind == "top_down":  # DeepLabCut's crops of the same boxes: near-ties aside, the same keypoints
        mine = in_order(tmp_path / "ours_eval" / f"{ours.scorer[0]}.h5", dlc["value"]["index"])
        top_down_evaluation_equal(dlc["value"], mine, ours, train_dir)
    else:
        metrics_equal(dlc["value"]["row"], ours)
    shutil.rmtree(train_dir)
