"""Ensemble Kalman smoothing of several models' keypoints (the method of Lightning Pose's EKS), in numpy.

Each keypoint coordinate is a random walk seen through the members' mean, whose noise on each frame is
the members' disagreement there (their variance, raised where they are unsure: divided by their mean
likelihood). A Kalman filter and Rauch-Tung-Striebel smoother give the posterior mean and variance;
the random walk's step variance is chosen per keypoint by the largest marginal likelihood over a grid,
as EKS chooses its smoothing parameter. Frames where no member sees a keypoint are bridged by the
walk (their posterior variance grows with the gap). Arrays in, arrays out; the ``ensemble-kalman-smoother``
package does this with jax, which this project does not otherwise need.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["EnsembleSmoothed", "ensemble_statistics", "kalman_smooth", "match_tracks", "smooth_ensemble"]

# step variances tried, as multiples of the typical squared frame-to-frame step of the ensemble mean
SMOOTHING_GRID = np.logspace(-4, 1, 21)
BLOCK = 64  # x and y columns smoothed at once
# a point only one member sees has no spread to measure: its noise is this times the column's typical noise
# where members agree (a lone member is as likely a glitch the others rejected as a true sighting)
LONE_NOISE_FACTOR = 100.0
MATCH_CHUNK = 1 << 20  # pairwise distances held at once by match_tracks


@dataclass(frozen=True)
class EnsembleSmoothed:
    """``points`` ``[T, P, 3]`` (smoothed x, y; the members' mean likelihood), ``variance`` ``[T, P, 2]``
    (posterior variance of x, y in px²), ``ensemble_variance`` ``[T, P, 2]`` (the noise the smoother
    assumed: members' variance over their likelihood), ``smoothing`` ``[P]`` (the step variance chosen)."""

    points: np.ndarray
    variance: np.ndarray
    ensemble_variance: np.ndarray
    smoothing: np.ndarray


def ensemble_statistics(members: np.ndarray, min_likelihood: float = 0.0, min_variance: float = 0.25,
                        average: str = "median") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members ``[M, T, P, 3]`` -> centre ``[T, P, 2]``, noise variance ``[T, P, 2]``, likelihood ``[T, P]``.

    The centre is the members' ``median`` (EKS' default: one member's glitch does not move it) or ``mean``;
    a member's point under ``min_likelihood`` (or NaN) is left out of that frame's centre and variance;
    the likelihood is every member's mean (missing counts as 0). ``min_variance`` (px²) keeps members
    that agree exactly from being trusted infinitely. Where only one member sees a point its noise is
    :data:`LONE_NOISE_FACTOR` times that column's median noise over frames where two or more see it.
    """
    if average not in ("median", "mean"):
        raise ValueError(f"average must be 'median' or 'mean', got {average!r}")
    members = np.asarray(members, np.float64)
    if members.ndim != 4 or members.shape[-1] != 3 or len(members) < 2:
        raise ValueError(f"members must be [M >= 2, frames, points, 3] (x, y, likelihood), got {members.shape}")
    likelihood = np.nan_to_num(members[..., 2], nan=0.0)
    seen = np.isfinite(members[..., :2]).all(-1) & (likelihood >= min_likelihood)
    xy = np.where(seen[..., None], members[..., :2], np.nan)
    n_seen = seen.sum(0)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nobody sees a point: NaN, as wanted
        mean = np.nansum(xy, 0) / n_seen
        spread = np.nansum((xy - mean) ** 2, 0) / n_seen
        confidence = np.nansum(np.where(seen, likelihood, 0.0), 0) / seen.sum(0)
        centre = _nanmedian_first_axis(xy, np.broadcast_to(n_seen, xy.shape[1:])) if average == "median" else mean
    centre[n_seen[..., 0] == 0] = np.nan
    noise = np.maximum(spread, min_variance) / np.clip(confidence, 0.05, 1.0)[..., None]
    return centre, _lone_noise(noise, n_seen[..., 0], min_variance), likelihood.mean(0)


def _lone_noise(noise: np.ndarray, n_seen: np.ndarray, min_variance: float) -> np.ndarray:
    """``noise`` ``[T, P, 2]`` with frames one member sees (``n_seen`` ``[T, P]`` == 1) set to
    :data:`LONE_NOISE_FACTOR` x the column's median over frames >= 2 see (else all columns', else
    ``min_variance``): their spread of 0 would trust one member more than several that agree."""
    lone = n_seen == 1
    if not lone.any():
        return noise
    agreed = np.where((n_seen >= 2)[..., None], noise, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column never agreed on: the fallbacks below
        typical = np.nanmedian(agreed, 0)                                               # [P, 2]
        overall = np.nanmedian(agreed) if np.isfinite(agreed).any() else min_variance
    typical = np.where(np.isfinite(typical), typical, overall)
    return np.where(lone[..., None], LONE_NOISE_FACTOR * typical, noise)


def _nanmedian_first_axis(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, 0)`` for few members and many points (numpy's is slow there): sort (NaN last),
    average the middle one or two of the ``count`` (shaped like ``values[0]``) finite values."""
    ordered = np.sort(values, 0)
    low = np.clip((count - 1) // 2, 0, None)[None]
    high = np.clip(count // 2, 0, len(values) - 1)[None]
    middle = 0.5 * (np.take_along_axis(ordered, low, 0) + np.take_along_axis(ordered, high, 0))[0]
    return np.where(count > 0, middle, np.nan)


def kalman_smooth(observed: np.ndarray, noise: np.ndarray, step: np.ndarray, smooth: bool = True
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Random-walk Kalman smoother over axis 0 of ``observed`` ``[T, ...]`` (NaN: unobserved).

    ``noise``: observation variance like ``observed``; ``step``: the walk's step variance, broadcast
    against one frame (e.g. ``[G, 1, D]`` to try G values at once). Returns the smoothed mean and
    variance ``[T, *batch]`` and the marginal log-likelihood of the observations ``[*batch]``;
    ``smooth=False``: only the log-likelihood (no per-frame history kept: what choosing the step needs).
    """
    observed, noise = np.asarray(observed, np.float64), np.asarray(noise, np.float64)
    shape = np.broadcast_shapes(observed.shape[1:], np.shape(step))
    n = len(observed)
    seen = np.isfinite(observed) & np.isfinite(noise)
    start = np.nanmean(np.where(seen, observed, np.nan), 0) if seen.any() else np.zeros(observed.shape[1:])
    start = np.nan_to_num(start)
    spread = np.nan_to_num(np.nanvar(np.where(seen, observed, np.nan), 0)) if seen.any() else 0.0
    mean = np.broadcast_to(start, shape).copy()
    var = np.broadcast_to(np.asarray(spread) + 1e4, shape).copy()  # a vague start
    if smooth:
        filtered_mean, filtered_var, predicted_var = (np.empty((n, *shape)) for _ in range(3))
    loglik = np.zeros(shape)
    ys, rs, oks = np.where(seen, observed, 0.0), np.where(seen, noise, 1.0), seen.astype(np.float64)
    for t in range(n):
        if t:
            var = var + step
        if smooth:
            predicted_var[t] = var
        total = var + rs[t]
        gain = oks[t] * var / total                       # 0 where unobserved: the prediction stands
        innovation = ys[t] - mean
        loglik -= oks[t] * 0.5 * (np.log(2 * np.pi * total) + innovation ** 2 / total)
        mean = mean + gain * innovation
        var = (1 - gain) * var
        if smooth:
            filtered_mean[t], filtered_var[t] = mean, var
    if not smooth:
        return None, None, loglik
    smooth_mean, smooth_var = filtered_mean.copy(), filtered_var.copy()
    for t in range(n - 2, -1, -1):
        back = filtered_var[t] / predicted_var[t + 1]
        smooth_mean[t] = filtered_mean[t] + back * (smooth_mean[t + 1] - filtered_mean[t])
        smooth_var[t] = filtered_var[t] + back ** 2 * (smooth_var[t + 1] - predicted_var[t + 1])
    return smooth_mean, smooth_var, loglik


def smooth_ensemble(members: np.ndarray, smoothing: float | None = None, min_likelihood: float = 0.0,
                    min_variance: float = 0.25, average: str = "median") -> EnsembleSmoothed:
    """Members' predictions ``[M, T, P, 3]`` (same frames, same points) -> :class:`EnsembleSmoothed`.

    ``smoothing``: the random walk's step variance in px² (larger follows the members more closely);
    None chooses it per keypoint (x and y together) by marginal likelihood over :data:`SMOOTHING_GRID`.
    ``min_likelihood``, ``min_variance``, ``average``: :func:`ensemble_statistics`.
    """
    mean, noise, likelihood = ensemble_statistics(members, min_likelihood, min_variance, average)
    n, p = mean.shape[:2]
    observed, noise = mean.reshape(n, 2 * p), noise.reshape(n, 2 * p)
    if smoothing is not None:
        steps = np.full(p, float(smoothing))
    else:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a point nobody saw: its default below
            typical = np.nanmedian(np.diff(mean, axis=0) ** 2, axis=(0, 2)) if n > 1 else np.full(p, np.nan)
        typical = np.where(np.isfinite(typical) & (typical > 0), typical, 1.0)       # [P]
        grid = SMOOTHING_GRID[:, None] * typical[None]                                 # [G, P]
        _, _, loglik = kalman_smooth(observed, noise, np.repeat(grid, 2, axis=1), smooth=False)  # [G, 2P]
        best = loglik.reshape(len(grid), p, 2).sum(-1).argmax(0)
        steps = grid[best, np.arange(p)]
    smooth_mean, smooth_var = np.empty_like(observed), np.empty_like(observed)
    for first in range(0, 2 * p, BLOCK):  # a block of columns at a time: the smoother keeps 3 histories of each
        cols = slice(first, first + BLOCK)
        smooth_mean[:, cols], smooth_var[:, cols], _ = kalman_smooth(observed[:, cols], noise[:, cols],
                                                                     np.repeat(steps, 2)[cols])
    never = ~np.isfinite(mean).all(-1).any(0)                                          # points no member saw
    points = np.concatenate([smooth_mean.reshape(n, p, 2), likelihood[..., None]], -1)
    variance = smooth_var.reshape(n, p, 2)
    points[:, never, :2] = np.nan
    variance[:, never] = np.nan
    return EnsembleSmoothed(points=points, variance=variance, ensemble_variance=noise.reshape(n, p, 2),
                            smoothing=steps)


def match_tracks(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``order`` such that ``other[:, order]`` lines up with ``reference`` (``[T, N, K, >=2]`` each): the
    assignment of animals with the least mean keypoint distance over the frames both see (a pair never
    seen together costs a large constant). Members' tracks need not be in the same order."""
    ref, oth = np.asarray(reference)[..., :2], np.asarray(other)[..., :2]
    total, count = np.zeros((ref.shape[1], oth.shape[1])), np.zeros((ref.shape[1], oth.shape[1]))
    chunk = max(1, MATCH_CHUNK // max(1, ref.shape[1] * oth.shape[1] * ref.shape[2]))
    for first in range(0, len(ref), chunk):  # frames a chunk at a time: [T, N, N, K] at once is GBs on long videos
        a = ref[first:first + chunk, :, None].astype(np.float64)
        distance = np.linalg.norm(a - oth[first:first + chunk, None].astype(np.float64), axis=-1)  # [t, N, N, K]
        seen = np.isfinite(distance)
        total += np.where(seen, distance, 0.0).sum((0, 3))
        count += seen.sum((0, 3))
    with np.errstate(invalid="ignore", divide="ignore"):  # a pair never seen together: priced below
        cost = total / count
    cost = np.where(np.isfinite(cost), cost, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]
