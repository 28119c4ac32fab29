"""The built-in demo: a small, deterministic DeepLabCut project of synthetic fish.

It is what ``lightning-dlc train`` trains on by default and what the tests use:
a real DeepLabCut project folder (config.yaml with comments, labeled-data with
CollectedData .h5/.csv, a video) that DeepLabCut itself can open, plus the
ground-truth tracks of every frame of the video for tracking tests.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lightning_dlc.data.demo_scene import HardScene, bodyparts, render_scene
from lightning_dlc.data.video_writer import write_video
from lightning_dlc.project.config import ProjectConfig, parse_yaml
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import current_umask
from lightning_dlc.project.labels import from_arrays, write_collected_data
from lightning_dlc.project.records import SINGLE_ANIMAL, ProjectMeta

TASK, SCORER, DATE = "fishtank", "synthetic", "Jan1"
VIDEO = "fishtank"
UNIQUE_BODYPARTS = ("feeder",)

# DeepLabCut's config keys, our comments. Values are filled in by make_demo_project.
CONFIG_TEMPLATE = """\
# Project definitions (do not edit)
Task:
scorer:
date:
multianimalproject:
identity:

# Project path (lightning_dlc uses the folder holding this file if this is stale)
project_path:

# Default DeepLabCut engine to use for shuffle creation
engine: pytorch

# Videos whose labeled-data folders are used (comment one out to exclude it), with crops
video_sets:
bodyparts:

# Multi-animal settings
individuals:
uniquebodyparts:
multianimalbodyparts:

# Frame extraction for labeling
start: 0
stop: 1
numframes2pick: 20

# Plotting
skeleton:
skeleton_color: black
pcutoff: 0.6
dotsize: 6
alphavalue: 0.7
colormap: rainbow

# Training, evaluation and analysis
TrainingFraction:
- 0.9
iteration: 0
default_net_type: dlcrnet_ms5
default_augmenter: default
snapshotindex: -1
detector_snapshotindex: -1
batch_size: 8
detector_batch_size: 1

# Cropping for analysis
cropping: false
x1: 0
x2: 640
y1: 0
y2: 480

# Refinement
corner2move2:
- 50
- 50
move2corner: true
"""


def demo_meta(multianimal: bool = True, n_fish: int = 3, unique_bodyparts: bool = False,
              n_bodyparts: int = 5) -> ProjectMeta:
    names = bodyparts(n_bodyparts)
    return ProjectMeta(
        bodyparts=names,
        individuals=tuple(f"fish{i + 1}" for i in range(n_fish)) if multianimal else (SINGLE_ANIMAL,),
        unique_bodyparts=UNIQUE_BODYPARTS if multianimal and unique_bodyparts else (),
        skeleton=tuple(zip(names[:-1], names[1:])),
    )


def frame_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` of the demo video: ``size`` is one side of a square or ``[width, height]``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if len(size) != 2:
        raise ValueError(f"size must be an int or [width, height], got {size!r}")
    return int(size[0]), int(size[1])


def _config(root: Path, meta: ProjectMeta, multianimal: bool, width: int, height: int,
            identity: bool = False) -> ProjectConfig:
    d = parse_yaml(CONFIG_TEMPLATE)
    d.update(Task=TASK, scorer=SCORER, date=DATE, multianimalproject=multianimal, identity=identity, project_path=str(root),
             video_sets={str(root / "videos" / f"{VIDEO}.mp4"): {"crop": f"0, {width}, 0, {height}"}},
             skeleton=[list(edge) for edge in meta.skeleton], x2=width, y2=height)
    if multianimal:
        d.update(bodyparts="MULTI!", individuals=list(meta.individuals),
                 uniquebodyparts=list(meta.unique_bodyparts), multianimalbodyparts=list(meta.bodyparts))
    else:
        d.update(bodyparts=list(meta.bodyparts))
        for key in ("individuals", "uniquebodyparts", "multianimalbodyparts"):
            del d[key]
    return ProjectConfig(root / "config.yaml", d)


def make_demo_project(out: str | Path, multianimal: bool = True, n_fish: int = 3, n_frames: int = 300,
                      n_labeled: int = 80, size: int | Sequence[int] = 256, fps: float = 30.0, seed: int = 0,
                      unique_bodyparts: bool = False, overwrite: bool = False, scene: str | HardScene = "default",
                      look_alike: bool = False, identity: bool = False, n_bodyparts: int = 5) -> Path:
    """Write the demo project to ``out`` and return its config.yaml path.

    ``scene``/``look_alike``: which scene (:func:`render_scene`; ``"hard"``: fish that touch, leave
    the frame and come back). Individuals keep their names in every frame (fish1 is always the
    same fish), so ``identity=True`` (written to config.yaml) can learn them; with ``look_alike``
    there is nothing to learn them from. ``size``: one side of square frames, or ``[width, height]``
    (``[1296, 972]``, ``n_fish=10``, ``n_bodyparts=9``: a cichlid lab's recordings, what
    benchmarks/multi_animal_speed.py analyzes); ``n_bodyparts``: 5 or 9 keypoints per fish.

    Labels are the scene's true keypoints where visible (hidden ones are left
    unlabeled, as a person would); ``videos/fishtank_groundtruth.h5`` holds every
    frame's true positions in DeepLabCut's output layout, likelihood 1 where visible.
    The project appears all at once: it is built beside ``out`` and renamed into place.
    """
    out = Path(out).resolve()
    if out.exists() and not overwrite:
        raise ProjectError(out, "already exists; pass overwrite=True to replace the demo project")
    n_fish = n_fish if multianimal else 1
    if not 0 < n_labeled <= n_frames:
        raise ValueError(f"n_labeled must be in [1, n_frames={n_frames}], got {n_labeled}")
    if identity and not multianimal:
        raise ValueError("identity=True needs a multi-animal project")
    width, height = frame_size(size)
    scene = render_scene(n_frames=n_frames, n_fish=n_fish, width=width, height=height, fps=fps, seed=seed,
                         scene=scene, look_alike=look_alike, n_bodyparts=n_bodyparts)
    meta = demo_meta(multianimal, n_fish, unique_bodyparts, n_bodyparts)

    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_project(build, out, scene, meta, multianimal, n_labeled, identity)
        build.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        if out.exists():
            shutil.rmtree(out)
        os.replace(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out / "config.yaml"


def _write_project(build: Path, root: Path, scene, meta: ProjectMeta, multianimal: bool, n_labeled: int,
                   identity: bool):
    n_frames, height, width = scene.frames.shape[:3]
    _config(root, meta, multianimal, width, height, identity).save(build / "config.yaml")
    # Tracks of every frame, hidden points included (likelihood 0), for tracking tests.
    xy = scene.keypoints.astype(np.float64)
    truth = np.concatenate([xy, scene.visible[..., None].astype(np.float64)], axis=-1)
    unique_truth = np.broadcast_to(np.r_[scene.landmark, 1.0], (n_frames, len(meta.unique_bodyparts), 3))
    tracks = from_arrays(pd.RangeIndex(n_frames), truth, unique_truth, meta, "groundtruth",
                         coords=("x", "y", "likelihood"))
    write_collected_data(tracks, build / "videos" / f"{VIDEO}_groundtruth.h5")
    write_video(build / "videos" / f"{VIDEO}.mp4", scene.frames, scene.fps)

    frames = np.linspace(0, n_frames - 1, n_labeled).round().astype(int)
    folder = build / "labeled-data" / VIDEO
    folder.mkdir(parents=True)
    digits = len(str(n_frames))
    keys = []
    for i in frames:
        name = f"img{i:0{digits}d}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(scene.frames[i], cv2.COLOR_RGB2BGR))
        keys.append(f"labeled-data/{VIDEO}/{name}")
    labels = np.where(scene.visible[frames][..., None], xy[frames], np.nan)
    unique = np.broadcast_to(scene.landmark.astype(np.float64), (len(frames), len(meta.unique_bodyparts), 2))
    write_collected_data(from_arrays(keys, labels, unique, meta, SCORER), folder / f"CollectedData_{SCORER}.h5")
