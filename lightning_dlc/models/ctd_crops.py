"""Conditional top-down (CTD) crops: one crop per condition (a pose proposal), the model given crop and condition.

DeepLabCut 3 crops a CTD model's input around its condition: the condition's keypoints + the
model's box margin (``model.top_down.margin``; DeepLabCut's ``data.bbox_margin``, 25 in its ctd_* configs),
clipped to the image; in training the condition is synthesized from the labels (:func:`~lightning_dlc.data.ctd_conditions.sample_conditions`)
and an animal whose condition is empty is cropped at its label box. The model receives the
condition in crop pixels (``model(images, conditions=[M, K, 3])``).
"""
from __future__ import annotations

import torch

from lightning_dlc.data.crops import boxes_with_margin, to_crop
from lightning_dlc.data.ctd_conditions import GenerativeSampling, overlapping, sample_conditions
from lightning_dlc.models.preprocess import normalize_images
from lightning_dlc.models.top_down import Crops, TopDown


def is_conditional(model) -> bool:
    """Whether a pose model needs conditions (a CTD model: its backbone, or the model, says ``conditional``)."""
    return bool(getattr(model, "conditional", False) or getattr(getattr(model, "backbone", None), "conditional", False))


def require_conditions(model, conditions) -> None:
    """A CTD model without conditions (or conditions for a model that takes none) is a user error: say so."""
    if is_conditional(model) and conditions is None:
        raise ValueError("this is a conditional top-down (CTD) model: it refines the poses of a bottom-up model. "
                         "Give conditions: conditions=gt to train (DeepLabCut's generative sampling), "
                         "conditions=<bottom-up snapshot or predictions file> to evaluate or analyze")
    if not is_conditional(model) and conditions not in (None, "gt"):
        raise ValueError(f"conditions={conditions} serve conditional top-down models (model=ctd_*), "
                         "but this model takes none")


def generative_sampling(node, meta) -> GenerativeSampling:
    """The ``gen_sampling`` config (DeepLabCut's ``data.gen_sampling``) for a project; symmetry by bodypart names."""
    values = dict(node or {})
    pairs = values.pop("keypoints_symmetry", None)
    if pairs:
        index = {name: i for i, name in enumerate(meta.bodyparts)}
        unknown = sorted({p for pair in pairs for p in pair if isinstance(p, str) and p not in index})
        if unknown:
            raise ValueError(f"gen_sampling.keypoints_symmetry names {unknown}, not bodyparts {list(meta.bodyparts)}")
        values["symmetry"] = tuple((index.get(a, a), index.get(b, b)) for a, b in pairs)
    if "keypoint_sigmas" in values:
        values["keypoint_sigma"] = values.pop("keypoint_sigmas")
    return GenerativeSampling(**values)


def missing_as_nan(conditions: torch.Tensor) -> torch.Tensor:
    """Conditions ``[..., K, 3]`` with every keypoint that is not finite (or has score <= 0) as NaN, score 0
    (the tensor form of :func:`lightning_dlc.data.ctd_conditions.unseen_keypoints`)."""
    present = torch.isfinite(conditions[..., :2]).all(-1) & (torch.nan_to_num(conditions[..., 2], nan=0.0) > 0)
    missing = torch.tensor([float("nan"), float("nan"), 0.0], device=conditions.device, dtype=conditions.dtype)
    return torch.where(present[..., None], conditions, missing)


def condition_boxes(conditions: torch.Tensor, sizes: torch.Tensor, margin: torch.Tensor | float) -> torch.Tensor:
    """``[..., N, 4]`` xyxy boxes around conditions ``[..., N, K, 3]`` + ``margin``, clipped to ``sizes (h, w)``
    (DeepLabCut's ``bbox_from_keypoints``); NaN for a condition without keypoints."""
    return boxes_with_margin(conditions, margin, sizes)


def synthetic_conditions(top_down: TopDown, keypoints: torch.Tensor, sizes: torch.Tensor,
                         scale: torch.Tensor | float = 1.0, sampling: GenerativeSampling = GenerativeSampling(),
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B, N, K, 3]`` a condition per labeled animal of labels ``[B, N, K, 3]``, synthesized from its labels
    (image pixels; NaN rows for animals without labels)."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=keypoints.device).reshape(-1, 1)
    label = top_down.label_boxes(keypoints, sizes, scale)  # [B, N, 4]
    b_idx, n_idx = torch.nonzero(torch.isfinite(label).all(-1), as_tuple=True)
    keypoints = keypoints.float()
    # the animals whose boxes overlap this one's, itself included (DeepLabCut's "near" keypoints)
    near_mask = overlapping(label)[b_idx, n_idx]  # [M, N]
    near = torch.where(near_mask[..., None, None], keypoints[b_idx], torch.full_like(keypoints[b_idx], float("nan")))
    box = label[b_idx, n_idx]
    # DeepLabCut's annotation box is whole pixels (xywh, truncated): its area sets the error distances
    area = (box[:, 2:] - box[:, :2]).trunc().prod(-1)
    out = torch.full_like(keypoints, float("nan"))
    out[b_idx, n_idx] = sample_conditions(keypoints[b_idx, n_idx], near, area, sizes[b_idx].to(keypoints), sampling,
                                          generator)
    return out


def training_crops(top_down: TopDown, images: torch.Tensor, keypoints: torch.Tensor, sizes: torch.Tensor,
                   scale: torch.Tensor | float = 1.0, sampling: GenerativeSampling = GenerativeSampling(),
                   generator: torch.Generator | None = None) -> tuple[Crops, torch.Tensor]:
    """One crop per labeled animal around its synthesized condition; returns the crops (labels in crop pixels)
    and the conditions ``[M, K, 3]`` in crop pixels (NaN, score 0: missing)."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=keypoints.device).reshape(-1, 1)
    conditions = synthetic_conditions(top_down, keypoints, sizes, scale, sampling, generator)
    label = top_down.label_boxes(keypoints, sizes, scale)
    around = condition_boxes(conditions, sizes[:, None].to(conditions), top_down.margin * scale)
    boxes = torch.where(torch.isfinite(around).all(-1, keepdim=True), around, label)  # empty condition: label box
    crops = top_down.training_crops(images, keypoints, sizes, scale, jitter=False, boxes=boxes)
    return crops, to_crop(conditions[crops.image_index, crops.individual], crops.transforms)


@torch.no_grad()
def predict(model, images: torch.Tensor, conditions: torch.Tensor, channels_last: bool = False,
            autocast_dtype: torch.dtype | None = None, micro_batch: int | None = None, net=None,
            scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Refined poses ``[B, N, K, 3]`` (image pixels, score) of the animals proposed by ``conditions [B, N, K, 3]``
    (image pixels; NaN / score 0: missing); row n refines condition n, NaN where condition n is empty.
    ``scale``: the factor ``images`` were resized by (one number or one per image): the margin is in original
    pixels, as in :func:`training_crops`, so crops show as much context as in training."""
    top_down: TopDown = model.top_down
    conditions = conditions.to(images.device, torch.float32)
    sizes = torch.tensor(images.shape[-2:], device=images.device).expand(images.shape[0], 2)
    scale = torch.as_tensor(scale, dtype=torch.float32, device=images.device).reshape(-1, 1)
    boxes = condition_boxes(conditions, sizes[:, None], top_down.margin * scale)
    crops = top_down.crops(images, boxes)
    b, n, k = conditions.shape[:3]
    if not len(crops.image_index):
        return images.new_full((b, n, k, 3), float("nan"), dtype=torch.float32)
    crop_conditions = to_crop(conditions[crops.image_index, crops.individual], crops.transforms)
    step = micro_batch or len(crops.images)
    found = []
    for i in range(0, len(crops.images), step):
        with torch.autocast(images.device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            outputs = (net or model)(normalize_images(crops.images[i: i + step], channels_last),
                                     conditions=crop_conditions[i: i + step])
        found.append(model.predict(outputs)["bodypart"][:, 0])
    return top_down.scatter(crops, torch.cat(found), (b, n, k, 3))
