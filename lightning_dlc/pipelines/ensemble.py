"""Ensembles: several models' analyses of one video -> one smoothed analysis, named as a model's would be.

The members are analyses that :func:`lightning_dlc.api.analyze_videos` wrote (different shuffles, seeds
or snapshots); :func:`ensemble_analyses` reads them, smooths them with
:func:`~lightning_dlc.tracking.ensemble_smoother.smooth_ensemble` and writes ``<video><scorer>.h5`` (and
``_meta.pickle``) for the ensemble's own scorer (:func:`ensemble_scorer`): the same DeepLabCut table as
a member's, the likelihood being the members' mean. Every tool that takes a model's scorer takes it.
The posterior variance rides in the same ``.h5`` as a plain HDF5 array (``/ensemble_variance``) that
pandas and DeepLabCut do not list, so they open the file as an ordinary analysis;
:func:`read_ensemble_variance` reads it.

Multi-animal projects ensemble the stitched tracks (``<prefix>_<el|bx|sk>.h5``): each member's tracks
are put in the first member's order by position (:func:`~lightning_dlc.tracking.ensemble_smoother.match_tracks`),
since two models' track 1 need not be the same animal.
"""
from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.labels import H5_KEY
from lightning_dlc.project.predictions import write_predictions
from lightning_dlc.project.records import UNIQUE_INDIVIDUAL
from lightning_dlc.tracking.ensemble_smoother import match_tracks, smooth_ensemble
from lightning_dlc.tracking.files import load_pickle, tracks_path

log = logging.getLogger(__name__)

__all__ = ["ENSEMBLE_TAG", "EnsembleResult", "VARIANCE_NODE", "ensemble_analyses", "ensemble_scorer",
           "is_ensemble_scorer", "read_ensemble_variance"]

ENSEMBLE_TAG = "DLC_ensemble"
VARIANCE_NODE = "ensemble_variance"


@dataclass
class EnsembleResult:
    """One video's ensemble: ``status`` ``written`` or ``kept`` (made before; ``overwrite`` replaces it)."""

    video: Path
    h5: Path
    scorer: str
    members: list[Path] = field(default_factory=list)
    status: str = "written"
    smoothing: np.ndarray | None = None


def ensemble_scorer(member_scorers: Sequence[str]) -> str:
    """``DLC_ensemble<M>_<first member's scorer after DLC_>``. It does not start with a member's scorer, so
    DeepLabCut's file search for that member (``<video><scorer>*.h5``) does not pick up the ensemble."""
    first = member_scorers[0]
    return f"{ENSEMBLE_TAG}{len(member_scorers)}_{first[4:] if first.startswith('DLC_') else first}"


def is_ensemble_scorer(name) -> bool:
    return isinstance(name, str) and name.startswith(ENSEMBLE_TAG)


def _member_table(h5: Path) -> pd.DataFrame:
    if not h5.is_file():
        raise ProjectError(h5, "no such analysis file: analyze the video with this member first")
    df = pd.read_hdf(h5, H5_KEY)
    if list(df.columns.names[-1:]) != ["coords"] or len(df.columns) % 3:
        raise ProjectError(h5, "not a DeepLabCut analysis table (scorer/[individuals/]bodyparts/coords)")
    return df[~df.index.duplicated()]


def _points(df: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """``[T, P, 3]`` on the frames ``index`` (NaN where the member has no row)."""
    return df.reindex(index).to_numpy(np.float64).reshape(len(index), -1, 3)


def _in_first_order(members: list[np.ndarray], columns: pd.MultiIndex) -> list[np.ndarray]:
    """Multi-animal tracks: each member's animals reordered to line up with the first member's."""
    if "individuals" not in columns.names:
        return members
    owner = np.asarray(columns.get_level_values("individuals")[::3])
    n_animal_points = int((owner != UNIQUE_INDIVIDUAL).sum())   # DeepLabCut puts unique bodyparts last
    animals = list(dict.fromkeys(owner[:n_animal_points]))
    if len(animals) < 2:
        return members
    k = n_animal_points // len(animals)

    def shape(m: np.ndarray) -> np.ndarray:
        return m[:, :n_animal_points].reshape(len(m), len(animals), k, 3)

    reference = shape(members[0])
    ordered = [members[0]]
    for m in members[1:]:
        order = match_tracks(reference, shape(m))
        m = m.copy()
        m[:, :n_animal_points] = shape(m)[:, order].reshape(len(m), -1, 3)
        ordered.append(m)
    return ordered


def _write(df: pd.DataFrame, variance: np.ndarray, out: Path, overwrite: bool) -> None:
    """The table (DeepLabCut's video-analysis format) and the variance array, renamed into place together."""
    import tables

    with atomic_path(out, overwrite=overwrite, keep_suffix=True) as tmp:
        write_predictions(df, tmp, overwrite=True, h5_format="table")
        columns = [list(map(str, c[1:-1])) for c in df.columns[::3]]
        with tables.open_file(str(tmp), "a") as f:
            node = f.create_array("/", VARIANCE_NODE, np.asarray(variance, np.float32))
            node.attrs.points = columns           # [individual,] bodypart of each point
            node.attrs.frames = np.asarray(df.index, np.int64)
            node.attrs.description = "posterior variance (px^2) of x and y: [frames, points, 2]"


def read_ensemble_variance(h5: str | Path) -> pd.DataFrame:
    """An ensemble's posterior variance (px²): rows frames, columns ``[individuals/]bodyparts/coords``
    (``x_var``, ``y_var``)."""
    import tables

    h5 = Path(h5)
    with tables.open_file(str(h5), "r") as f:
        if f"/{VARIANCE_NODE}" not in f:
            raise ProjectError(h5, f"holds no /{VARIANCE_NODE}: not an ensemble made by analyze_videos_ensemble")
        node = f.get_node(f"/{VARIANCE_NODE}")
        values, points, frames = node.read(), list(node.attrs.points), node.attrs.frames
    names = ["individuals", "bodyparts"] if len(points[0]) == 2 else ["bodyparts"]
    columns = pd.MultiIndex.from_tuples([(*p, c) for p in points for c in ("x_var", "y_var")],
                                        names=[*names, "coords"])
    return pd.DataFrame(values.reshape(len(values), -1), index=frames, columns=columns)


def _write_meta(members: Sequence[Path], out_prefix: Path, scorer: str, member_scorers: Sequence[str],
                smoothing: np.ndarray) -> None:
    """The ensemble's ``_meta.pickle``: the first member's (fps, crop, frame size...) with the ensemble named."""
    first = Path(f"{members[0]}_meta.pickle")
    if not first.is_file():
        return
    try:
        data = dict(load_pickle(first, "video analysis meta pickle")["data"])
    except (ProjectError, KeyError, TypeError) as e:  # e.g. DeepLabCut's, which pickles its own classes
        log.warning("%s: not copied for the ensemble (%s): its tools take the video as uncropped", first, e)
        return
    data.update({"Scorer": scorer, "ensemble members": list(member_scorers),
                 "ensemble smoothing": [float(s) for s in smoothing]})
    with atomic_path(Path(f"{out_prefix}_meta.pickle"), overwrite=True) as tmp, open(tmp, "wb") as f:
        pickle.dump({"data": data}, f)


def ensemble_analyses(video: str | Path, members: Sequence[str | Path], *, multianimal: bool = False,
                      track_method: str = "ellipse", scorer: str | None = None, smoothing: float | None = None,
                      min_likelihood: float = 0.0, average: str = "median", overwrite: bool = False,
                      destfolder=None) -> EnsembleResult:
    """One video's member analyses (their ``<folder>/<video stem><scorer>`` prefixes) -> the ensemble's files.

    Writes ``<folder>/<video stem><ensemble scorer>.h5`` (multi-animal: ``..._<el|bx|sk>.h5`` from the
    members' stitched tracks) beside the first member's (or in ``destfolder``), and ``_meta.pickle``. An
    ensemble made before is kept unless ``overwrite``. ``smoothing``, ``min_likelihood``, ``average``: see
    :func:`~lightning_dlc.tracking.ensemble_smoother.smooth_ensemble`.
    """
    video, members = Path(video), [Path(m) for m in members]
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    member_scorers = [m.name[len(video.stem):] for m in members]
    if len(set(member_scorers)) < len(members):
        raise ValueError(f"members repeat a model: {member_scorers}")
    scorer = scorer or ensemble_scorer(member_scorers)
    out_prefix = Path(destfolder or members[0].parent) / f"{video.stem}{scorer}"
    files = [tracks_path(m.parent, m.name, track_method) if multianimal else Path(f"{m}.h5") for m in members]
    out = tracks_path(out_prefix.parent, out_prefix.name, track_method) if multianimal else Path(f"{out_prefix}.h5")
    if out.exists() and not overwrite:
        print(f"{out}: ensemble made before, kept (overwrite=True replaces it)")
        return EnsembleResult(video, out, scorer, files, status="kept")
    tables_ = [_member_table(f) for f in files]
    columns = tables_[0].columns.droplevel("scorer")
    for f, t in zip(files[1:], tables_[1:]):
        if not t.columns.droplevel("scorer").equals(columns):
            raise ProjectError(f, f"its columns differ from {files[0].name}'s: members must analyze the same project")
    index = tables_[0].index
    for t in tables_[1:]:
        index = index.union(t.index)
    points = _in_first_order([_points(t, index) for t in tables_], tables_[0].columns)
    result = smooth_ensemble(np.stack(points), smoothing=smoothing, min_likelihood=min_likelihood,
                             average=average)
    df = pd.DataFrame(result.points.reshape(len(index), -1), index=index,
                      columns=pd.MultiIndex.from_tuples([(scorer, *c) for c in columns],
                                                        names=tables_[0].columns.names))
    _write(df, result.variance, out, overwrite=overwrite)
    _write_meta(members, out_prefix, scorer, member_scorers, result.smoothing)
    log.info("%s: ensemble of %d analyses (%s)", out, len(members), ", ".join(member_scorers))
    return EnsembleResult(video, out, scorer, files, smoothing=result.smoothing)
