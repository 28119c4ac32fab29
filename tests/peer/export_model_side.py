"""DeepLabCut's side of tests/models/test_export_model_peer.py, run in its own environment through
tests/dlc_peer.py "call" jobs: make a shuffle's model folder, export it with DeepLabCut's export_model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def make_shuffle(config: str, net_type: str, detector_type: str = "") -> str:
    """DeepLabCut's create_training_dataset (shuffle 1, the PyTorch engine); returns the model folder's train/."""
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path

    kwargs = {"detector_type": detector_type} if detector_type else {}
    deeplabcut.create_training_dataset(config, net_type=net_type, userfeedback=False,
                                       engine=deeplabcut.Engine.PYTORCH, **kwargs)
    return str(return_train_network_path(config, shuffle=1)[2])


def export(config: str, kwargs: str, moved_to: str) -> list[str]:
    """deeplabcut.export_model(config, **kwargs); its exported-models-pytorch folder is then moved to
    ``moved_to`` (so ours can write the same paths). Returns the files, relative to that folder."""
    import deeplabcut

    deeplabcut.export_model(config, **json.loads(kwargs))
    folder = Path(config).parent / "exported-models-pytorch"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    shutil.move(str(folder), moved_to)
    return files
