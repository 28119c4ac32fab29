"""DeepLabCut projects -> records: which label files are used, and how they are checked."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.images import image_shape
from lightning_dlc.project.labels import LEVELS, check_bodyparts, key_index, read_collected_data, to_arrays
from lightning_dlc.project.records import LabeledData, PoseRecord, keypoints_from_xy

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def as_config(config: str | Path | ProjectConfig) -> ProjectConfig:
    return config if isinstance(config, ProjectConfig) else ProjectConfig.read(config)


def _folder_labels(cfg: ProjectConfig, folder: Path) -> pd.DataFrame | None:
    """The checked label table of one labeled-data folder, or None if it is not labeled yet."""
    label_file = folder / f"CollectedData_{cfg.scorer}.h5"
    if not label_file.exists() and not label_file.with_suffix(".csv").exists():
        others = sorted(p.name for p in folder.glob("CollectedData_*.h5"))
        if others:
            raise ProjectError(folder, f"has {others} but config.yaml's scorer is {cfg.scorer!r}: "
                                       f"expected CollectedData_{cfg.scorer}.h5 (or .csv)")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            raise ProjectError(folder, "labeled-data folder is empty (no images, no CollectedData file); "
                                       "remove it or comment out its video in video_sets")
        log.warning("%s: no CollectedData_%s.h5 or .csv yet (not labeled?); skipped", folder, cfg.scorer)
        return None
    df = read_collected_data(label_file)
    source = label_file if label_file.exists() else label_file.with_suffix(".csv")
    check_bodyparts(df, cfg.meta(), source)
    # The scorer inside the file may differ from the file name's; the config's wins.
    df = df.droplevel("scorer", axis=1)
    df.attrs["source"] = str(source)
    return df


def read_project_labels(config: str | Path | ProjectConfig) -> pd.DataFrame:
    """All labels of the folders listed in video_sets, merged and sorted by image path.

    Sorted like DeepLabCut's own merge, so shuffle indices mean the same rows in both tools.
    Columns follow the config's order: individuals, then bodyparts; scorer is the config's.
    """
    cfg = as_config(config)
    meta = cfg.meta()
    tables, sources = [], {}
    for folder in cfg.labeled_data_folders():
        df = _folder_labels(cfg, folder)
        if df is not None:
            tables.append(df)
            sources.update(dict.fromkeys(df.index, df.attrs["source"]))
    if not tables:
        raise ProjectError(cfg.path, "no labeled images: no CollectedData file in the labeled-data folders "
                                     "of the videos listed in video_sets")
    merged = pd.concat(tables)
    duplicated = merged.index[merged.index.duplicated()]
    if len(duplicated):
        raise ProjectError(sources[duplicated[0]], f"image {duplicated[0]!r} is labeled twice")
    merged = merged.sort_index(key=key_index)
    merged = _in_config_order(merged, cfg)
    merged.attrs["sources"] = sources
    return merged


def _in_config_order(df: pd.DataFrame, cfg: ProjectConfig) -> pd.DataFrame:
    """Columns in the config's order under its scorer; bodyparts nobody labeled come out NaN."""
    meta = cfg.meta()
    columns = [(cfg.scorer, ind, bp, c) for ind in meta.individuals for bp in meta.bodyparts for c in "xy"]
    columns += [(cfg.scorer, "single", bp, c) for bp in meta.unique_bodyparts for c in "xy"]
    out = df.reindex(columns=pd.MultiIndex.from_tuples([c[1:] for c in columns]))
    out.columns = pd.MultiIndex.from_tuples(columns, names=list(LEVELS))
    return out


def records_from_table(df: pd.DataFrame, cfg: ProjectConfig) -> list[PoseRecord]:
    """One record per row; every image must exist and have a readable header."""
    meta = cfg.meta()
    xy, unique_xy = to_arrays(df, meta)
    keypoints, unique = keypoints_from_xy(xy), keypoints_from_xy(unique_xy)
    sources = df.attrs.get("sources", {})
    records = []
    for i, key in enumerate(df.index):
        path = cfg.root / key
        _, height, width = image_shape(path, listed_in=sources.get(key))
        records.append(PoseRecord(image=path, key=key, size=(width, height), keypoints=keypoints[i],
                                  unique_keypoints=unique[i], individuals=meta.individuals))
    return records


def load_dlc_project(config: str | Path | ProjectConfig) -> LabeledData:
    """Every labeled image of a DeepLabCut project (the folders listed in video_sets)."""
    cfg = as_config(config)
    return LabeledData(cfg.meta(), records_from_table(read_project_labels(cfg), cfg), cfg.root)

