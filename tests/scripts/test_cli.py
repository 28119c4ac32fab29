"""The console command ``lightning-dlc`` as installed in the environment: commands, errors, --help,
``python -m lightning_dlc``, a ``-m`` sweep and a user's own config folder (``--config-dir``)."""
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dlc.cli import COMMANDS
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.lit.snapshots import load_snapshot

CLI = Path(sys.executable).parent / "lightning-dlc"

# a user's own model, in a folder of their own, built on a shipped group (heads)
MY_MODEL = """\
defaults:
  - /heads@heads: bottom_up
  - _self_
_target_: lightning_dlc.models.pose_model.build_pose_model
backbone:
  _target_: lightning_dlc.models.backbones.TimmBackbone
  name: regnetx_002
  out_index: 3
  pretrained: false
  weights: null
neck: null
"""


def cli(*args: str, cwd: Path, timeout: int = 300, python_m: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lightning_dlc"] if python_m else [str(CLI)]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("python_m", [False, True], ids=["lightning-dlc", "python -m lightning_dlc"])
def test_help_lists_every_command(tmp_path, python_m):
    result = cli("--help", cwd=tmp_path, python_m=python_m)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)


def test_unknown_command_fails_naming_it(tmp_path):
    result = cli("trian", "model=resnet_18", cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown command 'trian'" in result.stderr and "train" in result.stderr


def test_command_help_lists_its_options_and_groups(tmp_path):
    result = cli("evaluate", "--help", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "lightning-dlc evaluate run=" in out  # the command's own docstring first
    groups = out.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "model:" in groups and "optimizer: adam, adamw, sgd" in groups
    assert "snapshots: best" in out.split("== Config ==")[1]


def test_config_dir_adds_a_users_model(tmp_path):
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "my_resnet.yaml").write_text(MY_MODEL)
    result = cli("train", "--config-dir", str(tmp_path / "my_conf"), "model=my_resnet", "--cfg", "job",
                 cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "name: regnetx_002" in result.stdout
    assert "kind: bottom_up" in result.stdout or "heads:" in result.stdout  # the shipped heads composed in
    # the shipped options are still there beside the user's
    shipped = cli("train", "--config-dir", str(tmp_path / "my_conf"), "model=resnet_18", "--cfg", "job",
                  cwd=tmp_path, timeout=120)
    assert shipped.returncode == 0 and "name: resnet18" in shipped.stdout


@pytest.mark.slow  # trains two tiny models
def test_multirun_sweeps_two_jobs(tmp_path):
    project = make_demo_project(tmp_path / "demo", n_frames=24, n_labeled=16, size=128).parent
    result = cli("train", "-m", f"data.project={project}", "data.num_workers=0", "data.batch_size=4",
                 "trainer.max_epochs=1", "eval_interval=0", "snapshots.save_epochs=1",
                 "trainer.enable_progress_bar=false", "optimizer.lr=1e-3,1e-4", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    jobs = sorted(j for j in (tmp_path / "multirun").glob("*/*/*") if j.is_dir() and j.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    lrs = {float(load_snapshot(j / "snapshot-001.ckpt")["run_config"]["optimizer"]["lr"]) for j in jobs}
    assert lrs == {1e-3, 1e-4}
