"""Training end to end on a tiny demo project: compose, fit, snapshots, resume, errors."""
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.lit.snapshots import load_snapshot
from lightning_dlc.lit.train import train

pytestmark = pytest.mark.slow  # trains models end to end



def tiny_overrides(project: Path, out: Path, *extra: str) -> list[str]:
    """The demo preset, made tiny: 16 labeled 128x128 frames, one epoch, evaluation every epoch."""
    return [f"data.project={project}", "data.demo.n_frames=24", "data.demo.n_labeled=16", "data.demo.size=128",
            "data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1", "eval_interval=1",
            "image_log_interval=1", "snapshots.save_epochs=1", f"output_dir={out}", "trainer.enable_progress_bar=false",
            *extra]


def compose_train(overrides: list[str]):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny") / "demo_project"


def test_one_epoch_writes_snapshots_logs_and_metrics(tiny_demo, tmp_path, capsys):
    out = tmp_path / "run"
    value = train(compose_train(tiny_overrides(tiny_demo, out)))
    printed = capsys.readouterr().out
    assert "Trained 1 epochs" in printed and "test.rmse" in printed and "test.mAP" in printed
    assert (out / "snapshot-001.ckpt").is_file()
    assert len(list(out.glob("snapshot-best-*.ckpt"))) == 1
    # DeepLabCut's snapshot beside ours: its container, our model's weights under DeepLabCut's (= our) keys
    dlc = torch.load(out / "snapshot-001.pt", weights_only=True)
    ours = load_snapshot(out / "snapshot-001.ckpt")["state_dict"]
    assert dlc["metadata"]["epoch"] == 1 and "metrics/test.rmse" in dlc["metadata"]["metrics"]
    assert dlc["model"].keys() == {k[len("model."):] for k in ours if k.startswith("model.")}
    assert all(torch.equal(v, ours[f"model.{k}"]) for k, v in dlc["model"].items())
    assert len(list(out.glob("snapshot-best-*.pt"))) == 1
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()  # all event files
    assert {"test.rmse", "test.mAP", "train.loss_epoch"} <= set(acc.Tags()["scalars"])
    # the value returned is the key metric (test.mAP by default) as logged after the last epoch
    assert value == pytest.approx(acc.Scalars("test.mAP")[-1].value, abs=1e-4)
    assert {"val/predictions", "val/target_heatmaps", "val/predicted_heatmaps"} <= set(acc.Tags()["images"])
    snapshot = load_snapshot(out / "snapshot-001.ckpt")  # weights_only=True: plain data only
    assert snapshot["project_meta"]["bodyparts"] == ["snout", "head", "dorsal", "tailbase", "tailtip"]
    assert snapshot["run_config"]["model"]["backbone"]["name"] == "resnet18"
    assert snapshot["optimizer_states"], "optimizer state saved by default (resume needs it)"


def test_resume_continues_epochs_with_optimizer_state(tiny_demo, tmp_path):
    first = tmp_path / "first"
    train(compose_train(tiny_overrides(tiny_demo, first, "eval_interval=0")))
    second = tmp_path / "second"
    train(compose_train(tiny_overrides(tiny_demo, second, "eval_interval=0", "trainer.max_epochs=2",
                                       f"ckpt_path={first / 'snapshot-001.ckpt'}")))
    assert (second / "snapshot-002.ckpt").is_file() and not (second / "snapshot-001.ckpt").exists()
    resumed = load_snapshot(second / "snapshot-002.ckpt")
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * load_snapshot(first / "snapshot-001.ckpt")["global_step"]
    state = resumed["optimizer_states"][0]["state"]
    assert state and all(int(s["step"]) == resumed["global_step"] for s in state.values()), \
        "Adam's step counters continue from the first run"


def test_snapshots_name_the_epochs_completed_when_the_last_epoch_was_not_validated(tiny_demo, tmp_path):
    """The validation after fit (eval_interval does not divide max_epochs) names files by epochs done."""
    out = tmp_path / "run"
    train(compose_train(tiny_overrides(tiny_demo, out, "eval_interval=2")))
    assert sorted(p.name for p in out.glob("snapshot-*.ckpt")) == ["snapshot-001.ckpt", "snapshot-best-001.ckpt"]


def test_resumed_run_names_snapshots_by_total_epochs(tiny_demo, tmp_path):
    first = tmp_path / "first"
    train(compose_train(tiny_overrides(tiny_demo, first, "eval_interval=0")))
    second = tmp_path / "second"
    train(compose_train(tiny_overrides(tiny_demo, second, "eval_interval=2", "trainer.max_epochs=3",
                                       f"ckpt_path={first / 'snapshot-001.ckpt'}")))
    assert (second / "snapshot-003.ckpt").is_file()
    best = [p.name for p in second.glob("snapshot-best-*.ckpt")]
    # validated in fit after epoch 2, then once more after fit (epoch 3 was not a validation epoch)
    assert best in (["snapshot-best-002.ckpt"], ["snapshot-best-003.ckpt"]), best


def test_resume_with_an_edited_schedule(tiny_demo, tmp_path):
    first = tmp_path / "first"
    train(compose_train(tiny_overrides(tiny_demo, first, "eval_interval=0")))
    second = tmp_path / "second"
    edited = ["scheduler.milestones=[1]", "scheduler.lr_list=[0.5e-4]", "trainer.max_epochs=2"]
    train(compose_train(tiny_overrides(tiny_demo, second, "eval_interval=0", *edited,
                                       f"ckpt_path={first / 'snapshot-001.ckpt'}", "resume.load_scheduler_state=false")))
    snapshot = load_snapshot(second / "snapshot-002.ckpt")
    assert snapshot["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.5e-4)
    assert snapshot["lr_schedulers"][0]["milestones"] == [1]


def test_demo_preset_on_other_data_is_refused(tmp_path):
    cfg = compose_train(["data=dlc", f"data.project={tmp_path}/config.yaml"])
    with pytest.raises(ValueError, match="experiment=dlc data.project="):
        train(cfg)


def test_nan_loss_stops_with_advice(tiny_demo, tmp_path):
    cfg = compose_train(tiny_overrides(tiny_demo, tmp_path / "nan", "optimizer.lr=1e30", "trainer.max_epochs=3",
                                       "eval_interval=0"))
    with pytest.raises(FloatingPointError, match="lower optimizer.lr"):
        train(cfg)


def test_seeded_runs_are_reproducible(tiny_demo, tmp_path):
    weights = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(compose_train(tiny_overrides(tiny_demo, out, "eval_interval=0", "trainer.deterministic=true")))
        weights.append(load_snapshot(out / "snapshot-001.ckpt")["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
