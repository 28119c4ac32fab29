"""Frames marked for relabeling -> images in the project's ``labeled-data/<video>/``, ready to label.

Images are named as DeepLabCut names extracted frames, ``img<frame>.png`` with the frame number
zero-padded to ``ceil(log10(n_frames))`` digits, and are whole frames (not cropped). An image that
exists is left as it is (it may already be labeled); label files are never touched. The video is
added to config.yaml's ``video_sets`` (with its full frame as crop) only when no listed video has
its name, so the new images count as the project's once labeled. Marked frames' predictions (the
dataset's ``analysis`` .h5) go to ``machinelabels-iter<i>.h5`` beside the new images, as
``extract_outlier_frames`` writes them (:mod:`lightning_dlc.project.machine_labels`).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from ruamel.yaml.comments import CommentedMap

from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_reader import VideoInfo, probe_video
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc import as_config
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.machine_labels import machine_labels_table, write_machine_labels
from lightning_dlc.project.predictions import read_predictions
from lightning_dlc.tracking.analysis_tables import analysis_prefix, crop_offset

if TYPE_CHECKING:
    import fiftyone as fo

log = logging.getLogger(__name__)

__all__ = ["ExtractedFrames", "extract_frames", "extract_marked_frames", "frame_image_name"]


def frame_image_name(frame: int, n_frames: int) -> str:
    """DeepLabCut's name of an extracted frame: ``img0042.png`` for frame 42 of a 1000-frame video."""
    digits = max(1, math.ceil(math.log10(n_frames))) if n_frames > 1 else 1
    return f"img{frame:0{digits}d}.png"


@dataclass
class ExtractedFrames:
    video: Path
    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # existed already: left as they were
    undecodable: list[int] = field(default_factory=list)
    added_to_config: bool = False


def _read_frame(info: VideoInfo, frame: int) -> np.ndarray | None:
    """One RGB frame ``[H, W, 3]``, or None when it cannot be decoded."""
    with open_video(info.path, reader="opencv", device="cpu", batch_size=1, start=frame, stop=frame + 1) as reader:
        for batch in reader:
            if bool(batch.valid[0]):
                return batch.frames[0].permute(1, 2, 0).numpy()
    return None


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path, overwrite=False) as tmp:  # refuses an existing file, even one made meanwhile
        Image.fromarray(rgb).save(tmp, format="PNG")


def _list_video(cfg: ProjectConfig, info: VideoInfo) -> bool:
    """Add the video to video_sets unless a video of its name is listed; True when added."""
    if any(s.stem == info.path.stem for s in cfg.video_sets()):
        return False
    if cfg.data.get("video_sets") is None:
        cfg.data["video_sets"] = CommentedMap()
    cfg.data["video_sets"][str(info.path.resolve())] = {"crop": f"0, {info.width}, 0, {info.height}"}
    cfg.save(overwrite=True)  # atomic, comments kept
    return True


def extract_frames(config, video: str | Path, frames: Iterable[int]) -> ExtractedFrames:
    """Write the video's ``frames`` (0-based numbers) as images into ``labeled-data/<video stem>/``."""
    cfg = as_config(config)
    info = probe_video(video)
    out = ExtractedFrames(info.path, cfg.root / "labeled-data" / info.path.stem)
    for frame in sorted(set(int(f) for f in frames)):
        path = out.folder / frame_image_name(frame, info.n_frames)
        if path.exists():
            out.kept.append(path)
            continue
        rgb = _read_frame(info, frame)
        if rgb is None:
            out.undecodable.append(frame)
            continue
        _write_png(path, rgb)
        out.written.append(path)
    out.added_to_config = _list_video(cfg, info)
    log.info("%s: %d frames written to %s, %d existed (kept), %d undecodable%s", info.path, len(out.written),
             out.folder, len(out.kept), len(out.undecodable), "; added to video_sets" if out.added_to_config else "")
    return out


def extract_marked_frames(config, dataset: fo.Dataset | str, reasons: Iterable[str] | None = None
                          ) -> list[ExtractedFrames]:
    """Extract every frame whose ``relabel`` field is set (optionally only for some ``reasons``) from a
    video dataset of :func:`~lightning_dlc.review.video_diagnostics.video_dataset`, with its machine labels."""
    import fiftyone as fo  # optional (the review extra): imported by the review only

    cfg = as_config(config)
    dataset = fo.load_dataset(dataset) if isinstance(dataset, str) else dataset
    wanted = set(reasons) if reasons is not None else None
    results = []
    for video, analysis, numbers, marks in zip(*dataset.values(["filepath", "analysis", "frames.frame_number",
                                                                "frames.relabel"])):
        frames = [n - 1 for n, why in zip(numbers, marks) if why and (wanted is None or wanted & set(why))]
        if frames:
            results.append(extract_frames(cfg, video, frames))
            written = {int(p.stem[3:]): p.name for p in results[-1].written}
            if written and analysis:
                # the analysis is in the crop's coordinates (if cropped), the frames whole: as refine's outliers
                rows = machine_labels_table(read_predictions(analysis), written, Path(video).stem,
                                            crop_offset(analysis_prefix(analysis)))
                write_machine_labels(results[-1].folder, cfg.iteration, rows)
    return results
