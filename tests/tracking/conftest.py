"""One small demo scene (3 fish swimming figure-eights, crossing often) for the tracking tests, and the files
video analysis writes made from it."""
from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lightning_dlc.data.demo import demo_meta
from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.project import analysis_files
from lightning_dlc.tracking.synthetic import noisy_detections

N_FRAMES, SIZE = 300, 128
SCORER = "DLC_Resnet18_fishtankJan1shuffle1_snapshot_010"


@pytest.fixture(scope="session")
def scene() -> SimpleNamespace:
    """True poses ``[T, 3, 5, 3]`` (x, y, visibility) of 300 frames at 128 px, and the fish length (px)."""
    rendered = render_scene(n_frames=N_FRAMES, n_fish=3, width=SIZE, height=SIZE, seed=0)
    truth = np.concatenate([rendered.keypoints, rendered.visible[..., None]], -1).astype(np.float64)
    length = float(np.linalg.norm(rendered.keypoints[:, :, 0] - rendered.keypoints[:, :, -1], axis=-1).mean())
    return SimpleNamespace(truth=truth, length=length)


@pytest.fixture(scope="session")
def write_analysis():
    """``write_analysis(folder, truth, unique=False)``: see :func:`_write_analysis`."""
    return _write_analysis


def _write_analysis(folder: Path, truth: np.ndarray, unique: bool = False) -> Path:
    """The _assemblies and _meta pickles video analysis writes for ``fishtank.mp4``, from noisy ground truth
    (and a unique bodypart ``feeder`` with ``unique``); returns their prefix ``<folder>/fishtank<SCORER>``."""
    meta = demo_meta(unique_bodyparts=unique)
    prefix = Path(folder) / f"fishtank{SCORER}"
    n = len(truth)
    detections = noisy_detections(truth, seed=0)
    with open(f"{prefix}_assemblies.pickle", "wb") as f:
        single = {i: np.array([[60.0, 60.0, 0.9]]) for i in range(n)} if unique else {}
        pickle.dump({"single": single, **detections}, f)
    data = analysis_files.video_metadata(start=0, stop=1, scorer=SCORER, run_config={}, fps=30, batch_size=8,
                                         frame_size=(128, 128), n_frames=n, iteration=0, train_fraction=0.95,
                                         crop=None, meta=meta)
    with open(f"{prefix}_meta.pickle", "wb") as f:
        pickle.dump(data, f)
    return prefix
