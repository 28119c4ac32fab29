"""Conditional top-down (CTD) video analysis: a CTD snapshot refining a bottom-up snapshot's poses, or tracking.

Called by :func:`lightning_dlc.api.analyze_videos` and ``lightning-dlc analyze-videos`` when the snapshot is a
CTD model's (``model.conditional`` in its run config) or ``conditions=`` / ``ctd_tracking=`` are given.
"""
from __future__ import annotations

from pathlib import Path

from lightning_dlc.inference.analyze import VideoSummary
from lightning_dlc.inference.analyze import analyze_videos as _analyze_videos
from lightning_dlc.inference.ctd import conditional_predictor
from lightning_dlc.models.snapshot_files import find_snapshots, load_snapshot
from lightning_dlc.tracking.ctd import analyze_videos_tracking


def _run_config(snapshot) -> dict:
    path = Path(snapshot)
    if path.is_dir():
        path = find_snapshots(path, "best")[0]
    return load_snapshot(path).get("run_config") or {}


def is_ctd_snapshot(snapshot) -> bool:
    """Whether a snapshot (file or run folder) is a conditional top-down (CTD) model's."""
    return bool((_run_config(snapshot).get("model") or {}).get("conditional"))


def trained_conditions(snapshot):
    """The ``conditions`` a CTD snapshot was trained with (its bottom-up model), or None (``gt`` or none)."""
    conditions = _run_config(snapshot).get("conditions")
    return None if conditions in (None, "gt") else conditions


def analyze_videos_ctd(snapshot, videos, destfolder=None, *, conditions=None, ctd_tracking=False, device=None,
                       precision="auto", channels_last: bool = True, compile: bool = False, project=None,
                       **options) -> list[VideoSummary]:
    """Each video analyzed by the CTD ``snapshot`` with the bottom-up ``conditions`` (snapshot file or run folder;
    default: what it was trained with); ``ctd_tracking`` (True, a dict of DeepLabCut's options or a
    :class:`~lightning_dlc.tracking.ctd.CTDTrackingConfig`) tracks with it and writes ``<prefix>_ctd.h5`` too.
    ``options``: those of :func:`~lightning_dlc.inference.analyze.analyze_video`."""
    conditions = conditions if conditions is not None else trained_conditions(snapshot)
    predictor = conditional_predictor(snapshot, conditions, device, precision, channels_last, compile, project)
    if ctd_tracking:
        return analyze_videos_tracking(predictor, videos, destfolder, None if ctd_tracking is True else ctd_tracking,
                                       **options)
    return _analyze_videos(predictor, videos, destfolder, **options)
