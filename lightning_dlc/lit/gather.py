"""Validation outputs collected on every process, one row per image."""
from __future__ import annotations

import lightning as L
import numpy as np
import torch


def gather_per_image(module: L.LightningModule, parts: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray] | None:
    """Concatenate the batches' tensors, all-gather them across processes, keep each image once.

    Each part holds ``index`` (the dataset index of its images) and tensors with one row
    per image. The distributed sampler pads the last batches with repeated images, so
    rows are deduplicated by index (sorted by it). ``parts`` is emptied for the next epoch;
    None when it was empty.
    """
    if not parts:
        return None
    gathered = {k: module.all_gather(torch.cat([p[k] for p in parts])) for k in parts[0]}
    parts.clear()
    if gathered["index"].ndim > 1:  # [world, n, ...] under DDP
        gathered = {k: v.flatten(0, 1) for k, v in gathered.items()}
    _, first = np.unique(gathered["index"].cpu().numpy(), return_index=True)
    return {k: v.cpu().numpy()[first] for k, v in gathered.items()}
