"""The ``callbacks`` group: snapshots and the learning-rate monitor by default, more from the command line."""

import pytest
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor

from lightning_dlc.lit.snapshots import Snapshots, load_snapshot
from lightning_dlc.lit.train import build_callbacks, train
from lightning_dlc.models.snapshot_files import DETECTOR
from test_train import compose_train, tiny_overrides  # tests/lit is on sys.path (pytest rootdir imports)

EXTRA = "callbacks=[snapshots,lr_monitor,early_stopping]"


def test_default_is_snapshots_then_lr_monitor_which_needs_a_logger(tmp_path):
    cfg = compose_train([f"output_dir={tmp_path}"])
    snapshots, monitor = build_callbacks(cfg, tmp_path, logger=True)
    assert isinstance(snapshots, Snapshots) and isinstance(monitor, LearningRateMonitor)
    assert snapshots.dirpath == tmp_path and snapshots.prefix != DETECTOR
    assert (snapshots.save_epochs, snapshots.max_snapshots, snapshots.key_metric) == (
        cfg.snapshots.save_epochs, cfg.snapshots.max_snapshots, cfg.snapshots.key_metric)
    assert monitor.logging_interval == "epoch"
    assert [type(c) for c in build_callbacks(cfg, tmp_path, logger=False)] == [Snapshots]


def test_added_callbacks_follow_the_key_metric_and_skip_the_detector_stage(tmp_path):
    cfg = compose_train([f"output_dir={tmp_path}", EXTRA, "callbacks.early_stopping.patience=5",
                         "snapshots.key_metric=test.rmse", "snapshots.key_metric_asc=false",
                         "model=top_down_resnet_18", "detector=ssdlite"])
    *_, stopping = build_callbacks(cfg, tmp_path, logger=True)
    assert isinstance(stopping, EarlyStopping) and stopping.patience == 5
    assert stopping.monitor == "test.rmse" and stopping.mode == "min"
    # the detector stage: its own snapshots (detector.train's settings), no early stopping on pose metrics
    snapshots, monitor = build_callbacks(cfg, tmp_path, logger=True, stage="detector")
    assert isinstance(monitor, LearningRateMonitor) and snapshots.prefix == DETECTOR
    assert snapshots.key_metric == cfg.detector.train.key_metric and snapshots.key_metric_asc
    assert snapshots.save_epochs == cfg.detector.train.save_epochs


@pytest.mark.slow
def test_early_stopping_and_model_checkpoints_from_overrides(tmp_path, capsys):
    """A run stops when mAP stops improving; Lightning's ModelCheckpoint (the group's option and one of the
    user's own, given whole on the command line) writes beside our snapshots."""
    out = tmp_path / "run"
    train(compose_train(tiny_overrides(
        tmp_path / "demo_project", out, "trainer.max_epochs=3",
        "callbacks=[snapshots,lr_monitor,early_stopping,model_checkpoint]",
        # no evaluation can improve by 1000: the second stops the run (patience 1)
        "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1000",
        "+callbacks.last._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        f"+callbacks.last.dirpath={out / 'last'}", "+callbacks.last.save_last=true",
        "+callbacks.last.save_top_k=0")))
    assert "Trained 2 epochs" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("snapshot-0*.ckpt")) == ["snapshot-001.ckpt", "snapshot-002.ckpt"]
    assert len(list((out / "checkpoints").glob("epoch=*.ckpt"))) == 2  # save_top_k 3, two epochs
    stopping = next(v for k, v in load_snapshot(out / "last" / "last.ckpt")["callbacks"].items()
                    if k.startswith("EarlyStopping"))
    assert stopping["wait_count"] == 1 and stopping["patience"] == 1
