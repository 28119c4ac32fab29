"""Batch augmentation on the training device, built on kornia.

:class:`BatchAugment` takes a collated training batch

* ``images``: float ``[B, C, H, W]`` in [0, 1] (already padded to a common size),
* ``keypoints``: float ``[B, N, K, 3]`` (x, y, visibility; NaN = missing),
* ``unique_keypoints``: float ``[B, U, 3]`` (U may be 0),

and returns the three augmented. Geometry (crop sampling, affine, horizontal flip)
is folded into one 3x3 pixel matrix per sample, so every image is resampled once
(:func:`kornia.geometry.transform.warp_affine`) and the very same matrix moves the
labels. Samples that drew the affine are sampled bilinearly; the others are only
shifted by whole pixels and/or mirrored, and are copied exactly (nearest sampling). Pixel convention: pixel ``j`` covers ``[j - 0.5, j + 0.5]``, i.e. pixel
centres sit at integer coordinates. ``warp_affine`` with ``align_corners=True``
samples with exactly that convention, so a matrix in pixel coordinates applies
to images and keypoints alike; a flip maps ``x`` to ``W - 1 - x``.

Random parameters are drawn from torch's default CPU generator (a handful of
numbers per sample) and then moved to the batch's device, so a run is
reproducible after ``torch.manual_seed`` and the per-sample choices are the same
on CPU and GPU; only the pixel noise is drawn on the device itself.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from kornia.color import rgb_to_grayscale
from kornia.filters import motion_blur
from kornia.geometry.transform import warp_affine

__all__ = ["BatchAugment", "pairs_from_names"]

_CROP_SAMPLING_DEFAULTS = {"p_around_animal": 0.9, "max_shift": 0.1}


def pairs_from_names(pairs: Sequence[Sequence[str]], bodyparts: Sequence[str]) -> list[tuple[int, int]]:
    """Map bodypart-name pairs (e.g. ``[["left_ear", "right_ear"]]``) to index pairs.

    Raises ``ValueError`` naming any bodypart that is not in ``bodyparts``.
    """
    names = [str(b) for b in bodyparts]
    index = {name: i for i, name in enumerate(names)}
    out = []
    for pair in pairs:
        pair = list(pair)
        if len(pair) != 2:
            raise ValueError(f"a symmetric pair needs exactly two bodyparts, got {pair!r}")
        unknown = [str(p) for p in pair if str(p) not in index]
        if unknown:
            raise ValueError(f"unknown bodypart(s) {', '.join(map(repr, unknown))} in symmetric pair "
                             f"{pair!r}; known bodyparts: {names}")
        out.append((index[str(pair[0])], index[str(pair[1])]))
    return out


def _index_pairs(pairs, bodyparts, what: str) -> list[tuple[int, int]]:
    """Index pairs from ints, or from names when ``bodyparts`` is given; checks they are disjoint."""
    pairs = [list(p) for p in (pairs or [])]
    if any(isinstance(x, str) for p in pairs for x in p):
        if bodyparts is None:
            raise ValueError(f"{what} are given by name; pass the bodypart names too "
                             f"(or index pairs)")
        out = pairs_from_names(pairs, bodyparts)
    else:
        out = []
        for p in pairs:
            if len(p) != 2:
                raise ValueError(f"{what}: each pair needs two indices, got {p!r}")
            i, j = int(p[0]), int(p[1])
            if i < 0 or j < 0:
                raise ValueError(f"{what}: indices must be non-negative, got {p!r}")
            out.append((i, j))
    seen: set[int] = set()
    for i, j in out:
        if i == j or i in seen or j in seen:
            raise ValueError(f"{what}: every bodypart may appear in at most one pair "
                             f"(and not paired with itself), got {out}")
        seen.update((i, j))
    return out


def _swap_index(pairs: list[tuple[int, int]], k: int, what: str) -> torch.Tensor | None:
    """The permutation of ``k`` bodyparts that swaps each pair; None when there are no pairs."""
    if not pairs:
        return None
    if max(max(p) for p in pairs) >= k:
        raise ValueError(f"{what} {pairs} name a bodypart index >= the {k} bodyparts in the batch")
    perm = list(range(k))
    for i, j in pairs:
        perm[i], perm[j] = j, i
    return torch.tensor(perm, dtype=torch.long)


def _probability(value, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    """``n`` draws from U[low, high] on the CPU (float64, so matrices lose nothing before the cast)."""
    return low + (high - low) * torch.rand(n, dtype=torch.float64)


def _bernoulli(n: int, p: float) -> torch.Tensor:
    return torch.rand(n, dtype=torch.float64) < p


def _on_subset(images: torch.Tensor, mask: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn(subset_images, cpu_indices)`` to the samples where the CPU bool ``mask`` holds."""
    idx = mask.nonzero().flatten()
    if idx.numel() == 0:
        return images
    if idx.numel() == images.shape[0]:
        return fn(images, idx)
    dev_idx = idx.to(images.device)
    return images.index_copy(0, dev_idx, fn(images.index_select(0, dev_idx), idx))


class BatchAugment(torch.nn.Module):
    """Random crop sampling, affine, flip and photometric augmentation of a whole batch.

    Args:
        crop_size: ``[h, w]`` of the output, or None to keep the input size. With
            probability ``crop_sampling["p_around_animal"]`` a crop is centred on a random
            labeled keypoint (animal keypoints, else unique ones) shifted by up to
            ``crop_sampling["max_shift"]`` of the crop size, otherwise anywhere in the image
            (like DeepLabCut's "hybrid" crop sampling). Crops are whole-pixel shifts; images
            smaller than the crop are centred and padded with zeros.
        crop_sampling: ``{"p_around_animal": 0.9, "max_shift": 0.1}``; missing keys take these.
        rotation: maximum rotation in degrees; the angle is drawn from ``[-rotation, rotation]``.
        scale: ``[min, max]`` zoom factor (``> 1`` magnifies).
        translation: maximum shift as a fraction of the output width / height.
        affine_p: probability of the affine (rotation, scale, translation) per sample.
        hflip_p: probability of a horizontal flip per sample.
        symmetric_pairs: ``[[i, j], ...]`` bodyparts swapped on a flip (left/right parts);
            names are accepted when ``bodyparts`` is given (see :func:`pairs_from_names`).
        unique_symmetric_pairs: the same for unique bodyparts (names need ``unique_bodyparts``).
        noise_std, noise_p: additive gaussian pixel noise (std in [0, 1] image units).
        motion_blur_kernel, motion_blur_p: odd kernel size and probability of a motion blur
            with a random angle and direction.
        brightness, contrast, brightness_contrast_p: add ``U[-brightness, brightness]`` and
            scale the deviation from the image mean by ``U[1 - contrast, 1 + contrast]``.
        grayscale_p: probability of turning an RGB image gray (kept with 3 channels).

    After the geometry, keypoints outside the output image (outside ``[-0.5, w - 0.5)`` x
    ``[-0.5, h - 0.5)``) and keypoints with a NaN coordinate become NaN in all three values.
    When nothing is enabled (all probabilities 0, ``crop_size`` None) ``forward`` returns its
    inputs unchanged; keypoints are returned untouched whenever no geometry is enabled.
    """

    def __init__(
        self,
        crop_size: Sequence[int] | None = None,
        crop_sampling: Mapping[str, float] | None = None,
        rotation: float = 0.0,
        scale: Sequence[float] = (1.0, 1.0),
        translation: float = 0.0,
        affine_p: float = 0.0,
        hflip_p: float = 0.0,
        symmetric_pairs: Sequence[Sequence[int | str]] = (),
        unique_symmetric_pairs: Sequence[Sequence[int | str]] = (),
        noise_std: float = 0.0,
        noise_p: float = 0.0,
        motion_blur_kernel: int = 7,
        motion_blur_p: float = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        brightness_contrast_p: float = 0.0,
        grayscale_p: float = 0.0,
        bodyparts: Sequence[str] | None = None,
        unique_bodyparts: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if crop_size is not None:
            crop_size = [int(v) for v in crop_size]
            if len(crop_size) != 2 or min(crop_size) <= 0:
                raise ValueError(f"crop_size must be [height, width] > 0 or null, got {crop_size}")
            crop_size = (crop_size[0], crop_size[1])
        self.crop_size: tuple[int, int] | None = crop_size

        sampling = dict(_CROP_SAMPLING_DEFAULTS)
        given = dict(crop_sampling or {})
        unknown = set(given) - set(sampling)
        if unknown:
            raise ValueError(f"unknown crop_sampling key(s) {sorted(unknown)}; known: {sorted(sampling)}")
        sampling.update({k: float(v) for k, v in given.items()})
        self.p_around_animal = _probability(sampling["p_around_animal"], "crop_sampling.p_around_animal")
        self.max_shift = float(sampling["max_shift"])
        if self.max_shift < 0:
            raise ValueError(f"crop_sampling.max_shift must be >= 0, got {self.max_shift}")

        self.rotation = abs(float(rotation))
        scale = [float(s) for s in scale]
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be [min, max] with 0 < min <= max, got {scale}")
        self.scale = (scale[0], scale[1])
        self.translation = abs(float(translation))
        self.affine_p = _probability(affine_p, "affine_p")
        self.hflip_p = _probability(hflip_p, "hflip_p")
        self.symmetric_pairs = _index_pairs(symmetric_pairs, bodyparts, "symmetric_pairs")
        self.unique_symmetric_pairs = _index_pairs(unique_symmetric_pairs, unique_bodyparts,
                                                   "unique_symmetric_pairs")

        self.noise_std = abs(float(noise_std))
        self.noise_p = _probability(noise_p, "noise_p")
        self.motion_blur_kernel = int(motion_blur_kernel)
        self.motion_blur_p = _probability(motion_blur_p, "motion_blur_p")
        if self.motion_blur_p > 0 and (self.motion_blur_kernel < 3 or self.motion_blur_kernel % 2 == 0):
            raise ValueError(f"motion_blur_kernel must be odd and >= 3, got {self.motion_blur_kernel}")
        self.brightness = abs(float(brightness))
        self.contrast = abs(float(contrast))
        if self.contrast > 1:
            raise ValueError(f"contrast must be in [0, 1], got {self.contrast}")
        self.brightness_contrast_p = _probability(brightness_contrast_p, "brightness_contrast_p")
        self.grayscale_p = _probability(grayscale_p, "grayscale_p")

    pairs_from_names = staticmethod(pairs_from_names)

    # -- what is switched on -------------------------------------------------------------
    @property
    def _affine_on(self) -> bool:
        return self.affine_p > 0 and (self.rotation > 0 or self.scale != (1.0, 1.0) or self.translation > 0)

    @property
    def _geometry_on(self) -> bool:
        return self.crop_size is not None or self._affine_on or self.hflip_p > 0

    @property
    def _photometric_on(self) -> bool:
        return ((self.noise_p > 0 and self.noise_std > 0) or self.motion_blur_p > 0
                or (self.brightness_contrast_p > 0 and (self.brightness > 0 or self.contrast > 0))
                or self.grayscale_p > 0)

    def extra_repr(self) -> str:
        return (f"crop_size={self.crop_size}, p_around_animal={self.p_around_animal}, "
                f"rotation={self.rotation}, scale={self.scale}, translation={self.translation}, "
                f"affine_p={self.affine_p}, hflip_p={self.hflip_p}, noise_p={self.noise_p}, "
                f"motion_blur_p={self.motion_blur_p}, brightness_contrast_p={self.brightness_contrast_p}, "
                f"grayscale_p={self.grayscale_p}")

    # -- forward -------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, keypoints: torch.Tensor, unique_keypoints: torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be [B, C, H, W], got {tuple(images.shape)}")
        if keypoints.ndim != 4 or keypoints.shape[-1] != 3 or keypoints.shape[0] != images.shape[0]:
            raise ValueError(f"keypoints must be [B, N, K, 3] with B={images.shape[0]}, got {tuple(keypoints.shape)}")
        if (unique_keypoints.ndim != 3 or unique_keypoints.shape[-1] != 3
                or unique_keypoints.shape[0] != images.shape[0]):
            raise ValueError(f"unique_keypoints must be [B, U, 3] with B={images.shape[0]}, "
                             f"got {tuple(unique_keypoints.shape)}")
        if images.shape[0] == 0:
            return images, keypoints, unique_keypoints
        if self._geometry_on:
            images, keypoints, unique_keypoints = self._geometry(images, keypoints, unique_keypoints)
        if self._photometric_on:
            images = self._photometric(images)
        return images, keypoints, unique_keypoints

    def _geometry(self, images, keypoints, unique_keypoints):
        b, _, h, w = images.shape
        out_h, out_w = self.crop_size if self.crop_size is not None else (h, w)
        dev = images.device
        # Output centre, in pixel coordinates.
        ox, oy = (out_w - 1) / 2.0, (out_h - 1) / 2.0

        # Random numbers first, all on the CPU, in a fixed order (reproducible draws).
        affine = _bernoulli(b, self.affine_p if self._affine_on else 0.0)
        angle = torch.deg2rad(_uniform(b, -self.rotation, self.rotation))
        zoom = _uniform(b, *self.scale)
        tx = _uniform(b, -self.translation, self.translation) * out_w
        ty = _uniform(b, -self.translation, self.translation) * out_h
        flip = _bernoulli(b, self.hflip_p)
        if self.crop_size is not None:
            around = _bernoulli(b, self.p_around_animal)
            pick = torch.rand(b, keypoints.shape[1] * keypoints.shape[2] + unique_keypoints.shape[1])
            jitter = _uniform(2 * b, -self.max_shift, self.max_shift).view(b, 2) * torch.tensor(
                [out_w, out_h], dtype=torch.float64)
            anywhere = torch.rand(b, 2, dtype=torch.float64)

        # Crop: a whole-pixel shift taking the crop centre c to the output centre.
        shift = torch.zeros(b, 2, dtype=torch.float64, device=dev)
        if self.crop_size is not None:
            size = torch.tensor([w, h], dtype=torch.float64)
            half = torch.tensor([ox, oy], dtype=torch.float64)
            lo, hi = half, size - 1 - half  # centres whose crop lies inside the image
            fits = hi >= lo
            centre_any = torch.where(fits, lo + anywhere * (hi - lo), (size - 1) / 2)
            centre = centre_any.to(dev)
            if self.p_around_animal > 0:
                on_kp = self._keypoint_centres(keypoints, unique_keypoints, pick.to(dev))
                # NaN marks "no labeled keypoint": those fall back to anywhere.
                on_kp = on_kp + jitter.to(dev)
                lo_d, hi_d = lo.to(dev), hi.to(dev)
                on_kp = torch.where(fits.to(dev), torch.maximum(torch.minimum(on_kp, hi_d), lo_d), centre)
                use = around.to(dev)[:, None] & ~torch.isnan(on_kp).any(dim=1, keepdim=True)
                centre = torch.where(use, torch.nan_to_num(on_kp), centre)
            shift = torch.round(half.to(dev) - centre)

        # Affine about the output centre, then the flip about the output's vertical axis.
        ang = torch.where(affine, angle, 0.0)
        s = torch.where(affine, zoom, 1.0)
        t = torch.stack([torch.where(affine, tx, 0.0), torch.where(affine, ty, 0.0)], dim=1).to(dev)
        cos, sin = (s * torch.cos(ang)).to(dev), (s * torch.sin(ang)).to(dev)
        lin = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # [B, 2, 2]
        o = torch.tensor([ox, oy], dtype=torch.float64, device=dev)
        # x -> o + t + L (x + shift - o)
        offset = o + t + torch.einsum("bij,bj->bi", lin, shift - o)
        flip_d = flip.to(dev)
        sign = torch.where(flip_d, -1.0, 1.0).to(torch.float64)
        lin = lin * torch.stack([sign, torch.ones_like(sign)], 1)[:, :, None]
        offset = torch.stack([torch.where(flip_d, out_w - 1 - offset[:, 0], offset[:, 0]), offset[:, 1]], 1)
        matrix = torch.cat([lin, offset[:, :, None]], dim=2)  # [B, 2, 3], source -> output pixels

        images = self._warp(images, matrix.to(images.dtype), affine, (out_h, out_w))

        keypoints = self._move(keypoints, matrix, flip_d, self.symmetric_pairs, "symmetric_pairs",
                               out_h, out_w)
        unique_keypoints = self._move(unique_keypoints[:, None], matrix, flip_d, self.unique_symmetric_pairs,
                                      "unique_symmetric_pairs", out_h, out_w)[:, 0]
        return images, keypoints, unique_keypoints

    @staticmethod
    def _warp(images, matrix, affine, size):
        """Resample: bilinear where the affine was drawn, nearest elsewhere. Without the affine the
        matrix is a whole-pixel shift and/or a mirror, which nearest sampling copies exactly."""
        def warp(idx, mode):
            if idx.numel() == images.shape[0]:
                return warp_affine(images, matrix, size, mode=mode, padding_mode="zeros", align_corners=True)
            dev_idx = idx.to(images.device)
            return warp_affine(images.index_select(0, dev_idx), matrix.index_select(0, dev_idx), size,
                               mode=mode, padding_mode="zeros", align_corners=True)

        smooth, exact = affine.nonzero().flatten(), (~affine).nonzero().flatten()
        if exact.numel() == 0:
            return warp(smooth, "bilinear")
        if smooth.numel() == 0:
            return warp(exact, "nearest")
        out = images.new_empty((images.shape[0], images.shape[1], *size))
        out = out.index_copy(0, smooth.to(images.device), warp(smooth, "bilinear"))
        return out.index_copy(0, exact.to(images.device), warp(exact, "nearest"))

    @staticmethod
    def _keypoint_centres(keypoints, unique_keypoints, pick):
        """A random labeled keypoint per image, [B, 2] (float64); animal keypoints first, else
        unique ones; NaN where the image has none."""
        b = keypoints.shape[0]
        pts = torch.cat([keypoints.reshape(b, -1, 3), unique_keypoints], dim=1)[..., :2].double()
        valid = torch.isfinite(pts).all(dim=-1)
        n_animal = keypoints.shape[1] * keypoints.shape[2]
        is_animal = torch.zeros_like(valid)
        is_animal[:, :n_animal] = True
        has_animal = (valid & is_animal).any(dim=1, keepdim=True)
        allowed = valid & (is_animal | ~has_animal)
        if allowed.shape[1] == 0:
            return torch.full((b, 2), float("nan"), dtype=torch.float64, device=keypoints.device)
        # Uniform choice among the allowed points: the one with the largest random score.
        score = torch.where(allowed, pick + 1.0, 0.0)
        idx = score.argmax(dim=1)
        chosen = torch.nan_to_num(pts[torch.arange(b, device=pts.device), idx])
        return torch.where(allowed.any(dim=1, keepdim=True), chosen, float("nan"))

    @staticmethod
    def _move(points, matrix, flip, pairs, what, out_h, out_w):
        """Apply the [B, 2, 3] matrix to [B, N, K, 3] points, swap pairs where flipped, NaN outsiders."""
        m = matrix.to(points.dtype)
        xy = torch.einsum("bij,bnkj->bnki", m[:, :, :2], points[..., :2]) + m[:, None, None, :, 2]
        moved = torch.cat([xy, points[..., 2:]], dim=-1)
        perm = _swap_index(pairs, points.shape[2], what)
        if perm is not None:
            swapped = moved[:, :, perm.to(points.device)]
            moved = torch.where(flip[:, None, None, None], swapped, moved)
        x, y = moved[..., 0], moved[..., 1]
        inside = (x >= -0.5) & (x < out_w - 0.5) & (y >= -0.5) & (y < out_h - 0.5)  # False for NaN
        return torch.where(inside[..., None], moved, float("nan"))

    def _photometric(self, images):
        b, c = images.shape[:2]
        # All draws up front, on the CPU, in a fixed order.
        bc = _bernoulli(b, self.brightness_contrast_p if (self.brightness > 0 or self.contrast > 0) else 0.0)
        delta = _uniform(b, -self.brightness, self.brightness)
        gain = _uniform(b, 1 - self.contrast, 1 + self.contrast)
        gray = _bernoulli(b, self.grayscale_p if c == 3 else 0.0)
        blur = _bernoulli(b, self.motion_blur_p)
        blur_angle = _uniform(b, 0.0, 360.0)
        blur_direction = _uniform(b, -1.0, 1.0)
        noise = _bernoulli(b, self.noise_p if self.noise_std > 0 else 0.0)

        def brightness_contrast(x, idx):
            g = gain[idx].to(x.device, x.dtype)[:, None, None, None]
            d = delta[idx].to(x.device, x.dtype)[:, None, None, None]
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            return ((x - mean) * g + mean + d).clamp(0.0, 1.0)

        def grayscale(x, idx):
            return rgb_to_grayscale(x).expand_as(x).contiguous()

        def blurred(x, idx):
            k = self.motion_blur_kernel
            if min(x.shape[-2:]) <= k // 2:  # too small for the kernel: leave it
                return x
            return motion_blur(x, k, blur_angle[idx].to(x.device, x.dtype),
                               blur_direction[idx].to(x.device, x.dtype), border_type="replicate")

        def noisy(x, idx):
            return (x + self.noise_std * torch.randn_like(x)).clamp(0.0, 1.0)

        images = _on_subset(images, bc, brightness_contrast)
        images = _on_subset(images, gray, grayscale)
        images = _on_subset(images, blur, blurred)
        images = _on_subset(images, noise, noisy)
        return images
