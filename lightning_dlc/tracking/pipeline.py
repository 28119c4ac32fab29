"""Tracking a video's analysis files: ``_assemblies.pickle`` -> tracklet pickle -> stitched ``_el.h5``.

Everything is named from ``<prefix>`` = ``<folder>/<video stem><scorer>``, the name video analysis
gives its files. What the files do not say (scorer, frame count, bodyparts, individuals) comes
from ``<prefix>_meta.pickle``; a meta pickle this code cannot read safely (DeepLabCut's own pickles
its enums) needs the project's names passed as ``meta``. Outputs are written atomically; an
existing one is kept (and returned) unless ``overwrite``. Each step holds the video's output lock
(``<prefix>.lock``, :mod:`lightning_dlc.project.locks`, the lock video analysis holds) while it writes:
another process writing that video's outputs makes it raise
:class:`~lightning_dlc.project.locks.OutputLocked` naming that process' pid and host (or wait, with
``wait_for_lock=True``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.locks import lock_path, output_lock
from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.tracking import files
from lightning_dlc.tracking.crowding import warn_too_many_animals
from lightning_dlc.tracking.encounters import separate_animals
from lightning_dlc.tracking.identity import identity_count, identity_tracklets
from lightning_dlc.tracking.stitch import ExtraCost, stitch_tracklets
from lightning_dlc.tracking.tracklets import link_detections

log = logging.getLogger(__name__)

__all__ = ["AnalysisInfo", "analysis_info", "convert_to_tracklets", "stitch_tracklet_file", "track_analysis"]


@dataclass(frozen=True)
class AnalysisInfo:
    scorer: str
    n_frames: int | None     # None: unknown (then up to the last frame with detections)
    meta: ProjectMeta


def analysis_info(prefix: Path, meta: ProjectMeta | None = None) -> AnalysisInfo:
    """Scorer, frames and names of a video's analysis, from ``<prefix>_meta.pickle`` (``meta`` for the names
    when given)."""
    path = Path(f"{prefix}_meta.pickle")
    try:
        data = files.load_pickle(path, "video analysis meta pickle")["data"]
        names = ProjectMeta(bodyparts=tuple(data["bodyparts"]), individuals=tuple(data["individuals"]),
                            unique_bodyparts=tuple(data.get("unique_bodyparts") or ()))
        return AnalysisInfo(str(data["Scorer"]), int(data["nframes"]), meta or names)
    except (ProjectError, KeyError, TypeError) as e:
        if meta is None:
            raise ProjectError(path, f"cannot read the analysis' scorer, frames and bodyparts ({e}); pass the "
                                     "project's names (the api functions do)") from e
        log.warning("%s: %s; using the project's names and the last analyzed frame", path, e)
        return AnalysisInfo(Path(prefix).name, None, meta)


def convert_to_tracklets(prefix: str | Path, method: str = "ellipse", meta: ProjectMeta | None = None,
                         overwrite: bool = False, pcutoff: float = 0.1, max_age: int = 3,
                         min_similarity: float | None = None, box_slack: float = 0.0,
                         ignore_bodyparts=(), wait_for_lock: bool = False, identity_only: bool = False,
                         fix_encounters: bool = True) -> Path:
    """``<prefix>_assemblies.pickle`` -> ``<prefix>_<el|bx|sk>.pickle``; returns its path. ``identity_only``
    (DeepLabCut's): animals go to tracklets by the identity head alone, tracklet i = individual i
    (:func:`~lightning_dlc.tracking.identity.identity_tracklets`); needs an analysis with identities.
    ``fix_encounters`` (ours): first merge phantom animals and cut animals made of two
    (:mod:`~lightning_dlc.tracking.encounters`), logging the frames."""
    prefix = Path(prefix)
    with output_lock(lock_path(prefix), wait=wait_for_lock):
        return _convert_to_tracklets(prefix, method, meta, overwrite, pcutoff, max_age, min_similarity, box_slack,
                                     ignore_bodyparts, identity_only, fix_encounters)


def _convert_to_tracklets(prefix: Path, method, meta, overwrite, pcutoff, max_age, min_similarity, box_slack,
                          ignore_bodyparts, identity_only=False, fix_encounters=True) -> Path:
    out = files.tracklet_path(prefix.parent, prefix.name, method)
    if out.exists() and not overwrite:
        log.info("%s: tracklets already made (overwrite=True remakes them)", out)
        return out
    detections, single = files.read_assemblies(Path(f"{prefix}_assemblies.pickle"))
    info = analysis_info(prefix, meta)
    unknown = sorted(set(ignore_bodyparts) - set(info.meta.bodyparts))
    if unknown:
        raise ValueError(f"ignore_bodyparts {unknown} are not multi-animal bodyparts {list(info.meta.bodyparts)}")
    keep = [k for k, bp in enumerate(info.meta.bodyparts) if bp not in set(ignore_bodyparts)]
    if fix_encounters:
        detections, changed = separate_animals(detections, pcutoff)
        for what, frames in changed.items():
            if frames:
                log.warning("%s: %d frames with %s animals, fixed before tracking (first: %s)", prefix, len(frames),
                            what, frames[:10])
    if identity_only:
        tracklets = identity_tracklets(detections, len(info.meta.individuals), n_frames=info.n_frames,
                                       pcutoff=pcutoff)
        if identity_count(tracklets) < 2:
            raise ProjectError(Path(f"{prefix}_assemblies.pickle"), "identity_only needs the identities of a model "
                               "trained with identity: true; this analysis has none (or one individual)")
    else:
        tracklets = link_detections(detections, method, n_frames=info.n_frames, pcutoff=pcutoff, max_age=max_age,
                                    min_similarity=min_similarity, box_slack=box_slack, bodyparts=keep)
    n_frames = info.n_frames if info.n_frames is not None else max(detections, default=-1) + 1
    names = [*info.meta.bodyparts, *info.meta.unique_bodyparts]
    return files.write_tracklets(out, tracklets, info.scorer, names, n_frames, single, overwrite=overwrite)


def stitch_tracklet_file(prefix: str | Path, method: str = "ellipse", n_tracks: int | None = None,
                         meta: ProjectMeta | None = None, min_length: int = 5, split_tracklets: bool = True,
                         max_gap: int | None = None, fill_gaps: int = 0, save_as_csv: bool = False,
                         overwrite: bool = False, suffix: str = "", extra_cost: ExtraCost | None = None,
                         wait_for_lock: bool = False, use_identity: bool | None = None) -> Path:
    """``<prefix>_<el|bx|sk>.pickle`` -> ``<prefix>_<el|bx|sk><suffix>.h5`` with ``n_tracks`` tracks (default: the
    individuals); returns its path. ``extra_cost``: added to the link costs (re-identification: suffix ``_tr``).
    ``use_identity`` (None: when the tracklets carry identities): stitch with the identity head's votes and
    name track i after individual i (:mod:`~lightning_dlc.tracking.stitch`)."""
    prefix = Path(prefix)
    with output_lock(lock_path(prefix), wait=wait_for_lock):
        return _stitch_tracklet_file(prefix, method, n_tracks, meta, min_length, split_tracklets, max_gap, fill_gaps,
                                     save_as_csv, overwrite, suffix, extra_cost, use_identity)


def _stitch_tracklet_file(prefix: Path, method, n_tracks, meta, min_length, split_tracklets, max_gap, fill_gaps,
                          save_as_csv, overwrite, suffix, extra_cost, use_identity=None) -> Path:
    out = files.tracks_path(prefix.parent, prefix.name, method)
    out = out.with_name(f"{out.stem}{suffix}{out.suffix}")
    if out.exists() and not overwrite:
        log.info("%s: tracks already stitched (overwrite=True remakes them)", out)
        return out
    stored = files.read_tracklets(files.tracklet_path(prefix.parent, prefix.name, method))
    info = analysis_info(prefix, meta)
    n_tracks = n_tracks or len(info.meta.individuals)
    warn_too_many_animals(stored.tracklets, n_tracks, prefix, n_frames=info.n_frames)  # warns, never stops
    tracks = stitch_tracklets(stored.tracklets, n_tracks, n_frames=info.n_frames, min_length=min_length,
                              split=split_tracklets, max_gap=max_gap, fill=fill_gaps, extra_cost=extra_cost,
                              use_identity=use_identity)
    n_frames = len(tracks)
    if tracks.shape[2] == 0:  # no tracklet at all: every bodypart missing
        tracks = np.full((n_frames, n_tracks, len(info.meta.bodyparts), 3), np.nan)
    unique = None
    if info.meta.unique_bodyparts:
        unique = np.full((n_frames, len(info.meta.unique_bodyparts), 3), np.nan)
        for frame, points in stored.single.items():
            if frame < n_frames:
                unique[frame] = points[:, :3]
    return files.write_tracks(out, tracks, info.meta, stored.scorer or info.scorer, unique,
                              save_as_csv=save_as_csv, overwrite=overwrite)


def track_analysis(prefix: str | Path, method: str = "ellipse", meta: ProjectMeta | None = None,
                   overwrite: bool = False, n_tracks: int | None = None, fill_gaps: int = 0,
                   wait_for_lock: bool = False, identity_only: bool = False) -> Path | None:
    """Tracklets then tracks for one analyzed video (``analyze_videos(auto_track=True)``); returns the tracks'
    path, or None for a single-animal analysis (nothing to track). Holds the output lock for both steps."""
    with output_lock(lock_path(prefix), wait=wait_for_lock):
        if not analysis_info(Path(prefix), meta).meta.multianimal:
            return None
        convert_to_tracklets(prefix, method, meta, overwrite=overwrite, identity_only=identity_only)
        return stitch_tracklet_file(prefix, method, n_tracks, meta, fill_gaps=fill_gaps, overwrite=overwrite)
