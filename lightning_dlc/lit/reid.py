"""Training the re-identification transformer on tracklet triplets.

:class:`ReIDModule` learns :class:`~lightning_dlc.models.reid.ReIDTransformer` with a triplet loss
(margin on L2-normalised embeddings), logging ``train.loss`` and ``test.triplet_accuracy`` (the share of
triplets with d(anchor, positive) < d(anchor, negative)) to TensorBoard. The whole chain for a video
(features file + tracklets -> triplets -> this training -> stitching) is :mod:`lightning_dlc.pipelines.reid`.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from lightning_dlc.lit.quiet import quiet_third_party
from lightning_dlc.models.reid import ReIDTransformer

__all__ = ["ReIDModule", "TripletDataset", "train_reid"]


class TripletDataset(Dataset):
    """Items ``[3, K, D]`` float32 (anchor, positive, negative features; NaN: missing keypoint).

    ``features``: anything with ``rows(frames, individuals) -> [n, K, D]`` (the video's
    :class:`~lightning_dlc.inference.features.FeaturesFile`); ``triplets``: ``anchor``, ``positive``,
    ``negative`` ``(frame, individual)`` arrays (:class:`~lightning_dlc.tracking.triplets.Triplets`). Each
    distinct sample is read from the file once and kept in float16, as stored."""

    def __init__(self, features, triplets):
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
    quiet_third_party()
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
