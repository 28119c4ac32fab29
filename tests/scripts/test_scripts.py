"""The Hydra entry points, run as a user runs them: a subprocess with overrides."""
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.project import load_dlc_project, load_shuffle

pytestmark = pytest.mark.slow  # runs the scripts in subprocesses

REPO = Path(__file__).resolve().parents[2]


def run(script, *overrides, cwd):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), *overrides],
                            cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_make_demo_project_then_create_training_dataset(tmp_path):
    out = run("make_demo_project.py", "out=demo", "n_frames=90", "n_labeled=30", cwd=tmp_path)
    config = tmp_path / "demo" / "config.yaml"
    assert f"demo project: {config}" in out
    assert len(load_dlc_project(config)) == 30
    assert not (tmp_path / "outputs").exists(), "utilities write no run folder"

    out = run("create_training_dataset.py", f"config={config}", "num_shuffles=2", "seed=3", cwd=tmp_path)
    assert "shuffle 2 (TrainingFraction 0.9): 27 train, 3 test images" in out
    train, test = load_shuffle(config, 2)
    assert (len(train), len(test)) == (27, 3)


def test_script_errors_name_the_file(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts/create_training_dataset.py"),
                             f"config={tmp_path}/missing.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert f"{tmp_path}/missing.yaml: no such DeepLabCut config file" in result.stderr


def test_diagnostics_builds_both_fiftyone_datasets_without_the_app(tmp_path):
    """An untrained model's snapshot as the run, and its analysis of the demo video; FiftyOne in a temp database."""
    import os

    config, video = _untrained_run_with_analysis(tmp_path)

    env = {**os.environ, "FIFTYONE_DATABASE_DIR": str(tmp_path / "fiftyone-db")}
    args = [sys.executable, str(REPO / "scripts" / "diagnostics.py"), f"runs=[{tmp_path / 'run'}]", f"videos=[{video}]",
            "name=labeled", "video_name=videos", "launch=false", "device=cpu", "n_low_confidence=2", "n_jumps=0",
            "export_relabel=true"]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "FiftyOne dataset labeled: 8 labeled images" in out and "FiftyOne dataset videos: 1 video(s)" in out
    assert "FiftyOne App" not in out
    assert "frames to label in" in out


def _untrained_run_with_analysis(tmp_path):
    """A 12-frame demo project, an untrained model's snapshot as run folder ``tmp_path/run``, and that model's
    analysis of the demo video; returns (config.yaml, video)."""
    from dataclasses import asdict

    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.inference.analyze import analyze_video
    from lightning_dlc.models.pose_model import model_from_config
    from lightning_dlc.project import ProjectConfig

    config = make_demo_project(tmp_path / "fish", n_frames=12, n_labeled=8, size=64)
    api.create_training_dataset(config)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dlc", f"data.project={config}", "data.num_workers=0",
                                          "model=resnet_18", "model.backbone.name=regnetx_002",
                                          "model.backbone.pretrained=false", f"output_dir={tmp_path / 'run'}"])
    meta = ProjectConfig.read(config).meta()
    snapshot = tmp_path / "run" / "snapshot-001.ckpt"
    snapshot.parent.mkdir()
    torch.manual_seed(0)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model_from_config(cfg.model, meta).state_dict().items()},
                "epoch": 0, "run_config": OmegaConf.to_container(cfg, resolve=True),
                "project_meta": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(meta).items()}}, snapshot)
    video = config.parent / "videos" / "fishtank.mp4"
    analyze_video(snapshot, video, device="cpu", progress=False)
    return config, video


def test_track_then_create_labeled_video_from_a_run_folder(tmp_path):
    """track.py and create_labeled_video.py on an untrained multi-animal model's analysis, named by its run folder."""
    import cv2
    import pandas as pd

    config, video = _untrained_run_with_analysis(tmp_path)
    out = run("track.py", f"run={tmp_path / 'run'}", f"videos=[{video}]", "fill_gaps=2", cwd=tmp_path)
    tracklets = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("tracklets: ")]
    tracks = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("tracks: ")]
    assert len(tracklets) == len(tracks) == 1 and tracklets[0].endswith("_el.pickle"), out
    assert Path(tracklets[0]).is_file() and Path(tracks[0]).name == Path(tracklets[0]).stem + ".h5"
    df = pd.read_hdf(tracks[0])
    assert len(df) == 12 and list(dict.fromkeys(df.columns.get_level_values("individuals"))) == ["fish1", "fish2",
                                                                                                "fish3"]

    out = run("create_labeled_video.py", f"config={config}", f"snapshot={tmp_path / 'run' / 'snapshot-001.ckpt'}",
              f"videos=[{video.parent}]", "color_by=individual", "all_detections=true", "pcutoff=0.1", cwd=tmp_path)
    written = {line.split(": ", 1)[0]: Path(line.split(": ", 1)[1]) for line in out.splitlines()
               if line.startswith(("labeled video: ", "all detections: "))}
    assert written["labeled video"].name == Path(tracks[0]).stem + "_id_p10_labeled.mp4", out
    assert written["all detections"].name == Path(tracklets[0]).stem[:-len("_el")] + "_full.mp4"
    for path in written.values():
        cap = cv2.VideoCapture(str(path))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64
        cap.release()
    assert not (tmp_path / "outputs").exists(), "utilities write no run folder"
