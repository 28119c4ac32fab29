"""Boxes and crops for top-down models: boxes around animals, fixed-size crops, keypoints in and out.

Pixel convention (as everywhere here): pixel centres at integer coordinates, pixel ``j``
covers ``[j - 0.5, j + 0.5]``, so an image of width W spans ``[-0.5, W - 0.5]``. Boxes are
xyxy in those continuous coordinates.

A crop of ``crop_size = (h, w)`` pixels shows a box *expanded to the crop's aspect ratio*
around its centre (the box grows along one side, never shrinks: DeepLabCut's "crop with
context"), so crop pixels are square and the same in x and y. The crop's extent
``[-0.5, w - 0.5]`` covers the expanded box ``[x1, x2]`` exactly, so a crop pixel ``j`` sits at
image ``x = x1 + (j + 0.5) * s`` with ``s = (x2 - x1) / w``. A *transform* is that affine map
per box, crop -> image: ``[..., 4] = (scale_x, scale_y, offset_x, offset_y)`` with
``x_image = scale_x * x_crop + offset_x`` (likewise y). :func:`to_crop` and :func:`from_crop`
apply it to keypoints; :func:`crop_images` resamples images with the very same map
(bilinear, zeros outside the image), so a point drawn in an image lands in the crop where
:func:`to_crop` puts it. Unlike DeepLabCut, boxes are not rounded to whole pixels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import roi_align

DEFAULT_MARGIN = 20.0  # DeepLabCut's bbox_margin for boxes from keypoints (pixels)


def _as_tensor(x) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.as_tensor(np.asarray(x, dtype=np.float32)), True


def _float(t: torch.Tensor) -> torch.Tensor:
    # at least float32: half types cannot hold pixel coordinates exactly
    return t.to(torch.promote_types(t.dtype, torch.float32)) if t.is_floating_point() else t.float()


def boxes_with_margin(keypoints, margin: float | torch.Tensor = DEFAULT_MARGIN, size=None):
    """xyxy box around each individual's labeled keypoints, grown by ``margin`` on every side.

    Args:
        keypoints: ``[..., N, K, 2 or 3]`` (x, y[, visibility]); a keypoint counts if x, y are
            finite and (with 3 values) its visibility is > 0, as DeepLabCut ignores flags <= 0.
        margin: pixels added on each side (DeepLabCut's ``bbox_margin``, 20); a number or a
            tensor broadcastable to ``[..., N]`` (e.g. a per-image margin in resized pixels).
        size: clip to the image: ``(height, width)`` or a tensor broadcastable to ``[..., N, 2]``
            of (height, width); boxes are clipped to ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
            None: not clipped.

    Returns:
        ``[..., N, 4]`` xyxy (NaN for an individual without labeled keypoints), a numpy array
        if ``keypoints`` was one, else a tensor of at least float32.
    """
    kp, to_numpy = _as_tensor(keypoints)
    kp = _float(kp)
    if kp.ndim < 2 or kp.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must be [..., N, K, 2 or 3], got {tuple(kp.shape)}")
    x, y = kp[..., 0], kp[..., 1]
    labeled = torch.isfinite(x) & torch.isfinite(y)
    if kp.shape[-1] == 3:
        labeled &= kp[..., 2] > 0
    inf = torch.tensor(float("inf"), dtype=kp.dtype, device=kp.device)
    low = torch.stack([torch.where(labeled, x, inf).amin(-1), torch.where(labeled, y, inf).amin(-1)], -1)
    high = torch.stack([torch.where(labeled, x, -inf).amax(-1), torch.where(labeled, y, -inf).amax(-1)], -1)
    margin = torch.as_tensor(margin, dtype=kp.dtype, device=kp.device)
    if margin.ndim:
        margin = margin[..., None]
    boxes = torch.cat([low - margin, high + margin], -1)
    if size is not None:
        size = torch.as_tensor(size, dtype=kp.dtype, device=kp.device)
        hw = size.flip(-1) - 0.5  # (w, h) - 0.5: the last pixel's far edge
        boxes = torch.cat([boxes[..., :2].clamp_min(-0.5), torch.minimum(boxes[..., 2:], hw)], -1)
    boxes = torch.where(labeled.any(-1, keepdim=True), boxes, torch.full_like(boxes, float("nan")))
    return boxes.numpy() if to_numpy else boxes


def label_boxes(keypoints: torch.Tensor, sizes: torch.Tensor, scale: torch.Tensor | float = 1.0,
                margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """A batch's animal boxes ``[B, N, 4]``: labeled keypoints ``[B, N, K, 3]`` + ``margin`` pixels of the
    original image (resized by each image's ``scale``), clipped to each image's ``sizes [B, 2]`` (h, w)."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=keypoints.device).reshape(-1, 1)
    return boxes_with_margin(keypoints, margin * scale, size=sizes[:, None, :].to(keypoints.device))


def _crop_size(crop_size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in crop_size)
    if h < 1 or w < 1:
        raise ValueError(f"crop_size must be (height, width) >= 1, got {tuple(crop_size)}")
    return h, w


def expand_boxes(boxes: torch.Tensor, crop_size: Sequence[int], min_size: float = 1.0) -> torch.Tensor:
    """Boxes ``[..., 4]`` grown about their centres to the aspect ratio w/h of ``crop_size = (h, w)``.

    A box is widened or heightened, never shrunk; degenerate boxes are given at least
    ``min_size`` pixels. NaN boxes stay NaN.
    """
    boxes = _float(torch.as_tensor(boxes))
    h, w = _crop_size(crop_size)
    ratio = w / h
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    bw = (boxes[..., 2] - boxes[..., 0]).clamp_min(0)
    bh = (boxes[..., 3] - boxes[..., 1]).clamp_min(0)
    width = torch.maximum(torch.maximum(bw, bh * ratio), torch.full_like(bw, min_size * max(ratio, 1.0)))
    half = torch.stack([width, width / ratio], -1) / 2
    return torch.cat([centre - half, centre + half], -1)


def crop_transforms(boxes, crop_size: Sequence[int]) -> torch.Tensor:
    """Per box, the crop -> image affine ``[..., 4] = (scale_x, scale_y, offset_x, offset_y)``.

    ``boxes``: ``[..., 4]`` xyxy; each is first expanded to the crop's aspect ratio
    (:func:`expand_boxes`). A crop pixel (x, y) is at image ``(scale_x x + offset_x,
    scale_y y + offset_y)``; scale_x == scale_y up to rounding. NaN boxes give NaN transforms.
    """
    h, w = _crop_size(crop_size)
    box = expand_boxes(boxes, crop_size)
    scale = torch.stack([(box[..., 2] - box[..., 0]) / w, (box[..., 3] - box[..., 1]) / h], -1)
    offset = box[..., :2] + 0.5 * scale
    return torch.cat([scale, offset], -1)


def _apply(keypoints, transform, inverse: bool):
    kp, to_numpy = _as_tensor(keypoints)
    t, _ = _as_tensor(transform)
    kp = _float(kp)
    t = _float(t).to(kp.device)[..., None, :]  # one transform per [..., K] keypoint set
    if kp.shape[-1] < 2:
        raise ValueError(f"keypoints must be [..., K, 2+] (x, y, ...), got {tuple(kp.shape)}")
    dtype = torch.promote_types(kp.dtype, t.dtype)
    kp, t = kp.to(dtype), t.to(dtype)
    xy = kp[..., :2]
    xy = (xy - t[..., 2:]) / t[..., :2] if inverse else xy * t[..., :2] + t[..., 2:]
    out = torch.cat([xy, kp[..., 2:]], -1)
    return out.numpy() if to_numpy else out


def to_crop(keypoints, transform):
    """Image pixels -> crop pixels: ``keypoints [..., K, 2+]`` with ``transform [..., 4]``.

    Columns after x, y (visibility, score) are kept. NaN stays NaN; numpy in, numpy out.
    """
    return _apply(keypoints, transform, inverse=True)


def from_crop(keypoints, transform):
    """Crop pixels -> image pixels; the inverse of :func:`to_crop`."""
    return _apply(keypoints, transform, inverse=False)


def crop_images(images: torch.Tensor, boxes: torch.Tensor, crop_size: Sequence[int],
                image_index: torch.Tensor | None = None, sampling_ratio: int = -1) -> torch.Tensor:
    """Fixed-size crops of a batch of images, each showing its box expanded to the crop's aspect ratio.

    Args:
        images: ``[B, C, H, W]``, uint8 or float. Crop the raw images and normalize the crops,
            in training and inference alike (DeepLabCut normalizes before cropping in training
            and after in inference): the zeros outside the image are then black in both.
        boxes: ``[B, N, 4]`` xyxy, N boxes per image, or ``[M, 4]`` with ``image_index``.
        crop_size: ``(h, w)`` of the crops.
        image_index: ``int64[M]``, the image of each of ``[M, 4]`` boxes.
        sampling_ratio: bilinear samples per crop pixel and axis, averaged
            (``torchvision.ops.roi_align``); -1 uses ceil(scale), which smooths downscaling.

    Returns:
        ``[B, N, C, h, w]`` (or ``[M, C, h, w]``) in the images' dtype; pixels outside the
        image, and whole crops of NaN boxes, are 0. Crop pixel (x, y) shows image point
        ``from_crop((x, y), crop_transforms(box, crop_size))``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got {tuple(images.shape)}")
    h, w = _crop_size(crop_size)
    boxes = torch.as_tensor(boxes, device=images.device)
    grouped = boxes.ndim == 3
    if grouped:
        if boxes.shape[0] != images.shape[0] or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be [B={images.shape[0]}, N, 4], got {tuple(boxes.shape)}")
        n = boxes.shape[1]
        image_index = torch.arange(images.shape[0], device=images.device).repeat_interleave(n)
        boxes = boxes.reshape(-1, 4)
    elif boxes.ndim != 2 or boxes.shape[-1] != 4 or image_index is None or len(image_index) != len(boxes):
        raise ValueError("boxes must be [B, N, 4], or [M, 4] with image_index [M]")
    work_dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    box = expand_boxes(boxes, (h, w)).to(work_dtype)
    valid = torch.isfinite(box).all(-1)
    box = torch.where(valid[:, None], box, torch.zeros_like(box))
    # roi_align(aligned=True) samples bin j of a box starting at x1' at pixel index x1' - 0.5 + (j + 0.5) s,
    # ours is at x1 + (j + 0.5) s: x1' = x1 + 0.5. A 1-pixel zero border (hence + 1) makes the
    # bilinear samples just outside the image blend with 0 instead of repeating the edge.
    rois = torch.cat([image_index.to(box)[:, None], box + 1.5], -1)
    padded = torch.nn.functional.pad(images.to(work_dtype), (1, 1, 1, 1))
    crops = roi_align(padded, rois, output_size=(h, w), spatial_scale=1.0,
                      sampling_ratio=sampling_ratio, aligned=True)
    crops = crops * valid[:, None, None, None].to(crops.dtype)
    if not images.is_floating_point():
        info = torch.iinfo(images.dtype)
        crops = crops.round_().clamp_(info.min, info.max)
    crops = crops.to(images.dtype)
    return crops.reshape(images.shape[0], n, *crops.shape[1:]) if grouped else crops
