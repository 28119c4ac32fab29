"""DeepLabCut prediction tables (evaluation results, video analysis) from keypoint arrays.

DeepLabCut's layout: columns ``scorer/individuals/bodyparts/coords`` with coords ``x``,
``y``, ``likelihood``; unique bodyparts after the individuals, under the individual
``single``; a single-animal table drops the ``individuals`` level
(``scorer/bodyparts/coords``), as DeepLabCut's video analysis writes it. Missing
keypoints are NaN. Files are ``.h5`` with the key ``df_with_missing`` (and optionally the
``.csv`` beside it), written atomically. The row index is the caller's: labeled images
(:func:`image_index`: DeepLabCut's ``(labeled-data, video, image)`` rows) or frame numbers.
:class:`PredictionsWriter` appends a table chunk by chunk (video analysis: memory holds one chunk).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.labels import H5_KEY, LEVELS, _object_strings, key_index
from lightning_dlc.project.records import UNIQUE_INDIVIDUAL, ProjectMeta

COORDS = ("x", "y", "likelihood")

__all__ = ["COORDS", "PredictionsWriter", "image_index", "predictions_table", "read_predictions",
           "write_predictions"]


def image_index(keys: Sequence[str]) -> pd.Index:
    """Row labels for image keys: DeepLabCut's ``(labeled-data, video, image)`` MultiIndex when every
    key is ``labeled-data/<video>/<image>``, else the keys themselves (e.g. COCO's ``images/x.png``)."""
    keys = list(keys)
    parts = [k.split("/") for k in keys]
    if keys and all(len(p) == 3 and p[0] == "labeled-data" for p in parts):
        return key_index(keys)
    return pd.Index(keys, dtype=object)


def predictions_table(bodypart: np.ndarray, unique_bodypart: np.ndarray | None, meta: ProjectMeta, scorer: str,
                      index: pd.Index | Sequence | None = None, individuals_level: bool | None = None,
                      ) -> pd.DataFrame:
    """Arrays -> a DeepLabCut prediction table.

    Args:
        bodypart: ``[n, N, K, 3]`` (x, y, likelihood) with N = ``len(meta.individuals)``
            (``[n, K, 3]`` is taken as one individual).
        unique_bodypart: ``[n, U, 3]`` for ``meta.unique_bodyparts``, or None / U = 0.
        meta: names of bodyparts, individuals and unique bodyparts.
        scorer: the ``scorer`` column level (DeepLabCut's model name, ``DLC_<net>_<task>...``).
        index: the rows (any pandas Index, e.g. :func:`image_index` or frame numbers); None: 0..n-1.
        individuals_level: keep the ``individuals`` level; None: only for multi-animal projects
            (or when there are unique bodyparts, which need it).
    """
    values = np.asarray(bodypart, dtype=np.float64)
    if values.ndim == 3:
        values = values[:, None]
    n = values.shape[0]
    shape = (n, len(meta.individuals), len(meta.bodyparts), len(COORDS))
    if values.shape != shape:
        raise ValueError(f"bodypart predictions have shape {values.shape}; expected {shape} "
                         f"(images, individuals {list(meta.individuals)}, bodyparts, x/y/likelihood)")
    unique = np.zeros((n, 0, 3)) if unique_bodypart is None else np.asarray(unique_bodypart, np.float64)
    if unique.shape[1] and unique.shape != (n, len(meta.unique_bodyparts), len(COORDS)):
        raise ValueError(f"unique bodypart predictions have shape {unique.shape}; expected "
                         f"{(n, len(meta.unique_bodyparts), len(COORDS))}")
    with_unique = unique.shape[1] > 0
    if individuals_level is None:
        individuals_level = meta.multianimal or with_unique
    if not individuals_level and (len(meta.individuals) != 1 or with_unique):
        raise ValueError("a table without the individuals level holds one animal and no unique bodyparts")

    index = pd.RangeIndex(n) if index is None else index if isinstance(index, pd.Index) else pd.Index(index)
    if len(index) != n:
        raise ValueError(f"{len(index)} row labels for {n} images")
    columns = [(scorer, ind, bp, c) for ind in meta.individuals for bp in meta.bodyparts for c in COORDS]
    data = [values.reshape(n, -1)]
    if with_unique:
        columns += [(scorer, UNIQUE_INDIVIDUAL, bp, c) for bp in meta.unique_bodyparts for c in COORDS]
        data.append(unique.reshape(n, -1))
    columns = pd.MultiIndex.from_tuples(columns, names=list(LEVELS))
    df = pd.DataFrame(np.concatenate(data, axis=1), index=index, columns=columns)
    return df if individuals_level else df.droplevel("individuals", axis=1)


# pandas < 3 finds a table-format node's columns by its ``pandas_version`` attribute, which pandas 3 no
# longer writes (without it, older pandas looks for pre-0.10.1 column names and fails to read the file):
# write the value pandas 2 writes, so DeepLabCut's environment reads our tables.
_TABLE_PANDAS_VERSION = "0.15.2"


def _stamp_table_version(store: pd.HDFStore, key: str) -> None:
    node = store.get_node(key)
    if node is not None and "pandas_version" not in node._v_attrs:
        node._v_attrs.pandas_version = _TABLE_PANDAS_VERSION


def _plain_labels(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with plain object labels: older pandas (DeepLabCut's) cannot read pandas 3's string dtype."""
    df = df.copy()
    df.index = _object_strings(df.index)
    df.columns = _object_strings(df.columns)
    return df


def write_predictions(df: pd.DataFrame, h5_path: str | Path, csv: bool = False, overwrite: bool = False,
                      h5_format: str = "fixed", key: str = H5_KEY) -> Path:
    """Write a prediction table as ``.h5`` (key ``df_with_missing``) and, with ``csv``, the ``.csv`` beside it.

    Atomic (a crash leaves no half-written file); an existing file is replaced only with
    ``overwrite`` (else ProjectError). ``h5_format``: pandas' ``fixed`` (DeepLabCut's evaluation)
    or ``table`` (DeepLabCut's video analysis). ``key``: the table's key in the .h5 (DeepLabCut's
    image analysis uses ``predictions``). Returns the .h5 path.
    """
    h5_path = Path(h5_path).with_suffix(".h5")
    if not overwrite:  # check both before writing either
        for path in (h5_path, h5_path.with_suffix(".csv")) if csv else (h5_path,):
            if path.exists():
                raise ProjectError(path, "already exists; pass overwrite=True to replace it")
    df = _plain_labels(df)
    with atomic_path(h5_path, overwrite=True) as tmp:
        with pd.HDFStore(tmp, mode="w") as store:
            store.put(key, df, format=h5_format, track_times=False)  # explicit: pandas 4 changes the default
            if h5_format == "table":
                _stamp_table_version(store, key)
    if csv:
        with atomic_path(h5_path.with_suffix(".csv"), overwrite=True) as tmp:
            df.to_csv(tmp)
    return h5_path


class PredictionsWriter:
    """Append prediction tables (same columns, consecutive rows) to one .h5 and optionally a .csv.

    The .h5 is pandas' table format under ``key``, the file ``DataFrame.to_hdf(format="table")``
    writes for the whole table (DeepLabCut's video analysis), including the index on the row
    labels made at :meth:`close`; the .csv equals ``DataFrame.to_csv`` of the whole table. The
    paths are written as given (the caller renames temporary files into place).
    """

    def __init__(self, h5_path: str | Path, csv_path: str | Path | None = None, key: str = H5_KEY):
        self.key = key
        self._store = pd.HDFStore(h5_path, mode="w")
        self._csv = Path(csv_path) if csv_path is not None else None
        self._rows = 0

    def append(self, df: pd.DataFrame) -> None:
        df = _plain_labels(df)
        self._store.append(self.key, df, format="table", index=False)
        if self._csv is not None:
            df.to_csv(self._csv, mode="w" if self._rows == 0 else "a", header=self._rows == 0)
        self._rows += len(df)

    def close(self) -> None:
        if self._store.is_open:
            if self.key in self._store:
                self._store.create_table_index(self.key)
                _stamp_table_version(self._store, self.key)
            self._store.close()

    def __enter__(self) -> "PredictionsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A prediction table written by :func:`write_predictions` (or DeepLabCut) as stored."""
    return pd.read_hdf(Path(path).with_suffix(".h5"), key=H5_KEY)
