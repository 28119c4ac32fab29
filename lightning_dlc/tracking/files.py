"""DeepLabCut's tracking files: tracklet pickles (``_bx`` / ``_el`` / ``_sk``) and the stitched ``_el.h5``.

Names: ``<video stem><scorer>_<el|bx|sk>.pickle`` beside the analysis files, the tracks
``<video stem><scorer>_<el|bx|sk>.h5``. The tracklet pickle, as DeepLabCut 3's
``convert_detections2tracklets`` writes it and its ``stitch_tracklets`` reads it, is one dict:

- ``"header"``: a pandas MultiIndex ``scorer/bodyparts/coords`` (x, y, likelihood for every
  bodypart, multi-animal ones then unique ones);
- ``"single"`` (projects with unique bodyparts): ``{frame (int): [U, 3]}``;
- tracklet id (int) -> ``{"frame0000123": [K, 3 or 4]}`` (x, y, likelihood[, identity]), the key
  width that of the ``_full.pickle`` (``ceil(log10(n_frames))`` digits).

The tracks table is DeepLabCut's multi-animal prediction table (``scorer/individuals/bodyparts/
coords``, key ``df_with_missing``, table format; every frame a row). DeepLabCut's stitcher writes
the key ``tracks``; its readers open either, and ``df_with_missing`` is also the key its outlier
extraction asks for. Pickles are read with an unpickler that builds only arrays, builtins and
pandas indexes.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.analysis_files import frame_key_width
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.predictions import COORDS, predictions_table, write_predictions
from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.project.shuffles import ArraysOnlyUnpickler
from lightning_dlc.tracking.trackers import TRACK_METHODS, check_method
from lightning_dlc.tracking.tracklets import Tracklet

__all__ = ["TrackletFile", "load_pickle", "read_assemblies", "read_tracklets", "track_names", "tracklet_path",
           "tracks_path", "tracklets_dict", "write_tracklets", "write_tracks"]

_FRAME = re.compile(r"\d+")


def tracklet_path(folder: str | Path, prefix: str, method: str) -> Path:
    """``<folder>/<prefix>_<el|bx|sk>.pickle`` (prefix: ``<video stem><scorer>``)."""
    return Path(folder) / f"{prefix}_{TRACK_METHODS[check_method(method)]}.pickle"


def tracks_path(folder: str | Path, prefix: str, method: str) -> Path:
    """``<folder>/<prefix>_<el|bx|sk>.h5``: the stitched tracks."""
    return tracklet_path(folder, prefix, method).with_suffix(".h5")


class _TrackingPickle(ArraysOnlyUnpickler):
    """Arrays and builtins, plus what a pickled pandas Index / MultiIndex needs (the tracklet header)."""

    PANDAS = {"_new_Index", "MultiIndex", "Index", "RangeIndex", "FrozenList", "StringArray", "StringDtype",
              "__pyx_unpickle_NDArrayBacked"}

    def find_class(self, module, name):
        if module.split(".")[0] == "pandas" and name in self.PANDAS:
            return pickle.Unpickler.find_class(self, module, name)
        return super().find_class(module, name)


def load_pickle(path: Path, what: str):
    """A pickle of arrays, builtins and pandas indexes (refusing anything else); errors name the file."""
    if not path.is_file():
        raise ProjectError(path, f"no such {what}")
    try:
        with open(path, "rb") as f:
            return _TrackingPickle(f).load()
    except Exception as e:
        raise ProjectError(path, f"not a readable {what}: {e}") from e


def read_assemblies(path: str | Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """An ``_assemblies.pickle`` -> (``{frame: [n, K, 4]}``, unique bodyparts ``{frame: [U, 3]}``)."""
    path = Path(path)
    data = load_pickle(path, "assemblies pickle (made by video analysis of a multi-animal model)")
    if not isinstance(data, Mapping):
        raise ProjectError(path, f"expected a dict of frames, got {type(data).__name__}")
    frames = {int(k): np.asarray(v, np.float64) for k, v in data.items() if isinstance(k, (int, np.integer))}
    single = {int(k): np.asarray(v, np.float64) for k, v in (data.get("single") or {}).items()}
    return frames, single


def tracklet_header(scorer: str, bodyparts: Sequence[str]) -> pd.MultiIndex:
    """DeepLabCut's tracklet header: ``scorer/bodyparts/coords`` with x, y, likelihood per bodypart."""
    tuples = [(scorer, bp, c) for bp in bodyparts for c in COORDS]
    levels = [np.array(v, dtype=object) for v in zip(*tuples)] if tuples else [[], [], []]
    # object levels: DeepLabCut's older pandas cannot unpickle pandas 3's string arrays
    return pd.MultiIndex.from_arrays(levels, names=["scorer", "bodyparts", "coords"])


def tracklets_dict(tracklets: Sequence[Tracklet], scorer: str, bodyparts: Sequence[str], n_frames: int,
                   single: Mapping[int, np.ndarray] | None = None) -> dict:
    """The tracklet pickle's dict. bodyparts: every bodypart name, multi-animal then unique."""
    width = frame_key_width(n_frames)
    out: dict = {"header": tracklet_header(scorer, bodyparts)}
    if single:
        out["single"] = {int(k): np.asarray(v) for k, v in sorted(single.items())}
    for k, t in enumerate(tracklets):
        out[k] = {"frame" + str(int(f)).zfill(width): row for f, row in zip(t.frames, t.data)}
    return out


def write_tracklets(path: str | Path, tracklets: Sequence[Tracklet], scorer: str, bodyparts: Sequence[str],
                    n_frames: int, single: Mapping[int, np.ndarray] | None = None, overwrite: bool = False) -> Path:
    """Write the tracklet pickle atomically (an existing file only with ``overwrite``)."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(tracklets_dict(tracklets, scorer, bodyparts, n_frames, single), f, pickle.HIGHEST_PROTOCOL)
    return path


@dataclass
class TrackletFile:
    """A tracklet pickle read back: tracklets (id order), scorer, bodyparts (all), unique bodyparts' frames."""

    tracklets: list[Tracklet]
    scorer: str
    bodyparts: list[str]
    single: dict[int, np.ndarray]


def read_tracklets(path: str | Path) -> TrackletFile:
    """A tracklet pickle (ours or DeepLabCut's)."""
    path = Path(path)
    data = load_pickle(path, "tracklet pickle (made by convert_detections2tracklets)")
    if not isinstance(data, Mapping) or "header" not in data:
        raise ProjectError(path, "not a tracklet pickle: no 'header' entry")
    header = data["header"]
    scorer = str(header.get_level_values("scorer")[0]) if len(header) else ""
    bodyparts = list(dict.fromkeys(header.get_level_values("bodyparts")))
    tracklets = []
    for key, frames in data.items():
        if key in ("header", "single") or not frames:
            continue
        numbers = [int(_FRAME.search(f).group()) if isinstance(f, str) else int(f) for f in frames]
        rows = np.asarray(list(frames.values()), np.float64)
        if rows.ndim == 2:  # flat rows of x, y, likelihood (older DeepLabCut files)
            rows = rows.reshape(len(rows), -1, 3)
        tracklets.append(Tracklet(numbers, rows))
    single = {int(k): np.asarray(v, np.float64) for k, v in (data.get("single") or {}).items()}
    return TrackletFile(tracklets, scorer, bodyparts, single)


def track_names(individuals: Sequence[str], n_tracks: int) -> tuple[str, ...]:
    """The project's individuals for the tracks, then ``ind<i>`` for tracks beyond them (DeepLabCut's names)."""
    names = list(individuals)[:n_tracks]
    return tuple(names + [f"ind{i + 1}" for i in range(len(names), n_tracks)])


def write_tracks(path: str | Path, tracks: np.ndarray, meta: ProjectMeta, scorer: str,
                 unique: np.ndarray | None = None, save_as_csv: bool = False, overwrite: bool = False) -> Path:
    """Stitched tracks ``[T, n_tracks, K, >=3]`` (+ unique bodyparts ``[T, U, 3]``) -> the ``_el.h5`` table.

    Tracks are named after ``meta.individuals`` (``ind<i>`` beyond them); written atomically.
    """
    tracks = np.asarray(tracks, np.float64)[..., :3]
    names = track_names(meta.individuals, tracks.shape[1])
    table = predictions_table(tracks, unique, replace(meta, individuals=names), scorer,
                              index=pd.RangeIndex(len(tracks)), individuals_level=True)
    return write_predictions(table.astype(np.float32), path, csv=save_as_csv, overwrite=overwrite,
                             h5_format="table")
