"""Snapshot files: finding (ours and DeepLabCut's, snapshotindex), scorer names, DeepLabCut model folders
read here, bad files named, fine-tuning from a snapshot of the same or another project."""
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.inference import load_model
from lightning_dlc.models.dlc_model_folder import to_dlc_snapshot
from lightning_dlc.models.export import shuffle_train_dir
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.snapshot_files import (find_snapshots, init_from_snapshot, load_snapshot, scorer_name,
                                                 snapshot_header)
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.errors import ProjectError



def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_deeplabcut_order_and_snapshotindex(tmp_path):
    touch(tmp_path, "snapshot-005.pt", "snapshot-010.pt", "snapshot-best-007.pt", "snapshot-detector-020.pt",
          "pytorch_config.yaml")
    names = lambda which, **kw: [p.name for p in find_snapshots(tmp_path, which, **kw)]  # noqa: E731
    assert names(-1) == ["snapshot-best-007.pt"]  # DeepLabCut's -1: the best one, placed last
    assert names(0) == ["snapshot-005.pt"] and names("1") == ["snapshot-010.pt"]
    assert names("best") == ["snapshot-best-007.pt"] and names("last") == ["snapshot-010.pt"]
    assert names("all") == ["snapshot-005.pt", "snapshot-best-007.pt", "snapshot-010.pt"]
    assert names(-1, prefix="snapshot-detector") == ["snapshot-detector-020.pt"]
    with pytest.raises(ProjectError, match="index 3 out of range"):
        find_snapshots(tmp_path, 3)
    touch(tmp_path, "snapshot-010.ckpt")  # our run folder: the .ckpt files carry the run config
    assert names("all") == ["snapshot-010.ckpt"]


def test_detector_chosen_by_deeplabcuts_detector_snapshotindex(tmp_path):
    touch(tmp_path, "snapshot-010.pt", "snapshot-detector-005.pt", "snapshot-detector-020.pt",
          "snapshot-detector-best-010.pt")
    pose = tmp_path / "snapshot-010.pt"
    chosen = lambda index, data: api._trained_detector(SimpleNamespace(data=data), pose, index).name  # noqa: E731
    assert chosen(None, {}) == "snapshot-detector-best-010.pt"  # unset: -1, the best one, placed last
    assert chosen(None, {"detector_snapshotindex": 0}) == "snapshot-detector-005.pt"  # config.yaml's index
    assert chosen("1", {"detector_snapshotindex": 0}) == "snapshot-detector-020.pt"  # the keyword wins
    assert chosen(None, {"detector_snapshotindex": "all"}) == "snapshot-detector-best-010.pt"
    with pytest.raises(ProjectError, match="index 5 out of range"):
        chosen(5, {})
    with pytest.raises(ValueError, match="detector_snapshot_index"):
        chosen("best", {})
    bottom_up = tmp_path / "bottom_up"
    touch(bottom_up, "snapshot-010.pt")
    assert api._trained_detector(SimpleNamespace(data={}), bottom_up / "snapshot-010.pt") is None


def test_scorer_names_are_deeplabcuts():
    assert scorer_name("Resnet50", "fishJan1", 1, Path("snapshot-best-007.pt"), 7) == \
        "DLC_Resnet50_fishJan1shuffle1_snapshot_best-7"
    assert scorer_name("TopDownResnet50", "fishJan1", 2, Path("snapshot-005.pt"), 5,
                       detector=Path("snapshot-detector-best-020.pt")) == \
        "DLC_TopDownResnet50_fishJan1shuffle2_detector_best-20_snapshot_5"


@pytest.fixture(scope="module")
def dlc_folder(tmp_path_factory):
    """A single-animal project's shuffle 1 holding a DeepLabCut model folder: pytorch_config.yaml and
    snapshot-003.pt of an untrained resnet_18 (ours, but named by net_type as DeepLabCut's are)."""
    config = make_demo_project(tmp_path_factory.mktemp("folder") / "one", multianimal=False, n_frames=12,
                               n_labeled=10, size=96)
    api.create_training_dataset(config)
    meta = ProjectConfig.read(config).meta()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, meta)
    train = shuffle_train_dir(config)
    train.mkdir(parents=True)
    (train / "pytorch_config.yaml").write_text(yaml.safe_dump(
        {"net_type": "resnet_18", "method": "bu",
         "metadata": {"project_path": "/elsewhere", "bodyparts": list(meta.bodyparts), "unique_bodyparts": [],
                      "individuals": ["individual_1"]}}))
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(to_dlc_snapshot(state, "model.", 3, {"test.rmse": 1.5}), train / "snapshot-003.pt")
    return config, train, model


def test_deeplabcut_model_folder_loads_with_its_weights(dlc_folder):
    config, train, model = dlc_folder
    path = find_snapshots(train, -1)[0]
    loaded = load_model(path)
    assert loaded.meta == ProjectConfig.read(config).meta()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    header = snapshot_header(path)
    assert header["epoch"] == 3 and header["run_config"]["data"]["project"] == str(config)
    assert header["run_config"]["data"]["shuffle"] == 1 and header["run_config"]["net_type"] == "resnet_18"


def test_bad_files_are_named(dlc_folder, tmp_path):
    config, train, model = dlc_folder
    other = tmp_path / "train"
    other.mkdir()
    (other / "pytorch_config.yaml").write_text((train / "pytorch_config.yaml").read_text())
    torch.save({"weights": {}}, other / "snapshot-001.pt")
    with pytest.raises(ProjectError, match=r"snapshot-001\.pt.*not a DeepLabCut snapshot"):
        load_snapshot(other / "snapshot-001.pt")
    torch.save({"model": {"w": replace}}, other / "snapshot-002.pt")  # code, refused by weights_only
    with pytest.raises(ProjectError, match=r"snapshot-002\.pt.*cannot be read"):
        load_snapshot(other / "snapshot-002.pt")
    # weights for 3 bodyparts in a folder whose config (and project) has 5: the key and shapes named
    snapshot = torch.load(train / "snapshot-003.pt", weights_only=True)
    key = next(k for k in snapshot["model"] if k.startswith("heads.bodypart.heatmap_head"))
    snapshot["model"][key] = snapshot["model"][key][:3]
    torch.save(snapshot, train / "snapshot-004.pt")
    try:
        with pytest.raises(RuntimeError, match=rf"snapshot-004\.pt.*{key}"):
            load_model(train / "snapshot-004.pt")
    finally:
        (train / "snapshot-004.pt").unlink()
    bad = yaml.safe_load((train / "pytorch_config.yaml").read_text())
    bad["metadata"]["bodyparts"] = ["nose"]
    with pytest.raises(ProjectError, match="metadata.bodyparts"):
        (train / "pytorch_config.yaml").write_text(yaml.safe_dump(bad))
        try:
            load_snapshot(train / "snapshot-003.pt")
        finally:
            bad["metadata"]["bodyparts"] = list(model.meta.bodyparts)
            (train / "pytorch_config.yaml").write_text(yaml.safe_dump(bad))


def test_fine_tuning_takes_what_fits(dlc_folder, caplog):
    _, train, model = dlc_folder
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.pretrained=false",
                                          f"model.weights={train / 'snapshot-003.pt'}"])
    same = model_from_config(cfg.model, model.meta)  # the same project: the whole model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in same.state_dict().items())
    fewer = replace(model.meta, bodyparts=model.meta.bodyparts[:3])  # another project: 3 bodyparts
    other = model_from_config(cfg.model, fewer)
    backbone = [k for k in other.state_dict() if k.startswith("backbone.")]
    assert all(torch.equal(other.state_dict()[k], model.state_dict()[k]) for k in backbone)
    resized = sorted(k for k, v in other.state_dict().items() if v.shape != model.state_dict()[k].shape)
    assert resized and all(k.startswith("heads.bodypart") for k in resized)
    assert "initialised anew" in caplog.text and resized[0].rsplit(".", 1)[0] in caplog.text
    assert init_from_snapshot(other, train / "snapshot-003.pt") == resized
