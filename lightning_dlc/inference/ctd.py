"""Conditional top-down (CTD) inference: a bottom-up model proposes each animal's pose, the CTD model refines it.

:class:`ConditionalPredictor` is a :class:`~lightning_dlc.inference.predictor.Predictor` (same input,
same outputs, so :func:`~lightning_dlc.inference.analyze.analyze_video`, the evaluation and everything
after them work unchanged): per batch of frames, the bottom-up predictor's animals are the conditions
(DeepLabCut's ``CTDInferenceRunner.add_conditions``), each cropped with the CTD model's margin and
refined; row n of the output refines the bottom-up model's animal n. Conditions can also be given
(``predictor(frames, conditions=...)``, e.g. read from a predictions file with
:func:`~lightning_dlc.data.ctd_conditions.load_conditions`). Unique bodyparts come from the
bottom-up model (a CTD model has no head for them).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lightning_dlc.data.ctd_conditions import load_conditions, unseen_keypoints
from lightning_dlc.data.dataset import resize_points, to_original_pixels
from lightning_dlc.inference.predict import load_model, predict_batch
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models import ctd_crops

log = logging.getLogger(__name__)

__all__ = ["ConditionalPredictor", "conditional_predictor", "dataset_conditions"]


def _as_conditions(poses: np.ndarray) -> np.ndarray:
    """Predictions ``[B, N, K, 3]`` as conditions: keypoints without a position or score NaN with score 0."""
    poses = np.array(poses[..., :3], dtype=np.float32)
    poses[unseen_keypoints(poses)] = (np.nan, np.nan, 0.0)
    return poses


class ConditionalPredictor(Predictor):
    """A CTD model's predictor, its conditions from ``bottom_up`` (a :class:`Predictor` of a bottom-up model of
    the same project) unless given per call. Other arguments: :class:`Predictor`'s."""

    def __init__(self, model, bottom_up: Predictor | None = None, **kwargs):
        if not ctd_crops.is_conditional(model):
            raise ValueError("ConditionalPredictor needs a conditional top-down model (model=ctd_*)")
        super().__init__(model, **kwargs)
        if bottom_up is not None:
            if bottom_up.top_down or ctd_crops.is_conditional(bottom_up.model):
                raise ValueError("the conditions of a CTD model come from a bottom-up model; this one is top-down")
            if list(bottom_up.meta.bodyparts) != list(self.meta.bodyparts):
                raise ValueError(f"the bottom-up model's bodyparts {list(bottom_up.meta.bodyparts)} are not the CTD "
                                 f"model's {list(self.meta.bodyparts)}: both must come from the same project")
        self.bottom_up = bottom_up

    def proposals(self, images) -> dict[str, np.ndarray]:
        """The bottom-up model's predictions on ``images`` (the conditions, and its unique bodyparts)."""
        if self.bottom_up is None:
            raise ValueError("this CTD model needs conditions: a bottom-up snapshot (conditions=...) or "
                             "conditions given per call")
        return self.bottom_up(images)

    @torch.no_grad()
    def __call__(self, images, boxes=None, features: bool = False, conditions=None) -> dict[str, np.ndarray]:
        """Refined poses ``bodypart [B, N, K, 3]`` of ``conditions [B, N, K, 3]`` (frame pixels; default: the
        bottom-up model's animals), ``unique_bodypart`` (the bottom-up model's, or NaN)."""
        if features:
            raise ValueError("keypoint features are not read from conditional top-down models")
        if boxes is not None:
            raise ValueError("a CTD model crops around its conditions, not around boxes")
        unique = None
        if conditions is None:
            proposed = self.proposals(images)
            conditions, unique = proposed["bodypart"], proposed.get("unique_bodypart")
        x, scale = self._prepare(images)
        conditions = torch.as_tensor(_as_conditions(np.asarray(conditions)), device=x.device)
        if conditions.ndim != 4 or conditions.shape[0] != x.shape[0] or conditions.shape[2] != len(self.meta.bodyparts):
            raise ValueError(f"conditions must be [B={x.shape[0]}, N, {len(self.meta.bodyparts)} bodyparts, 3], "
                             f"got {tuple(conditions.shape)}")
        if scale != 1.0:  # into the resized frames' pixels, as the model sees them
            conditions = torch.cat([resize_points(conditions[..., :2], scale), conditions[..., 2:]], -1)
        crop_h, crop_w = self.model.top_down.crop_size
        micro = self._micro(conditions.shape[0] * conditions.shape[1], crop_h, crop_w)
        refined = ctd_crops.predict(self.model, x, conditions, self.channels_last, self.autocast_dtype, micro,
                                    self._net, scale=scale)
        refined = torch.cat([to_original_pixels(refined[..., :2], scale), refined[..., 2:]], -1)
        n_unique = len(self.meta.unique_bodyparts)
        if unique is None:
            unique = np.full((x.shape[0], n_unique, 3), np.nan, np.float32)
        return {"bodypart": refined.float().cpu().numpy(), "unique_bodypart": np.asarray(unique, np.float32)}

    def predict_images(self, images, boxes=None) -> dict[str, np.ndarray]:
        if boxes is not None:
            raise ValueError("a CTD model crops around its conditions, not around boxes")
        return super().predict_images(images)


def conditional_predictor(snapshot, conditions, device=None, precision="auto", channels_last: bool = True,
                          compile: bool = False, project=None, micro_batch: int | None = None) -> ConditionalPredictor:
    """The predictor of a CTD snapshot (file or run folder) with a bottom-up snapshot (file or run folder, or a
    :class:`Predictor`) as its conditions."""
    ctd = Predictor.from_snapshot(snapshot, device, precision, channels_last, compile, project, micro_batch,
                                  detector=None)
    if conditions is None:
        raise ValueError(f"{snapshot} is a conditional top-down (CTD) model: give conditions=<bottom-up snapshot "
                         "or run folder> (its predictions are the poses the CTD model refines)")
    if isinstance(conditions, (str, Path)) and Path(conditions).suffix.lower() in (".h5", ".json", ".pickle"):
        raise ValueError(f"conditions={conditions}: a predictions file serves evaluation (conditions for labeled "
                         "images); to analyze videos give the bottom-up snapshot, as DeepLabCut requires")
    bottom_up = conditions if isinstance(conditions, Predictor) else Predictor.from_snapshot(
        conditions, device, precision, channels_last, compile, project, micro_batch, detector=None)
    # the bottom-up snapshot rides in the run state (as a detector's does), so resuming checks it too
    info = replace(ctd.info, detector_snapshot=bottom_up.info.snapshot)
    return ConditionalPredictor(ctd.model, bottom_up, device=ctd.device, precision=ctd.precision,
                                channels_last=channels_last, compile=compile, pad_multiple=ctd.pad_multiple,
                                resize=ctd.resize, info=info, micro_batch=micro_batch)


PREDICTION_FILES = (".h5", ".json", ".pickle")


def dataset_conditions(source, keys, meta, device=None) -> Callable[[dict], torch.Tensor]:
    """What a CTD model refines when evaluated on a dataset: ``batch -> [B, N, K, 3]`` in the batch's pixels.

    ``source``: a bottom-up snapshot (file or run folder; it predicts the batch's images), or its predictions on
    the images (DeepLabCut's evaluation ``.h5`` or ``.json``, rows named like ``keys``, the dataset's image keys).
    """
    if source is None or source == "gt":
        raise ValueError("a conditional top-down (CTD) model is evaluated on a bottom-up model's poses: give "
                         "conditions=<bottom-up snapshot, run folder or its evaluation predictions .h5>")
    path = Path(source)
    if path.suffix.lower() in PREDICTION_FILES:
        found = load_conditions(path, meta.bodyparts, images=list(keys))
        n = max([meta.max_individuals, *(len(v) for v in found.values())])
        table = np.full((len(keys), n, len(meta.bodyparts), 3), np.nan, np.float32)
        for i, key in enumerate(keys):
            table[i, : len(found[key])] = found[key]
        missing = sum(not len(found[key]) for key in keys)
        if keys and missing == len(keys):  # nothing to refine: more likely rows named otherwise than no animals
            raise ValueError(f"{path}: no conditions for any of the {len(keys)} images; its rows must be named as "
                             f"the images are (e.g. {list(keys)[0]!r})")
        if missing:
            log.warning("%s: no conditions for %d of %d images (their animals are not predicted)", path, missing,
                        len(keys))
        table = torch.from_numpy(table)

        def from_file(batch: dict) -> torch.Tensor:
            chosen = table[batch["index"]]
            scale = batch["scale"].to(torch.float32).view(-1, 1, 1, 1)
            return torch.cat([resize_points(chosen[..., :2], scale), chosen[..., 2:]], -1)
        return from_file
    if path.is_dir():
        from lightning_dlc.models.snapshot_files import find_snapshots

        path = find_snapshots(path, "best")[0]
    bottom_up = load_model(path, device or "cpu")
    if bottom_up.top_down is not None or ctd_crops.is_conditional(bottom_up):
        raise ValueError(f"conditions={source}: the conditions of a CTD model come from a bottom-up model")
    if list(bottom_up.meta.bodyparts) != list(meta.bodyparts):
        raise ValueError(f"conditions={source}: its bodyparts {list(bottom_up.meta.bodyparts)} are not the "
                         f"project's {list(meta.bodyparts)}")

    def from_model(batch: dict) -> torch.Tensor:  # scale 1: poses stay in the batch's pixels
        return predict_batch(bottom_up, batch["image"], 1.0)["bodypart"]
    return from_model
