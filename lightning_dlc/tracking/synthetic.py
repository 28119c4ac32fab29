"""Detections made from ground truth with the faults of a real model, to test and benchmark tracking.

From true poses ``[T, N, K, 3]`` (x, y, visibility) :func:`noisy_detections` makes what an
assemblies pickle holds, ``{frame: [n, K, 4]}`` (x, y, likelihood, identity -1), with pixel
noise, hidden and randomly dropped keypoints, whole animals missed, false positives (a real
pose from another frame put somewhere else) and the animals in random order in each frame, so
that nothing but tracking can tell who is who.
"""
from __future__ import annotations

import numpy as np

__all__ = ["noisy_detections"]


def noisy_detections(truth: np.ndarray, noise: float = 1.0, drop_keypoint: float = 0.1, drop_animal: float = 0.05,
                     false_positives: float = 0.1, seed: int = 0) -> dict[int, np.ndarray]:
    """Per-frame detections from true poses (see the module doc).

    Args:
        truth: ``[T, N, K, 3]`` x, y and visibility (0: hidden, left out of the detections).
        noise: standard deviation of the Gaussian pixel noise.
        drop_keypoint, drop_animal: probabilities of losing one keypoint, one animal.
        false_positives: expected false animals per frame.
    """
    rng = np.random.default_rng(seed)
    truth = np.asarray(truth, np.float64)
    n_frames, n_animals, n_keypoints = truth.shape[:3]
    xy = truth[..., :2] + rng.normal(0.0, noise, truth[..., :2].shape)
    seen = (truth[..., 2] > 0) & (rng.random(truth.shape[:3]) >= drop_keypoint)
    seen &= (rng.random((n_frames, n_animals)) >= drop_animal)[..., None]
    likelihood = np.where(seen, rng.uniform(0.5, 1.0, seen.shape), np.nan)
    animals = np.concatenate([np.where(seen[..., None], xy, np.nan), likelihood[..., None],
                              np.full(seen.shape + (1,), -1.0)], -1)

    n_false = rng.poisson(false_positives, n_frames)
    fake_from = rng.integers(0, n_frames, (n_false.sum(), 2))
    fakes = animals[fake_from[:, 0], rng.integers(0, n_animals, len(fake_from))].copy()
    span = np.nanmax(truth[..., :2], axis=(0, 1, 2)) - np.nanmin(truth[..., :2], axis=(0, 1, 2))
    shift = rng.uniform(-0.5, 0.5, (len(fakes), 1, 2)) * span
    fakes[..., :2] += shift
    fakes[..., 2] = np.where(np.isfinite(fakes[..., 2]), rng.uniform(0.2, 0.7, fakes.shape[:2]), np.nan)
    fake_frames = np.split(fakes, np.cumsum(n_false)[:-1])

    detections = {}
    for t in range(n_frames):
        found = animals[t][seen[t].any(-1)]
        frame = np.concatenate([found, fake_frames[t]]) if len(fake_frames[t]) else found
        detections[t] = frame[rng.permutation(len(frame))].reshape(-1, n_keypoints, 4)
    return detections
