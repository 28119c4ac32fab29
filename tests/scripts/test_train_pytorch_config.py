"""scripts/train.py pytorch_config=... and api.train_network reading the shuffle's pytorch_config.yaml."""
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from ruamel.yaml import YAML

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.lit.snapshots import load_snapshot
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc_defaults import pose_config_defaults
from lightning_dlc.project.errors import ProjectError

pytestmark = pytest.mark.slow  # trains models end to end

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pytorch_config") / "demo_project"
    make_demo_project(out, n_frames=24, n_labeled=16, size=128)
    api.create_training_dataset(out / "config.yaml", num_shuffles=1)
    return out / "config.yaml"


def dlc_file(config: Path, path: Path) -> Path:
    """DeepLabCut's resnet_50 file for the project, as a lab tuned it: SGD, a nested schedule, 1 epoch."""
    data = pose_config_defaults("resnet_50", ProjectConfig.read(config).meta())
    data["runner"].update(optimizer={"type": "SGD", "params": {"lr": 0.002, "momentum": 0.5}}, eval_interval=0,
                          scheduler={"type": "SequentialLR", "params": {"milestones": [1], "schedulers": [
                              {"type": "ConstantLR", "params": {"factor": 0.5, "total_iters": 1}},
                              {"type": "ChainedScheduler", "params": {"schedulers": [
                                  {"type": "ExponentialLR", "params": {"gamma": 0.9}}]}}]}},
                          snapshots={"max_snapshots": 2, "save_epochs": 1, "save_optimizer_state": False})
    data["train_settings"].update(batch_size=4, epochs=1, dataloader_workers=0)
    data["data"]["train"]["crop_sampling"].update(width=64, height=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    YAML().dump(data, path)
    return path


def test_train_script_takes_the_files_settings(project, tmp_path):
    path = dlc_file(project, tmp_path / "tuned" / "pytorch_config.yaml")
    result = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), "experiment=dlc",
                             f"data.project={project}", f"pytorch_config={path}", "model=resnet_18",  # small, ours
                             "model.backbone.pretrained=false",
                             "trainer.enable_progress_bar=false", "optimizer.lr=0.003"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run = next((tmp_path / "outputs").glob("*/*"))
    saved = OmegaConf.load(run / "run_config.yaml")
    assert saved.net_type == "resnet_18" and saved.trainer.max_epochs == 1 and saved.data.batch_size == 4
    assert saved.optimizer._target_ == "torch.optim.SGD" and saved.optimizer.lr == 0.003  # the command line wins
    assert saved.scheduler.schedulers[1]._target_ == "lightning_dlc.lit.schedulers.ChainedScheduler"
    assert list(saved.augment.crop_size) == [64, 64]
    snapshot = load_snapshot(run / "snapshot-001.ckpt")
    assert snapshot["run_config"]["optimizer"]["momentum"] == 0.5
    assert snapshot["run_config"]["pytorch_config"] == str(path)


def test_train_script_stops_on_a_field_it_cannot_honour(project, tmp_path):
    path = dlc_file(project, tmp_path / "pytorch_config.yaml")
    data = YAML(typ="safe").load(path)
    data["data"]["train"]["elastic_transform"] = True
    YAML().dump(data, path)
    result = subprocess.run([sys.executable, str(REPO / "scripts/train.py"), "experiment=dlc",
                             f"data.project={project}", f"pytorch_config={path}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"{path}: cannot train with these settings" in result.stderr
    assert "data.train.elastic_transform: no elastic transform" in result.stderr


def test_train_network_reads_the_shuffles_file(project, tmp_path):
    cfg = ProjectConfig.read(project)
    from lightning_dlc.project.shuffles import model_folder

    train_dir = model_folder(cfg, cfg.training_fractions[0], 1) / "train"
    dlc_file(project, train_dir / "pytorch_config.yaml")
    with pytest.raises(ProjectError, match="pytorch_cfg_updates key 'runner.optimizer.type.x'"):
        api.train_network(project, pytorch_cfg_updates={"runner.optimizer.type.x": 1})
    api.train_network(project, pytorch_cfg_updates={"runner.optimizer.params.momentum": 0.7}, batch_size=2,
                      overrides=["model=resnet_18", "model.backbone.pretrained=false", "trainer.enable_progress_bar=false"])
    saved = OmegaConf.load(train_dir / "run_config.yaml")
    assert saved.optimizer.momentum == 0.7 and saved.optimizer.lr == 0.002  # the file, updated as DeepLabCut does
    assert saved.data.batch_size == 2 and saved.trainer.max_epochs == 1  # keywords win
    assert (train_dir / "snapshot-001.ckpt").is_file()
