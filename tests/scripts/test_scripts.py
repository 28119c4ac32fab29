"""The Hydra entry points, run as a user runs them: a subprocess with overrides."""
import subprocess
import sys
from pathlib import Path

from lightning_dlc.project import load_dlc_project, load_shuffle

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
