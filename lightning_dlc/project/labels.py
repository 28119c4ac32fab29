"""DeepLabCut label tables (CollectedData_<scorer>.h5/.csv) <-> keypoint arrays.

DeepLabCut stores one row per image and columns ``scorer/bodyparts/coords``
(single animal) or ``scorer/individuals/bodyparts/coords`` (multi-animal, with
unique bodyparts under the individual ``single``). The row index is either a
MultiIndex ``(labeled-data, video, image)`` or a path string, '/' or '\\' separated.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.records import SINGLE_ANIMAL, UNIQUE_INDIVIDUAL, ProjectMeta

H5_KEY = "df_with_missing"
LEVELS = ("scorer", "individuals", "bodyparts", "coords")


def image_key(index_entry) -> str:
    """A row label as a '/'-separated path relative to the project."""
    if isinstance(index_entry, tuple):
        return "/".join(str(p) for p in index_entry)
    return str(index_entry).replace("\\", "/")


def key_parts(key: str) -> tuple[str, ...]:
    """An image key as DeepLabCut's row label: ('labeled-data', video, image); inverse of image_key."""
    return tuple(key.split("/"))


def key_index(keys) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples([key_parts(k) for k in keys])


def dlc_layout(table: pd.DataFrame, multianimal: bool) -> pd.DataFrame:
    """A normalized table back in DeepLabCut's layout; inverse of what the readers return.

    Rows become (labeled-data, video, image) tuples and a single-animal table loses the
    individuals level: DeepLabCut's own loaders fail on one.
    """
    out = table.droplevel("individuals", axis=1) if not multianimal else table.copy()
    out.index = key_index(table.index)
    return out


def _normalize(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """4 column levels (scorer, individuals, bodyparts, coords), string keys as index."""
    if df.columns.nlevels == 3:
        df = pd.concat({SINGLE_ANIMAL: df}, axis=1, names=["individuals"]).swaplevel(0, 1, axis=1)
    elif df.columns.nlevels != 4:
        raise ProjectError(path, f"expected 3 or 4 column levels {LEVELS}, found {df.columns.nlevels}")
    df.columns = df.columns.set_names(list(LEVELS))
    coords = set(df.columns.get_level_values("coords"))
    if not {"x", "y"} <= coords:
        raise ProjectError(path, f"coords level must hold 'x' and 'y', found {sorted(coords)}")
    if len(df) == 0:
        raise ProjectError(path, "holds no labeled images")
    df = df.loc[:, df.columns.get_level_values("coords").isin(["x", "y"])]
    df.index = pd.Index([image_key(i) for i in df.index], dtype=object)
    try:
        return df.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ProjectError(path, f"coordinates must be numbers: {e}") from e


def _read_csv(path: Path) -> pd.DataFrame:
    """Parse DeepLabCut's CSV layout by hand: pandas' multi-header reader guesses index columns."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    header = []
    while len(header) < len(rows) and rows[len(header)][0] in LEVELS:
        header.append(rows[len(header)])
    if not header or header[-1][0] != "coords":
        raise ProjectError(path, "not a DeepLabCut label CSV (header rows scorer/.../coords not found)")
    # Index columns are those left blank after the level name in the header rows.
    n_index = 1
    while n_index < len(header[0]) and header[0][n_index] == "":
        n_index += 1
    columns = pd.MultiIndex.from_arrays([h[n_index:] for h in header], names=[h[0] for h in header])
    body = rows[len(header):]
    index = [tuple(r[:n_index]) if n_index > 1 else r[0] for r in body]
    values = [[float(v) if v != "" else np.nan for v in r[n_index:]] for r in body]
    return pd.DataFrame(values, index=index, columns=columns)


def read_collected_data(path: str | Path) -> pd.DataFrame:
    """Read a label table (.h5, or the .csv beside it when the .h5 is absent)."""
    path = Path(path)
    h5, csv_path = path.with_suffix(".h5"), path.with_suffix(".csv")
    if path.suffix == ".csv" or (not h5.exists() and csv_path.exists()):
        path = csv_path
        if not path.exists():
            raise ProjectError(path, "no such label file")
        try:
            df = _read_csv(path)
        except (ValueError, IndexError) as e:
            raise ProjectError(path, f"cannot parse DeepLabCut label CSV: {e}") from e
    else:
        path = h5
        if not path.exists():
            raise ProjectError(path, "no such label file (nor a .csv beside it)")
        df = _read_h5(path)
    return _normalize(df, path)


def _read_h5(path: Path) -> pd.DataFrame:
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            key = H5_KEY if f"/{H5_KEY}" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ProjectError(path, f"has no '{H5_KEY}' table (keys: {keys})")
            df = store[key]
    except ProjectError:
        raise
    except Exception as e:  # tables/HDF5 raise many types for damaged files
        raise ProjectError(path, f"cannot read HDF5 labels (corrupt or not HDF5?): {e}") from e
    if not isinstance(df, pd.DataFrame):
        raise ProjectError(path, f"'{H5_KEY}' is not a table")
    return df


def check_bodyparts(df: pd.DataFrame, meta: ProjectMeta, path: Path) -> None:
    """Every labeled bodypart and individual must be declared in the config."""
    for individual, bodypart in dict.fromkeys(
        zip(df.columns.get_level_values("individuals"), df.columns.get_level_values("bodyparts"))
    ):
        if individual == UNIQUE_INDIVIDUAL:
            if bodypart not in meta.unique_bodyparts:
                raise ProjectError(path, f"unique bodypart {bodypart!r} is labeled but not in the config's "
                                         f"uniquebodyparts {list(meta.unique_bodyparts)}")
            continue
        if individual not in meta.individuals:
            raise ProjectError(path, f"individual {individual!r} is labeled but not in the config's "
                                     f"individuals {list(meta.individuals)}")
        if bodypart not in meta.bodyparts:
            raise ProjectError(path, f"bodypart {bodypart!r} is labeled but not in the config's "
                                     f"bodyparts {list(meta.bodyparts)}")


def to_arrays(df: pd.DataFrame, meta: ProjectMeta) -> tuple[np.ndarray, np.ndarray]:
    """Normalized table -> xy [n_images, n_individuals, n_bodyparts, 2] and unique xy [n, n_unique, 2].

    Individuals or bodyparts the table lacks come out NaN (unlabeled).
    """
    ind_cols = pd.MultiIndex.from_product([meta.individuals, meta.bodyparts, ["x", "y"]])
    uniq_cols = pd.MultiIndex.from_product([[UNIQUE_INDIVIDUAL], meta.unique_bodyparts, ["x", "y"]])
    table = df.droplevel("scorer", axis=1)
    xy = table.reindex(columns=ind_cols).to_numpy(np.float32)
    uniq = table.reindex(columns=uniq_cols).to_numpy(np.float32)
    n = len(df)
    return (xy.reshape(n, len(meta.individuals), len(meta.bodyparts), 2),
            uniq.reshape(n, len(meta.unique_bodyparts), 2))


def from_arrays(keys, values: np.ndarray, unique_values: np.ndarray | None, meta: ProjectMeta,
                scorer: str, coords: tuple[str, ...] = ("x", "y")) -> pd.DataFrame:
    """Arrays [n, n_individuals, n_bodyparts, len(coords)] -> a table in DeepLabCut's own layout.

    3 column levels for a single animal, 4 otherwise (unique bodyparts under ``single``).
    ``keys`` are image paths (rows become DeepLabCut's (labeled-data, video, image)
    MultiIndex) or any pandas Index, such as frame numbers for video predictions.
    """
    index = keys if isinstance(keys, pd.Index) else key_index(keys)
    n, c = len(index), list(coords)

    def block(array, individuals, bodyparts):
        flat = np.asarray(array, np.float64).reshape(n, -1)
        if not meta.multianimal:
            cols = pd.MultiIndex.from_product([[scorer], bodyparts, c], names=["scorer", "bodyparts", "coords"])
        else:
            cols = pd.MultiIndex.from_product([[scorer], individuals, bodyparts, c], names=list(LEVELS))
        return pd.DataFrame(flat, index=index, columns=cols)

    parts = [block(values, meta.individuals, meta.bodyparts)]
    if meta.multianimal and meta.unique_bodyparts:
        parts.append(block(unique_values, [UNIQUE_INDIVIDUAL], meta.unique_bodyparts))
    return pd.concat(parts, axis=1)


def _object_strings(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return index.set_levels([_object_strings(level) for level in index.levels])
    return index.astype(object) if pd.api.types.is_string_dtype(index.dtype) else index


def write_collected_data(df: pd.DataFrame, h5_path: str | Path, overwrite: bool = False) -> Path:
    """Write the .h5 (key df_with_missing, as DeepLabCut does) and the .csv beside it."""
    h5_path = Path(h5_path).with_suffix(".h5")
    df = df.copy()
    # Plain object labels: older pandas (DeepLabCut's) cannot read pandas 3's string dtype.
    df.index = _object_strings(df.index)
    df.columns = _object_strings(df.columns)
    with atomic_path(h5_path, overwrite=overwrite) as tmp:
        df.to_hdf(tmp, key=H5_KEY, mode="w")
    with atomic_path(h5_path.with_suffix(".csv"), overwrite=overwrite) as tmp:
        df.to_csv(tmp)
    return h5_path
