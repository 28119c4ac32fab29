"""Stitching with re-identification: how alike two tracklets' animals look, as a link cost; the ``_el_tr.h5``.

:class:`EmbeddingCost` is a ``stitch_tracklets(..., extra_cost=)`` hook: a link from tracklet a to
tracklet b costs ``weight`` x the distance between a's embedding at its end and b's at its start (each
the normalised mean of the per-frame embeddings of the ``window`` frames nearest that end; unit vectors,
so the distance is 0 to 2), in the body sizes motion costs are counted in. Where either end has no
embedding it adds nothing. numpy only: the embeddings come in as arrays ``[T, N, E]`` (NaN: no sample)
from :func:`lightning_dlc.lit.reid.embed_features`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.tracking import files
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.tracklets import Tracklet
from lightning_dlc.tracking.triplets import tracklet_rows

__all__ = ["EmbeddingCost", "fragment_tracklets", "reid_tracks_path", "write_reid_tracks"]


class EmbeddingCost:
    """Embedding distance between the linked ends of two tracklets, times ``weight`` (see the module doc)."""

    def __init__(self, embeddings: np.ndarray, keypoints: np.ndarray, weight: float = 1.0, window: int = 10):
        self.embeddings, self.keypoints = embeddings, keypoints
        self.weight, self.window = float(weight), int(window)
        self._ends: dict[tuple, np.ndarray] = {}

    def end_embedding(self, tracklet: Tracklet, at_start: bool) -> np.ndarray:
        """Unit vector ``[E]`` of the animal near one end of the tracklet (NaN when it has none)."""
        key = (tracklet.start, tracklet.end, len(tracklet), tracklet.data[0, :, :2].tobytes(), at_start)
        if key not in self._ends:
            rows = tracklet_rows(tracklet, self.keypoints)
            found = self.embeddings[tracklet.frames[rows >= 0], rows[rows >= 0]]
            found = found[np.isfinite(found).all(-1)]
            found = found[: self.window] if at_start else found[-self.window:]
            mean = found.mean(0) if len(found) else np.full(self.embeddings.shape[-1], np.nan)
            self._ends[key] = mean / np.linalg.norm(mean)
        return self._ends[key]

    def __call__(self, earlier: Sequence[Tracklet], i: np.ndarray, later: Sequence[Tracklet],
                 j: np.ndarray) -> np.ndarray:
        ends = {k: self.end_embedding(earlier[k], at_start=False) for k in np.unique(i)}
        starts = {k: self.end_embedding(later[k], at_start=True) for k in np.unique(j)}
        a = np.stack([ends[k] for k in i]).reshape(len(i), -1)
        b = np.stack([starts[k] for k in j]).reshape(len(j), -1)
        return self.weight * np.nan_to_num(np.linalg.norm(a - b, axis=-1), nan=0.0)


def fragment_tracklets(tracklets: Sequence[Tracklet], mean_length: int = 20, max_gap: int = 10,
                       seed: int = 0) -> list[Tracklet]:
    """Cut every tracklet at random frames (pieces of ``mean_length`` frames on average) and drop up to
    ``max_gap`` frames after each cut, as occlusions do: the hard case for stitching by motion alone."""
    rng = np.random.default_rng(seed)
    out = []
    for t in tracklets:
        n = len(t)
        cuts = np.flatnonzero(rng.random(n) < 1.0 / max(mean_length, 1))
        keep = np.ones(n, bool)
        for c in cuts:
            keep[c: c + rng.integers(0, max_gap + 1)] = False
        edges = np.r_[0, cuts, n]
        for a, b in zip(edges[:-1], edges[1:]):
            part = np.arange(a, b)[keep[a:b]]
            if len(part):
                out.append(Tracklet(t.frames[part], t.data[part]))
    return out


def reid_tracks_path(prefix: str | Path, method: str = "ellipse") -> Path:
    """``<prefix>_<el|bx|sk>_tr.h5``: tracks stitched with re-identification (DeepLabCut's name)."""
    prefix = Path(prefix)
    path = files.tracks_path(prefix.parent, prefix.name, method)
    return path.with_name(f"{path.stem}_tr.h5")


def write_reid_tracks(prefix: str | Path, stored: files.TrackletFile, cost: EmbeddingCost, meta: ProjectMeta,
                      scorer: str, n_frames: int | None, n_tracks: int, method: str = "ellipse",
                      save_as_csv: bool = False, overwrite: bool = False, **stitch_options) -> Path:
    """Stitch a video's tracklets with ``cost`` added to the motion costs and write ``<prefix>_<el>_tr.h5``."""
    tracks = stitch_tracklets(stored.tracklets, n_tracks, n_frames=n_frames, extra_cost=cost, **stitch_options)
    if tracks.shape[2] == 0:  # no tracklet at all: every bodypart missing
        tracks = np.full((len(tracks), n_tracks, len(meta.bodyparts), 3), np.nan)
    unique = None
    if meta.unique_bodyparts:
        unique = np.full((len(tracks), len(meta.unique_bodyparts), 3), np.nan)
        for frame, points in stored.single.items():
            if frame < len(tracks):
                unique[frame] = points[:, :3]
    return files.write_tracks(reid_tracks_path(prefix, method), tracks, meta, stored.scorer or scorer, unique,
                              save_as_csv=save_as_csv, overwrite=overwrite)
