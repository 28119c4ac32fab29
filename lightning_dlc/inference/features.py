"""Features at detected keypoints, taken in the analysis' own forward pass, and their file.

Re-identification needs what the network saw at each keypoint, and what the animal looks like there.
Each keypoint's vector is two parts, both caught by hooks while the model predicts (no second pass):

- the **feature map**: the output of the pose model's neck (the backbone's when there is none),
  ``channels`` values;
- **appearance**: ``APPEARANCE_CHANNELS`` = 6 values, the mean and standard deviation (R, G, B each) of the
  network input (normalized as the backbone gets it) over an ``APPEARANCE_PATCH``-pixel square patch around
  the keypoint: colour and texture. A from-scratch pose model's features separate look-alike animals
  poorly (the demo fish: 0.74-0.84 with the features alone), while their colours and patterns differ.
  The patch statistics are maps at stride 1 (a patch per input pixel; pixels of the patch outside the
  input are left out), read like the feature map.

Top-down models (ours: DeepLabCut reads features of bottom-up models only): the network input is each animal's
crop, so features and appearance are read from the crop's maps at the keypoints predicted in crop pixels
(:func:`crop_features_reader`, called by :meth:`~lightning_dlc.models.top_down.TopDown.predict_all` after each
chunk of crops); the stored vectors have the same layout.

Sampling: keypoints are mapped from the frame's pixels to the network input's (``resize_points``:
resize only; padding is at the bottom and right, so it moves nothing), then read **bilinearly**
between the four nearest cell centres. A cell ``i`` at stride ``s`` covers input pixels
``[i s, (i + 1) s)`` and has its centre at ``(i + 0.5) s - 0.5`` (the heads' maps follow DeepLabCut's
own ``i s + s / 2`` instead, :func:`~lightning_dlc.models.heads.heatmap_targets.grid_to_pixels`); points past the outer cell
centres take the border cells' values. The map covers the padded input exactly (``pad_multiple`` is a
multiple of the stride), which is what makes ``grid_sample``'s ``align_corners=False`` this mapping.

File ``<video><scorer>_features.h5`` (PyTables, beside the other outputs):

- ``/features``: float16 ``[n_frames, n_individuals, n_bodyparts, D]``, NaN where no keypoint;
  ``D = channels + appearance``: the feature map's values, then mean R, G, B and std R, G, B of the patch;
- ``/keypoints``: float32 ``[n_frames, n_individuals, n_bodyparts, 3]``: the points they were read at
  (the ``.h5``'s x, y, likelihood), so tracklets find their rows by position;
- attributes ``layer``, ``stride``, ``channels``, ``appearance`` (6), ``appearance_patch`` (pixels),
  ``sampling``, ``scorer``, ``bodyparts``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightning_dlc.data.dataset import resize_points
from lightning_dlc.project.errors import ProjectError

__all__ = ["APPEARANCE_CHANNELS", "APPEARANCE_PATCH", "FeaturesFile", "FeaturesWriter", "appearance_maps",
           "capture_features", "crop_features_reader", "feature_channels", "feature_layer", "features_path",
           "sample_at_keypoints", "features_at_predictions"]

SAMPLING = "bilinear"
APPEARANCE_PATCH = 15    # network-input pixels; on the demo (128 px) 15 separated the fish best of 3-31
APPEARANCE_CHANNELS = 6  # patch mean and std of R, G, B
_CHUNK_FRAMES = 256  # frames read at once when a whole file is walked


def features_path(prefix: str | Path) -> Path:
    """``<prefix>_features.h5`` (prefix: ``<folder>/<video stem><scorer>``)."""
    return Path(f"{prefix}_features.h5")


def feature_layer(model) -> tuple[torch.nn.Module, str, int, int]:
    """(module, its name, channels, stride) of the map features are read from: the neck's, else the backbone's
    (a top-down model's: of its crops)."""
    if model.neck is not None:
        return model.neck, "neck", int(model.neck.out_channels), int(model.neck.stride)
    return model.backbone, "backbone", int(model.backbone.out_channels), int(model.backbone.stride)


def feature_channels(model) -> int:
    """D of the stored vectors: the feature map's channels plus the appearance values."""
    return feature_layer(model)[2] + APPEARANCE_CHANNELS


@contextlib.contextmanager
def capture_features(model) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Within the block, every input of the backbone (the normalized images) is appended to ``["images"]`` of
    the dict it yields and every output of the feature layer to ``["maps"]``."""
    captured: dict[str, list[torch.Tensor]] = {"images": [], "maps": []}
    handles = [model.backbone.register_forward_pre_hook(lambda _module, inputs: captured["images"].append(inputs[0])),
               feature_layer(model)[0].register_forward_hook(
                   lambda _module, _inputs, output: captured["maps"].append(output))]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def appearance_maps(images: torch.Tensor, patch: int = APPEARANCE_PATCH) -> torch.Tensor:
    """``[B, 6, H, W]`` float32: mean and std of each channel of ``images [B, 3, H, W]`` over the ``patch`` x
    ``patch`` square centred on every pixel (``patch`` odd; pixels outside the image are not counted)."""
    x = images.float().contiguous()
    pool = dict(kernel_size=patch, stride=1, padding=patch // 2, count_include_pad=False)
    mean = F.avg_pool2d(x, **pool)
    std = (F.avg_pool2d(x * x, **pool) - mean * mean).clamp_min(0).sqrt()
    return torch.cat([mean, std], 1)


def sample_at_keypoints(feature_map: torch.Tensor, xy: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinear features ``[B, N, K, D]`` (float32) at points ``xy [B, N, K, 2]`` in network-input pixels;
    NaN where a point is NaN. ``feature_map``: ``[B, D, h, w]`` covering ``h * stride`` x ``w * stride`` pixels."""
    b, n, k, _ = xy.shape
    h, w = feature_map.shape[-2:]
    size = xy.new_tensor([w * stride, h * stride])
    grid = (2 * xy.float() + 1) / size - 1                        # pixel centres -> grid_sample's [-1, 1]
    missing = ~torch.isfinite(grid).all(-1)
    grid = torch.where(missing[..., None], torch.zeros_like(grid), grid)
    out = F.grid_sample(feature_map.float(), grid.reshape(b, n * k, 1, 2), mode=SAMPLING,
                        padding_mode="border", align_corners=False)  # [B, D, N*K, 1]
    out = out[..., 0].permute(0, 2, 1).reshape(b, n, k, -1)
    return out.masked_fill(missing[..., None], float("nan"))


def features_at_predictions(feature_map: torch.Tensor, images: torch.Tensor, keypoints: torch.Tensor, scale,
                            stride: int) -> torch.Tensor:
    """``[B, N, K, D + 6]``: features, then appearance (module doc), at predicted keypoints ``[B, N, K, 3]``
    given in the frames' pixels (``predict_batch``'s output), for frames resized by ``scale`` before the
    network. ``images``: the network input the map was computed from."""
    scale = torch.as_tensor(scale, dtype=torch.float32, device=keypoints.device).reshape(-1, 1, 1, 1)
    xy = resize_points(keypoints[..., :2].float().to(feature_map.device), scale.to(feature_map.device))
    return torch.cat([sample_at_keypoints(feature_map, xy, stride),
                      sample_at_keypoints(appearance_maps(images), xy, 1)], -1)


def crop_features_reader(model, captured: dict[str, list[torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """For a top-down ``model`` run within :func:`capture_features` (``captured``): the function that turns the
    last chunk of crops' predictions ``[m, K, 3]`` (crop pixels) into their features ``[m, K, D + 6]``."""
    stride = feature_layer(model)[3]

    def read(points: torch.Tensor) -> torch.Tensor:
        return features_at_predictions(captured["maps"][-1], captured["images"][-1], points[:, None], 1.0,
                                       stride)[:, 0]
    return read


class FeaturesWriter:
    """Appends chunks of features and keypoints to ``<prefix>_features.h5`` (open on a temporary path:
    the caller renames it into place, as the other outputs)."""

    def __init__(self, path: str | Path, shape: Sequence[int], attrs: dict):
        import tables

        self._file = tables.open_file(str(path), "w")
        filters = tables.Filters(complevel=1, complib="blosc:lz4")
        n, k, d = shape
        self._features = self._file.create_earray("/", "features", tables.Float16Atom(), (0, n, k, d),
                                                  filters=filters, chunkshape=(1, n, k, d))
        self._keypoints = self._file.create_earray("/", "keypoints", tables.Float32Atom(), (0, n, k, 3),
                                                   filters=filters)
        for key, value in attrs.items():
            self._file.root._v_attrs[key] = value

    def append(self, features: np.ndarray, keypoints: np.ndarray) -> None:
        self._features.append(np.asarray(features, np.float16))
        self._keypoints.append(np.asarray(keypoints, np.float32))

    def close(self) -> None:
        if self._file.isopen:
            self._file.close()

    def __enter__(self) -> "FeaturesWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FeaturesFile:
    """A features file opened for reading: ``keypoints`` in memory, features read on demand."""

    def __init__(self, path: str | Path):
        import tables

        self.path = Path(path)
        if not self.path.is_file():
            raise ProjectError(self.path, "no keypoint features: analyze the video with features=True "
                                          "(api.analyze_videos(config, videos, features=True, overwrite=True))")
        self._file = tables.open_file(str(self.path), "r")
        try:
            self.keypoints = self._file.root.keypoints[:]
            attrs = self._file.root._v_attrs
            self.attrs = {key: attrs[key] for key in attrs._v_attrnamesuser}
            self._features = self._file.root.features
        except tables.NoSuchNodeError as e:
            self._file.close()
            raise ProjectError(self.path, f"not a keypoint features file ({e})") from e

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._features.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, frames: np.ndarray, individuals: np.ndarray) -> np.ndarray:
        """float32 ``[M, K, D]`` for pairs (frame, individual row)."""
        frames, individuals = np.asarray(frames, np.int64), np.asarray(individuals, np.int64)
        unique, inverse = np.unique(frames, return_inverse=True)
        if not len(unique):
            return np.zeros((0, *self.shape[2:]), np.float32)
        read = np.stack([self._features[int(f)] for f in unique])  # one stored chunk per frame
        return read[inverse.ravel(), individuals].astype(np.float32)

    def chunks(self, size: int = _CHUNK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame, float32 ``[n, N, K, D]``) over the whole file."""
        for first in range(0, len(self), size):
            yield first, self._features[first: first + size].astype(np.float32)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "FeaturesFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
