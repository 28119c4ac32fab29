"""FiftyOne review tests: their own FiftyOne database, and one tiny trained multi-animal project with an analyzed video."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

N_FRAMES, SIZE, EPOCHS = 30, 96, 4


@pytest.fixture(scope="session", autouse=True)
def fiftyone_database(tmp_path_factory) -> Path:
    """A fresh FiftyOne database (its own mongod) in a temporary folder, so tests never touch the user's datasets.

    FiftyOne's database service reads the folder from the environment when it first connects, which is
    after this (nothing before these tests talks to the database).
    """
    folder = tmp_path_factory.mktemp("fiftyone-db")
    previous = os.environ.get("FIFTYONE_DATABASE_DIR")
    os.environ["FIFTYONE_DATABASE_DIR"] = str(folder)
    yield folder
    _stop_database_service()
    if previous is None:
        os.environ.pop("FIFTYONE_DATABASE_DIR", None)
    else:
        os.environ["FIFTYONE_DATABASE_DIR"] = previous


def _stop_database_service() -> None:
    """Stops the mongod this session started: pytest then deletes its folder, and a mongod whose files vanish
    under it aborts ("exited with error -6" after the summary)."""
    database = sys.modules.get("fiftyone.core.odm.database")
    service = getattr(database, "_db_service", None)
    if service is None:
        return
    database._disconnect()
    child, ours = service.child, not service.attached
    service.stop()  # closes the service's stdin: it stops mongod once no client is left
    if ours and child is not None:
        child.wait(timeout=120)
    database._db_service = None


@pytest.fixture(scope="session")
def review_project(tmp_path_factory) -> SimpleNamespace:
    """A 3-fish demo project with a unique bodypart (30 frames, 96 px), a small model trained 4 epochs
    (snapshots at 2 and 4: two runs to compare) and its video analyzed with the last one (~20 s)."""
    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.models.snapshot_files import find_snapshots

    root = tmp_path_factory.mktemp("review")
    config = make_demo_project(root / "fishtank", n_frames=N_FRAMES, n_labeled=20, size=SIZE, unique_bodyparts=True)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=EPOCHS, save_epochs=2, batch_size=8, net_type="resnet_18",
                      overrides=["model.backbone.name=regnetx_002", "model.backbone.pretrained=false",
                                 "optimizer.lr=3e-3", "data.num_workers=0", "eval_interval=0", "augment=none",
                                 "logger=csv", "trainer.enable_progress_bar=false"])
    train_dir = next((config.parent / "dlc-models-pytorch/iteration-0").glob("*shuffle1/train"))
    snapshots = find_snapshots(train_dir, "all")
    video = config.parent / "videos" / "fishtank.mp4"
    summary, = api.analyze_videos(config, [video], snapshot="last", device="cpu", progress=False, verbose=False)
    return SimpleNamespace(config=config, train_dir=train_dir, snapshots=snapshots, video=video,
                           h5=Path(summary.h5), scorer=summary.scorer)
