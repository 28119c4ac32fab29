"""DeepLabCut's side of tests/models/test_export_model_peer.py, run in its own environment through
tests/dlc_peer.py "call" jobs: make a shuffle's model folder, export it with DeepLabCut's export_model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def fake_snapshots(train_dir: str, names: str) -> None:
    """Snapshot files ``names`` (JSON list) in DeepLabCut's layout with random weights (a few layers' names and
    shapes), the n-th seeded n: export only moves weights, so none need training. Both sides call this."""
    import torch

    for seed, name in enumerate(json.loads(names), start=1):
        generator = torch.Generator().manual_seed(seed)
        model = {"backbone.model.conv1.weight": torch.randn(8, 3, 7, 7, generator=generator),
                 "backbone.model.bn1.num_batches_tracked": torch.tensor(seed),
                 "heads.bodypart.heatmap_head.model.0.bias": torch.randn(5, generator=generator)}
        torch.save({"model": model, "metadata": {"epoch": seed, "metrics": {}, "losses": {}}},
                   Path(train_dir) / name)


def make_shuffle(config: str, net_type: str, detector_type: str = "", snapshots: str = "[]") -> str:
    """DeepLabCut's create_training_dataset (shuffle 1, the PyTorch engine) and :func:`fake_snapshots` in its
    model folder; returns that folder's train/."""
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path

    kwargs = {"detector_type": detector_type} if detector_type else {}
    deeplabcut.create_training_dataset(config, net_type=net_type, userfeedback=False,
                                       engine=deeplabcut.Engine.PYTORCH, **kwargs)
    train_dir = str(return_train_network_path(config, shuffle=1)[2])
    fake_snapshots(train_dir, snapshots)
    return train_dir


def export(config: str, kwargs: str, moved_to: str) -> list[str]:
    """deeplabcut.export_model(config, **kwargs); its exported-models-pytorch folder is then moved to
    ``moved_to`` (so ours can write the same paths). Returns the files, relative to that folder."""
    import deeplabcut

    deeplabcut.export_model(config, **json.loads(kwargs))
    folder = Path(config).parent / "exported-models-pytorch"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    shutil.move(str(folder), moved_to)
    return files
