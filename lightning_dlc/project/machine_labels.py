"""The refine loop's label files: ``machinelabels-iter<i>.h5``, its acceptance and ``merge_datasets``.

``extract_outlier_frames`` leaves, beside the extracted ``img<frame>.png`` of ``labeled-data/<video>/``,
the model's predictions for them as DeepLabCut writes them: ``machinelabels-iter<i>.h5`` (key
``df_with_missing``; the analysis table's rows for those frames, scorer, columns and likelihood kept,
rows renamed ``(labeled-data, <video>, img<frame>.png)``) and ``machinelabels.csv`` (always the
latest). Rows already in the file stay as they were (DeepLabCut keeps the first of duplicates).

DeepLabCut's refine GUI saves the corrected labels as the folder's ``CollectedData_<scorer>.h5``;
:func:`accept_machine_labels` is the scripted stand-in (the predictions with likelihood above
``pcutoff`` taken as they are). :func:`merge_datasets` then checks, as DeepLabCut does, that every
``labeled-data`` folder holds human labels (``CollectedData_<scorer>.h5``, or the legacy
``MachineLabelsRefine.h5``) and raises config.yaml's ``iteration``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc import as_config
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.labels import (H5_KEY, LEVELS, dlc_layout, image_key, key_index, read_collected_data,
                                          write_collected_data)
from lightning_dlc.project.predictions import write_predictions
from lightning_dlc.project.records import SINGLE_ANIMAL, UNIQUE_INDIVIDUAL

log = logging.getLogger(__name__)

MACHINE_CSV = "machinelabels.csv"  # DeepLabCut's name: no iteration in it
REFINED_LEGACY = "MachineLabelsRefine.h5"  # DeepLabCut 2's refine GUI

__all__ = ["MACHINE_CSV", "accept_machine_labels", "machine_labels_path", "machine_labels_table", "merge_datasets",
           "unrefined_folders", "write_machine_labels"]


def machine_labels_path(folder: str | Path, iteration: int) -> Path:
    return Path(folder) / f"machinelabels-iter{int(iteration)}.h5"


def machine_labels_table(analysis: pd.DataFrame, images: Mapping[int, str], video_stem: str,
                         offset: tuple[float, float] = (0.0, 0.0)) -> pd.DataFrame:
    """The analysis table's rows for ``images`` (frame number -> image name), renamed as DeepLabCut does.

    ``offset``: x1, y1 of the crop the video was analyzed with (whole-frame coordinates, as the images).
    """
    frames = sorted(images)
    missing = [f for f in frames if f not in analysis.index]
    if missing:
        raise ValueError(f"frames {missing[:5]} are not rows of the analysis table ({len(analysis)} rows)")
    table = analysis.loc[frames].astype(np.float64)
    coords = table.columns.get_level_values("coords")
    table.loc[:, coords == "x"] += offset[0]
    table.loc[:, coords == "y"] += offset[1]
    table.index = pd.MultiIndex.from_tuples([("labeled-data", video_stem, images[f]) for f in frames])
    return table


def write_machine_labels(folder: str | Path, iteration: int, table: pd.DataFrame) -> Path:
    """Add ``table``'s rows to the folder's ``machinelabels-iter<i>.h5`` (rows there are kept) and csv."""
    path = machine_labels_path(folder, iteration)
    if path.is_file():
        old = pd.read_hdf(path, H5_KEY)
        if not isinstance(old.index, pd.MultiIndex):  # DeepLabCut 2 wrote path strings
            old.index = key_index([image_key(i) for i in old.index])
        table = pd.concat([old, table])
        table = table[~table.index.duplicated(keep="first")]
    # ours (machine output), rewritten with its old rows; DeepLabCut's csv name has no iteration in it
    write_predictions(table, path, overwrite=True)
    with atomic_path(path.parent / MACHINE_CSV, overwrite=True) as tmp:
        table.to_csv(tmp)
    return path


def _with_individuals(df: pd.DataFrame) -> pd.DataFrame:
    if df.columns.nlevels == 3:
        df = pd.concat({SINGLE_ANIMAL: df}, axis=1, names=["individuals"]).swaplevel(0, 1, axis=1)
    df.columns = df.columns.set_names(list(LEVELS))
    return df


def _label_columns(cfg: ProjectConfig) -> pd.MultiIndex:
    """A normalized CollectedData table's columns: scorer/individuals/bodyparts/coords(x, y)."""
    meta = cfg.meta()
    pairs = [(i, b) for i in meta.individuals for b in meta.bodyparts]
    pairs += [(UNIQUE_INDIVIDUAL, b) for b in meta.unique_bodyparts]
    return pd.MultiIndex.from_tuples([(cfg.scorer, i, b, c) for i, b in pairs for c in ("x", "y")],
                                     names=list(LEVELS))


def _accepted(cfg: ProjectConfig, machine: pd.DataFrame, pcutoff: float) -> pd.DataFrame:
    """Machine labels -> normalized labels: x, y where likelihood > pcutoff (DeepLabCut shows those), else NaN."""
    table = _with_individuals(machine).droplevel("scorer", axis=1)
    likelihood = table.xs("likelihood", level="coords", axis=1)
    xy = {c: table.xs(c, level="coords", axis=1).where(likelihood > pcutoff) for c in ("x", "y")}
    out = pd.concat(xy, axis=1, names=["coords"]).reorder_levels([1, 2, 0], axis=1)
    out = pd.concat({cfg.scorer: out}, axis=1, names=["scorer"])
    out.index = pd.Index([image_key(i) for i in machine.index], dtype=object)
    return out.reindex(columns=_label_columns(cfg)).astype(np.float64)


def accept_machine_labels(config, folder: str | Path, pcutoff: float | None = None) -> Path | None:
    """Take a folder's machine labels of this iteration as its corrections: their images not yet in
    ``CollectedData_<scorer>.h5`` are added (likelihood > ``pcutoff``, default config.yaml's: x, y; else
    unlabeled). Rows already in CollectedData are kept exactly; the file is rewritten atomically with them.
    Returns the CollectedData path, or None when the folder has no machine labels of this iteration.
    """
    cfg = as_config(config)
    folder = Path(folder)
    machine_file = machine_labels_path(folder, cfg.iteration)
    if not machine_file.is_file():
        return None
    new = _accepted(cfg, pd.read_hdf(machine_file, H5_KEY), cfg.pcutoff if pcutoff is None else pcutoff)
    target = folder / f"CollectedData_{cfg.scorer}.h5"
    existed = target.is_file() or target.with_suffix(".csv").is_file()
    if existed:
        old = read_collected_data(target)
        old.columns = pd.MultiIndex.from_tuples([(cfg.scorer, *c[1:]) for c in old.columns], names=list(LEVELS))
        new = new.loc[~new.index.isin(old.index)]
        if new.empty:
            log.info("%s: every machine-labeled image is labeled already; left as it is", target)
            return target
        columns = old.columns.union(new.columns, sort=False)
        new = pd.concat([old.reindex(columns=columns), new.reindex(columns=columns)])
    new = new.sort_index(key=key_index)
    return write_collected_data(dlc_layout(new, cfg.multianimal), target, overwrite=existed)


def _folders(cfg: ProjectConfig) -> list[Path]:
    """labeled-data folders as DeepLabCut's merge_datasets sees them: not ``*_labeled``, not hidden."""
    root = cfg.root / "labeled-data"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and "_labeled" not in p.name and not p.name.startswith("."))


def unrefined_folders(config) -> list[Path]:
    """labeled-data folders without human labels (neither CollectedData_<scorer>.h5 nor MachineLabelsRefine.h5)."""
    cfg = as_config(config)
    labels = f"CollectedData_{cfg.scorer}.h5"
    return [p for p in _folders(cfg) if not (p / REFINED_LEGACY).is_file() and not (p / labels).is_file()]


def _warn_partly_refined(cfg: ProjectConfig, folders: Iterable[Path]) -> None:
    for folder in folders:
        machine_file, labels = machine_labels_path(folder, cfg.iteration), folder / f"CollectedData_{cfg.scorer}.h5"
        if machine_file.is_file() and labels.is_file():
            extracted = {image_key(i) for i in pd.read_hdf(machine_file, H5_KEY).index}
            left = extracted - set(read_collected_data(labels).index)
            if left:
                log.warning("%s: %d machine-labeled images are not in %s (not refined; they stay out of training)",
                            folder, len(left), labels.name)


def merge_datasets(config, forceiterate: int | None = None) -> int:
    """DeepLabCut's merge_datasets: with every labeled-data folder labeled or refined, config.yaml's
    ``iteration`` becomes ``forceiterate`` or the next one (written atomically, comments kept).

    A folder without human labels stops the call (a ProjectError naming the folders; DeepLabCut prints
    them and leaves the iteration): correct its machine labels (or :func:`accept_machine_labels`) or
    remove the folder. Returns the new iteration.
    """
    cfg = as_config(config)
    unrefined = unrefined_folders(cfg)
    if unrefined:
        raise ProjectError(cfg.path, "iteration not raised: these labeled-data folders have no "
                                     f"CollectedData_{cfg.scorer}.h5 (not refined yet): "
                                     f"{[str(p) for p in unrefined]}; label or refine them, or remove them")
    _warn_partly_refined(cfg, _folders(cfg))
    previous = cfg.iteration
    # forceiterate=0 counts as not given, as in DeepLabCut 3.0.2's merge_datasets (`if not forceiterate`)
    cfg.data["iteration"] = int(forceiterate) if forceiterate else previous + 1
    cfg.save(overwrite=True)
    log.info("%s: merged data sets; iteration %d -> %d (now create_training_dataset)", cfg.path, previous,
             cfg.iteration)
    return cfg.iteration
