"""Tracking scores of a DeepLabCut project's analyzed video, per tracker and tracking variant.

Used by benchmarks/tracking_accuracy.py (``--scene hard`` and ``--project``). Ground truth is either a
project's labeled frames (CollectedData of ``labeled-data/<video stem>``: consecutive frames of the video
whose individuals are consistent animals) or a track file of every frame (the demo's
``videos/<stem>_groundtruth.h5``). Scores (lightning_dlc.tracking.metrics) are computed on the
ground-truth frames only; keypoints outside the image are not counted as present.

Variants, each as a user runs them through ``lightning_dlc.api``:
- ``motion``: ``convert_detections2tracklets`` + ``stitch_tracklets`` by motion and shape alone
  (``use_identity=False`` where the api has it).
- ``identity``: stitching with the identity head's evidence (``use_identity=True``), models trained with
  ``identity: true``.
- ``identity_only``: DeepLabCut's assignment by the identity head alone (``identity_only=True``).
- ``reid``: ``transformer_reID`` (needs the analysis' ``features=True``).
A variant the api (or the model) does not offer is reported as ``"unavailable"`` with the reason.
"""
from __future__ import annotations

import inspect
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from lightning_dlc import api
from lightning_dlc.project.dlc import as_config
from lightning_dlc.project.labels import read_collected_data, to_arrays
from lightning_dlc.tracking.files import read_assemblies, read_tracklets
from lightning_dlc.tracking.metrics import pose_distances, tracking_metrics
from lightning_dlc.tracking.tracklets import clean_detections

VARIANTS = ("motion", "identity", "identity_only", "reid")


def frame_number(key: str) -> int:
    """The video frame of a labeled image, from DeepLabCut's name ``img<frame>.png``."""
    match = re.search(r"(\d+)\D*$", Path(key).name)
    if match is None:
        raise ValueError(f"{key}: labeled image name has no frame number (DeepLabCut names them img<frame>.png)")
    return int(match.group(1))


def labeled_truth(config, video) -> tuple[np.ndarray, np.ndarray]:
    """(frames ``[F]``, truth ``[F, n_individuals, K, 3]``: x, y, 1; NaN unlabeled) from the video's
    labeled-data folder, sorted by frame."""
    cfg = as_config(config)
    folder = cfg.root / "labeled-data" / Path(video).stem
    path = folder / f"CollectedData_{cfg.scorer}.h5"
    if not path.exists() and not path.with_suffix(".csv").exists():
        raise FileNotFoundError(f"{path}: no labels for video {video} (its labeled-data folder is {folder})")
    df = read_collected_data(path)
    xy, _ = to_arrays(df, cfg.meta())
    keys = ["/".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in df.index]
    frames = np.array([frame_number(k) for k in keys])
    order = np.argsort(frames, kind="stable")
    if len(np.unique(frames)) != len(frames):
        raise ValueError(f"{path}: two labeled images name the same frame")
    xy = xy[order].astype(np.float64)
    return frames[order], np.concatenate([xy, np.where(np.isfinite(xy[..., :1]), 1.0, np.nan)], -1)


def track_file_truth(h5, bodyparts) -> tuple[np.ndarray, np.ndarray]:
    """(frames, truth ``[T, n_individuals, K, 3]``) from a DeepLabCut track table of every frame."""
    return np.arange(len(pd.read_hdf(h5))), read_tracks(h5, bodyparts)


def read_tracks(h5, bodyparts, n_frames: int | None = None) -> np.ndarray:
    """A DeepLabCut track/analysis table -> ``[T, n_individuals, K, 3]`` (x, y, likelihood), tracks in file
    order (unique bodyparts left out), frames ``0..n_frames-1`` (missing rows NaN)."""
    df = pd.read_hdf(h5)
    if "individuals" not in df.columns.names:
        raise ValueError(f"{h5}: not a multi-animal table (no 'individuals' column level)")
    df = df.droplevel("scorer", axis=1)
    names = [n for n in dict.fromkeys(df.columns.get_level_values("individuals")) if n != "single"]
    columns = pd.MultiIndex.from_product([names, list(bodyparts), ["x", "y", "likelihood"]])
    index = pd.RangeIndex(n_frames if n_frames is not None else int(df.index.max()) + 1)
    values = df.reindex(index=index, columns=columns).to_numpy(np.float64)
    return values.reshape(len(index), len(names), len(bodyparts), 3)


def in_view(poses: np.ndarray, width: int, height: int, min_keypoints: int = 1) -> np.ndarray:
    """Poses with keypoints outside the image set to NaN (an animal out of view is not there to track), and
    animals with fewer than ``min_keypoints`` in view left out (3: the fewest DeepLabCut's assembler can
    join, with its 2 links)."""
    poses = np.array(poses, np.float64)
    x, y = poses[..., 0], poses[..., 1]
    outside = ~((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))
    poses[..., :2][outside] = np.nan
    poses[..., :2][np.isfinite(poses[..., 0]).sum(-1) < min_keypoints] = np.nan
    return poses


def score(truth: np.ndarray, tracks: np.ndarray, threshold: float, names_match: bool) -> dict:
    """IDF1, MOTA, switches, fraction of animals found and (tracks named as the individuals) the fraction
    matched to the track of their own name."""
    m = tracking_metrics(truth, tracks, threshold)
    out = {key: m[key] for key in ("idf1", "mota", "switches", "misses", "false_positives")}
    out["found"] = m["matches"] / m["truth_detections"] if m["truth_detections"] else float("nan")
    if names_match:
        n = min(truth.shape[1], tracks.shape[1])
        d = pose_distances(truth[:, :n], tracks[:, :n])
        own = np.nan_to_num(d[:, np.arange(n), np.arange(n)], nan=np.inf) < threshold
        out["named_correctly"] = float(own.sum() / m["truth_detections"]) if m["truth_detections"] else float("nan")
    return out


def found_before_tracking(per_frame: dict, frames: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """Fraction of animal-frames matched one to one (under ``threshold``) by that frame's poses ``{frame: [n, K,
    >=3]}`` (assemblies or tracklets, before stitching): where along the way animals are lost."""
    present = np.isfinite(truth[..., :2]).all(-1).any(-1)
    matched = 0
    for i, frame in enumerate(frames):
        poses = clean_detections(np.asarray(per_frame.get(int(frame), np.zeros((0, truth.shape[2], 3))))[..., :3])
        if not len(poses) or not present[i].any():
            continue
        distances = np.nan_to_num(pose_distances(truth[i:i + 1], poses[None])[0], nan=np.inf)
        g, h = linear_sum_assignment(np.minimum(distances, 1e9))
        matched += int((distances[g, h] < threshold).sum())
    return matched / present.sum() if present.sum() else float("nan")


def tracklet_poses(path) -> dict:
    """``{frame: [n, K, 3]}`` of every tracklet in a tracklet pickle."""
    per_frame: dict = {}
    for tracklet in read_tracklets(path).tracklets:
        for frame, row in zip(tracklet.frames, tracklet.data):
            per_frame.setdefault(int(frame), []).append(row[..., :3])
    return {frame: np.stack(rows) for frame, rows in per_frame.items()}


def _accepts(function, keyword: str) -> bool:
    return keyword in inspect.signature(function).parameters


def _call(function, *args, **kwargs):
    """Call an api function with the keywords it takes (variants added later are picked up, none invented)."""
    return function(*args, **{k: v for k, v in kwargs.items() if _accepts(function, k)})


def tracking_variants(config, video, frames: np.ndarray, truth: np.ndarray, threshold: float, *,
                      shuffle: int = 1, trainingsetindex: int = 0, snapshot="last", destfolder=None, trackers=("ellipse", "box", "skeleton"),
                      reid_trackers=("ellipse",), reid_epochs: int = 20, fill_gaps: int = 3) -> dict:
    """Scores per tracker and variant on ``frames`` of an analyzed video (``analyze_videos`` done, with
    ``features=True`` for re-ID)."""
    cfg = as_config(config)
    n_frames = int(frames.max()) + 1
    has_identity = bool(cfg.identity)
    common = dict(shuffle=shuffle, trainingsetindex=trainingsetindex, snapshot=snapshot, destfolder=destfolder)
    results: dict = {}

    def scored(h5, seconds):
        tracks = read_tracks(h5, cfg.meta().bodyparts, n_frames)[frames]
        return {**score(truth, tracks, threshold, names_match=has_identity), "seconds": round(seconds, 2)}

    def run(method, variant):
        start = time.perf_counter()
        if variant == "identity_only":
            if not has_identity:
                return "unavailable: the project has no identity: true"
            if not _accepts(api.convert_detections2tracklets, "identity_only"):
                return "unavailable: api.convert_detections2tracklets has no identity_only"
            _call(api.convert_detections2tracklets, config, [video], track_method=method, overwrite=True,
                  identity_only=True, **common)
            h5 = _call(api.stitch_tracklets, config, [video], track_method=method, fill_gaps=fill_gaps,
                       overwrite=True, **common)[0]
            # Back to motion tracklets for the variants that follow.
            _call(api.convert_detections2tracklets, config, [video], track_method=method, overwrite=True, **common)
            return scored(h5, time.perf_counter() - start)
        if variant == "reid":
            if method not in reid_trackers:
                return "not run (--reid-trackers)"
            result = api.transformer_reID(config, [video], track_method=method, train_epochs=reid_epochs,
                                          overwrite=True, fill_gaps=fill_gaps, **common)[0]
            return {**scored(result.tracks, time.perf_counter() - start),
                    "triplet_accuracy": float(result.triplet_accuracy)}
        use_identity = variant == "identity"
        if use_identity and not has_identity:
            return "unavailable: the project has no identity: true"
        if not _accepts(api.stitch_tracklets, "use_identity"):
            if use_identity:
                return "unavailable: api.stitch_tracklets has no use_identity"
        h5 = _call(api.stitch_tracklets, config, [video], track_method=method, fill_gaps=fill_gaps, overwrite=True,
                   use_identity=use_identity, **common)[0]
        return scored(h5, time.perf_counter() - start)

    for method in trackers:
        start = time.perf_counter()
        pickle = _call(api.convert_detections2tracklets, config, [video], track_method=method, overwrite=True,
                       **common)[0]
        results[method] = {"tracklets_seconds": round(time.perf_counter() - start, 2),
                           "tracklets_found": found_before_tracking(tracklet_poses(pickle), frames, truth, threshold)}
        for variant in VARIANTS:
            try:
                results[method][variant] = run(method, variant)
            except Exception as e:  # a variant that fails is reported, the others still run
                results[method][variant] = f"failed: {type(e).__name__}: {e}"
    return results
