"""Re-identification of one analyzed video, the whole chain: features file + tracklets -> triplets (train on
the first part of the video, test on the rest) -> :class:`~lightning_dlc.lit.reid.ReIDModule` -> per-frame
embeddings -> stitching with an embedding cost -> ``<video><scorer>_el_tr.h5``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_dlc.inference.features import FeaturesFile, features_path
from lightning_dlc.lit.reid import TripletDataset, train_reid
from lightning_dlc.models.reid import ReIDTransformer
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.locks import lock_path, output_lock
from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.tracking import files
from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file
from lightning_dlc.tracking.reid import REID_SUFFIX, EmbeddingCost, reid_tracks_path
from lightning_dlc.tracking.triplets import default_min_keypoints, isolated_samples, mine_triplets, usable_samples

log = logging.getLogger(__name__)

__all__ = ["ReIDResult", "embed_features", "reid_video"]


def embed_features(model: ReIDTransformer, features: FeaturesFile, min_keypoints: int) -> np.ndarray:
    """float32 ``[T, N, E]``: every analyzed animal's embedding, NaN where it has too few keypoints or is in a
    close encounter (mixed features; tracklets end there, so their end embeddings come from the frames before)."""
    usable = usable_samples(features.keypoints, min_keypoints) & isolated_samples(features.keypoints)
    out = np.full((*features.shape[:2], model.head[-1].out_features), np.nan, np.float32)
    for first, chunk in features.chunks():
        rows = usable[first: first + len(chunk)]
        out[first: first + len(chunk)][rows] = model.embed(chunk[rows])
    return out


@dataclass
class ReIDResult:
    tracks: Path                 # <prefix>_<el>_tr.h5
    triplet_accuracy: float      # held-out triplets (NaN when there were none or the tracks were kept)
    n_train: int
    n_test: int
    cost: EmbeddingCost | None   # the stitching cost the model gave (None: existing tracks kept)


def reid_video(prefix: str | Path, method: str = "ellipse", meta: ProjectMeta | None = None,
               n_tracks: int | None = None, train_epochs: int = 20, n_triplets: int = 1000,
               test_fraction: float = 0.2, cost_weight: float = 0.5, min_keypoints: int | None = None,
               overwrite: bool = False, save_as_csv: bool = False, seed: int = 0, log_dir=None,
               **stitch_options) -> ReIDResult:
    """The re-ID chain for one analyzed video ``<prefix>`` = ``<folder>/<video stem><scorer>`` (module doc).

    Needs ``<prefix>_features.h5`` (``analyze_videos(..., features=True)``); tracklets are made first if the
    ``_<el|bx|sk>.pickle`` is missing. Triplets: ``n_triplets`` from the first ``1 - test_fraction`` of the
    frames to train on, a quarter as many from the rest to test on. The model is saved beside the tracks as
    ``<prefix>_reid.ckpt``. ``stitch_options``: ``min_length``, ``split_tracklets``, ``max_gap``, ``fill_gaps`` of
    :func:`~lightning_dlc.tracking.pipeline.stitch_tracklet_file`. Holds the video's output lock
    (:func:`~lightning_dlc.project.locks.output_lock` on ``<prefix>.lock``) while it works.
    """
    prefix = Path(prefix)
    with output_lock(lock_path(prefix)):
        return _reid_video(prefix, method, meta, n_tracks, train_epochs, n_triplets, test_fraction, cost_weight,
                           min_keypoints, overwrite, save_as_csv, seed, log_dir, **stitch_options)


def _reid_video(prefix: Path, method, meta, n_tracks, train_epochs, n_triplets, test_fraction, cost_weight,
                min_keypoints, overwrite, save_as_csv, seed, log_dir, **stitch_options) -> ReIDResult:
    if reid_tracks_path(prefix, method).exists() and not overwrite:
        log.info("%s: already stitched with re-ID (overwrite=True remakes it)", reid_tracks_path(prefix, method))
        return ReIDResult(reid_tracks_path(prefix, method), float("nan"), 0, 0, None)
    with FeaturesFile(features_path(prefix)) as features:
        tracklet_file = convert_to_tracklets(prefix, method, meta)  # kept when it exists
        stored = files.read_tracklets(tracklet_file)
        n_bodyparts = features.shape[2]
        min_keypoints = default_min_keypoints(n_bodyparts) if min_keypoints is None else min_keypoints
        cut = int(round(len(features) * (1 - test_fraction)))
        mine = dict(keypoints=features.keypoints, min_keypoints=min_keypoints)
        train = mine_triplets(stored.tracklets, n_triplets=n_triplets, frames=(0, cut), seed=seed, **mine)
        test = mine_triplets(stored.tracklets, n_triplets=max(1, n_triplets // 4), frames=(cut, len(features)),
                             seed=seed + 1, **mine)
        if not len(train):
            raise ValueError(f"{prefix}: no triplets: re-identification needs tracklets of animals seen together "
                             f"(with >= {min_keypoints} keypoints) in the first {cut} frames")
        module, metrics = train_reid(TripletDataset(features, train), TripletDataset(features, test),
                                     features.shape[-1], n_bodyparts, log_dir or prefix.parent,
                                     epochs=train_epochs, seed=seed)
        with atomic_path(f"{prefix}_reid.ckpt", overwrite=True) as tmp:  # remade with the tracks it gave
            torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, tmp)
        cost = EmbeddingCost.calibrated(embed_features(module.model, features, min_keypoints), features.keypoints,
                                        train, weight=cost_weight)
    path = stitch_tracklet_file(prefix, method, n_tracks, meta, save_as_csv=save_as_csv, overwrite=True,
                                suffix=REID_SUFFIX, extra_cost=cost, **stitch_options)
    accuracy = metrics.get("test.triplet_accuracy", float("nan"))
    log.info("%s: re-ID triplet accuracy %.3f on %d held-out triplets -> %s", prefix, accuracy, len(test), path)
    return ReIDResult(path, accuracy, len(train), len(test), cost)
