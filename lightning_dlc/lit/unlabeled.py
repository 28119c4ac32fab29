"""The unsupervised losses (``losses`` group) on a batch of unlabeled video frames: the training step's
second half, and the PCA fit from the training labels at the start of training.

Which losses a model takes: one animal per heatmap (single-animal models, the pose stage of top-down
models) all three; multi-animal bottom-up models only ``unimodal`` (one peak per animal): their maps
carry no identity, so which peak of frame t is which animal in frame t + 1 (temporal) or belongs to
which pose (PCA) is unknown before assembly, which is not differentiable.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

from lightning_dlc.data.crops import boxes_with_margin, from_crop, to_crop
from lightning_dlc.data.dataset import resize_points
from lightning_dlc.models.ctd_crops import is_conditional
from lightning_dlc.models.losses.soft_keypoints import keypoint_scores, soft_keypoints
from lightning_dlc.models.losses.unsupervised import KeypointTargets, PcaSingleViewLoss, UnsupervisedLoss
from lightning_dlc.models.pose_model import PoseModel

log = logging.getLogger(__name__)

ONE_ANIMAL_ONLY = ("temporal", "pca_singleview")


def build_unsupervised_losses(node: Mapping | None) -> nn.ModuleDict | None:
    """The ``losses`` group's choice (``losses=[temporal,unimodal]``) as modules keyed by name; None if none."""
    if not node:
        return None
    losses = nn.ModuleDict()
    for key, entry in node.items():
        if entry is None:
            continue
        loss = instantiate(entry)
        if not isinstance(loss, UnsupervisedLoss):
            raise TypeError(f"losses.{key}: {type(loss).__name__} is not an UnsupervisedLoss")
        losses[loss.name] = loss
    return losses or None


def check_losses(model: PoseModel, losses: Mapping[str, UnsupervisedLoss]) -> None:
    """Fail before training where a loss cannot apply to this model, saying why."""
    if is_conditional(model):
        raise ValueError(f"losses {sorted(losses)}: a conditional top-down (CTD) model needs each animal's "
                         "condition pose, which unlabeled video does not have; train it on labeled frames only")
    bottom_up_multi = model.top_down is None and model.meta.multianimal and model.meta.max_individuals > 1
    refused = [name for name in losses if name in ONE_ANIMAL_ONLY] if bottom_up_multi else []
    if refused:
        raise ValueError(
            f"losses {refused} need one animal per heatmap: a multi-animal bottom-up model's maps carry no "
            "identity, so a keypoint cannot be followed across frames or fitted to a pose before assembly. "
            "Use losses=[unimodal] (one peak per animal), or a top-down model (model=top_down_*), whose pose "
            "stage takes all three")
    head = model.heads["bodypart"]
    if "unimodal" in losses and head_is_simcc(head):
        raise ValueError(f"losses=[unimodal] reads heatmaps; {type(head).__name__} has none (RTMPose classifies "
                         "coordinates): use losses=[temporal,pca_singleview]")


def head_is_simcc(head: nn.Module) -> bool:
    return hasattr(head, "cls_x")


def training_poses(datamodule) -> np.ndarray:
    """Every labeled animal of the training split (never the test split), ``[M, K, 3]`` in input pixels."""
    datamodule.setup("fit")
    records = datamodule.splits["train"].records
    scale = float(datamodule.resize or 1.0)
    poses = [np.asarray(r.keypoints, dtype=np.float64).reshape(-1, *np.shape(r.keypoints)[-2:]) for r in records]
    poses = np.concatenate(poses) if poses else np.zeros((0, 0, 3))
    poses[..., :2] = resize_points(poses[..., :2], scale)
    return poses


def fit_pca(losses: Mapping[str, UnsupervisedLoss], datamodule) -> None:
    """Fit the PCA loss's subspace from the training labels, once, at the start of training."""
    for loss in losses.values():
        if isinstance(loss, PcaSingleViewLoss):
            if datamodule is None:
                raise ValueError("losses=[pca_singleview] fits its subspace from the datamodule's training labels; "
                                 "train with a datamodule (trainer.fit(module, datamodule=...))")
            loss.fit(training_poses(datamodule))


class FrameOutputs(NamedTuple):
    """The bodypart head's outputs on a batch of frames and one animal's keypoints read from them (``[M, K, 2]``
    frame pixels, no gradient; None for multi-animal bottom-up models); ``to_head`` takes frame pixels to the
    pixels of the head's input (a top-down model's crops)."""

    outputs: dict
    keypoints: torch.Tensor | None
    to_head: Callable[[torch.Tensor], torch.Tensor]


def _unchanged(points: torch.Tensor) -> torch.Tensor:
    return points


def _crops_at(model: PoseModel, frames: torch.Tensor, boxes: torch.Tensor) -> FrameOutputs:
    """The pose stage on crops of ``frames`` at ``boxes [M, 1, 4]``, keypoints in frame pixels."""
    crops = model.top_down.crops(frames, boxes)
    outputs = model(crops.images)["bodypart"]
    transforms = crops.transforms
    with torch.no_grad():
        points = from_crop(soft_keypoints(model.heads["bodypart"], outputs), transforms.to(frames.device))
    return FrameOutputs(outputs, points, lambda xy: to_crop(xy, transforms.to(xy.device)))


def frame_outputs(model: PoseModel, frames: torch.Tensor) -> FrameOutputs:
    """The bodypart head on normalized ``frames [M, 3, H, W]`` (gradient kept) and one animal's keypoints. A
    top-down model's pose stage crops each frame at the box around its own prediction on the whole frame
    (unlabeled frames have no labels and no boxes)."""
    head = model.heads["bodypart"]
    if model.top_down is None:
        outputs = model(frames)["bodypart"]
        if model.meta.multianimal and model.meta.max_individuals > 1:
            return FrameOutputs(outputs, None, _unchanged)  # several animals: no one set of keypoints
        with torch.no_grad():
            keypoints = soft_keypoints(head, outputs)
        return FrameOutputs(outputs, keypoints, _unchanged)
    h, w = frames.shape[-2:]
    whole = frames.new_tensor([0.0, 0.0, w, h]).expand(len(frames), 1, 4)
    with torch.no_grad():
        rough = _crops_at(model, frames, whole).keypoints
        boxes = boxes_with_margin(rough[:, None], model.top_down.margin, size=(h, w))
    return _crops_at(model, frames, boxes)


def unsupervised_losses(model: PoseModel, losses: Mapping[str, UnsupervisedLoss], unlabeled: Mapping,
                        channels_last: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Each loss (unweighted, what is trained) on a batch of unlabeled sequences, and each keypoint loss's pixel
    measure (``<name>_px``, no gradient). ``unlabeled``: ``images [B, T, 3, H, W]`` normalized as the labeled
    images, ``frame_index [B, T]`` (contract of the unlabeled video loader)."""
    images = unlabeled["images"]
    B, T = images.shape[:2]
    frames = images.flatten(0, 1)
    if channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    seen = frame_outputs(model, frames)
    head = model.heads["bodypart"]
    scores = keypoint_scores(head, seen.outputs) if seen.keypoints is not None else None
    values, measures = {}, {}
    for name, loss in losses.items():
        if loss.reads == "heatmaps":
            n_peaks = 1 if model.top_down is not None else max(int(model.meta.max_individuals), 1)
            values[name] = loss(head, seen.outputs, n_peaks)
            continue
        if loss.reads == "sequences":  # [B, T, K, 2] and where each frame is in the video
            keypoints = seen.keypoints.unflatten(0, (B, T))
            given = {"frame_index": unlabeled.get("frame_index"),
                     "scores": None if scores is None else scores.unflatten(0, (B, T))}
        else:  # "keypoints": one pose per frame, [B * T, K, 2]
            keypoints, given = seen.keypoints, {"scores": scores}
        measures[f"{name}_px"] = loss(keypoints, **given)
        wanted = loss.targets(keypoints, **given)
        wanted = KeypointTargets(seen.to_head(wanted.points.reshape(B * T, *wanted.points.shape[-2:])),
                                 wanted.moved.reshape(B * T, -1), wanted.counted.reshape(B * T, -1))
        values[name] = loss.head_loss(head, seen.outputs, wanted)
    return values, measures
