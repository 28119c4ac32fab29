"""A DeepLabCut pytorch_config.yaml into our config, field by field (nested schedulers too), and back out;
every field we cannot honour refused by name; composition order (file < command line)."""
from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from ruamel.yaml import YAML

from lightning_dlc.lit.compose import compose_train_config, train_keyword_overrides
from lightning_dlc.lit.schedulers import LRListScheduler, build_scheduler
from lightning_dlc.project.dlc_defaults import pose_config_defaults
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.pytorch_config import (pytorch_config_from_run, read_pytorch_config,
                                                  write_pytorch_config)
from lightning_dlc.project.pytorch_config_read import apply_dotted_updates, translate_pytorch_config
from lightning_dlc.project.records import ProjectMeta

META = ProjectMeta(bodyparts=("snout", "ear", "tail"), individuals=("m1", "m2"))
NESTED = {"type": "SequentialLR", "params": {"milestones": [4, 10], "schedulers": [
    {"type": "LinearLR", "params": {"start_factor": 0.1, "total_iters": 4}},
    {"type": "ChainedScheduler", "params": {"schedulers": [
        {"type": "ExponentialLR", "params": {"gamma": 0.9}},
        {"type": "StepLR", "params": {"step_size": 2, "gamma": 0.5}}]}},
    {"type": "LRListScheduler", "params": {"milestones": [0], "lr_list": [[1e-5]]}}]}}


def dlc_file(**edits) -> dict:
    """DeepLabCut's own resnet_50 file for META (dlc_defaults equals DeepLabCut's: test_pytorch_config_peer),
    trained with a nested schedule, then ``edits`` (``a__b=value`` sets ``a.b``)."""
    config = pose_config_defaults("resnet_50", META, detector_type="ssdlite")
    config["runner"].update(optimizer={"type": "SGD", "params": {"lr": 0.01, "momentum": 0.8}}, scheduler=NESTED,
                            key_metric="test.rmse", key_metric_asc=False, eval_interval=3,
                            snapshots={"max_snapshots": 2, "save_epochs": 7, "save_optimizer_state": True})
    config["train_settings"].update(batch_size=3, epochs=12, seed=5)
    for dotted, value in edits.items():
        config = apply_dotted_updates(config, {dotted.replace("__", "."): value})
    return config


def test_nested_schedulers_and_training_fields():
    values = translate_pytorch_config(dlc_file(), META).values
    assert values["scheduler"] == {
        "_target_": "torch.optim.lr_scheduler.SequentialLR", "_partial_": True, "milestones": [4, 10], "schedulers": [
            {"_target_": "torch.optim.lr_scheduler.LinearLR", "_partial_": True, "start_factor": 0.1, "total_iters": 4},
            {"_target_": "lightning_dlc.lit.schedulers.ChainedScheduler", "_partial_": True, "schedulers": [
                {"_target_": "torch.optim.lr_scheduler.ExponentialLR", "_partial_": True, "gamma": 0.9},
                {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 2, "gamma": 0.5}]},
            {"_target_": "lightning_dlc.lit.schedulers.LRListScheduler", "_partial_": True, "milestones": [0],
             "lr_list": [[1e-5]]}]}
    assert values["optimizer"] == {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01, "momentum": 0.8}
    expected = {"trainer.max_epochs": 12, "data.batch_size": 3, "seed": 5, "eval_interval": 3,
                "snapshots.key_metric": "test.rmse", "snapshots.key_metric_asc": False, "snapshots.max_snapshots": 2,
                "snapshots.save_epochs": 7, "snapshots.save_optimizer_state": True, "trainer.accelerator": "auto",
                "augment.crop_size": [448, 448], "augment.rotation": 30.0, "augment.scale": [0.5, 1.25],
                "augment.affine_p": 0.5, "augment.noise_std": 0.05, "augment.motion_blur_p": 0.5}
    assert {k: values[k] for k in expected} == expected


def test_nested_schedule_builds_as_deeplabcut_steps_it():
    node = OmegaConf.create(translate_pytorch_config(dlc_file(), META).values["scheduler"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(instantiate(node), optimizer)
    inner = scheduler._schedulers
    assert [type(s).__name__ for s in inner] == ["LinearLR", "ChainedScheduler", "LRListScheduler"]
    assert [type(s).__name__ for s in inner[1]._schedulers] == ["ExponentialLR", "StepLR"]
    assert isinstance(inner[2], LRListScheduler)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[11] == pytest.approx(1e-5)  # warm-up start; last stage's rate


def test_written_file_reads_back_to_the_run(tmp_path):
    cfg = compose_train_config(["experiment=dlc", "data.project=/nowhere/config.yaml", "output_dir=/tmp/x",
                                "model=top_down_resnet_50", "detector=ssdlite", "scheduler=rtmpose",
                                "optimizer=sgd", "trainer.max_epochs=40", "detector.train.epochs=9"])
    run = OmegaConf.to_container(cfg, resolve=True)
    assert run["net_type"] == "top_down_resnet_50"
    pose_path, test_path = write_pytorch_config(tmp_path / "train", pytorch_config_from_run(run, META))
    assert test_path == tmp_path / "test" / "pose_cfg.yaml"
    with pytest.raises(ProjectError, match="already exists"):
        write_pytorch_config(tmp_path / "train", pytorch_config_from_run(run, META))
    back = translate_pytorch_config(read_pytorch_config(pose_path), META, source=pose_path)
    assert back.choices == {"model": "top_down_resnet_50", "detector": "ssdlite", "augment": "none"}
    assert back.values["optimizer"] == run["optimizer"]
    assert back.values["scheduler"]["schedulers"][1] == run["scheduler"]["schedulers"][1]
    assert back.values["scheduler"]["milestones"] == run["scheduler"]["milestones"] == [20, 40]
    assert back.values["trainer.max_epochs"] == 40 and back.values["detector.train.epochs"] == 9
    assert back.values["detector.train.optimizer"] == run["detector"]["train"]["optimizer"]
    assert back.values["model.top_down.crop_size"] == [256, 256]


@pytest.mark.parametrize(("edit", "named"), [
    ({"net_type": "resnet_7"}, "net_type 'resnet_7' is not one of DeepLabCut"),
    ({"model__backbone__output_stride": 8}, "model.backbone.output_stride: 8 differs"),
    ({"model__heads__bodypart__predictor__locref_stdev": 3.0}, "model.heads.bodypart.predictor.locref_stdev"),
    ({"data__train__covering": True}, "data.train.covering: no coarse dropout"),
    ({"train_settings__weight_init": {"dataset": "superanimal_quadruped"}}, "train_settings.weight_init"),
    ({"runner__snapshot_prefix": "x"}, "runner.snapshot_prefix"),
    ({"speed": "fast"}, "speed: not a key"),
])
def test_fields_we_cannot_honour_are_refused_by_name(edit, named, tmp_path):
    with pytest.raises(ProjectError, match=named) as error:
        translate_pytorch_config(dlc_file(**edit), META, source=tmp_path / "pytorch_config.yaml")
    assert str(tmp_path / "pytorch_config.yaml") in str(error.value)


def test_settings_we_build_are_taken_not_refused():
    values = translate_pytorch_config(dlc_file(**{
        "model__heads__bodypart__target_generator__generators__0__pos_dist_thresh": 9,
        "model__heads__bodypart__predictor__min_affinity": 0.2, "data__train__hflip": 0.3,
        "resume_training_from": "/models/snapshot-050.pt", "device": "cuda:1"}), META).values
    assert values["model.heads.multi.bodypart.radius"] == 9
    assert values["model.heads.multi.bodypart.predict_kwargs.min_affinity"] == 0.2
    assert values["augment.hflip_p"] == 0.3
    assert values["model.weights"] == "/models/snapshot-050.pt"
    assert values["trainer.accelerator"] == "gpu" and values["trainer.devices"] == [1]


def test_bodyparts_differing_from_the_project_name_both():
    other = ProjectMeta(bodyparts=("nose", "ear", "tail"), individuals=("m1", "m2"))
    with pytest.raises(ProjectError, match=r"metadata.bodyparts \['snout', 'ear', 'tail'\] differ .* \['nose'"):
        translate_pytorch_config(dlc_file(), other)


def test_command_line_wins_over_the_file(tmp_path):
    path = tmp_path / "pytorch_config.yaml"
    YAML().dump(dlc_file(), path)
    YAML().dump({"Task": "t", "scorer": "s", "date": "d", "project_path": str(tmp_path), "multianimalproject": True,
                 "multianimalbodyparts": list(META.bodyparts), "individuals": list(META.individuals),
                 "uniquebodyparts": [], "bodyparts": "MULTI!", "TrainingFraction": [0.9]}, tmp_path / "config.yaml")
    base = ["experiment=dlc", f"data.project={tmp_path / 'config.yaml'}", "output_dir=/tmp/x"]
    cfg = compose_train_config([*base, f"pytorch_config={path}"])
    assert cfg.model.backbone.variant == "resnet50" and cfg.trainer.max_epochs == 12
    assert cfg.scheduler._target_.endswith("SequentialLR") and cfg.optimizer.momentum == 0.8
    cfg = compose_train_config([*base, f"pytorch_config={path}", "trainer.max_epochs=2", "optimizer=adam",
                                "scheduler.milestones=[1,2]", "model=resnet_101", "augment.rotation=5"])
    assert cfg.trainer.max_epochs == 2 and cfg.data.batch_size == 3
    assert OmegaConf.to_container(cfg.optimizer) == {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4}
    assert list(cfg.scheduler.milestones) == [1, 2] and len(cfg.scheduler.schedulers) == 3
    assert cfg.model.backbone.variant == "resnet101" and cfg.net_type == "resnet_101"
    assert cfg.augment.rotation == 5 and cfg.augment.scale == [0.5, 1.25]


def test_pytorch_cfg_updates_and_train_network_keywords(tmp_path):
    updated = apply_dotted_updates(dlc_file(), {"runner.optimizer.params.lr": 0.5, "train_settings.epochs": 3})
    values = translate_pytorch_config(updated, META).values
    assert values["optimizer"]["lr"] == 0.5 and values["trainer.max_epochs"] == 3
    with pytest.raises(ProjectError, match="runner.optimizer.type.params"):
        apply_dotted_updates(dlc_file(), {"runner.optimizer.type.params": 1})
    assert train_keyword_overrides(epochs=3, snapshot_path="/a/snapshot-010.pt", detector_epochs=0, device="cuda:1",
                                   load_head_weights=True) == [
        "trainer.max_epochs=3", "model.weights=/a/snapshot-010.pt", "stages=[pose]", "trainer.accelerator=gpu",
        "trainer.devices=[1]"]
    with pytest.raises(TypeError, match=r"load_head_weights=False: .*; superanimal_name='x'.*; colour: not"):
        train_keyword_overrides(load_head_weights=False, superanimal_name="x", colour="red")
    assert copy.deepcopy(dlc_file()) == dlc_file()  # updates work on copies
