"""The whole refine loop through the api: train, analyze, extract outliers, accept, merge, train the next
iteration from the last one's snapshot (its weights at the start: the snapshot's)."""
from __future__ import annotations

import pytest
import torch

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.models.snapshot_files import find_snapshots, snapshot_weights
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.errors import ProjectError

pytestmark = pytest.mark.slow  # trains twice

TINY = ["model.backbone.name=regnetx_002", "model.backbone.pretrained=false", "data.num_workers=0", "eval_interval=0",
        "augment=none", "logger=csv", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]


def learned(path) -> dict[str, torch.Tensor]:
    """A snapshot's learned weights (BatchNorm's running statistics move without learning)."""
    return {k: v for k, v in snapshot_weights(path).items() if "running_" not in k and "num_batches" not in k}


def test_outliers_merge_and_a_second_iteration_from_the_first(tmp_path):
    config = make_demo_project(tmp_path / "fishtank", multianimal=False, n_frames=24, n_labeled=12, size=64)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=1, save_epochs=1, batch_size=4, net_type="resnet_18", overrides=TINY)
    with pytest.raises(ProjectError, match="no previous iteration"):
        api.previous_iteration_snapshot(config)
    video = config.parent / "videos" / "fishtank.mp4"
    with pytest.raises(ProjectError, match="no analysis of this video"):
        api.extract_outlier_frames(config, [video], snapshot="last", automatic=True)
    api.analyze_videos(config, [video], snapshot="last", device="cpu", progress=False)

    found, = api.extract_outlier_frames(config, [video], outlieralgorithm="jump", epsilon=0.0,
                                        extractionalgorithm="uniform", snapshot="last")
    assert found.extracted.written and found.machine_labels.name == "machinelabels-iter0.h5"
    assert found.analysis.name.startswith("fishtank" + "DLC_")
    labels = config.parent / "labeled-data" / "fishtank" / "CollectedData_synthetic.h5"
    assert api.accept_machine_labels(config) == [labels]
    assert api.merge_datasets(config) == 1

    api.create_training_dataset(config)
    previous = api.previous_iteration_snapshot(config, snapshot="last")
    assert "iteration-0" in str(previous)
    # DeepLabCut's keyword; a learning rate of 0 keeps the weights the run started from
    api.train_network(config, shuffle=1, epochs=1, save_epochs=1, batch_size=4, net_type="resnet_18",
                      snapshot_path=str(previous), overrides=[*TINY, "optimizer.lr=0"])
    train_dir = next((config.parent / "dlc-models-pytorch/iteration-1").glob("*shuffle1/train"))
    started, = find_snapshots(train_dir, "last")
    assert started.name == "snapshot-001.ckpt"  # epochs counted from 0, not from the first iteration's
    before, after = learned(previous), learned(started)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ProjectConfig.read(config).iteration == 1
