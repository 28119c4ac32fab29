"""Records -> tensors: one labeled image per item, and batching of images of different sizes.

An item is a dict:

- ``image``: ``uint8[3, H, W]`` RGB, resized by ``resize`` if given;
- ``keypoints``: ``float32[N, K, 3]`` (x, y, visibility) in pixels of that image,
  N = ``max_individuals`` (the project's number of individuals by default), the
  rows past a record's individuals all NaN;
- ``unique_keypoints``: ``float32[U, 3]``; ``boxes``: ``float32[N, 4]`` xyxy (NaN if unknown);
- ``index``: the record's position in ``data.records``; ``scale``: the resize factor s.

Pixel centres are at integer coordinates, so resizing by s maps x to
``(x + 0.5) * s - 0.5``; :func:`to_original_pixels` maps predictions back.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import LabeledData, PoseRecord

# Keys :func:`collate_pose` stacks as they are (images are padded, sizes added).
LABEL_KEYS = ("keypoints", "unique_keypoints", "boxes")


def read_rgb(path: str | Path) -> np.ndarray:
    """``uint8[H, W, 3]`` RGB pixels of an image file; ProjectError naming it if missing or corrupt.

    Pixels are as stored (EXIF orientation is not applied), as the labels' sizes were read.
    """
    path = Path(path)
    if not path.is_file():
        raise ProjectError(path, "cannot read image: no such file")
    try:
        with Image.open(path) as img:
            if img.mode.startswith("I;16"):  # 16-bit grayscale: keep the top 8 bits
                gray = (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=-1)
            return np.asarray(img.convert("RGB"))
    except Exception as e:  # PIL raises many types (truncated, unidentified, decoder errors)
        raise ProjectError(path, f"cannot read image: {e}") from e


def resize_points(xy: np.ndarray, scale: float) -> np.ndarray:
    """Pixel coordinates after resizing an image by ``scale`` (NaN stays NaN)."""
    return (xy + 0.5) * scale - 0.5


def to_original_pixels(xy, scale):
    """Inverse of :func:`resize_points`: coordinates in a resized image -> the original image's."""
    return (xy + 0.5) / scale - 0.5


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """``uint8[H, W, 3]`` resized by ``scale``: the one resize of training images (labeled and unlabeled)."""
    # fx/fy (no dsize) make OpenCV sample with exactly this scale: x -> (x + 0.5) s - 0.5.
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def pad_images(images: list[torch.Tensor], pad_multiple: int = 32) -> torch.Tensor:
    """Images ``[..., 3, h, w]`` (same leading shape) stacked, zero-padded at the bottom and right to the largest
    height and width, each rounded up to a multiple of ``pad_multiple``."""
    multiple = max(1, int(pad_multiple or 1))
    sizes = torch.tensor([image.shape[-2:] for image in images], dtype=torch.int64)
    height, width = (-(-int(s) // multiple) * multiple for s in sizes.max(dim=0).values)
    first = images[0]
    out = first.new_zeros((len(images), *first.shape[:-2], height, width))
    for padded, image in zip(out, images):
        h, w = image.shape[-2:]
        padded[..., :h, :w] = image
    return out


class PoseDataset(Dataset):
    """The records of a :class:`LabeledData` as tensors (see the module docstring for an item)."""

    def __init__(self, data: LabeledData, resize: float | None = None, max_individuals: int | None = None):
        if resize is not None and not (math.isfinite(resize) and resize > 0):
            raise ValueError(f"resize must be a positive scale factor, got {resize}")
        self.data = data
        self.meta = data.meta
        self.resize = None if resize is None or resize == 1 else float(resize)
        self.max_individuals = data.meta.max_individuals if max_individuals is None else int(max_individuals)
        if self.max_individuals < 1:
            raise ValueError(f"max_individuals must be at least 1, got {max_individuals}")

    def __len__(self) -> int:
        return len(self.data.records)

    @property
    def records(self) -> list[PoseRecord]:
        return self.data.records

    def _padded(self, record: PoseRecord, array: np.ndarray, what: str) -> np.ndarray:
        """``array[n, ...]`` padded with NaN rows (or trimmed of unlabeled ones) to max_individuals."""
        n = self.max_individuals
        if len(array) > n:
            if np.isfinite(array[n:][..., :2]).any():
                raise ValueError(f"{record.key}: {len(array)} individuals have {what} but "
                                 f"max_individuals is {n}")
            return array[:n].copy()
        out = np.full((n, *array.shape[1:]), np.nan, dtype=np.float32)
        out[: len(array)] = array
        return out

    def __getitem__(self, index: int) -> dict:
        record = self.data.records[index]
        image = read_rgb(record.image)
        height, width = image.shape[:2]
        if (width, height) != tuple(record.size):
            raise ProjectError(record.image, f"is {width}x{height} pixels but its labels were read for "
                                             f"{record.size[0]}x{record.size[1]}; was it replaced?")
        keypoints = self._padded(record, record.keypoints, "keypoints")
        unique = record.unique_keypoints.reshape(-1, 3).astype(np.float32, copy=True)
        boxes = self._padded(record, record.boxes, "boxes")
        scale = 1.0
        if self.resize is not None:
            scale = self.resize
            image = resize_image(image, scale)
            keypoints[..., :2] = resize_points(keypoints[..., :2], scale)
            unique[:, :2] = resize_points(unique[:, :2], scale)
            boxes = resize_points(boxes, scale)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "keypoints": torch.from_numpy(keypoints.astype(np.float32, copy=False)),
            "unique_keypoints": torch.from_numpy(unique),
            "boxes": torch.from_numpy(boxes.astype(np.float32, copy=False)),
            "index": int(index),
            "scale": float(scale),
        }


def collate_pose(items: list[dict], pad_multiple: int = 32) -> dict:
    """Batch items: images zero-padded at the bottom and right to a common size.

    The size is the batch's largest height and width, each rounded up to a multiple
    of ``pad_multiple`` (so every backbone stride divides it). Returns ``image``
    ``uint8[B, 3, H, W]``, the stacked labels (``keypoints [B, N, K, 3]``,
    ``unique_keypoints [B, U, 3]``, ``boxes [B, N, 4]``), ``index`` ``int64[B]``,
    ``scale`` ``float32[B]`` and ``sizes`` ``int64[B, 2]``: (h, w) of each unpadded image.
    Use ``functools.partial(collate_pose, pad_multiple=...)`` as a DataLoader's collate_fn.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    sizes = torch.tensor([item["image"].shape[-2:] for item in items], dtype=torch.int64)
    batch = {"image": pad_images([item["image"] for item in items], pad_multiple)}
    for key in LABEL_KEYS:
        if key in items[0]:
            batch[key] = torch.stack([item[key] for item in items])
    batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.int64)
    batch["scale"] = torch.tensor([item["scale"] for item in items], dtype=torch.float32)
    batch["sizes"] = sizes
    return batch
