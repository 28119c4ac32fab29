import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.data.datamodule import PoseDataModule
from lightning_dlc.project import ProjectError, load_shuffle

CONF = CONF_DIR / "data"
SMALL_DEMO = dict(n_frames=20, n_labeled=10, size=64, n_fish=2)


def _check_batch(batch, n_individuals, n_bodyparts, n_unique, max_batch):
    b = batch["image"].shape[0]
    assert 1 <= b <= max_batch and batch["image"].dtype == torch.uint8
    assert batch["image"].shape[1] == 3 and batch["image"].shape[2] % 32 == 0 == batch["image"].shape[3] % 32
    assert batch["keypoints"].shape == (b, n_individuals, n_bodyparts, 3)
    assert batch["unique_keypoints"].shape == (b, n_unique, 3)
    assert batch["sizes"].shape == (b, 2) and batch["index"].shape == batch["scale"].shape == (b,)


def _loaders(dm):
    return {"train": dm.train_dataloader(), "val": dm.val_dataloader(), "test": dm.test_dataloader(),
            "predict": dm.predict_dataloader()}


def test_demo_made_from_scratch_then_reused(tmp_path):
    folder = tmp_path / "demo_project"
    dm = PoseDataModule("demo", str(folder), batch_size=4, num_workers=0, pin_memory=False, demo=SMALL_DEMO)
    meta = dm.load_meta()  # before setup: makes the project, not the shuffle
    assert meta.individuals == ("fish1", "fish2") and (folder / "config.yaml").is_file()
    dm.prepare_data()
    dm.setup("fit")
    assert dm.meta == meta and len(dm.train_set) == 9 and len(dm.test_set) == 1
    for name, loader in _loaders(dm).items():
        _check_batch(next(iter(loader)), 2, 5, 0, 4)
    train = dm.train_dataloader()
    assert train.drop_last and len(train) == 2, "9 images, batches of 4"
    assert not train.persistent_workers

    marker = folder / "labeled-data" / "mine.txt"
    marker.write_text("keep")
    again = PoseDataModule("demo", str(folder), batch_size=16, num_workers=0, pin_memory=False,
                           demo=dict(n_fish=3))
    again.setup()
    assert marker.read_text() == "keep" and again.meta.individuals == ("fish1", "fish2"), "reused as it is"
    train = again.train_dataloader()
    assert not train.drop_last and len(train) == 1 and len(next(iter(train))["index"]) == 9


def test_demo_folder_that_is_not_a_project(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ProjectError, match="no config.yaml") as err:
        PoseDataModule("demo", str(tmp_path / "stuff"), num_workers=0).setup()
    assert err.value.path == tmp_path / "stuff"


def test_dlc_openfield_missing_shuffle_then_created(openfield):
    dm = PoseDataModule("dlc", str(openfield), batch_size=2, num_workers=0, pin_memory=False)
    with pytest.raises(ProjectError) as err:
        dm.setup()
    message = str(err.value)
    assert "shuffle 1" in message and "does not exist" in message
    assert f"lightning-dlc create-training-dataset config={openfield}" in message
    assert "lightning_dlc.api.create_training_dataset" in message

    api.create_training_dataset(openfield)
    meta = dm.load_meta()
    dm.setup()
    train, test = load_shuffle(openfield, 1)
    assert dm.meta == meta == train.meta and not meta.multianimal
    assert dm.pcutoff == 0.4, "openfield's config.yaml"
    assert [r.key for r in dm.splits["test"].records] == [r.key for r in test.records]
    for loader in _loaders(dm).values():
        batch = next(iter(loader))
        _check_batch(batch, 1, len(meta.bodyparts), 0, 2)
        assert batch["sizes"].tolist()[0] == [480, 640]

    with pytest.raises(ProjectError, match="trainset_index=3"):
        PoseDataModule("dlc", str(openfield), trainset_index=3, num_workers=0).setup()


def test_coco_export_of_the_demo(demo, tmp_path):
    api.create_training_dataset(demo)
    root = api.export_coco(demo, tmp_path / "coco")
    dm = PoseDataModule("coco", str(root), batch_size=4, num_workers=0, pin_memory=False, resize=0.5)
    meta = dm.load_meta()
    dm.setup()
    train, test = load_shuffle(demo, 1)
    assert meta == train.meta and len(dm.train_set) == len(train) and len(dm.test_set) == len(test)
    for loader in _loaders(dm).values():
        batch = next(iter(loader))
        _check_batch(batch, 3, 5, 1, 4)
        assert batch["sizes"].tolist()[0] == [128, 128] and batch["scale"][0] == 0.5


def test_coco_without_test_split_trains_without_validation(demo, tmp_path, caplog):
    api.create_training_dataset(demo)
    root = api.export_coco(demo, tmp_path / "coco")
    (root / "annotations" / "test.json").unlink()
    dm = PoseDataModule("coco", str(root), num_workers=0, predict_split="all")
    with caplog.at_level(logging.WARNING):
        dm.setup()
        assert dm.val_dataloader() == []
    assert "without validation" in caplog.text
    with pytest.raises(ProjectError, match="test split is empty"):
        dm.test_dataloader()
    assert len(dm.predict_dataloader().dataset) == len(dm.train_set)


@pytest.mark.parametrize("source", ["dlc", "coco"])
def test_missing_project_path_is_named(tmp_path, source):
    missing = tmp_path / "nowhere"
    with pytest.raises(ProjectError) as err:
        PoseDataModule(source, str(missing), num_workers=0).setup()
    assert err.value.path == missing and str(missing) in str(err.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="data.project is required"):
        PoseDataModule("dlc")
    with pytest.raises(ValueError, match="data.source"):
        PoseDataModule("yolo", "x")
    with pytest.raises(ValueError, match="data.demo.out"):
        PoseDataModule("demo", demo={"out": "x"})


def test_workers_are_persistent(tmp_path):
    dm = PoseDataModule("demo", str(tmp_path / "d"), num_workers=2, demo=SMALL_DEMO)
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    # pinned only where a CUDA device takes the batches (elsewhere torch warns and ignores it)
    assert loader.pin_memory == torch.cuda.is_available()


def test_pin_memory_follows_the_trainers_accelerator(tmp_path):
    import lightning as L

    dm = PoseDataModule("demo", str(tmp_path / "d"), num_workers=0, demo=SMALL_DEMO)
    dm.setup()
    dm.trainer = L.Trainer(accelerator="cpu", logger=False)  # a CPU run on any machine: nothing to pin for
    assert not dm.train_dataloader().pin_memory
    dm.trainer, dm.pin_memory = None, False  # switched off: never pinned
    assert not dm.train_dataloader().pin_memory


def _load(name: str, **overrides):
    """A data option's own keys (its defaults list, composed by scripts/train.py, left out)."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg.pop("defaults", None)
    return OmegaConf.merge(cfg, overrides)


def test_hydra_configs(tmp_path):
    for name in ("dlc", "coco"):
        cfg = _load(name)
        assert cfg._target_ == "lightning_dlc.data.datamodule.PoseDataModule" and cfg.source == name
        with pytest.raises(MissingMandatoryValue):
            instantiate(cfg)
    assert _load("demo").project == "outputs/demo_project"
    dm = instantiate(_load("demo", project=str(tmp_path / "demo"), num_workers=0, demo=SMALL_DEMO))
    assert isinstance(dm, PoseDataModule) and dm.project == tmp_path / "demo"
    dm.setup()
    assert dm.meta.individuals == ("fish1", "fish2") and dm.hparams.demo["n_labeled"] == 10
    dlc = instantiate(_load("dlc", project=str(tmp_path / "demo" / "config.yaml")))
    dlc.setup()
    assert len(dlc.train_set) == len(dm.train_set)
