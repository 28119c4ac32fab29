"""Every option of every config group composes, and the ones that can be built here build."""
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.lit.schedulers import LRListScheduler, build_scheduler

GROUPS = ["data", "model", "detector", "optimizer", "scheduler", "logger", "trainer", "augment", "experiment"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def compose_with(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=["data.project=/nowhere/config.yaml", "output_dir=/tmp/x", *overrides])


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group, option, tmp_path):
    cfg = compose_with(f"{group}={option}", f"output_dir={tmp_path}")
    node = cfg.get(group)
    params = [torch.nn.Parameter(torch.zeros(2))]
    if group == "optimizer":
        assert isinstance(instantiate(node)(params), torch.optim.Optimizer)
    elif group == "scheduler":
        optimizer = torch.optim.SGD(params, lr=0.1)
        scheduler = build_scheduler(instantiate(node) if node else None, optimizer)
        assert scheduler is None if option == "none" else hasattr(scheduler, "step")
    elif group == "logger" and option != "wandb":  # wandb is an optional extra
        assert instantiate(node).save_dir == str(tmp_path)
    elif group == "trainer" and option != "gpu":
        trainer = instantiate(node, **({"accelerator": "cpu"} if option == "ddp" else {}))
        assert trainer.max_epochs == cfg.trainer.max_epochs
    elif group == "augment":
        out = instantiate(node)(torch.rand(2, 3, 64, 64), torch.rand(2, 1, 2, 3) * 60, torch.zeros(2, 0, 3))
        assert out[1].shape == (2, 1, 2, 3)


def test_dlc_schedule_follows_the_run():
    cfg = compose_with("experiment=dlc")
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
    scheduler = build_scheduler(instantiate(cfg.scheduler), optimizer)
    assert isinstance(scheduler, LRListScheduler) and scheduler.milestones == [160, 190]  # DeepLabCut's
    lrs = []
    for _ in range(200):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[159] == 1e-4 and lrs[160] == pytest.approx(1e-5) and lrs[190] == pytest.approx(1e-6)


def test_warmup_cosine_nests_schedulers():
    cfg = compose_with("scheduler=warmup_cosine", "trainer.max_epochs=20")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(instantiate(cfg.scheduler), optimizer)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.01) and max(lrs) == pytest.approx(1.0, abs=0.05) and lrs[-1] < 0.1


def test_presets_win_over_train_yaml_and_the_command_line_wins_over_presets():
    demo = compose_with()
    assert demo.experiment_name == "demo" and demo.snapshots.save_epochs == 20 and demo.trainer.max_epochs == 60
    assert demo.model.backbone.name == "resnet18" and demo.model.backbone.pretrained is False
    chosen = compose_with("model=hrnet_w32", "trainer.max_epochs=3")
    assert chosen.model.backbone.variant == "w32" and chosen.trainer.max_epochs == 3
    dlc = compose_with("experiment=dlc")
    assert dlc.data.source == "dlc" and dlc.model.backbone.variant == "resnet50" and dlc.model.backbone.pretrained
    assert dlc.snapshots.save_epochs == 25 and dlc.trainer.max_epochs == 200 and dlc.augment.crop_size == [448, 448]
