"""Conditions of conditional top-down (CTD) models: synthetic ones for training, bottom-up predictions read from files.

A condition is one animal's pose proposal ``[K, 3]`` (x, y, score); a missing keypoint is NaN
with score 0. In training, DeepLabCut 3 makes conditions from the ground truth by *generative
sampling* (PoseFix, adapted by BUCTD; ``data/generative_sampling.py``): each labeled keypoint is,
with DeepLabCut's default probabilities, kept near the truth ("good", 63 %), jittered (16 %),
missed (10 %), swapped with the same bodypart of an overlapping animal (8 %) or inverted with
another bodypart of the same animal (3 %). The distances come from the keypoint similarity of
the animal's box area (OKS 0.85 / 0.5 / 0.1). :func:`sample_conditions` does the same on the
batch's device for all animals at once: where DeepLabCut draws 125-2000 points per keypoint and
keeps one that is not closer to another source point, we draw ``candidates`` points and keep the
first that passes, which gives the same distribution unless none passes (then, as there, the
error type is not available and the others are renormalised).

At inference the conditions are a bottom-up model's predictions: :func:`load_conditions` reads
DeepLabCut's prediction files (``.h5``, ``.json``, ``_assemblies.pickle``) and checks them
against the project's bodyparts and the video's frame count.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.shuffles import ArraysOnlyUnpickler


@dataclass(frozen=True)
class GenerativeSampling:
    """DeepLabCut's ``data.gen_sampling`` (its defaults): error probabilities and keypoint sigma.

    ``symmetry``: pairs of bodypart indices an inversion swaps (left/right); None, as in
    DeepLabCut, draws random pairs for every keypoint.
    """

    keypoint_sigma: float = 0.1
    jitter_prob: float = 0.16
    swap_prob: float = 0.08
    inv_prob: float = 0.03
    miss_prob: float = 0.10
    symmetry: tuple[tuple[int, int], ...] | None = None
    candidates: int = 64

    def __post_init__(self):
        probs = (self.jitter_prob, self.swap_prob, self.inv_prob, self.miss_prob)
        if min(probs) < 0 or sum(probs) > 1:
            raise ValueError(f"gen_sampling: probabilities must be >= 0 and sum to <= 1, got {probs}")


def _ks_distance(sampling: GenerativeSampling, area: torch.Tensor, ks: float) -> torch.Tensor:
    """The distance at which a keypoint's similarity to the truth is ``ks`` (DeepLabCut's formula)."""
    return torch.sqrt(-2 * area * (sampling.keypoint_sigma * 2) ** 2 * math.log(ks))


def _partners(m: int, k: int, symmetry, device, generator) -> torch.Tensor:
    """``[M, K]`` each keypoint's inversion partner (-1: none): fixed pairs, or DeepLabCut's random ones."""
    if symmetry:
        partner = torch.full((k,), -1, dtype=torch.long, device=device)
        for a, b in symmetry:
            partner[a], partner[b] = b, a
        return partner.expand(m, k)
    # random pairing drawn per keypoint, as DeepLabCut draws it again for every keypoint
    perm = torch.rand((m, k, k), device=device, generator=generator).argsort(-1)
    position = perm.argsort(-1).gather(-1, torch.arange(k, device=device).view(1, k, 1).expand(m, k, 1))[..., 0]
    paired = position < 2 * (k // 2)
    mate = perm.gather(-1, (position ^ 1).clamp_max(k - 1)[..., None])[..., 0]
    return torch.where(paired, mate, torch.full_like(mate, -1))


def _pick(centres: torch.Tensor, low: torch.Tensor, high: torch.Tensor, others: torch.Tensor,
          others_valid: torch.Tensor, clearance: torch.Tensor | None, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One point per keypoint at a uniform angle and radius in ``[low, high]`` around ``centres [M, K, C, 2]``
    (one centre per candidate) that is farther than ``clearance`` (default: its radius) from every valid
    ``others [M, K, C, S, 2]``; returns the points ``[M, K, 2]`` and whether one passed ``[M, K]``."""
    shape = centres.shape[:-1]
    angle = torch.rand(shape, device=centres.device, generator=generator) * 2 * math.pi
    r = low[..., None] + torch.rand(shape, device=centres.device, generator=generator) * (high - low)[..., None]
    points = centres + torch.stack([r * torch.cos(angle), r * torch.sin(angle)], -1)
    distance = (others - points[..., None, :]).norm(dim=-1)  # [M, K, C, S]
    need = (r if clearance is None else clearance.expand_as(r))[..., None]
    ok = ((distance > need) | ~others_valid).all(-1)
    first = ok.float().argmax(-1)  # candidates are i.i.d.: the first passing one is a uniform pick
    chosen = points.gather(-2, first[..., None, None].expand(*first.shape, 1, 2))[..., 0, :]
    return chosen, ok.any(-1)


def sample_conditions(keypoints: torch.Tensor, near: torch.Tensor, area: torch.Tensor, sizes: torch.Tensor,
                      sampling: GenerativeSampling = GenerativeSampling(),
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Synthetic conditions from the truth, as DeepLabCut's ``GenerativeSampler``.

    Args:
        keypoints: ``[M, K, 3]`` each animal's labels (x, y, visibility; NaN or visibility <= 0: unlabeled).
        near: ``[M, N, K, 3]`` the labels of the animals whose boxes overlap the animal's (DeepLabCut counts
            the animal itself among them), NaN rows for none: the sources of swaps.
        area: ``[M]`` the area of each animal's box (w * h).
        sizes: ``[M, 2]`` (height, width) of each animal's image: conditions are clipped to it.
        sampling: the error probabilities and sigma.
        generator: random generator on the keypoints' device (None: torch's global one).

    Returns:
        ``[M, K, 3]`` conditions (x, y, score 2 as DeepLabCut marks them); unlabeled keypoints and
        keypoints without any possible error are NaN with score 0.
    """
    device, dtype = keypoints.device, torch.float32
    kp, near = keypoints.to(dtype), near.to(dtype)
    m, k = kp.shape[:2]
    c = sampling.candidates
    labeled = torch.isfinite(kp[..., :2]).all(-1) & (torch.nan_to_num(kp[..., 2], nan=0.0) > 0)
    near_ok = torch.isfinite(near[..., :2]).all(-1) & (torch.nan_to_num(near[..., 2], nan=0.0) > 0)  # [M, N, K]
    area = area.to(dtype).view(m, 1).expand(m, k)
    d10, d50, d85 = (_ks_distance(sampling, area, ks) for ks in (0.10, 0.50, 0.85))

    partner = _partners(m, k, sampling.symmetry, device, generator)
    has_partner = partner >= 0
    p = partner.clamp_min(0)
    inv_xy = kp[..., :2].gather(1, p[..., None].expand(m, k, 2))
    inv_ok = has_partner & labeled.gather(1, p)
    swap_xy = near[..., :2].permute(0, 2, 1, 3)  # [M, K, N, 2]
    swap_ok = near_ok.permute(0, 2, 1)
    swap_inv_xy = swap_xy.gather(1, p[..., None, None].expand(m, k, swap_xy.shape[2], 2))
    swap_inv_ok = swap_ok.gather(1, p[..., None].expand_as(swap_ok)) & has_partner[..., None]
    # the source points: truth, swaps, inversion, swapped inversions (DeepLabCut's "coord list")
    sources = torch.cat([kp[..., None, :2], swap_xy, inv_xy[..., None, :], swap_inv_xy], 2)  # [M, K, S, 2]
    valid = torch.cat([labeled[..., None], swap_ok, inv_ok[..., None], swap_inv_ok], 2)
    sources = torch.where(valid[..., None], sources, torch.zeros_like(sources))
    s = sources.shape[2]
    gt_i, inv_i = 0, 1 + swap_xy.shape[2]

    def around(index: int, low, high, clearance=None):
        centre = sources[:, :, index, None].expand(m, k, c, 2)
        mask = valid.clone()
        mask[..., index] = False
        return _pick(centre, low, high, sources[:, :, None].expand(m, k, c, s, 2), mask[:, :, None].expand(m, k, c, s),
                     clearance, generator)

    zero = torch.zeros_like(d85)
    good, good_ok = around(gt_i, zero, d85)
    jitter, jitter_ok = around(gt_i, d85, d50)
    inv, inv_pick_ok = around(inv_i, zero, d50)
    inv_pick_ok &= inv_ok

    def from_sources(weights: torch.Tensor, low, high, others_mask: torch.Tensor, clearance=None):
        """Candidates around sources drawn with ``weights [M, K, S]`` (DeepLabCut pools the points of several)."""
        w = weights.float().reshape(m * k, s)
        usable = w.sum(-1) > 0
        drawn = torch.multinomial(torch.where(usable[:, None], w, torch.ones_like(w)), c, replacement=True,
                                  generator=generator).view(m, k, c)
        centre = sources.gather(2, drawn[..., None].expand(m, k, c, 2))
        # DeepLabCut rejects a miss point near any source but its own centre
        mask = others_mask[:, :, None].expand(m, k, c, s).clone()
        if clearance is not None:
            mask &= drawn[..., None] != torch.arange(s, device=device)
        point, ok = _pick(centre, low, high, sources[:, :, None].expand(m, k, c, s, 2), mask, clearance, generator)
        return point, ok & usable.view(m, k)

    # miss: DeepLabCut keeps all 4N points around the truth and a quarter of those around the others
    miss_w = valid.float() * torch.cat([torch.full_like(valid[..., :1], 4.0, dtype=torch.float32),
                                        torch.ones_like(valid[..., 1:], dtype=torch.float32)], 2)
    miss, miss_ok = from_sources(miss_w, d50, d10, valid, clearance=d50[..., None])
    # swap: around the other animals' points, away from the truth and the inversion only
    swap_w = valid.clone()
    swap_w[..., gt_i] = False
    swap_w[..., inv_i] = False
    keep_away = torch.zeros_like(valid)
    keep_away[..., gt_i] = valid[..., gt_i]
    keep_away[..., inv_i] = valid[..., inv_i]
    swap, swap_pick_ok = from_sources(swap_w, zero, d50, keep_away)

    options = torch.stack([jitter, miss, inv, swap, good], 2)  # [M, K, 5, 2], DeepLabCut's order
    base = torch.tensor([sampling.jitter_prob, sampling.miss_prob, sampling.inv_prob, sampling.swap_prob,
                         1 - sampling.jitter_prob - sampling.miss_prob - sampling.inv_prob - sampling.swap_prob],
                        device=device)
    available = torch.stack([jitter_ok, miss_ok, inv_pick_ok, swap_pick_ok, good_ok], 2) & labeled[..., None]
    probs = base * available
    total = probs.sum(-1, keepdim=True)
    some = total[..., 0] > 0
    choice = torch.multinomial(torch.where(some[..., None], probs / total.clamp_min(1e-12), torch.ones_like(probs))
                               .view(m * k, 5), 1, generator=generator).view(m, k)
    xy = options.gather(2, choice[..., None, None].expand(m, k, 1, 2))[..., 0, :]
    h, w = sizes.to(dtype).view(m, 1, 2).unbind(-1)
    xy = torch.stack([torch.minimum(xy[..., 0].clamp_min(0), w), torch.minimum(xy[..., 1].clamp_min(0), h)], -1)
    score = torch.full_like(xy[..., :1], 2.0)
    out = torch.cat([xy, score], -1)
    return torch.where(some[..., None], out, torch.tensor([float("nan"), float("nan"), 0.0], device=device))


def overlapping(boxes: torch.Tensor) -> torch.Tensor:
    """``[B, N, N]``: whether boxes ``[B, N, 4]`` (xyxy, NaN: none) overlap (an animal overlaps itself),
    DeepLabCut's choice of the animals whose keypoints a condition may be swapped with."""
    low = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    high = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    return ((high - low) > 0).all(-1)


# ---- conditions from files: a bottom-up model's predictions ---------------------------------------------
def _check_bodyparts(found: Sequence[str], bodyparts: Sequence[str] | None, path: Path) -> None:
    if bodyparts is not None and list(found) != list(bodyparts):
        raise ValueError(f"conditions file {path}: its bodyparts {list(found)} are not the project's "
                         f"{list(bodyparts)} (a CTD model needs a bottom-up model of the same project)")


def unseen_keypoints(poses: np.ndarray) -> np.ndarray:
    """``[..., K]`` True where a pose ``[..., K, >=3]`` has no position or a score <= 0: no condition (the one rule
    for predictions, files and tracked poses; tensors: :func:`lightning_dlc.models.ctd_crops.missing_as_nan`)."""
    return ~np.isfinite(poses[..., :2]).all(-1) | ~(np.nan_to_num(poses[..., 2]) > 0)


def _clean(pose: np.ndarray) -> np.ndarray:
    """``[N, K, 3]``: missing keypoints (unseen or, as files write them, negative) NaN with score 0; animals with
    none dropped."""
    pose = np.asarray(pose, dtype=np.float32)
    pose = (pose[None] if pose.ndim == 2 else pose)[..., :3].copy()  # assemblies carry a 4th column (affinity)
    missing = unseen_keypoints(pose) | (pose[..., :2] < 0).any(-1)
    pose[missing] = (np.nan, np.nan, 0.0)
    return pose[(~missing).any(-1)]


def load_conditions(path: str | Path, bodyparts: Sequence[str] | None = None, n_frames: int | None = None,
                    images: Sequence[str] | None = None) -> list[np.ndarray] | dict[str, np.ndarray]:
    """A bottom-up model's predictions as conditions, as DeepLabCut's ``CondFromFile`` reads them.

    Args:
        path: DeepLabCut predictions: ``.h5`` (a video's or an evaluation's DataFrame), ``.json``
            (a list per frame, or image -> list) or ``_assemblies.pickle``.
        bodyparts: the project's multi-animal bodyparts: a file with others is an error (h5 only
            names them; in JSON and pickle their count is checked).
        n_frames: the video's frame count: a file with another count is an error.
        images: image paths (as the file's index writes them, joined with "/"): return a dict for
            them (an image without a row has no conditions); None: a list per frame.

    Returns:
        ``[N, K, 3]`` per frame (or image): NaN with score 0 where a keypoint is missing.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"conditions file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".h5":
        per_key = _read_h5(path, bodyparts)
    elif suffix == ".json":
        with path.open() as f:
            data = json.load(f)
        items = data.items() if isinstance(data, dict) else enumerate(data)
        per_key = {key: _clean(v) if len(v) else
                   np.zeros((0, len(bodyparts or ()), 3), np.float32) for key, v in items}
    elif suffix == ".pickle":
        try:  # arrays and builtins only: a pickle can run code, and this one may come from anywhere
            with path.open("rb") as f:
                data = ArraysOnlyUnpickler(f).load()
            data = {int(k): v for k, v in data.items() if isinstance(k, (int, np.integer))}
        except Exception as e:
            raise ProjectError(path, f"not a readable _assemblies.pickle of conditions: {e!r}") from e
        per_key = {i: _clean(np.stack(data[i], 0)) if len(data.get(i, ())) else None
                   for i in range(max(data, default=-1) + 1)}
        if n_frames is not None and len(per_key) < n_frames:
            # DeepLabCut's assemblies omit the last frames without animals
            per_key.update({i: None for i in range(len(per_key), n_frames)})
    else:
        raise ValueError(f"conditions file {path}: expected a DeepLabCut predictions .h5, .json or "
                         f"_assemblies.pickle, got {suffix!r}")
    n_parts = len(bodyparts) if bodyparts is not None else None
    for key, pose in per_key.items():
        if pose is None:
            per_key[key] = np.zeros((0, n_parts or 0, 3), np.float32)
        elif n_parts is not None and len(pose) and pose.shape[1] != n_parts:
            raise ValueError(f"conditions file {path}: frame {key} has {pose.shape[1]} bodyparts, "
                             f"the project {n_parts} ({list(bodyparts)})")
    if images is not None:
        return {image: per_key.get(image, np.zeros((0, n_parts or 0, 3), np.float32)) for image in images}
    if n_frames is not None and len(per_key) != n_frames:
        raise ValueError(f"conditions file {path} has {len(per_key)} frames, the video {n_frames}: "
                         "were the conditions made on another video (or part of it)?")
    return list(per_key.values())


def _read_h5(path: Path, bodyparts: Sequence[str] | None) -> dict:
    import pandas as pd

    df = pd.read_hdf(path)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"conditions file {path} holds no DataFrame")
    columns = df.columns
    if "individuals" in columns.names:  # unique bodyparts ride as the "single" individual: not conditions
        columns = columns[columns.get_level_values("individuals") != "single"]
        df = df[columns]
    names = list(dict.fromkeys(columns.get_level_values("bodyparts")))
    _check_bodyparts(names, bodyparts, path)
    values = df.to_numpy(dtype=np.float32).reshape(len(df), -1, len(names), 3)
    keys = ["/".join(map(str, key)) if isinstance(key, tuple) else key for key in df.index]
    return {key: _clean(row) for key, row in zip(keys, values)}
