"""Stitching with re-identification: how alike two tracklets' animals look, as a link cost; the ``_el_tr.h5``.

:class:`EmbeddingCost` is a ``stitch_tracklets(..., extra_cost=)`` hook. Each tracklet end gets the
normalised mean of the per-frame embeddings of the ``window`` frames nearest it; the distance ``d``
between a's end and b's start (unit vectors: 0 to 2) becomes a cost in body sizes, the motion costs'
unit, calibrated on training triplets: ``weight * clip((d - mid) / half, -1, 1)`` with ``mid`` halfway
between the typical same-animal and different-animal distances and ``half`` half their difference. So
a link whose ends look alike is up to ``weight`` cheaper, one whose ends look different up to ``weight``
dearer; an uncalibrated cost (raw ``weight * d``) raised every link, so stitching dropped links and
leftover tracklets and lost IDF1. Where either end has no embedding it adds nothing. numpy only: the
embeddings come in as arrays ``[T, N, E]`` (NaN: no sample) from :func:`lightning_dlc.pipelines.reid.embed_features`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightning_dlc.tracking import files
from lightning_dlc.tracking.tracklets import Tracklet
from lightning_dlc.tracking.triplets import Triplets, tracklet_rows

__all__ = ["EmbeddingCost", "fragment_tracklets", "reid_tracks_path"]


class EmbeddingCost:
    """Calibrated embedding distance between the linked ends of two tracklets (see the module doc).

    ``same`` / ``different``: typical distances of two samples of one animal and of two animals
    (:meth:`calibrated` measures them on triplets; the defaults put the midpoint at 1)."""

    def __init__(self, embeddings: np.ndarray, keypoints: np.ndarray, weight: float = 1.0, window: int = 10,
                 same: float = 0.0, different: float = 2.0):
        if not different > same:
            raise ValueError(f"different ({different}) must exceed same ({same}): the embedding does not "
                             "tell the animals apart")
        self.embeddings, self.keypoints = embeddings, keypoints
        self.weight, self.window = float(weight), int(window)
        self.same, self.different = float(same), float(different)
        self._ends: dict[tuple, np.ndarray] = {}

    @classmethod
    def calibrated(cls, embeddings: np.ndarray, keypoints: np.ndarray, triplets: Triplets,
                   **options) -> "EmbeddingCost":
        """The cost with ``same`` / ``different`` the median anchor-positive / anchor-negative distances of
        ``triplets`` (the training ones: nothing of the held-out part is used)."""
        def distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            d = np.linalg.norm(embeddings[x[:, 0], x[:, 1]] - embeddings[y[:, 0], y[:, 1]], axis=-1)
            return d[np.isfinite(d)]
        same, different = distances(triplets.anchor, triplets.positive), distances(triplets.anchor, triplets.negative)
        if not len(same) or not len(different):
            raise ValueError("no triplet with embeddings to calibrate the re-ID cost on")
        return cls(embeddings, keypoints, same=float(np.median(same)), different=float(np.median(different)),
                   **options)

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

    def distances(self, earlier: Sequence[Tracklet], i: np.ndarray, later: Sequence[Tracklet],
                  j: np.ndarray) -> np.ndarray:
        """Embedding distances ``[P]`` between ``earlier[i]``'s end and ``later[j]``'s start (NaN: unknown)."""
        ends = {k: self.end_embedding(earlier[k], at_start=False) for k in np.unique(i)}
        starts = {k: self.end_embedding(later[k], at_start=True) for k in np.unique(j)}
        a = np.stack([ends[k] for k in i]).reshape(len(i), -1)
        b = np.stack([starts[k] for k in j]).reshape(len(j), -1)
        return np.linalg.norm(a - b, axis=-1)

    def __call__(self, earlier: Sequence[Tracklet], i: np.ndarray, later: Sequence[Tracklet],
                 j: np.ndarray) -> np.ndarray:
        mid, half = (self.same + self.different) / 2, (self.different - self.same) / 2
        z = np.clip((self.distances(earlier, i, later, j) - mid) / half, -1.0, 1.0)
        return self.weight * np.nan_to_num(z, nan=0.0)


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


REID_SUFFIX = "_tr"  # DeepLabCut's: <prefix>_<el|bx|sk>_tr.h5


def reid_tracks_path(prefix: str | Path, method: str = "ellipse") -> Path:
    """``<prefix>_<el|bx|sk>_tr.h5``: tracks stitched with re-identification (DeepLabCut's name)."""
    prefix = Path(prefix)
    path = files.tracks_path(prefix.parent, prefix.name, method)
    return path.with_name(f"{path.stem}{REID_SUFFIX}.h5")
