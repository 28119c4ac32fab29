"""The onnxruntime backend: a snapshot's export read back as a Predictor, predictions equal to the torch network's."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightning_dlc import api
from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.evaluation.report import METRICS, evaluate_snapshots
from lightning_dlc.inference.analyze import analyze_images, analyze_video
from lightning_dlc.inference.predict import load_model
from lightning_dlc.inference.onnx_runner import export_snapshot_onnx, onnx_predictor, onnx_providers
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.errors import ProjectError

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # exports networks and runs both engines

ATOL = 1e-4


def _snapshot(root: Path, model: str, multianimal: bool, detector: str | None = None, extra=()) -> Path:
    """An untrained (seeded) snapshot of ``model`` for a small demo project, with a detector snapshot beside it
    (``extra``: more compose overrides)."""
    config = make_demo_project(root / "tank", multianimal=multianimal, n_frames=12, n_labeled=10, size=96)
    api.create_training_dataset(config)
    overrides = [f"data.project={config.parent}", f"data.demo.multianimal={str(multianimal).lower()}",
                 f"model={model}", "model.backbone.pretrained=false", f"output_dir={root / 'run'}", *extra]
    if detector:
        overrides += [f"detector={detector}", "detector.model.pretrained=false"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    meta = ProjectConfig.read(config).meta()
    torch.manual_seed(0)
    pose = model_from_config(cfg.model, meta)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run = root / "run"
    (run / ".hydra").mkdir(parents=True)  # the model choice, as Hydra records it in a run folder
    OmegaConf.save({"hydra": {"runtime": {"choices": {"model": model}}}}, run / ".hydra" / "hydra.yaml")
    path = run / "snapshot-001.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in pose.state_dict().items()}, "epoch": 0,
                "run_config": run_config, "project_meta": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in asdict(meta).items()}}, path)
    if detector:
        boxes = instantiate(cfg.detector.model)
        # fresh box heads score every box alike; spread their scores so that the best boxes are well defined
        with torch.no_grad():
            for p in [*boxes.model.roi_heads.parameters(), *boxes.model.rpn.parameters()]:
                p.normal_(0, 0.2)
        torch.save({"state_dict": {f"detector.{k}": v for k, v in boxes.state_dict().items()}, "epoch": 0,
                    "run_config": run_config}, run / "snapshot-detector-001.ckpt")
    return path


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (uint8 [n, h, w, 3]): structure at several scales, as frames have."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, h // 8, w // 8, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear") * 0.8
    images = images + 0.2 * torch.rand(n, 3, h, w, generator=g)
    return (images.clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy()


def _assert_same(ours: dict, theirs: dict, atol: float = ATOL) -> None:
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].shape == theirs[key].shape, key
        np.testing.assert_array_equal(np.isnan(ours[key]), np.isnan(theirs[key]), err_msg=key)
        np.testing.assert_allclose(ours[key], theirs[key], atol=atol, rtol=0, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("model,multianimal", [("resnet_18", False), ("resnet_18", True)],
                         ids=["heatmap-locref", "paf"])
def test_onnxruntime_predictions_equal_torch(tmp_path, model, multianimal):
    snapshot = _snapshot(tmp_path, model, multianimal)
    sidecar = export_snapshot_onnx(snapshot)
    # fp32 on both sides: auto is bf16 on CPUs that compute it natively
    torch_predictor = Predictor.from_snapshot(snapshot, device="cpu", precision="32", channels_last=False)
    ort_predictor = onnx_predictor(sidecar.with_suffix(".onnx"), device="cpu")
    assert ort_predictor.scorer == torch_predictor.scorer
    assert ort_predictor._net.providers == ["CPUExecutionProvider"]
    for batch in (_frames(3, 90, 120), _frames(1, 200, 150, seed=1)):  # other sizes than the traced one
        ours, theirs = torch_predictor(batch), ort_predictor(batch)
        assert np.isfinite(ours["bodypart"]).any()  # something to compare
        _assert_same(ours, theirs)


def test_sidecar_says_what_decoding_needs(tmp_path):
    snapshot = _snapshot(tmp_path, "resnet_18", True)
    record = json.loads(export_snapshot_onnx(snapshot).read_text())
    meta = ProjectConfig.read(tmp_path / "tank" / "config.yaml").meta()
    assert record["bodyparts"] == list(meta.bodyparts) and record["individuals"] == list(meta.individuals)
    assert record["net_type"] == "resnet_18" and record["scorer"].startswith("DLC_Resnet18_")
    head = load_model(snapshot).heads["bodypart"]
    assert record["heads"]["bodypart"]["class"].endswith("PafHead") and record["stride"] == head.stride
    assert record["heads"]["bodypart"]["edges"] == [list(e) for e in head.edges]
    assert record["locref_std"] == head.locref_std
    assert record["input"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert {o["name"] for o in record["outputs"]} >= {"bodypart.heatmap", "bodypart.locref", "bodypart.paf"}
    assert (snapshot.parent / "onnx" / record["model"]).is_file()
    with pytest.raises(ProjectError, match="overwrite"):
        export_snapshot_onnx(snapshot)
    export_snapshot_onnx(snapshot, overwrite=True)


def test_top_down_with_detector(tmp_path):
    snapshot = _snapshot(tmp_path, "top_down_resnet_18", True, detector="fasterrcnn_mobilenet_v3_large_fpn")
    sidecar = export_snapshot_onnx(snapshot)
    record = json.loads(sidecar.read_text())
    assert record["top_down"]["crop_size"] == [256, 256]
    assert record["detector"]["model"].startswith("snapshot-detector")
    torch_predictor = Predictor.from_snapshot(snapshot, device="cpu", precision="32", channels_last=False,
                                              box_threshold=0.0)
    ort_predictor = onnx_predictor(sidecar.with_suffix(".onnx"), device="cpu", box_threshold=0.0)
    assert ort_predictor.scorer == torch_predictor.scorer and "_detector_" in ort_predictor.scorer
    frames = _frames(2, 160, 192)
    boxes = np.array([[[10, 20, 90, 120], [np.nan] * 4], [[40, 30, 150, 150], [0, 0, 60, 50]]], np.float32)
    _assert_same(torch_predictor(frames, boxes), ort_predictor(frames, boxes))  # the pose graph, given boxes
    ours, theirs = torch_predictor.detect(frames), ort_predictor.detect(frames)  # the detector graph
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.isfinite(ours[:, 0]).all()
    # scores (sorted) agree; an untrained detector gives equal scores to shifted boxes, which either engine may
    # rank first among themselves, so boxes are compared where the score is the frame's best alone
    np.testing.assert_allclose(ours[..., 4], theirs[..., 4], atol=ATOL, equal_nan=True)
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], atol=1e-3)


def test_analysis_writes_the_same_files(tmp_path):
    snapshot = _snapshot(tmp_path, "resnet_18", False)
    video = tmp_path / "tank" / "videos" / "fishtank.mp4"
    torch_out, ort_out = tmp_path / "torch", tmp_path / "ort"
    ours = analyze_video(snapshot, video, torch_out, device="cpu", precision="32", progress=False, verbose=False)
    theirs = analyze_video(snapshot, video, ort_out, device="cpu", progress=False, verbose=False,
                           backend="onnxruntime")  # exports the snapshot first
    assert (snapshot.parent / "onnx" / "snapshot-001.onnx").is_file()
    assert Path(theirs.h5).name == Path(ours.h5).name and theirs.scorer == ours.scorer
    a, b = pd.read_hdf(ours.h5), pd.read_hdf(theirs.h5)
    assert a.columns.equals(b.columns) and a.index.equals(b.index)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=ATOL, equal_nan=True)
    assert sorted(p.name for p in torch_out.iterdir()) == sorted(p.name for p in ort_out.iterdir())
    images = next((tmp_path / "tank" / "labeled-data").iterdir())
    h5 = analyze_images(snapshot, images, tmp_path / "images", device="cpu",
                        progress=False, verbose=False, backend="onnxruntime")
    assert h5.name == f"image_predictions_{ours.scorer}.h5"



@pytest.mark.parametrize("multianimal", [False, True], ids=["heatmap-locref", "paf"])
def test_evaluation_writes_the_same_files(tmp_path, multianimal):
    snapshot = _snapshot(tmp_path, "resnet_18", multianimal)
    torch_out, ort_out = tmp_path / "torch", tmp_path / "ort"
    ours = evaluate_snapshots(snapshot, out_dir=torch_out, device="cpu", precision="32", verbose=False)
    theirs = evaluate_snapshots(snapshot, out_dir=ort_out, device="cpu", verbose=False,  # auto: float32 here
                                backend="onnxruntime")  # exports the snapshot first
    assert (snapshot.parent / "onnx" / "snapshot-001.onnx").is_file()
    assert sorted(p.name for p in torch_out.iterdir()) == sorted(p.name for p in ort_out.iterdir())
    h5 = next(torch_out.glob("DLC_*.h5")).name
    a, b = pd.read_hdf(torch_out / h5), pd.read_hdf(ort_out / h5)
    assert a.columns.equals(b.columns) and a.index.equals(b.index) and len(a) == 10
    assert np.isfinite(a.to_numpy()).any()  # something to compare
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=ATOL, equal_nan=True)
    assert ours[["snapshot", "epoch", "split", "scorer"]].equals(theirs[["snapshot", "epoch", "split", "scorer"]])
    np.testing.assert_allclose(ours[list(METRICS)].to_numpy(float), theirs[list(METRICS)].to_numpy(float),
                               atol=1e-3, equal_nan=True)
    with pytest.raises(ValueError, match="float32"):  # before any work
        evaluate_snapshots(snapshot, out_dir=tmp_path / "bf16", device="cpu", precision="bf16",
                           backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be"):
        evaluate_snapshots(snapshot, out_dir=tmp_path / "tf", device="cpu", backend="tensorflow")


def test_ctd_models_say_use_torch(tmp_path):
    from ctd_standin import STANDIN  # tests/ is on sys.path

    snapshot = _snapshot(tmp_path, "top_down_resnet_18", True, extra=["model.top_down.crop_size=[64,64]", *STANDIN])
    with pytest.raises(ProjectError, match="CTD.*backend=torch"):
        evaluate_snapshots(snapshot, device="cpu", verbose=False, backend="onnxruntime")
    with pytest.raises(ProjectError, match="CTD.*backend=torch"):
        export_snapshot_onnx(snapshot)

def test_float32_only_and_providers(tmp_path, caplog):
    with pytest.raises(ValueError, match="float32"):
        onnx_predictor(tmp_path / "x.onnx", precision="bf16")
    assert onnx_providers(torch.device("cpu")) == ["CPUExecutionProvider"]
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():  # onnxruntime-gpu
        assert onnx_providers(torch.device("cuda:1"))[0] == ("CUDAExecutionProvider", {"device_id": 1})
    else:  # a GPU asked for without CUDA's provider: the CPU's, said once
        assert onnx_providers(torch.device("cuda")) == ["CPUExecutionProvider"]
        assert "onnxruntime-gpu" in caplog.text


def test_api_and_command_export(tmp_path):
    snapshot = _snapshot(tmp_path, "resnet_18", False)
    sidecar = api.export_onnx(snapshot.parent, out=tmp_path / "api")  # a run folder: its best (here: last) snapshot
    assert sidecar == tmp_path / "api" / "snapshot-001.json" and sidecar.with_suffix(".onnx").is_file()
    command = [sys.executable, "-m", "lightning_dlc", "export", f"run={snapshot.parent}", "format=onnx",
               f"out={tmp_path / 'cli'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "cli" / "snapshot-001.json").read_text())["scorer"] == \
        json.loads(sidecar.read_text())["scorer"]
    result = subprocess.run(command[:4] + [f"run={snapshot.parent}"], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "config=/path/to/config.yaml" in result.stderr
