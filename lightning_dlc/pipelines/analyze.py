"""Video analysis, then tracking from its files (``auto_track``): what ``api.analyze_videos`` and
``lightning-dlc analyze-videos`` run. Tracking starts after analysis has written its files, never inside it:
inference knows nothing of tracking.
"""
from __future__ import annotations

import logging
from pathlib import Path

from lightning_dlc.inference.analyze import VideoSummary, analyze_videos
from lightning_dlc.project.locks import OutputLocked
from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.tracking.pipeline import track_analysis

log = logging.getLogger(__name__)

__all__ = ["analyze_and_track", "track_analyzed_videos"]


def track_analyzed_videos(summaries: list[VideoSummary], method: str = "ellipse", meta: ProjectMeta | None = None,
                          overwrite: bool = False, wait_for_lock: bool = False,
                          identity_only: bool = False) -> list[Path]:
    """:func:`~lightning_dlc.tracking.pipeline.track_analysis` for each video analysis summary that has results;
    a video whose outputs another process holds is logged (naming it) and left out."""
    done = []
    for s in summaries:
        if s.status in ("failed", "locked") or not s.h5:
            continue
        try:
            done.append(track_analysis(Path(s.h5).with_suffix(""), method, meta, overwrite=overwrite,
                                       wait_for_lock=wait_for_lock, identity_only=identity_only))
        except OutputLocked as e:
            log.warning("%s: not tracked: %s", s.video, e)
    return [path for path in done if path is not None]


def analyze_and_track(snapshot, videos, destfolder=None, *, auto_track: bool = False, track_method: str = "ellipse",
                      meta: ProjectMeta | None = None, identity_only: bool = False, overwrite: bool = False,
                      wait_for_lock: bool = False, **analyze_options) -> tuple[list[VideoSummary], list[Path]]:
    """:func:`~lightning_dlc.inference.analyze.analyze_videos` with ``snapshot``, then with ``auto_track`` the
    tracklets and tracks of every multi-animal video it analyzed (``track_method``; ``meta``: the project's names
    when the meta pickles cannot say them). Returns the analysis summaries and the tracks' paths."""
    summaries = analyze_videos(snapshot, videos, destfolder, overwrite=overwrite, wait_for_lock=wait_for_lock,
                               **analyze_options)
    tracks = track_analyzed_videos(summaries, track_method, meta, overwrite=overwrite, wait_for_lock=wait_for_lock,
                                   identity_only=identity_only) if auto_track else []
    return summaries, tracks
