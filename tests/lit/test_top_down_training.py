"""Top-down runs end to end on a tiny demo: detector then pose in one command, resume, inference with
the run's detector or with the user's boxes, evaluation and video analysis."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lightning_dlc.evaluation.report import evaluate_snapshots
from lightning_dlc.models.snapshot_files import find_snapshots
from lightning_dlc.inference.analyze import analyze_video
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.lit.snapshots import load_snapshot
from lightning_dlc.lit.train import train
from test_train import compose_train, tiny_overrides  # tests/lit is on sys.path (pytest rootdir imports)

pytestmark = pytest.mark.slow  # trains models end to end

DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
FEW = ("{rpn_pre_nms_top_n_train:100,rpn_post_nms_top_n_train:50,rpn_pre_nms_top_n_test:100,"
       "rpn_post_nms_top_n_test:50,box_batch_size_per_image:32}")


def top_down_overrides(project: Path, out: Path, *extra: str) -> list[str]:
    """A small top-down model on 64 x 64 crops and a small detector from scratch, 1 epoch each."""
    return tiny_overrides(
        project, out, "model=top_down_resnet_18", "model.backbone.name=regnetx_002",
        "model.top_down.crop_size=[64,64]", f"detector={DETECTOR}", "detector.model.pretrained=false",
        "detector.model.min_size=128", "detector.model.max_size=128", f"detector.model.torchvision_kwargs={FEW}",
        "detector.train.epochs=1", "detector.train.eval_interval=1", "detector.train.save_epochs=1", *extra)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("top_down")
    out = root / "run"
    value = train(compose_train(top_down_overrides(root / "demo_project", out)))
    return out, value, root / "demo_project"


def test_one_command_trains_detector_then_pose(run, capsys):
    out, value, _ = run
    names = sorted(p.name for p in out.glob("*.ckpt"))
    assert "snapshot-detector-001.ckpt" in names and "snapshot-001.ckpt" in names
    assert any(n.startswith("snapshot-detector-best-") for n in names)
    assert any(n.startswith("snapshot-best-") and "detector" not in n for n in names)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(out / "tensorboard")).Reload().Scalars("test.mAP")  # the pose model's curves
    assert value == pytest.approx(logged[-1].value, abs=1e-4)  # the value returned: the pose model's test.mAP
    # pose and detector snapshots are told apart
    assert all("detector" not in p.name for p in find_snapshots(out, "all"))
    assert all("detector" in p.name for p in find_snapshots(out, "all", prefix="snapshot-detector"))
    detector = load_snapshot(out / "snapshot-detector-001.ckpt")
    assert detector["detector"]["name"] == DETECTOR and "optimizer_states" in detector
    assert (out / "tensorboard" / "detector").is_dir()  # the detector's curves beside the pose model's


def test_detector_resumes_from_its_snapshot(run, tmp_path):
    out, _, project = run
    resumed = tmp_path / "resumed"
    train(compose_train(top_down_overrides(project, resumed, "stages=[detector]", "detector.train.epochs=2",
                                           f"detector.train.ckpt_path={out / 'snapshot-detector-001.ckpt'}")))
    assert (resumed / "snapshot-detector-002.ckpt").is_file()
    assert not list(resumed.glob("snapshot-0*.ckpt"))  # the pose stage did not run
    state = load_snapshot(resumed / "snapshot-detector-002.ckpt")
    assert state["epoch"] == 1 and state["global_step"] > load_snapshot(out / "snapshot-detector-001.ckpt")["global_step"]


def test_stage_contradictions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="bottom-up"):
        train(compose_train(tiny_overrides(tmp_path / "p", tmp_path / "o", f"detector={DETECTOR}")))
    with pytest.raises(ValueError, match="needs a detector"):
        train(compose_train(tiny_overrides(tmp_path / "p", tmp_path / "o", "model=top_down_resnet_18",
                                           "stages=[detector]")))


def test_user_boxes_at_the_detectors_places_give_the_same_poses(run):
    out, _, project = run
    predictor = Predictor.from_snapshot(find_snapshots(out, "last")[0], device="cpu", channels_last=False,
                                        box_threshold=0.0)
    assert predictor.detector is not None and predictor.info.detector_snapshot.name.startswith("snapshot-detector")
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((project / "labeled-data" / "fishtank").glob("*.png"))[:3]])
    boxes = predictor.detect(frames)
    assert boxes.shape == (3, 3, 5)
    with_detector = predictor(frames)
    with_boxes = predictor(frames, boxes=boxes)
    np.testing.assert_allclose(with_boxes["bodypart"], with_detector["bodypart"], atol=1e-4)
    # a box the user moves moves the crop: its animal's keypoints change, the others stay
    moved = boxes.copy()
    moved[:, 0, :4] += 7.0
    shifted = predictor(frames, boxes=moved)["bodypart"]
    np.testing.assert_allclose(shifted[:, 1:], with_detector["bodypart"][:, 1:], atol=1e-4)
    found = np.isfinite(boxes[:, 0, 0])
    assert not np.allclose(shifted[found, 0], with_detector["bodypart"][found, 0], equal_nan=True)


def test_evaluation_and_video_analysis_take_top_down_runs(run, tmp_path):
    out, _, project = run
    results = evaluate_snapshots(out, "last", device="cpu")
    assert set(results["split"]) == {"train", "test"} and results["mAP"].between(0, 100).all()
    video = project / "videos" / "fishtank.mp4"
    n_frames = 24
    boxes = np.full((n_frames, 3, 4), np.nan, np.float32)
    boxes[:, 0] = [10.0, 10.0, 70.0, 60.0]
    summary = analyze_video(out, video, tmp_path, device="cpu", batch_size=8, boxes=boxes, progress=False,
                            verbose=False)
    assert summary.status == "analyzed" and summary.frames == n_frames
    table = pd.read_hdf(summary.h5, key="df_with_missing")
    values = table.to_numpy().reshape(n_frames, 3, -1, 3)
    assert np.isfinite(values[:, 0, :, :2]).all() and np.isnan(values[:, 1:]).all()  # one box, one animal
    x, y = values[:, 0, :, 0], values[:, 0, :, 1]
    # within the box grown to the crop's square: x in [10, 70], y in [5, 65]
    assert ((x >= 9.5) & (x <= 70.5) & (y >= 4.5) & (y <= 65.5)).all()
    with pytest.raises(ValueError, match="boxes must be"):
        analyze_video(out, video, tmp_path / "bad", device="cpu", boxes=boxes[:5], progress=False, verbose=False)
