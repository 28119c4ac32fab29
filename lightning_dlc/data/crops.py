"""Boxes and crops for top-down models, made as DeepLabCut 3 makes them (``data/image.py: top_down_crop``).

A box is xyxy in image pixels (the keypoints' own coordinates; a detector's boxes as torchvision
gives them). DeepLabCut's crop of a box for a ``crop_size = (h, w)`` crop:

1. the box grows about its centre to the crop's aspect ratio w/h (never shrinks: "crop with
   context"), then its corners are rounded to whole pixels (Python's ``round``, half to even):
   the *crop region* ``[X1, X2) x [Y1, Y2)`` of pixel indices, which may reach past the image;
2. the region is cut out, zero-padded where it leaves the image, and resized to ``(h, w)`` with
   OpenCV's bilinear ``cv2.resize`` (crop pixel j samples region index ``(j + 0.5) s - 0.5``,
   clamped to the region's first and last pixel);
3. keypoints map back with ``x_image = scale_x * x_crop + offset_x`` where the scale is
   ``(X2 - X1) / w`` and the offset ``X1`` (likewise y).

A *transform* is that affine map per box, crop -> image: ``[..., 4] = (scale_x, scale_y,
offset_x, offset_y)``; :func:`to_crop` and :func:`from_crop` apply it to keypoints and
:func:`crop_images` resamples images on the same region, so every number matches DeepLabCut's
(crops of float images to float precision, of uint8 images to one grey level: OpenCV rounds
its bilinear weights to fixed point). Unlike DeepLabCut, a NaN box gives a black crop and NaN
transform, and a region is at least one pixel wide and high.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

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
            of (height, width); boxes are clipped to ``[0, W] x [0, H]`` as DeepLabCut's
            ``bbox_from_keypoints`` does. None: not clipped.

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
        boxes = torch.cat([boxes[..., :2].clamp_min(0), torch.minimum(boxes[..., 2:], size.flip(-1))], -1)
    boxes = torch.where(labeled.any(-1, keepdim=True), boxes, torch.full_like(boxes, float("nan")))
    return boxes.numpy() if to_numpy else boxes


def label_boxes(keypoints: torch.Tensor, sizes: torch.Tensor, scale: torch.Tensor | float = 1.0,
                margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """A batch's animal boxes ``[B, N, 4]``: labeled keypoints ``[B, N, K, 3]`` + ``margin`` pixels of the
    original image (resized by each image's ``scale``), clipped to each image's ``sizes [B, 2]`` (h, w).

    The clip is DeepLabCut's ``[0, W] x [0, H]`` of the original image, expressed in the resized
    image's pixels (:func:`lightning_dlc.data.dataset.resize_points`: ``(x + 0.5) s - 0.5``), so
    the boxes map back to DeepLabCut's whatever the resize (at ``scale`` 1: ``[0, W]``).
    """
    scale = torch.as_tensor(scale, dtype=torch.float32, device=keypoints.device).reshape(-1, 1)
    boxes = boxes_with_margin(keypoints, margin * scale)
    shift = (0.5 * scale - 0.5)[..., None]  # [B, 1, 1]: where original pixel 0's edge lands
    high = sizes.to(boxes)[:, None, :].flip(-1) + shift
    return torch.cat([torch.maximum(boxes[..., :2], shift), torch.minimum(boxes[..., 2:], high)], -1)


def _crop_size(crop_size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in crop_size)
    if h < 1 or w < 1:
        raise ValueError(f"crop_size must be (height, width) >= 1, got {tuple(crop_size)}")
    return h, w


def expand_boxes(boxes, crop_size: Sequence[int]) -> torch.Tensor:
    """Boxes ``[..., 4]`` grown about their centres to the aspect ratio w/h of ``crop_size = (h, w)``.

    A box is widened or heightened, never shrunk (DeepLabCut's ``crop_with_context``); NaN
    boxes stay NaN. Float64 inside, so the rounding in :func:`crop_regions` is DeepLabCut's.
    """
    boxes = torch.as_tensor(boxes).to(torch.float64)
    h, w = _crop_size(crop_size)
    ratio = w / h
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    bw, bh = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    wider = bw / bh > ratio  # as DeepLabCut compares them (a 0/0 box keeps its size)
    taller = bw / bh < ratio
    width = torch.where(taller, bh * ratio, bw)
    height = torch.where(wider, bw / ratio, bh)
    half = torch.stack([width, height], -1) / 2
    return torch.cat([centre - half, centre + half], -1)


def crop_regions(boxes, crop_size: Sequence[int], margin: float = 0.0) -> torch.Tensor:
    """DeepLabCut's crop region ``[..., 4] = (X1, Y1, X2, Y2)`` of each xyxy box: whole pixel indices.

    The box gets ``margin`` pixels on each side (DeepLabCut's ``top_down_crop.margin``, 0 by
    default), grows to the crop's aspect ratio (:func:`expand_boxes`) and its corners are rounded
    half to even, as Python's ``round`` does. Regions are at least 1 pixel wide and high (ours:
    DeepLabCut fails on empty ones). Float64; NaN boxes give NaN regions.
    """
    h, w = _crop_size(crop_size)
    boxes = torch.as_tensor(boxes).to(torch.float64)
    # DeepLabCut's arithmetic, step by step (xywh, centre, margin, ratio), so ties round alike
    size = boxes[..., 2:] - boxes[..., :2]
    centre = boxes[..., :2] + size / 2
    bw, bh = (size + 2 * margin).unbind(-1)
    ratio = w / h
    width = torch.where(bw / bh < ratio, bh * ratio, bw)
    height = torch.where(bw / bh > ratio, bw / ratio, bh)
    half = torch.stack([width, height], -1) / 2
    low, high = torch.round(centre - half), torch.round(centre + half)
    return torch.cat([low, torch.maximum(high, low + 1)], -1)


def crop_transforms(boxes, crop_size: Sequence[int], margin: float = 0.0) -> torch.Tensor:
    """Per box, the crop -> image affine ``[..., 4] = (scale_x, scale_y, offset_x, offset_y)``.

    ``boxes``: ``[..., 4]`` xyxy. A crop point (x, y) is at image ``(scale_x x + offset_x,
    scale_y y + offset_y)``, DeepLabCut's ``x * scale + offset`` with ``offset`` the crop region's
    first pixel and ``scale`` its size over the crop's (:func:`crop_regions`). In the boxes'
    float dtype (at least float32); NaN boxes give NaN transforms.
    """
    h, w = _crop_size(crop_size)
    region = crop_regions(boxes, crop_size, margin)
    size = torch.tensor([w, h], dtype=torch.float64, device=region.device)
    scale = (region[..., 2:] - region[..., :2]) / size
    dtype = _float(torch.as_tensor(boxes)).dtype
    return torch.cat([scale, region[..., :2]], -1).to(dtype)


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


def _taps(first: torch.Tensor, last: torch.Tensor, step: torch.Tensor, n: int, dtype: torch.dtype):
    """OpenCV's bilinear taps along one axis: for each region ``[first, last]`` (pixel indices)
    resized to ``n`` pixels, the two source indices ``[M, n, 2]`` and their weights ``[M, n, 2]``."""
    j = torch.arange(n, dtype=torch.float64, device=first.device) + 0.5
    at = (first[:, None] + j * step[:, None] - 0.5).clamp(min=first[:, None], max=last[:, None])
    low = at.floor()
    frac = at - low
    index = torch.stack([low, torch.minimum(low + 1, last[:, None])], -1)
    return index.long(), torch.stack([1 - frac, frac], -1).to(dtype)


def crop_images(images: torch.Tensor, boxes: torch.Tensor, crop_size: Sequence[int],
                image_index: torch.Tensor | None = None, margin: float = 0.0) -> torch.Tensor:
    """Fixed-size crops of a batch of images as DeepLabCut's ``top_down_crop`` makes them.

    Args:
        images: ``[B, C, H, W]``, uint8 or float. DeepLabCut crops the raw image at inference
            (and normalizes the crop), as we do in training and inference alike.
        boxes: ``[B, N, 4]`` xyxy, N boxes per image, or ``[M, 4]`` with ``image_index``.
        crop_size: ``(h, w)`` of the crops.
        image_index: ``int64[M]``, the image of each of ``[M, 4]`` boxes.
        margin: pixels added around each box first (DeepLabCut's ``top_down_crop.margin``).

    Returns:
        ``[B, N, C, h, w]`` (or ``[M, C, h, w]``) in the images' dtype: each box's crop region
        (:func:`crop_regions`), zero outside the image, resized bilinearly as ``cv2.resize``
        does; whole crops of NaN boxes are 0.
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
    work = images.dtype if images.dtype == torch.float64 else torch.float32
    region = crop_regions(boxes, (h, w), margin)
    valid = torch.isfinite(region).all(-1)
    region = torch.where(valid[:, None], region, torch.zeros_like(region))
    size = region[:, 2:] - region[:, :2]
    x, wx = _taps(region[:, 0], region[:, 2] - 1, size[:, 0] / w, w, work)  # [M, w, 2]
    y, wy = _taps(region[:, 1], region[:, 3] - 1, size[:, 1] / h, h, work)  # [M, h, 2]
    height, width = images.shape[-2:]
    inside_x, inside_y = (x >= 0) & (x < width), (y >= 0) & (y < height)  # the zero padding outside
    wx, wy = wx * inside_x, wy * inside_y
    # one gather of the 2 x 2 taps per crop pixel from the channels-last, flattened batch
    flat = images.permute(0, 2, 3, 1).reshape(-1, images.shape[1])
    base = image_index.to(images.device)[:, None, None, None, None] * (height * width)
    rows = y.clamp(0, height - 1)[:, :, None, :, None] * width  # [M, h, 1, 2, 1]
    cols = x.clamp(0, width - 1)[:, None, :, None, :]  # [M, 1, w, 1, 2]
    taps = flat[(base + rows + cols).reshape(-1)].reshape(len(region), h, w, 2, 2, images.shape[1]).to(work)
    weight = wy[:, :, None, :, None] * wx[:, None, :, None, :]  # [M, h, w, 2, 2]
    crops = (taps * weight[..., None]).sum((3, 4)).permute(0, 3, 1, 2)
    crops = crops * valid[:, None, None, None].to(work)
    if not images.is_floating_point():
        info = torch.iinfo(images.dtype)
        crops = crops.round_().clamp_(info.min, info.max)
    crops = crops.to(images.dtype).contiguous()
    return crops.reshape(images.shape[0], n, *crops.shape[1:]) if grouped else crops
