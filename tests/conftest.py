"""Shared fixtures: the real openfield project (from ../shared) and the built-in demo project."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENFIELD = SHARED / "openfield-Pranav-2018-10-30"


@pytest.fixture(scope="session")
def openfield_source() -> Path:
    if not OPENFIELD.is_dir():
        pytest.skip(f"real data not here: {OPENFIELD} (../shared is beside the checkout in CI)")
    return OPENFIELD


@pytest.fixture
def openfield(openfield_source, tmp_path) -> Path:
    """A writable copy of openfield as DeepLabCut ships it (placeholder paths); returns config.yaml."""
    root = tmp_path / openfield_source.name
    shutil.copytree(openfield_source, root, ignore=shutil.ignore_patterns("videos"))
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return root / "config.yaml"


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """The multi-animal demo project, made once per test session; returns config.yaml."""
    from lightning_dlc.data.demo import make_demo_project

    return make_demo_project(tmp_path_factory.mktemp("demo") / "fishtank", unique_bodyparts=True)


@pytest.fixture(scope="session")
def trained_one_fish(tmp_path_factory) -> tuple[Path, Path]:
    """A one-fish demo project (40 frames, 96 px) and a small model trained on it for 15 epochs, made once per
    session for the tests that need a model that finds the fish (analysis, precision): (config.yaml, snapshot)."""
    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.models.snapshot_files import find_snapshots

    config = make_demo_project(tmp_path_factory.mktemp("one_fish") / "fishtank", multianimal=False, n_frames=40,
                               n_labeled=32, size=96)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=15, save_epochs=15, batch_size=8, net_type="resnet_18",
                      overrides=["model.backbone.name=regnetx_002", "model.backbone.pretrained=false",
                                 "optimizer.lr=3e-3", "data.num_workers=0", "eval_interval=0", "augment=none",
                                 "logger=csv", "trainer.enable_progress_bar=false"])
    train_dir = next((config.parent / "dlc-models-pytorch/iteration-0").glob("*shuffle1/train"))
    return config, find_snapshots(train_dir, "last")[0]


@pytest.fixture
def demo(demo_source, tmp_path) -> Path:
    """A writable copy of the demo project (its config names its own folder, so it reads as moved)."""
    root = tmp_path / "fishtank"
    shutil.copytree(demo_source.parent, root)
    return root / "config.yaml"


@pytest.fixture
def coco_round_trip(tmp_path):
    """Export a project's shuffle 1 to COCO, read it back, and check the records equal DeepLabCut's."""
    from lightning_dlc import api
    from lightning_dlc.project import load_coco, load_shuffle

    def check(config: Path) -> Path:
        api.create_training_dataset(config)
        out = api.export_coco(config, tmp_path / "coco")
        coco = load_coco(out)
        train, test = load_shuffle(config, 1)
        assert coco["train"].meta == train.meta
        for dlc_split, coco_split in ((train, coco["train"]), (test, coco["test"])):
            assert len(dlc_split) == len(coco_split) > 0
            assert all(a.same_labels(b) for a, b in zip(dlc_split.records, coco_split.records))
        return out

    return check


@pytest.fixture(scope="session")
def damage():
    """``damage(src, dst, at=0.5, length=3000)``: a copy of a file with random bytes written over its middle."""
    import numpy as np

    def write(src: Path, dst: Path, at: float = 0.5, length: int = 3000) -> Path:
        data = bytearray(Path(src).read_bytes())
        start = int(len(data) * at)
        data[start:start + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
        Path(dst).write_bytes(bytes(data))
        return Path(dst)

    return write
