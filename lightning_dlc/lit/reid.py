"""Training the re-identification transformer on tracklet triplets, and using it to stitch a video.

:class:`ReIDModule` learns :class:`~lightning_dlc.models.reid.ReIDTransformer` with a triplet loss
(margin on L2-normalised embeddings), logging ``train.loss`` and ``test.triplet_accuracy`` (the share of
triplets with d(anchor, positive) < d(anchor, negative)) to TensorBoard. :func:`reid_video` is the
whole chain for one analyzed video: features file + tracklets -> triplets (train on the first part of
the video, test on the rest) -> model -> per-frame embeddings -> stitching with an embedding cost ->
``<video><scorer>_el_tr.h5``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from lightning_dlc.inference.features import FeaturesFile, features_path
from lightning_dlc.models.reid import ReIDTransformer
from lightning_dlc.project.locks import lock_path, output_lock
from lightning_dlc.project.records import ProjectMeta
from lightning_dlc.tracking import files
from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file
from lightning_dlc.tracking.reid import REID_SUFFIX, EmbeddingCost, reid_tracks_path
from lightning_dlc.tracking.triplets import (Triplets, default_min_keypoints, isolated_samples, mine_triplets,
                                             usable_samples)

log = logging.getLogger(__name__)

__all__ = ["ReIDModule", "ReIDResult", "TripletDataset", "embed_features", "reid_video", "train_reid"]


class TripletDataset(Dataset):
    """Items ``[3, K, D]`` float32 (anchor, positive, negative features; NaN: missing keypoint).

    Each distinct sample is read from the file once and kept in float16, as stored."""

    def __init__(self, features: FeaturesFile, triplets: Triplets):
        pairs = np.concatenate([triplets.anchor, triplets.positive, triplets.negative]).reshape(-1, 2)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        self.bank = torch.from_numpy(features.rows(unique[:, 0], unique[:, 1]).astype(np.float16))
        self.index = torch.from_numpy(inverse.reshape(3, -1).T.copy())

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.bank[self.index[i]].float()


class ReIDModule(L.LightningModule):
    """Triplet-loss training of the embedding; batches are ``[B, 3, K, D]`` (anchor, positive, negative)."""

    def __init__(self, in_channels: int, n_bodyparts: int, margin: float = 0.2, lr: float = 3e-4,
                 weight_decay: float = 1e-4, **model_options):
        super().__init__()
        self.save_hyperparameters()
        self.model = ReIDTransformer(in_channels, n_bodyparts, **model_options)

    def _distances(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = batch.shape[0]
        flat = batch.flatten(0, 1)
        anchor, positive, negative = self.model(flat, torch.isfinite(flat).all(-1)).view(b, 3, -1).unbind(1)
        return anchor, positive, negative

    def training_step(self, batch, batch_idx):
        anchor, positive, negative = self._distances(batch)
        loss = F.triplet_margin_loss(anchor, positive, negative, margin=self.hparams.margin)
        self.log("train.loss", loss, on_epoch=True, on_step=False, batch_size=len(batch))
        return loss

    def _accuracy(self, batch) -> torch.Tensor:
        anchor, positive, negative = self._distances(batch)
        return ((anchor - positive).norm(dim=-1) < (anchor - negative).norm(dim=-1)).float().mean()

    def test_step(self, batch, batch_idx):
        self.log("test.triplet_accuracy", self._accuracy(batch), batch_size=len(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def train_reid(train: TripletDataset, test: TripletDataset | None, in_channels: int, n_bodyparts: int,
               log_dir: str | Path, epochs: int = 20, batch_size: int = 64, seed: int = 0,
               **module_options) -> tuple[ReIDModule, dict]:
    """Fit a :class:`ReIDModule` (TensorBoard logs in ``log_dir/reid``); returns it and the test metrics."""
    L.seed_everything(seed, verbose=False)
    module = ReIDModule(in_channels, n_bodyparts, **module_options)
    module.model.fit_normalization(train.bank)
    trainer = L.Trainer(max_epochs=epochs, logger=TensorBoardLogger(str(log_dir), name="reid"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="auto", devices=1, log_every_n_steps=1)
    trainer.fit(module, DataLoader(train, batch_size=batch_size, shuffle=True))
    metrics = {}
    if test is not None and len(test):
        metrics = trainer.test(module, DataLoader(test, batch_size=batch_size), verbose=False)[0]
    module.eval()
    return module, {k: float(v) for k, v in metrics.items()}


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
        torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()},
                   f"{prefix}_reid.ckpt")
        cost = EmbeddingCost.calibrated(embed_features(module.model, features, min_keypoints), features.keypoints,
                                        train, weight=cost_weight)
    path = stitch_tracklet_file(prefix, method, n_tracks, meta, save_as_csv=save_as_csv, overwrite=True,
                                suffix=REID_SUFFIX, extra_cost=cost, **stitch_options)
    accuracy = metrics.get("test.triplet_accuracy", float("nan"))
    log.info("%s: re-ID triplet accuracy %.3f on %d held-out triplets -> %s", prefix, accuracy, len(test), path)
    return ReIDResult(path, accuracy, len(train), len(test), cost)
