"""Which analysis table a post-processing step reads, and what it writes beside it (DeepLabCut's names).

With ``<prefix>`` = ``<folder>/<video stem><scorer>``: the analysis ``<prefix>.h5``, the stitched tracks
``<prefix>_<el|bx|sk>.h5``; ``filterpredictions`` writes ``<table stem>_filtered.h5`` (``.csv``),
``analyzeskeleton`` ``<table stem>_skeleton.h5``, ``plot_trajectories`` the folder
``<folder>/plot-poses/<video stem>/``. DeepLabCut's readers find each by these names.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.labels import H5_KEY
from lightning_dlc.project.shuffles import ArraysOnlyUnpickler
from lightning_dlc.tracking.trackers import TRACK_METHODS, check_method

__all__ = ["FILTERED", "SKELETON", "analysis_prefix", "analysis_table", "crop_offset", "filtered_path", "plot_folder",
           "read_table", "skeleton_path"]

FILTERED, SKELETON = "_filtered", "_skeleton"


class _Inert:
    """Stands in for a DeepLabCut class in its ``_meta.pickle`` (its pytorch-config pickles enums): never imported."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _MetaPickle(ArraysOnlyUnpickler):
    """A ``_meta.pickle``: builtins and arrays, DeepLabCut's own classes as :class:`_Inert`."""

    def find_class(self, module, name):
        if module.split(".")[0] == "deeplabcut":
            return _Inert
        return super().find_class(module, name)


def crop_offset(prefix: str | Path) -> tuple[float, float]:
    """x1, y1 of the crop a video was analyzed with (its ``_meta.pickle``; 0, 0 without one or without
    cropping): analysis coordinates are the crop's, frames and labels the whole image's. A meta pickle
    that exists but cannot be read raises :class:`ProjectError` naming it (a guessed 0, 0 would misplace
    every point of a cropped analysis)."""
    path = Path(f"{prefix}_meta.pickle")
    if not path.exists():
        return 0.0, 0.0
    try:
        with open(path, "rb") as f:
            data = _MetaPickle(f).load()["data"]
        x1, _, y1, _ = data["cropping_parameters"] if data.get("cropping") else (0, 0, 0, 0)
        return float(x1), float(y1)
    except Exception as e:
        raise ProjectError(path, f"not a readable video analysis meta pickle, needed for the crop it was "
                                 f"analyzed with: {e!r}") from e


def analysis_prefix(table: str | Path) -> Path:
    """``<prefix>`` of an analysis table ``<prefix>[_<el|bx|sk>][_filtered].h5`` (where its ``_meta.pickle`` is)."""
    table = Path(table)
    stem = table.stem.removesuffix(FILTERED)
    for suffix in TRACK_METHODS.values():
        if stem.endswith(f"_{suffix}"):
            stem = stem[: -len(suffix) - 1]
            break
    return table.with_name(stem)


def filtered_path(h5: str | Path) -> Path:
    """``<table stem>_filtered.h5``: a table's filtered predictions."""
    h5 = Path(h5)
    return h5.with_name(f"{h5.stem}{FILTERED}.h5")


def skeleton_path(h5: str | Path) -> Path:
    """``<table stem>_skeleton.h5``: the skeleton edges' lengths and orientations of a table."""
    h5 = Path(h5)
    return h5.with_name(f"{h5.stem}{SKELETON}.h5")


def plot_folder(folder: str | Path, video: str | Path) -> Path:
    """``<folder>/plot-poses/<video stem>``: where a video's trajectory plots go."""
    return Path(folder) / "plot-poses" / Path(video).stem


def analysis_table(prefix: str | Path, track_method: str = "", filtered: bool = False,
                   untracked_ok: bool = False) -> Path:
    """The table to read for ``<prefix>``: the tracks ``<prefix>_<el|bx|sk>.h5`` of ``track_method``
    (a multi-animal project) or ``<prefix>.h5`` (none); with ``filtered``, that table's ``_filtered.h5``.

    untracked_ok: a multi-animal analysis not yet tracked is read from ``<prefix>.h5`` when there are no
    tracks (what create_labeled_video draws). Raises :class:`ProjectError` naming the missing file and
    the step that makes it.
    """
    prefix = Path(prefix)
    plain = prefix.with_name(f"{prefix.name}.h5")
    tracked = prefix.with_name(f"{prefix.name}_{TRACK_METHODS[check_method(track_method)]}.h5") if track_method \
        else None
    candidates = [p for p in (tracked, plain if tracked is None or untracked_ok else None) if p is not None]
    for path in candidates:
        path = filtered_path(path) if filtered else path
        if path.is_file():
            return path
    first = filtered_path(candidates[0]) if filtered else candidates[0]
    if filtered:
        why = "no filtered predictions: run filterpredictions first (or pass filtered=False)"
    elif tracked is not None:
        why = ("no tracks: analyze the video, then convert_detections2tracklets and stitch_tracklets "
               f"(track_method={track_method!r})")
    else:
        why = "no analysis of this video: analyze it first (api.analyze_videos)"
    raise ProjectError(first, why)


def read_table(path: str | Path) -> pd.DataFrame:
    """A prediction or tracks table as stored (key ``df_with_missing``, else the file's only table)."""
    path = Path(path)
    with pd.HDFStore(path, mode="r") as store:
        keys = store.keys()
        if not keys:
            raise ProjectError(path, "holds no table")
        return store.select(f"/{H5_KEY}" if f"/{H5_KEY}" in keys else keys[0])
