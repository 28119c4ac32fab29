"""lit/quiet.py: the known third-party noise is filtered by message and module, ours is not; the logging
interval fits small projects; a real 1-epoch run prints none of the noise and all of our lines."""
import csv
import logging
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.lit.quiet import batches_per_epoch, quiet_third_party

LEAFSPEC = ("`isinstance(treespec, LeafSpec)` is deprecated, "
            "use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead.")
ADVERT = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)"
# what a run printed before (Lightning 2.6, torch 2.15 on a CPU): none of it may come back
NOISE = ("💡", "litlogger", "litmodels", "pin_memory", "log_every_n_steps", "LeafSpec", "is deprecated")


def _emitted(message: str, category, module: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()  # after simplefilter: its filters go in front, as when a run starts
        warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 21, module=module)
    return [str(w.message) for w in caught]


def test_third_party_deprecation_is_filtered_at_its_source_only():
    assert _emitted(LEAFSPEC, FutureWarning, "lightning.pytorch.utilities._pytree") == []
    # the same text from anywhere else, or another message from that module, still shows
    assert _emitted(LEAFSPEC, FutureWarning, "lightning_dlc.lit.pose") == [LEAFSPEC]
    assert _emitted("something else", FutureWarning, "lightning.pytorch.utilities._pytree") == ["something else"]


def test_lightning_advert_dropped_other_info_kept(caplog):
    quiet_third_party()
    quiet_third_party()  # idempotent
    name = "lightning.pytorch.utilities.rank_zero"
    assert len(logging.getLogger(name).filters) == len({type(f) for f in logging.getLogger(name).filters})
    with caplog.at_level(logging.INFO):
        for logger in (name, "lightning_fabric.utilities.rank_zero"):
            logging.getLogger(logger).info(ADVERT)
            logging.getLogger(logger).info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"] * 2


@pytest.mark.parametrize("loader, world, limit, expected", [
    (9, 1, 1.0, 9),   # the demo: 72 images, batch 8
    (3, 2, 1.0, 1),   # DDP: each of 2 processes sees about half
    (1, 4, 1.0, 1),   # never 0
    (9, 1, 2, 2),     # limit_train_batches=2
    (10, 1, 0.5, 5),  # limit_train_batches=0.5
])
def test_batches_per_epoch(loader, world, limit, expected):
    trainer = SimpleNamespace(world_size=world, limit_train_batches=limit)
    assert batches_per_epoch(trainer, loader) == expected


@pytest.mark.slow
def test_one_epoch_run_prints_no_third_party_noise(tmp_path):
    """A 3-batch epoch with the configured log_every_n_steps=10 on a CPU: the run that printed all of NOISE."""
    project = make_demo_project(tmp_path / "demo", n_frames=24, n_labeled=16, size=128).parent
    cli = Path(sys.executable).parent / "lightning-dlc"
    result = subprocess.run(
        [str(cli), "train", f"data.project={project}", "data.num_workers=0", "data.batch_size=4",
         "trainer.max_epochs=1", "eval_interval=1", "snapshots.save_epochs=1", "trainer.enable_progress_bar=false",
         "trainer.log_every_n_steps=10", "logger=csv", "hydra.run.dir=run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert [n for n in NOISE if n in out] == [], out
    assert "Trained 1 epochs in" in result.stdout and "test.rmse" in result.stdout
    assert "GPU available" in out  # Lightning's own useful lines stay
    # the fitted interval logged per-step losses within the epoch (3 batches < 10)
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        steps = [row for row in csv.DictReader(f) if row.get("train.loss_step")]
    assert steps, "no per-step training loss was logged"
