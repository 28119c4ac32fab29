"""scripts/train.py as users run it: overrides, a -m sweep, the submitit launcher, 2-process DDP; api.train_network."""
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.lit.snapshots import load_snapshot

pytestmark = pytest.mark.slow  # trains models end to end

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "demo_project"
    make_demo_project(out, n_frames=24, n_labeled=16, size=128)
    return out


def tiny(project: Path, *extra: str) -> list[str]:
    return [f"data.project={project}", "data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1",
            "eval_interval=1", "snapshots.save_epochs=1", "trainer.enable_progress_bar=false", *extra]


def run_train(*args: str, cwd: Path, timeout: int = 300) -> str:
    result = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def test_run_folder_has_config_logs_and_snapshots(tiny_demo, tmp_path):
    out = run_train(*tiny(tiny_demo, "optimizer=sgd", "scheduler=warmup_cosine"), cwd=tmp_path)
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, "outputs/YYYY-MM-DD/HH-MM-SS"
    run = runs[0]
    assert (run / ".hydra/config.yaml").is_file() and (run / "snapshot-001.ckpt").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert "test.rmse" in out and "test.mAP" in out


def test_multirun_sweeps_two_jobs(tiny_demo, tmp_path):
    run_train("-m", *tiny(tiny_demo, "eval_interval=0", "optimizer.lr=1e-3,1e-4"), cwd=tmp_path)
    jobs = sorted((tmp_path / "multirun").glob("*/*/*"))
    assert [j.name for j in jobs if j.is_dir() and j.name.isdigit()] == ["0", "1"]
    lrs = {float(load_snapshot(j / "snapshot-001.ckpt")["run_config"]["optimizer"]["lr"]) for j in jobs if j.name.isdigit()}
    assert lrs == {1e-3, 1e-4}


def test_submitit_local_launcher(tiny_demo, tmp_path):
    run_train("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
              *tiny(tiny_demo, "eval_interval=0"), cwd=tmp_path, timeout=400)
    job = next((tmp_path / "multirun").glob("*/*/0"))
    assert (job / "snapshot-001.ckpt").is_file()
    assert list((tmp_path / "multirun").glob("*/*/.submitit/*/*_result.pkl")), "submitit ran the job"


def test_submitit_slurm_composes(tiny_demo, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), "hydra/launcher=submitit_slurm",
                             "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4", "trainer=ddp",
                             "trainer.devices=4", "--cfg", "hydra", "--package", "hydra.launcher"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SlurmLauncher" in result.stdout and "partition: gpu" in result.stdout
    assert "gpus_per_node: 4" in result.stdout


def test_ddp_two_cpu_processes(tiny_demo, tmp_path):
    out = run_train(*tiny(tiny_demo, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                          "trainer.sync_batchnorm=false"), cwd=tmp_path, timeout=400)
    run = next((tmp_path / "outputs").glob("*/*"))
    snapshot = load_snapshot(run / "snapshot-001.ckpt")
    # 16 demo images -> 14 train: each of the 2 processes sees 7, batch 4 with drop_last -> 1 step
    # (one process alone would take 3)
    assert snapshot["global_step"] == 1
    assert "test.mAP" in out


def test_unknown_group_option_lists_valid_ones(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), "optimizer=adamm"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "adamw" in result.stderr and "sgd" in result.stderr


def test_api_train_network_writes_into_the_project(tiny_demo, tmp_path):
    import shutil

    from lightning_dlc import api

    project = tmp_path / "project"
    shutil.copytree(tiny_demo, project)
    api.train_network(project / "config.yaml", shuffle=1, epochs=1, save_epochs=1, batch_size=4, net_type="resnet_18",
                      overrides=["model.backbone.pretrained=false", "data.num_workers=0", "eval_interval=0",
                                 "trainer.enable_progress_bar=false"])
    folders = list((project / "dlc-models-pytorch/iteration-0").glob("*shuffle1/train"))
    assert len(folders) == 1 and folders[0].parent.name.startswith("fishtank")
    assert (folders[0] / "snapshot-001.ckpt").is_file() and (folders[0] / "run_config.yaml").is_file()
