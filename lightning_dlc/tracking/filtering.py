"""Smoothing of predicted trajectories: DeepLabCut's ``filterpredictions`` (median, ARIMA, spline).

The filters are plain functions over ``[T, C]`` coordinate columns (x and y columns; likelihoods apart),
each the library call DeepLabCut makes, with the same arguments:

- ``median``: :func:`scipy.signal.medfilt` of each column, window ``windowlength`` (odd; the ends see a
  zero-padded window, as in DeepLabCut);
- ``arima``: a statsmodels SARIMAX(``ARdegree``, 0, ``MAdegree``) fitted to each column with the points
  under ``p_bound`` as missing data; the filtered value is the model's one-step prediction (the first
  frame keeps its value). A column with 10 or fewer confident points becomes NaN, as in DeepLabCut;
- ``spline``: a :class:`scipy.interpolate.CubicSpline` through each column's finite points fills gaps of
  at most ``windowlength`` frames (longer gaps stay NaN); filled points get likelihood 0.01.

Missing points (NaN): ``spline`` fills them; ``arima`` treats them as missing data; ``median`` filters
each finite stretch of a column on its own and leaves the gaps NaN (DeepLabCut hands NaN to ``medfilt``,
which then puts an arbitrary neighbour into the gap and shifts the medians around it).

:func:`filter_table` applies one to a prediction or tracks table (same columns and rows);
:func:`filter_file` writes DeepLabCut's ``<table stem>_filtered.h5`` (and ``.csv``) atomically.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.signal import medfilt

from lightning_dlc.evaluation.outliers import fit_sarimax
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.predictions import write_predictions
from lightning_dlc.tracking.analysis_tables import filtered_path, read_table

log = logging.getLogger(__name__)

FILTER_TYPES = ("median", "arima", "spline")
FILLED_LIKELIHOOD = 0.01  # DeepLabCut's likelihood of a point the spline filled in

__all__ = ["FILTER_TYPES", "arima_filter", "filter_file", "filter_table", "median_filter", "spline_fill"]


def _finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2]))


def median_filter(xy: np.ndarray, windowlength: int = 5) -> np.ndarray:
    """Each column of ``xy`` ``[T, C]`` through ``scipy.signal.medfilt(column, windowlength)``; NaN gaps
    stay NaN (each finite stretch is filtered on its own)."""
    xy = np.asarray(xy)
    out = np.full_like(xy, np.nan)
    for c in range(xy.shape[1]):
        finite = np.isfinite(xy[:, c])
        if finite.all():
            out[:, c] = medfilt(xy[:, c], windowlength)
            continue
        for start, stop in _finite_runs(finite):
            out[start:stop, c] = medfilt(xy[start:stop, c], windowlength)
    return out


def spline_fill(xy: np.ndarray, max_gap: int = 0) -> np.ndarray:
    """Columns of ``xy`` ``[T, C]`` replaced by the cubic spline through their finite points (a column needs
    more than 3); gaps longer than ``max_gap`` frames (0: none) and values of exactly 0 (the spline beyond its
    knots, DeepLabCut's rule) become NaN. Columns with too few points come back unchanged."""
    xy = np.asarray(xy, np.float64)
    out = xy.copy()
    frames = np.arange(len(xy))
    for c in range(xy.shape[1]):
        valid = ~np.isnan(xy[:, c])
        if valid.sum() <= 3:
            continue
        y = CubicSpline(frames[valid], xy[valid, c])(frames)
        if max_gap > 0:
            for start, stop in _finite_runs(~valid):
                if stop - start > max_gap:
                    y[start:stop] = np.nan
        y[y == 0] = np.nan
        out[:, c] = y
    return out


def arima_filter(xy: np.ndarray, likelihood: np.ndarray, p_bound: float = 0.001, ARdegree: int = 3,
                 MAdegree: int = 1) -> np.ndarray:
    """Each column of ``xy`` ``[T, C]`` replaced by its SARIMAX(ARdegree, 0, MAdegree) one-step prediction
    (:func:`~lightning_dlc.evaluation.outliers.fit_sarimax`, the fit outlier extraction makes), points whose
    ``likelihood`` ``[T, C]`` is under ``p_bound`` counted as missing; the first frame keeps its value; a
    column with 10 or fewer such points becomes NaN after it (DeepLabCut's rule)."""
    xy = np.asarray(xy, np.float64)
    out = np.empty_like(xy)
    for c in range(xy.shape[1]):
        out[:, c] = fit_sarimax(xy[:, c], np.asarray(likelihood)[:, c], p_bound, 0.05, ARdegree, MAdegree)[0]
        out[0, c] = xy[0, c]
    return out


def filter_table(df: pd.DataFrame, filtertype: str = "median", windowlength: int = 5, p_bound: float = 0.001,
                 ARdegree: int = 3, MAdegree: int = 1) -> pd.DataFrame:
    """A prediction or tracks table (``.../bodyparts/coords`` columns, x, y, likelihood per point) with its
    x and y columns filtered (module docstring); same columns and rows."""
    if filtertype not in FILTER_TYPES:
        raise ValueError(f"filtertype must be one of {FILTER_TYPES}, got {filtertype!r}")
    coords = df.columns.get_level_values("coords")
    is_xy = np.asarray(coords.isin(("x", "y")))
    if len(df.columns) % 3 or list(coords[:3]) != ["x", "y", "likelihood"]:
        raise ValueError("columns are not x, y, likelihood per bodypart")
    values = df.to_numpy()
    xy, likelihood = values[:, is_xy].astype(np.float64), values[:, ~is_xy].astype(np.float64)
    if filtertype == "median":  # medfilt in the table's own dtype, as DeepLabCut runs it
        xy = median_filter(values[:, is_xy], windowlength)
    elif filtertype == "arima":
        xy = arima_filter(xy, np.repeat(likelihood, 2, axis=1), p_bound, ARdegree, MAdegree)
    else:
        filled = spline_fill(xy, windowlength)
        new = np.isnan(xy) & ~np.isnan(filled)
        xy = np.where(np.isnan(filled), xy, filled)
        likelihood[new.reshape(len(xy), -1, 2).any(-1)] = FILLED_LIKELIHOOD  # a point with x or y filled in
    out = values.copy()
    out[:, is_xy], out[:, ~is_xy] = xy, likelihood
    return pd.DataFrame(out, index=df.index, columns=df.columns)


def filter_file(h5: str | Path, filtertype: str = "median", windowlength: int = 5, p_bound: float = 0.001,
                ARdegree: int = 3, MAdegree: int = 1, save_as_csv: bool = True) -> Path:
    """Filter the table ``h5`` into ``<h5 stem>_filtered.h5`` (pandas table format, key ``df_with_missing``,
    as DeepLabCut writes it; ``.csv`` too with ``save_as_csv``), written atomically. An existing filtered file
    is kept, not recomputed (DeepLabCut skips such a video); delete it to filter again. Returns its path."""
    h5 = Path(h5)
    out = filtered_path(h5)
    if out.exists():
        log.warning("%s: already filtered, kept (delete it to filter again)", out)
        return out
    df = read_table(h5)
    if len(df) == 0:
        raise ProjectError(h5, "holds no frames to filter")
    return write_predictions(filter_table(df, filtertype, windowlength, p_bound, ARdegree, MAdegree), out,
                             csv=save_as_csv, h5_format="table")
