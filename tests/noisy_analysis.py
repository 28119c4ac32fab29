"""A demo video's "analysis": its ground-truth table with noise added, written where analyze_videos would write it.

Used by the filtering, trajectory, skeleton and labeled-video tests (ours and DeepLabCut's side): the ground
truth beside it makes every post-processing step checkable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.project.predictions import write_predictions

SCORER = "DLC_Resnet50_fishtankJan1shuffle1_snapshot_010"


def truth_table(config: Path) -> pd.DataFrame:
    """The demo project's ground truth of ``videos/fishtank.mp4`` (x, y, visibility as likelihood)."""
    return pd.read_hdf(Path(config).parent / "videos" / "fishtank_groundtruth.h5")


def noisy_analysis(config: Path, folder: Path | None = None, sigma: float = 2.0, seed: int = 0,
                   gaps: dict[int, slice] | None = None, tracked: bool = False) -> tuple[Path, pd.DataFrame]:
    """Write ``<folder>/fishtank<SCORER>.h5`` (``_el.h5`` with ``tracked``: a multi-animal project's tracks),
    the truth plus Gaussian noise ``sigma`` px, likelihoods in [0.7, 1); ``gaps`` {point (column triple
    index): frames} whose x and y are NaN. Returns (the prefix ``<folder>/fishtank<SCORER>``, the truth with the
    analysis' scorer)."""
    config = Path(config)
    folder = Path(folder or config.parent / "videos")
    truth = truth_table(config)
    truth.columns = truth.columns.set_levels([SCORER], level="scorer")
    rng = np.random.default_rng(seed)
    values = truth.to_numpy(np.float64).copy()
    n_points = values.shape[1] // 3
    points = values.reshape(len(values), n_points, 3)
    points[..., :2] += rng.normal(0, sigma, points[..., :2].shape)
    points[..., 2] = rng.uniform(0.7, 1.0, points[..., 2].shape)
    for point, frames in (gaps or {}).items():
        points[frames, point, :2] = np.nan
    noisy = pd.DataFrame(points.reshape(len(values), -1), index=pd.RangeIndex(len(values)), columns=truth.columns)
    prefix = folder / f"fishtank{SCORER}"
    write_predictions(noisy, prefix.with_name(prefix.name + ("_el.h5" if tracked else ".h5")), h5_format="table")
    return prefix, truth
