"""DeepLabCut's ``analyzeskeleton``: the length and orientation of each skeleton edge ("bone") per frame.

For an edge ``(bp1, bp2)`` of config.yaml's ``skeleton``: ``length`` the distance (px) from bp1 to bp2,
``orientation`` the angle (degrees in [0, 360)) of the vector bp1 -> bp2 from the x axis, counted from +x
towards +y (image y points down, so clockwise on screen), ``likelihood`` the smaller of the two points'. A
missing point gives NaN length and orientation (DeepLabCut 3.0.2 stops with an error there: scipy's
``euclidean`` refuses NaN). The table's columns are ``(bone, length|orientation|likelihood)``, bones named
``<bp1>_<bp2>``, or ``<individual>_<bp1>_<bp2>`` per individual of a tracks table (individuals in sorted
order, the unique bodyparts' ``single`` left out), rows numbered from 0: DeepLabCut's layout.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.predictions import write_predictions
from lightning_dlc.project.records import UNIQUE_INDIVIDUAL
from lightning_dlc.tracking.analysis_tables import read_table, skeleton_path

log = logging.getLogger(__name__)

BONE_COLUMNS = ("length", "orientation", "likelihood")

__all__ = ["BONE_COLUMNS", "bone", "skeleton_file", "skeleton_table"]


def bone(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """``[T, 3]`` length, orientation (degrees, [0, 360)) and min likelihood of the edge between points
    ``p1``, ``p2`` ``[T, 3]`` (x, y, likelihood)."""
    d = np.asarray(p2, np.float64)[:, :2] - np.asarray(p1, np.float64)[:, :2]
    angle = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    angle = np.where(angle < 0, angle + 360, angle)
    return np.stack([np.hypot(d[:, 0], d[:, 1]), angle, np.minimum(p1[:, 2], p2[:, 2])], axis=1)


def skeleton_table(df: pd.DataFrame, skeleton: Sequence[Sequence[str]]) -> pd.DataFrame:
    """The bones of ``skeleton`` in a prediction or tracks table (module docstring). An edge whose bodyparts
    an individual lacks is left out for it (a unique bodyparts' edge, say); none left raises."""
    if not skeleton:
        raise ValueError("no skeleton: config.yaml's skeleton lists no edges")
    names = df.columns.names
    individuals = df.columns.get_level_values("individuals") if "individuals" in names else None
    bodyparts, coords = df.columns.get_level_values("bodyparts"), df.columns.get_level_values("coords")
    values = df.to_numpy(np.float64)

    def point(bodypart: str, individual: str | None) -> np.ndarray | None:
        where = [np.flatnonzero((bodyparts == bodypart) & (coords == c)
                                & (individuals == individual if individual is not None else True))
                 for c in ("x", "y", "likelihood")]
        return values[:, [w[0] for w in where]] if all(len(w) for w in where) else None

    bones: dict[str, np.ndarray] = {}
    for individual in sorted(set(individuals) - {UNIQUE_INDIVIDUAL}) if individuals is not None else [None]:
        for bp1, bp2 in skeleton:
            p1, p2 = point(bp1, individual), point(bp2, individual)
            name = f"{bp1}_{bp2}" if individual is None else f"{individual}_{bp1}_{bp2}"
            if p1 is None or p2 is None:
                log.info("%s: %s or %s not in the table; left out", name, bp1, bp2)
                continue
            bones[name] = bone(p1, p2)
    if not bones:
        raise ValueError(f"none of the skeleton's edges {list(map(tuple, skeleton))} joins bodyparts of the table")
    columns = pd.MultiIndex.from_tuples([(name, c) for name in bones for c in BONE_COLUMNS])
    return pd.DataFrame(np.concatenate(list(bones.values()), axis=1), columns=columns)


def skeleton_file(h5: str | Path, skeleton: Sequence[Sequence[str]], save_as_csv: bool = False) -> Path:
    """The bones of the table ``h5`` -> ``<h5 stem>_skeleton.h5`` (pandas table format, key
    ``df_with_missing``; ``.csv`` with ``save_as_csv``), written atomically. An existing one is kept
    (DeepLabCut skips such a video); delete it to compute it again. Returns its path."""
    h5 = Path(h5)
    out = skeleton_path(h5)
    if out.exists():
        log.warning("%s: already made, kept (delete it to compute it again)", out)
        return out
    try:
        table = skeleton_table(read_table(h5), skeleton)
    except ValueError as e:
        raise ProjectError(h5, str(e)) from e
    return write_predictions(table, out, csv=save_as_csv, h5_format="table")
