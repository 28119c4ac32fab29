"""Top-down pose: one fixed-size crop per animal box, the pose model on the crops, keypoints back in image pixels.

The same function crops in training and in inference (:func:`lightning_dlc.data.crops.crop_images`
on the raw uint8 images; the crops are normalized afterwards by
:func:`lightning_dlc.models.preprocess.normalize_images`), so a crop looks the same to the model
whether its box came from the labels, a detector or the user. Crops and the map back to image
pixels are DeepLabCut's (see :mod:`lightning_dlc.data.crops`): boxes grow to the crop's aspect
ratio, snap to whole pixels, and keypoints return as ``x * scale + offset``. Training boxes are
DeepLabCut's too: labels + ``margin``, clipped to the image, truncated to whole pixels (xywh).
DeepLabCut normalizes training images before cropping (its padding is then grey) and inference
crops after; we crop raw images in both, so padding is black in training as in inference.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lightning_dlc.data.crops import DEFAULT_MARGIN, crop_images, crop_transforms, from_crop, label_boxes, to_crop
from lightning_dlc.models.heads.identity import assign_identities
from lightning_dlc.models.preprocess import normalize_images, run_network


@dataclass
class Crops:
    """The crops of a batch: ``images [M, C, h, w]``, each from image ``image_index[M]`` and box
    ``individual[M]`` of it, with ``transforms [M, 4]`` (crop -> image pixels) and, in training,
    the labels in crop pixels ``keypoints [M, 1, K, 3]``."""

    images: torch.Tensor
    transforms: torch.Tensor
    image_index: torch.Tensor
    individual: torch.Tensor
    keypoints: torch.Tensor | None = None


class TopDown:
    """How a top-down pose model sees animals (the ``top_down`` entry of a model config).

    Args:
        crop_size: ``(height, width)`` of every crop (DeepLabCut: 256 x 256; RTMPose 256 x 192).
        margin: pixels (of the original image) around an animal's labeled keypoints for its
            training box; the detector learns boxes with the same margin (DeepLabCut's bbox_margin).
        jitter_shift: in training, box centres move by up to this fraction of the box size, ...
        jitter_scale: ... and box sides scale by a factor in ``[1 - s, 1 + s]``, so the model
            learns detector boxes that are off by a little (ours, uniform; DeepLabCut's
            top_down_* models have no box jitter, its rtmpose_* a truncated-normal one).
    """

    def __init__(self, crop_size: Sequence[int] = (256, 256), margin: float = DEFAULT_MARGIN,
                 jitter_shift: float = 0.0, jitter_scale: float = 0.0):
        h, w = (int(v) for v in crop_size)
        if h < 8 or w < 8:
            raise ValueError(f"top_down.crop_size must be (height, width) of at least 8 pixels, got {crop_size}")
        if margin < 0 or not 0 <= jitter_shift < 1 or not 0 <= jitter_scale < 1:
            raise ValueError(f"top_down: margin >= 0 and jitters in [0, 1) expected, got margin={margin}, "
                             f"jitter_shift={jitter_shift}, jitter_scale={jitter_scale}")
        self.crop_size = (h, w)
        self.margin, self.jitter_shift, self.jitter_scale = float(margin), float(jitter_shift), float(jitter_scale)

    def __repr__(self) -> str:
        return (f"TopDown(crop_size={self.crop_size}, margin={self.margin}, jitter_shift={self.jitter_shift}, "
                f"jitter_scale={self.jitter_scale})")

    # ---- boxes -----------------------------------------------------------------------------
    def label_boxes(self, keypoints: torch.Tensor, sizes: torch.Tensor, scale: torch.Tensor | float = 1.0
                    ) -> torch.Tensor:
        """Boxes ``[B, N, 4]`` around each individual's labels + margin (the detector's targets too)."""
        return label_boxes(keypoints, sizes, scale, self.margin)

    def jitter(self, boxes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Boxes moved and rescaled at random (drawn on the CPU generator, so CPU and GPU runs agree)."""
        if not (self.jitter_shift or self.jitter_scale):
            return boxes
        draws = torch.rand((*boxes.shape[:-1], 3), generator=generator).to(boxes.device, boxes.dtype) * 2 - 1
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        half = (boxes[..., 2:] - boxes[..., :2]) / 2
        centre = centre + draws[..., :2] * self.jitter_shift * 2 * half
        half = half * (1 + draws[..., 2:] * self.jitter_scale)
        return torch.cat([centre - half, centre + half], -1)

    # ---- crops -------------------------------------------------------------------------------
    def crops(self, images: torch.Tensor, boxes: torch.Tensor) -> Crops:
        """One crop per finite box of ``boxes [B, N, 4]`` (image pixels) from ``images [B, C, H, W]``."""
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=images.device)
        if boxes.ndim != 3 or boxes.shape[0] != images.shape[0] or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be [B={images.shape[0]}, N, 4] xyxy, got {tuple(boxes.shape)}")
        image_index, individual = torch.nonzero(torch.isfinite(boxes).all(-1), as_tuple=True)
        chosen = boxes[image_index, individual]
        return Crops(images=crop_images(images, chosen, self.crop_size, image_index=image_index),
                     transforms=crop_transforms(chosen, self.crop_size), image_index=image_index,
                     individual=individual)

    def training_crops(self, images: torch.Tensor, keypoints: torch.Tensor, sizes: torch.Tensor,
                       scale: torch.Tensor | float = 1.0, jitter: bool = True,
                       generator: torch.Generator | None = None, boxes: torch.Tensor | None = None) -> Crops:
        """Crops around the labeled animals (boxes jittered in training) with their labels in crop pixels.

        As DeepLabCut's training crops: the box (labels + margin, clipped, jittered) is truncated
        to whole pixels in xywh, and labels outside ``[0, w] x [0, h]`` of the crop are dropped
        (NaN here; DeepLabCut sets their visibility to 0). ``boxes [B, N, 4]`` replace the label boxes
        (conditional top-down models crop around their conditions).
        """
        if boxes is None:
            boxes = self.label_boxes(keypoints, sizes, scale)
        if jitter:
            boxes = self.jitter(boxes, generator)
        corner, size = boxes[..., :2].trunc(), (boxes[..., 2:] - boxes[..., :2]).trunc()
        crops = self.crops(images, torch.cat([corner, corner + size], -1))
        labels = to_crop(keypoints[crops.image_index, crops.individual].float(), crops.transforms)
        h, w = self.crop_size
        x, y = labels[..., 0], labels[..., 1]
        inside = (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
        labels = torch.where(inside[..., None], labels, torch.full_like(labels, float("nan")))
        crops.keypoints = labels[:, None]
        return crops

    # ---- inference ---------------------------------------------------------------------------
    def scatter(self, crops: Crops, crop_points: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Crop predictions ``[M, K, 3]`` -> image pixels in ``[B, N, K, 3]`` (NaN where no box)."""
        points = from_crop(crop_points.float(), crops.transforms.to(crop_points.device))
        out = points.new_full(tuple(shape), float("nan"))
        out[crops.image_index, crops.individual] = points
        return out

    @torch.no_grad()
    def predict(self, model, images: torch.Tensor, boxes: torch.Tensor, n_individuals: int,
                channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                micro_batch: int | None = None, net=None) -> torch.Tensor:
        """Keypoints ``[B, n_individuals, K, 3]`` (image pixels, score) of the animals in ``boxes [B, <=N, 4]``.

        Row n is box n, or with an identity head identity n (:meth:`predict_all`); rows without a (finite)
        box are NaN. ``net`` (default ``model``; e.g. its ``torch.compile`` wrapper) maps normalized crops to
        head outputs and ``model.predict`` decodes them (one animal per crop); crops go through in chunks of
        ``micro_batch``.
        """
        return self.predict_all(model, images, boxes, n_individuals, channels_last, autocast_dtype, micro_batch,
                                net)["bodypart"]

    @torch.no_grad()
    def predict_all(self, model, images: torch.Tensor, boxes: torch.Tensor, n_individuals: int,
                    channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                    micro_batch: int | None = None, net=None,
                    crop_features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`predict`'s keypoints as ``bodypart``, with what else the crops give, each ``[B, n_individuals, ...]``:

        - ``identity`` (a model with a :class:`~lightning_dlc.models.heads.identity.CropIdentityHead`, ours):
          each crop's identity probabilities; a frame's crops are then matched to identities (Hungarian, as
          the bottom-up identity head's animals are) and every output's rows reordered: row n is identity n;
        - ``features`` (with ``crop_features``): ``crop_features(points)`` is called right after the network
          ran on a chunk of crops, with that chunk's predictions ``[m, K, 3]`` in crop pixels, and returns
          ``[m, K, D]`` (re-identification reads the crops' feature maps there).
        """
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=images.device)[:, :n_individuals]
        crops = self.crops(images, boxes)
        b, k = images.shape[0], len(model.meta.bodyparts)
        if not len(crops.image_index):
            out = {"bodypart": images.new_full((b, n_individuals, k, 3), float("nan"), dtype=torch.float32)}
            if "identity" in model.heads:
                out["identity"] = images.new_full((b, n_individuals, model.heads["identity"].n_identities),
                                                  float("nan"), dtype=torch.float32)
            return out
        step = micro_batch or len(crops.images)
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(crops.images), step):
            outputs = run_network(net or model, normalize_images(crops.images[i: i + step], channels_last),
                                  autocast_dtype)
            predicted = model.predict(outputs)
            found = {"bodypart": predicted["bodypart"][:, 0]}
            if "identity" in predicted:
                found["identity"] = predicted["identity"][:, 0].float()
            if crop_features is not None:
                found["features"] = crop_features(found["bodypart"]).float()
            for key, value in found.items():
                parts.setdefault(key, []).append(value)
        values = {key: torch.cat(v) for key, v in parts.items()}
        out = {"bodypart": self.scatter(crops, values.pop("bodypart"), (b, n_individuals, k, 3))}
        for key, value in values.items():
            placed = value.new_full((b, n_individuals, *value.shape[1:]), float("nan"))
            placed[crops.image_index, crops.individual] = value
            out[key] = placed
        if "identity" in out:  # row n: the crop matched to identity n
            scores = out["identity"]
            out = {key: assign_identities(value, scores) for key, value in out.items()}
        return out
