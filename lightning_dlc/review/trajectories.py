"""DeepLabCut's ``plot_trajectories``: four figures of a video's predictions, per individual.

In ``<folder>/plot-poses/<video stem>/``, with ``<tag>`` = ``_filtered`` for filtered predictions and the
individual's name for a tracks table (DeepLabCut's file names):

- ``trajectory<tag><imagetype>``: y against x of each bodypart (image orientation: y down);
- ``plot<tag>``: x (dashed) and y (solid) against the frame index;
- ``plot-likelihood<tag>``: the likelihood against the frame index (to choose ``pcutoff``);
- ``hist<tag>``: histograms of the frame-to-frame changes of x and y.

Points under ``pcutoff`` are left out of all but the likelihood plot; each bodypart has its colour of
config.yaml's ``colormap``, drawn with its ``alphavalue``. Figures are drawn off screen (matplotlib's Agg
canvas) and each image written atomically; an existing plot is replaced, as DeepLabCut does.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from lightning_dlc.project.io import atomic_path
from lightning_dlc.tracking.analysis_tables import read_table

__all__ = ["PLOTS", "plot_table", "plot_trajectories"]

PLOTS = ("trajectory", "plot", "plot-likelihood", "hist")  # DeepLabCut's file names, in the order drawn
_N_BINS = 100


def _figures(show: bool) -> list[Figure]:
    sizes = [(8, 6), (10, 3), (10, 3), None]
    if show:  # pyplot only when figures go on screen
        import matplotlib.pyplot as plt
        return [plt.figure(figsize=s) for s in sizes]
    return [Figure(figsize=s) for s in sizes]


def plot_table(df: pd.DataFrame, bodyparts: Sequence[str], *, pcutoff: float, colormap: str = "rainbow",
               alpha: float = 1.0, linewidth: float = 1.0, show: bool = False) -> list[Figure]:
    """The four figures (:data:`PLOTS`) of one individual's columns ``df`` (``.../bodyparts/coords``) for
    ``bodyparts`` (colour i: the i-th of them; those ``df`` lacks are skipped, keeping the colours)."""
    figs = _figures(show)
    axes = [fig.add_subplot(111) for fig in figs]
    trajectory, xy_time, likelihood_time, hist = axes
    trajectory.set(xlabel="X position in pixels", ylabel="Y position in pixels")
    trajectory.invert_yaxis()
    xy_time.set(xlabel="Frame Index", ylabel="X-(dashed) and Y- (solid) position in pixels")
    likelihood_time.set(xlabel="Frame Index", ylabel="Likelihood (use to set pcutoff)")
    hist.set(xlabel="DeltaX and DeltaY", ylabel="Count")
    cmap = colormaps[colormap].resampled(max(len(bodyparts), 1))
    top = np.nanmax(df.to_numpy(np.float64)) if df.size else 1.0
    bins = np.linspace(0, top if np.isfinite(top) else 1.0, _N_BINS)
    present = set(df.columns.get_level_values("bodyparts"))
    for i, bp in enumerate(bodyparts):
        if bp not in present:
            continue
        part = df.xs(bp, level="bodyparts", axis=1)

        def column(coord: str) -> np.ndarray:
            return part.xs(coord, level="coords", axis=1).to_numpy(np.float64)[:, 0]

        p = column("likelihood")
        hidden = ~(p >= pcutoff)  # NaN likelihood: hidden too
        x, y = np.where(hidden, np.nan, column("x")), np.where(hidden, np.nan, column("y"))
        color = cmap(i)
        trajectory.plot(x, y, ".", color=color, alpha=alpha)
        xy_time.plot(x, "--", color=color, linewidth=linewidth, alpha=alpha)
        xy_time.plot(y, "-", color=color, linewidth=linewidth, alpha=alpha)
        likelihood_time.plot(p, "-", color=color, linewidth=linewidth, alpha=alpha)
        for values in (x, y):
            steps = np.diff(values)
            hist.hist(steps[np.isfinite(steps)], bins=bins, color=color, histtype="step", linewidth=linewidth)
    scale = ScalarMappable(norm=Normalize(0, max(len(bodyparts) - 1, 1)), cmap=colormaps[colormap])
    for fig, ax in zip(figs, axes):
        bar = fig.colorbar(scale, ax=ax, ticks=range(len(bodyparts)))
        bar.set_ticklabels(list(bodyparts))
    return figs


def plot_trajectories(h5: str | Path, folder: str | Path, bodyparts: Sequence[str] | None = None,
                      individuals: Sequence[str] | None = None, tag: str = "", *, pcutoff: float = 0.6,
                      colormap: str = "rainbow", alpha: float = 1.0, imagetype: str = ".png", resolution: int = 100,
                      linewidth: float = 1.0, show: bool = False) -> list[Path]:
    """Plot the table ``h5`` into ``folder`` (module docstring): one set of four images per individual of a
    tracks table (those of ``individuals`` it has; all if it has none of them), one set for a single-animal
    table. ``bodyparts``: those plotted (default all). ``tag``: ``_filtered`` for a filtered table.
    Returns the images' paths."""
    df = read_table(h5)
    table_parts = list(dict.fromkeys(df.columns.get_level_values("bodyparts")))
    bodyparts = [bp for bp in table_parts if bodyparts is None or bp in bodyparts]
    if "individuals" in df.columns.names:
        animals = list(dict.fromkeys(df.columns.get_level_values("individuals")))
        animals = [a for a in animals if individuals is None or a in individuals] or animals
    else:
        animals = [""]
    written = []
    for animal in animals:
        part = df.xs(animal, level="individuals", axis=1, drop_level=False) if animal else df
        figs = plot_table(part, bodyparts, pcutoff=pcutoff, colormap=colormap, alpha=alpha, linewidth=linewidth,
                          show=show)
        for name, fig in zip(PLOTS, figs):
            path = Path(folder) / f"{name}{tag}{animal}{imagetype}"
            with atomic_path(path, overwrite=True, keep_suffix=True) as tmp:
                fig.savefig(tmp, bbox_inches="tight", dpi=resolution)
            written.append(path)
    if show:
        import matplotlib.pyplot as plt
        plt.show()
    return written
