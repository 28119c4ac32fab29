"""api.export_model (DeepLabCut's) on a tiny model folder: names, contents, errors, files kept without overwrite.
Its equality with DeepLabCut's own export is tests/models/test_export_model_peer.py."""
import pytest
import torch

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.models.export import EXPORTED_MODELS, shuffle_train_dir
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.errors import ProjectError
import yaml

PREFIX = "DLC_fishtank_NetType.RESNET_50_iteration-0_shuffle-1"


def snapshot(path, value: float) -> None:
    torch.save({"model": {"w": torch.full((2,), value)}, "metadata": {"epoch": 1}}, path)


@pytest.fixture
def folder(tmp_path):
    """A demo project's shuffle-1 model folder: a top-down pytorch_config.yaml, two pose and one detector snapshot."""
    config = make_demo_project(tmp_path / "p", multianimal=True, n_frames=4, n_labeled=3, size=32)
    train_dir = shuffle_train_dir(ProjectConfig.read(config))
    train_dir.mkdir(parents=True)
    (train_dir / "pytorch_config.yaml").write_text(yaml.safe_dump({
        "net_type": "top_down_resnet_50", "method": "td", "metadata": {"project_path": str(config.parent)},
        "train_settings": {"weight_init": None}}))
    snapshot(train_dir / "snapshot-005.pt", 1.0)
    snapshot(train_dir / "snapshot-best-004.pt", 2.0)
    snapshot(train_dir / "snapshot-detector-010.pt", 3.0)
    return config, train_dir


def test_files_named_and_filled_as_deeplabcuts(folder):
    config, _ = folder
    written = api.export_model(config, snapshotindex="all", wipepaths=True)
    out = config.parent / EXPORTED_MODELS / PREFIX
    assert written == [out / f"{PREFIX}_snapshot-detector10_snapshot-{uid}.pt" for uid in ("best-4", "5")]
    contents = torch.load(written[0], weights_only=True)
    assert list(contents) == ["config", "pose", "detector"]
    assert contents["config"]["net_type"] == "resnet_50"  # DeepLabCut's typed config drops the prefix
    assert contents["config"]["metadata"]["project_path"] is None  # wipepaths
    assert contents["pose"]["w"].tolist() == [2.0, 2.0] and contents["detector"]["w"].tolist() == [3.0, 3.0]
    (alone,) = api.export_model(config, snapshotindex=0, without_detector=True)
    assert alone.name == f"{PREFIX}_snapshot-5.pt" and list(torch.load(alone, weights_only=True)) == ["config", "pose"]


def test_existing_files_kept_unless_overwrite(folder):
    config, train_dir = folder
    (path,) = api.export_model(config)  # config.yaml's snapshotindex -1: the best
    snapshot(train_dir / "snapshot-best-004.pt", 7.0)
    assert api.export_model(config) == [path]
    assert torch.load(path, weights_only=True)["pose"]["w"].tolist() == [2.0, 2.0]
    api.export_model(config, overwrite=True)
    assert torch.load(path, weights_only=True)["pose"]["w"].tolist() == [7.0, 7.0]


def test_errors_name_the_model_folder(folder):
    config, train_dir = folder
    with pytest.raises(ProjectError, match="shuffle 2") as error:
        api.export_model(config, shuffle=2)
    assert "shuffle2" in str(error.value)
    with pytest.raises(ProjectError, match="out of range") as error:
        api.export_model(config, snapshotindex=5)
    assert str(train_dir) in str(error.value)
    (train_dir / "snapshot-detector-010.pt").unlink()
    with pytest.raises(ProjectError, match="without_detector") as error:
        api.export_model(config)
    assert str(train_dir) in str(error.value)
    with pytest.raises(ValueError, match="PyTorch"):
        api.export_model(config, engine="tensorflow")
