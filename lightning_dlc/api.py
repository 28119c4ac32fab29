"""DeepLabCut-style functions (same names and arguments) over lightning_dlc's engine."""
from __future__ import annotations

from pathlib import Path

from lightning_dlc.project import shuffles as _shuffles
from lightning_dlc.project.coco import write_coco
from lightning_dlc.project.dlc import as_config


def create_training_dataset(config, num_shuffles: int = 1, Shuffles=None, trainIndices=None,
                            testIndices=None, seed: int = 42, leave_out_video: str | None = None,
                            overwrite: bool = False, **ignored):
    """DeepLabCut's create_training_dataset: shuffles every TrainingFraction, reproducibly.

    Returns the created shuffles. DeepLabCut-only arguments (net_type, augmenter_type,
    userfeedback, ...) are accepted and ignored: model choice happens at training time.
    """
    return _shuffles.create_training_dataset(
        config, num_shuffles=num_shuffles, shuffles=Shuffles, train_indices=trainIndices,
        test_indices=testIndices, seed=seed, leave_out_video=leave_out_video, overwrite=overwrite)


def export_coco(config, out: str | Path, shuffle: int = 1, trainset_index: int = 0,
                copy_images: bool = True, overwrite: bool = False) -> Path:
    """Write a DeepLabCut project's shuffle as a COCO keypoint dataset (train.json, test.json)."""
    cfg = as_config(config)
    train, test = _shuffles.load_shuffle(cfg, shuffle, trainset_index)
    return write_coco({"train": train, "test": test}, out, task=cfg.task,
                      copy_images=copy_images, overwrite=overwrite)
