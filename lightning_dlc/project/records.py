"""The one record type every loader produces (DeepLabCut or COCO alike).

Keypoints are ``float32[n_individuals, n_bodyparts, 3]`` holding x, y in pixels of
the original image and a visibility flag (COCO's convention: 0 unlabeled,
1 labeled but occluded, 2 labeled and visible). Unlabeled keypoints have NaN x, y.
Nothing downstream knows which file format a record came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NOT_LABELED, OCCLUDED, VISIBLE = 0, 1, 2

# Name of the one individual of a single-animal project (DeepLabCut's files have
# no individuals level there); "single" is taken: it holds unique bodyparts.
SINGLE_ANIMAL = "animal"
UNIQUE_INDIVIDUAL = "single"


@dataclass(frozen=True)
class ProjectMeta:
    """What the model needs to know about a dataset, whichever format it came from."""

    bodyparts: tuple[str, ...]
    individuals: tuple[str, ...]
    unique_bodyparts: tuple[str, ...] = ()
    skeleton: tuple[tuple[str, str], ...] = ()
    identity: bool = False

    @property
    def multianimal(self) -> bool:
        return self.individuals != (SINGLE_ANIMAL,)

    @property
    def max_individuals(self) -> int:
        return len(self.individuals)


@dataclass(eq=False)
class PoseRecord:
    """One labeled image."""

    image: Path  # absolute path of the image file
    key: str  # stable id: image path relative to the dataset root, '/'-separated
    size: tuple[int, int]  # width, height in pixels
    keypoints: np.ndarray  # float32 [n_individuals, n_bodyparts, 3]
    unique_keypoints: np.ndarray  # float32 [n_unique_bodyparts, 3]
    boxes: np.ndarray = field(default=None)  # float32 [n_individuals, 4] xyxy, NaN if unlabeled
    individuals: tuple[str, ...] = ()

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.unique_keypoints = np.asarray(self.unique_keypoints, dtype=np.float32).reshape(-1, 3)
        if self.boxes is None:
            self.boxes = boxes_from_keypoints(self.keypoints)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)

    def same_labels(self, other: PoseRecord) -> bool:
        """Equal keys, sizes, individuals and arrays (NaN equal to NaN)."""
        return (
            self.key == other.key
            and tuple(self.size) == tuple(other.size)
            and tuple(self.individuals) == tuple(other.individuals)
            and all(
                a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
                for a, b in (
                    (self.keypoints, other.keypoints),
                    (self.unique_keypoints, other.unique_keypoints),
                    (self.boxes, other.boxes),
                )
            )
        )


@dataclass
class LabeledData:
    """A dataset: its metadata and records, plus the folder paths are relative to."""

    meta: ProjectMeta
    records: list[PoseRecord]
    root: Path

    def __len__(self) -> int:
        return len(self.records)


def keypoints_from_xy(xy: np.ndarray) -> np.ndarray:
    """[..., 2] pixel coordinates with NaN for unlabeled -> [..., 3] with visibility."""
    xy = np.asarray(xy, dtype=np.float32)
    labeled = np.isfinite(xy).all(axis=-1)
    out = np.empty(xy.shape[:-1] + (3,), dtype=np.float32)
    out[..., :2] = np.where(labeled[..., None], xy, np.nan)
    out[..., 2] = np.where(labeled, VISIBLE, NOT_LABELED)
    return out


def boxes_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Tight xyxy box around each individual's labeled keypoints; NaN if it has none."""
    xy = np.asarray(keypoints, dtype=np.float32)[..., :2]
    boxes = np.full(xy.shape[:-2] + (4,), np.nan, dtype=np.float32)
    labeled = np.isfinite(xy).all(axis=-1).any(axis=-1)
    if labeled.any():
        pts = xy[labeled]
        boxes[labeled] = np.concatenate([np.nanmin(pts, axis=-2), np.nanmax(pts, axis=-2)], axis=-1)
    return boxes
