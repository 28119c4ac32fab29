"""DeepLabCut's ``data`` section of a pytorch_config (augmentation, top-down crops and box jitter,
padding) as our ``augment``, ``model.top_down`` and ``data`` settings, for
:mod:`lightning_dlc.project.pytorch_config_read` (``tr``: its translator, which collects values and
refusals). Keys with no counterpart here are refused by name with the reason."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CROP_METHODS = {"uniform": 0.0, "keypoints": 1.0, "hybrid": 0.9}
# DeepLabCut's data.train keys with no counterpart in our augment group, and why
REFUSED_AUGMENTATIONS = {
    "resize": "data.resize scales whole images instead", "longest_max_size": "data.resize scales whole images instead",
    "hist_eq": "no histogram equalization in our augment group", "covering": "no coarse dropout in our augment group",
    "elastic_transform": "no elastic transform in our augment group",
    "grayscale": "our grayscale_p is a full conversion, DeepLabCut's a 0.5-1 blend",
    "scale_to_unit_range": "images are always ImageNet-normalized here",
    "collate": "batches are padded, not resized (data.resize scales images)",
}


def translate_data(tr, data: Mapping) -> None:
    """``data``: bbox_margin, colormode, inference and train transforms (DeepLabCut's keys)."""
    for key in sorted(set(data) - {"bbox_margin", "colormode", "inference", "train", "gen_sampling", "loader"}):
        tr.refuse(f"data.{key}", "not a key of DeepLabCut's data section")
    if str(data.get("colormode", "RGB")) != "RGB":
        tr.refuse("data.colormode", "images are read as RGB")
    if data.get("loader"):
        tr.refuse("data.loader", "the data come from data.project / data.shuffle here")
    if data.get("gen_sampling") and not getattr(tr, "conditional", False):  # a CTD model's: pytorch_config_read
        tr.refuse("data.gen_sampling", "generative sampling serves conditional top-down (ctd_*) models only")
    inference = dict(data.get("inference") or {})
    train = dict(data.get("train") or {})
    if tr.top_down:
        crop = train.get("top_down_crop") or inference.get("top_down_crop")
        if crop:
            tr.set("model.top_down.crop_size", [int(crop["height"]), int(crop["width"])])
        if "bbox_margin" in data:
            tr.set("model.top_down.margin", float(data["bbox_margin"]))
            if not getattr(tr, "conditional", False):  # a CTD model has no detector: its boxes are its conditions'
                tr.set("detector.train.margin", float(data["bbox_margin"]))
        _bbox_jitter(tr, train.pop("random_bbox_transform", None))
    for name, split in (("inference", inference), ("train", train)):
        split.pop("top_down_crop", None)
        if split.pop("normalize_images", True) is not True:
            tr.refuse(f"data.{name}.normalize_images", "images are always ImageNet-normalized here")
        padding = split.pop("auto_padding", None)
        if padding:
            divisors = {int(padding.get("pad_height_divisor") or 1), int(padding.get("pad_width_divisor") or 1)}
            if len(divisors) > 1 or padding.get("min_height") or padding.get("min_width"):
                tr.refuse(f"data.{name}.auto_padding", f"{padding}: batches pad to one multiple (data.pad_multiple)")
            else:
                tr.set("data.pad_multiple", max(divisors.pop(), 1))
    for key, value in inference.items():
        if value:
            tr.refuse(f"data.inference.{key}", "inference transforms other than padding and the top-down crop "
                                                  "are not applied here")
    _augment(tr, train)

def _bbox_jitter(tr, jitter) -> None:
    if not jitter:
        tr.set("model.top_down.jitter_shift", 0.0)
        tr.set("model.top_down.jitter_scale", 0.0)
        return
    low, high = (float(v) for v in jitter.get("scale_factor", (0.75, 1.25)))
    tr.set("model.top_down.jitter_shift", float(jitter.get("shift_factor", 0.1)))
    tr.set("model.top_down.jitter_scale", round((high - low) / 2, 6))
    if abs((low + high) / 2 - 1) > 1e-6:
        tr.refuse("data.train.random_bbox_transform.scale_factor", f"[{low}, {high}]: scaling is symmetric around 1 here")
    tr.out.notes.append("data.train.random_bbox_transform: shift_prob/scale_prob/p are not copied (jitter applies "
                          "to every box, uniformly)")

def _augment(tr, train: dict) -> None:
    tr.out.choices["augment"] = "none"
    values: dict[str, Any] = {}
    crop = train.pop("crop_sampling", None)
    if crop:
        method = str(crop.get("method", "hybrid"))
        if method not in CROP_METHODS:
            tr.refuse("data.train.crop_sampling.method", f"{method!r}: {sorted(CROP_METHODS)} are built here")
        values["crop_size"] = [int(crop["height"]), int(crop["width"])]
        values["crop_sampling"] = {"p_around_animal": CROP_METHODS.get(method, 0.9),
                                   "max_shift": float(crop.get("max_shift", 0.1))}
    affine = train.pop("affine", None)
    if affine:
        values.update(affine_p=float(affine.get("p", 0.9)), rotation=float(affine.get("rotation") or 0),
                      scale=list(affine.get("scaling") or [1.0, 1.0]))
        pixels = float(affine.get("translation") or 0)
        if pixels and not crop:
            tr.refuse("data.train.affine.translation", f"{pixels} px: our translation is a fraction of the crop, "
                                                         "so it needs data.train.crop_sampling")
        elif pixels:
            values["translation"] = round(pixels / max(values["crop_size"]), 6)
    noise = train.pop("gaussian_noise", None)
    if noise:
        values.update(noise_std=(0.05 if noise is True else float(noise) / 255), noise_p=0.5)
    if train.pop("motion_blur", False):
        values.update(motion_blur_p=0.5, motion_blur_kernel=7)
    flip = train.pop("hflip", None)
    if flip:
        flip = {"p": 0.5} if flip is True else {"p": float(flip)} if isinstance(flip, (int, float)) else flip
        values["hflip_p"] = float(flip.get("p", 0.5))
        values["symmetric_pairs"] = [list(p) for p in flip.get("symmetries") or []]
    for key, value in train.items():
        if value:
            tr.refuse(f"data.train.{key}", REFUSED_AUGMENTATIONS.get(key, "not an augmentation we know"))
    for key, value in values.items():
        tr.set(f"augment.{key}", value)
