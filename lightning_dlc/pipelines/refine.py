"""The refine loop's first step: a video's analysis -> outlier frames and their machine labels in the project.

DeepLabCut's ``extract_outlier_frames`` for one analyzed video: read its analysis (``<video><scorer>.h5``;
a multi-animal project's tracks ``<video><scorer>_<el|bx|sk>.h5``, of ``track_method``, else
config.yaml's ``default_track_method``, else ``ellipse``: the api resolves it), flag frames
(:mod:`lightning_dlc.evaluation.outliers`) among those inside config.yaml's ``start``/``stop``, pick
``numframes2pick`` of them (``uniform`` or ``kmeans`` on frames downsampled to ``cluster_resizewidth``),
write them as ``labeled-data/<video>/img<frame>.png`` (whole frames;
:func:`lightning_dlc.review.relabel.extract_frames`: existing images are kept, the video joins
``video_sets``) and their predictions as ``machinelabels-iter<i>.h5`` (whole-frame coordinates: a
cropped analysis is shifted by its crop). Where DeepLabCut asks on stdin before extracting
(``automatic=False``), this proceeds: nothing here waits for input.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lightning_dlc.evaluation import outliers
from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_reader import probe_video
from lightning_dlc.models.snapshot_files import find_snapshots
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.machine_labels import machine_labels_table, write_machine_labels
from lightning_dlc.project.predictions import read_predictions
from lightning_dlc.project.shuffles import shuffle_name
from lightning_dlc.review.relabel import ExtractedFrames, extract_frames
from lightning_dlc.tracking.analysis_tables import analysis_table, crop_offset

log = logging.getLogger(__name__)

OUTLIER_ALGORITHMS = ("jump", "uncertain", "fitting", "list")
EXTRACTION_ALGORITHMS = ("kmeans", "uniform")

__all__ = ["EXTRACTION_ALGORITHMS", "OUTLIER_ALGORITHMS", "OutlierFrames", "extract_outliers", "flag_frames",
           "previous_iteration_snapshot"]


@dataclass
class OutlierFrames:
    """What extract_outlier_frames did for one video."""

    video: Path
    analysis: Path
    flagged: np.ndarray                      # frames the outlier algorithm found
    picked: np.ndarray                       # those chosen for labeling
    extracted: ExtractedFrames | None = None
    machine_labels: Path | None = None
    skipped: list[int] = field(default_factory=list)  # picked, but their image existed: left alone


def _columns(table: pd.DataFrame, bodyparts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xy ``[T, C, 2]``, likelihood ``[T, C]`` and bodypart names ``[C]`` of ``bodyparts``' columns."""
    names = table.columns.get_level_values("bodyparts")
    chosen = table.loc[:, names.isin(bodyparts)]
    keypoints = chosen.columns.droplevel("coords").unique()
    likelihood = chosen.xs("likelihood", level="coords", axis=1).reindex(columns=keypoints)
    xy = np.stack([chosen.xs(c, level="coords", axis=1).reindex(columns=keypoints).to_numpy(np.float64)
                   for c in ("x", "y")], axis=-1)
    return xy, likelihood.to_numpy(np.float64), np.asarray(keypoints.get_level_values("bodyparts"))


def flag_frames(table: pd.DataFrame, algorithm: str, bodyparts, *, frames2use=None, epsilon: float = 20,
                p_bound: float = 0.01, ARdegree: int = 3, MAdegree: int = 1, alpha: float = 0.01,
                numframes2pick: int = 20, first: int = 0) -> np.ndarray:
    """Frame numbers ``algorithm`` flags in ``table`` (the analysis rows from frame ``first`` on)."""
    if algorithm == "list":
        if frames2use is None:
            raise ValueError('outlieralgorithm="list" needs frames2use, a list of frame numbers')
        return np.unique(np.asarray(frames2use).astype(int))
    xy, likelihood, names = _columns(table, bodyparts)
    if algorithm == "uncertain":
        found = outliers.uncertain_frames(likelihood, p_bound)
    elif algorithm == "jump":
        found = outliers.jump_frames(xy, epsilon, groups=names)
    elif algorithm == "fitting":
        distance = outliers.fitting_distance(xy, likelihood, p_bound, alpha, ARdegree, MAdegree)
        found = outliers.fitting_frames(distance, epsilon, numframes2pick)
    else:
        raise ValueError(f"outlieralgorithm {algorithm!r}: one of {OUTLIER_ALGORITHMS} ('manual' is DeepLabCut's "
                         "napari GUI; the FiftyOne review marks frames instead)")
    return np.unique(found + first)


def _downsampled(video: Path, frames: np.ndarray, width: int, color: bool) -> tuple[np.ndarray, np.ndarray]:
    """The frames that decode and those frames shrunk to ``width`` px wide (nearest neighbour, as DeepLabCut),
    gray unless ``color``. An undecodable frame is left out (a blank image would be clustered and picked);
    none decoding raises :class:`ProjectError` naming the video."""
    info = probe_video(video)
    ratio = width / info.width
    if ratio > 1:
        raise ValueError(f"cluster_resizewidth={width} is wider than the video ({info.width} px)")
    wanted = {int(f) for f in frames}
    small = {}
    with open_video(video, reader="opencv", device="cpu", batch_size=32, start=int(frames.min()),
                    stop=int(frames.max()) + 1) as reader:
        for batch in reader:
            for rgb, index, ok in zip(batch.frames, batch.indices.tolist(), batch.valid.tolist()):
                if index not in wanted or not ok:
                    continue
                image = cv2.resize(rgb.permute(1, 2, 0).numpy(), None, fx=ratio, fy=ratio,
                                   interpolation=cv2.INTER_NEAREST).astype(np.float64)
                small[index] = np.concatenate([image[..., c] for c in range(3)], axis=1) if color \
                    else image.mean(-1)
    if not small:
        raise ProjectError(video, f"none of the {len(wanted)} frames to cluster (frames {min(wanted)}-"
                                  f"{max(wanted)}) could be decoded")
    decoded = np.array(sorted(small), dtype=np.int64)
    return decoded, np.stack([small[f] for f in decoded])


def extract_outliers(cfg: ProjectConfig, video: Path, prefix: Path, *, outlieralgorithm: str = "jump",
                     extractionalgorithm: str = "kmeans", comparisonbodyparts="all", track_method: str = "",
                     cluster_resizewidth: int = 30, cluster_color: bool = False, seed: int = 0,
                     **algorithm_options) -> OutlierFrames:
    """One analyzed video's outlier frames into the project (see the module doc); ``prefix``:
    ``<folder>/<video stem><scorer>`` of its analysis files; ``track_method``: the tracks to read (a
    multi-animal project's, as DeepLabCut chooses it), "" for the untracked table."""
    if extractionalgorithm not in EXTRACTION_ALGORITHMS:
        raise ValueError(f"extractionalgorithm {extractionalgorithm!r}: one of {EXTRACTION_ALGORITHMS}")
    h5 = analysis_table(prefix, track_method)
    table = read_predictions(h5)
    known = [*cfg.bodyparts, *cfg.unique_bodyparts]
    bodyparts = known if comparisonbodyparts == "all" else [b for b in known if b in comparisonbodyparts]
    if not bodyparts:
        raise ValueError(f"comparisonbodyparts {comparisonbodyparts!r}: none of the project's bodyparts {known}")
    n = len(table)
    first, last = outliers.picking_range(n, float(cfg.data.get("start", 0)), float(cfg.data.get("stop", 1)))
    last = min(last, n)
    numframes2pick = int(cfg.data.get("numframes2pick", 20))
    flagged = flag_frames(table.iloc[first:last], outlieralgorithm, bodyparts, numframes2pick=numframes2pick,
                          first=first, **algorithm_options)
    log.info("%s: %s found %d putative outlier frames; picking up to %d (%s)", h5.name, outlieralgorithm,
             len(flagged), numframes2pick, extractionalgorithm)
    rng = np.random.default_rng(seed)
    inside = outliers.inside_range(flagged, first, last)
    if extractionalgorithm == "uniform" or len(inside) <= numframes2pick:  # kmeans of fewer frames: all of them
        picked = outliers.uniform_pick(flagged, numframes2pick, first, last, rng)
    else:
        decoded, images = _downsampled(video, inside, cluster_resizewidth, cluster_color)
        picked = outliers.kmeans_pick(decoded, images, numframes2pick, rng)
    result = OutlierFrames(Path(video), h5, flagged, picked)
    if not len(picked):
        log.info("%s: no frames were extracted", video)
        return result
    result.extracted = extract_frames(cfg, video, picked.tolist())
    result.skipped = sorted(int(p.stem[3:]) for p in result.extracted.kept)
    if result.skipped:
        log.info("%s: frames %s have images already; left as they are (no machine labels written for them)",
                 result.extracted.folder, result.skipped)
    written = {int(p.stem[3:]): p.name for p in result.extracted.written}
    if written:
        rows = machine_labels_table(table, written, Path(video).stem, crop_offset(prefix))
        result.machine_labels = write_machine_labels(result.extracted.folder, cfg.iteration, rows)
    return result


def previous_iteration_snapshot(cfg: ProjectConfig, train_fraction: float, shuffle: int, modelprefix: str = "",
                                which: str | int = "best", iteration: int | None = None) -> Path:
    """The ``which`` snapshot of the shuffle's model in ``iteration`` (default: the one before config.yaml's)."""
    iteration = cfg.iteration - 1 if iteration is None else int(iteration)
    if iteration < 0:
        raise ProjectError(cfg.path, "iteration is 0: there is no previous iteration to start from "
                                     "(merge_datasets raises it)")
    folder = (cfg.root / modelprefix / "dlc-models-pytorch" / f"iteration-{iteration}"
              / shuffle_name(cfg, train_fraction, shuffle) / "train")
    return find_snapshots(folder, which)[0]
