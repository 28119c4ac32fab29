"""Which video frames a model probably got wrong, and which of them to label: DeepLabCut's rules on arrays.

DeepLabCut's ``extract_outlier_frames`` (refine_training_dataset/outlier_frames.py) flags frames by
``outlieralgorithm``, then picks ``numframes2pick`` of them by ``extractionalgorithm``
(utils/frameselectiontools.py). The same rules here, as functions of arrays over a video's
``T`` frames and ``C`` keypoint columns (one per individual and bodypart):

- ``uncertain``: a column's likelihood below ``p_bound``;
- ``jump``: a bodypart moved more than ``epsilon`` px since the previous frame. As DeepLabCut sums the
  squared displacements per bodypart *name*, the individuals' columns of one bodypart are summed
  (``groups``); a NaN displacement counts 0;
- ``fitting``: the mean (over columns) distance to a SARIMAX(ARdegree, 0, MAdegree) fit of each
  coordinate (statsmodels, likelihoods below ``p_bound`` as missing data) exceeds ``epsilon``; when
  fewer than ``2 * numframes2pick`` frames do, the ``2 * numframes2pick`` most distant ones;
- ``uniform`` / ``kmeans`` picking, among flagged frames strictly inside ``(start, stop)`` of the video
  (DeepLabCut's crop: frame ``start * n`` itself is never picked): a random sample, or one random
  frame per MiniBatchKMeans cluster of the downsampled frames. Both take a seeded generator, so
  a call is reproducible (DeepLabCut draws from numpy's global state).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["fit_sarimax", "fitting_distance", "fitting_frames", "inside_range", "jump_frames", "kmeans_pick",
           "picking_range", "uncertain_frames", "uniform_pick"]


def uncertain_frames(likelihood: np.ndarray, p_bound: float) -> np.ndarray:
    """Frames (rows of ``likelihood [T, C]``) where some column is below ``p_bound``."""
    return np.flatnonzero((np.asarray(likelihood) < p_bound).any(axis=1))


def jump_frames(xy: np.ndarray, epsilon: float, groups=None) -> np.ndarray:
    """Frames where a group of columns of ``xy [T, C, 2]`` moved more than ``epsilon`` since the previous frame.

    ``groups [C]``: a label per column (DeepLabCut: the bodypart name); squared displacements of a
    group's columns are summed. None: each column alone.
    """
    xy = np.asarray(xy, np.float64)
    step = np.zeros(xy.shape[:2])
    step[1:] = np.nansum(np.diff(xy, axis=0) ** 2, axis=-1)  # NaN x and y: 0, as pandas' group sum
    if groups is not None:
        labels, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        summed = np.zeros((len(step), len(labels)))
        np.add.at(summed.T, inverse, step.T)
        step = summed
    return np.flatnonzero((step > epsilon ** 2).any(axis=1))


def fit_sarimax(values: np.ndarray, likelihood: np.ndarray, p_bound: float, alpha: float, ar_degree: int,
                ma_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """One coordinate's in-sample SARIMAX prediction ``[T]`` and its ``1 - alpha`` interval ``[T, 2]``.

    Points with likelihood below ``p_bound`` are missing data; with 10 or fewer points left, NaN.
    """
    import statsmodels.api as sm

    y = np.array(values, np.float64)
    y[np.asarray(likelihood) < p_bound] = np.nan
    if np.isfinite(y).sum() <= 10:
        return np.full(len(y), np.nan), np.full((len(y), 2), np.nan)
    order = dict(order=(ar_degree, 0, ma_degree), seasonal_order=(0, 0, 0, 0), simple_differencing=True)
    with warnings.catch_warnings():  # convergence chatter for every keypoint, as in DeepLabCut
        warnings.simplefilter("ignore")
        model = sm.tsa.statespace.SARIMAX(y, **order)
        try:
            fitted = model.fit(disp=False)
        except ValueError:  # DeepLabCut's restart: zero AR/MA, unit variance
            start = np.array([1.0 if "sigma" in name else 0.0 for name in model.param_names])
            fitted = model.fit(start_params=start, disp=False)
        except np.linalg.LinAlgError:  # not stationary: relax the constraints
            model = sm.tsa.statespace.SARIMAX(y, enforce_stationarity=False, enforce_invertibility=False,
                                              use_exact_diffuse=False, **order)
            fitted = model.fit(disp=False)
        prediction = fitted.get_prediction(end=model.nobs - 1)
        return np.asarray(prediction.predicted_mean), np.asarray(prediction.conf_int(alpha=alpha))


def fitting_distance(xy: np.ndarray, likelihood: np.ndarray, p_bound: float, alpha: float, ar_degree: int,
                     ma_degree: int) -> np.ndarray:
    """``[T]`` each frame's mean (over columns of ``xy [T, C, 2]``) distance to the columns' SARIMAX fits."""
    xy, likelihood = np.asarray(xy, np.float64), np.asarray(likelihood, np.float64)
    distances = np.empty(xy.shape[:2])
    for c in range(xy.shape[1]):
        mean_x, _ = fit_sarimax(xy[:, c, 0], likelihood[:, c], p_bound, alpha, ar_degree, ma_degree)
        mean_y, _ = fit_sarimax(xy[:, c, 1], likelihood[:, c], p_bound, alpha, ar_degree, ma_degree)
        distances[:, c] = np.hypot(xy[:, c, 0] - mean_x, xy[:, c, 1] - mean_y)
    with warnings.catch_warnings():  # an all-NaN frame averages to NaN, as pandas' mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(distances, axis=1)


def fitting_frames(distance: np.ndarray, epsilon: float, numframes2pick: int) -> np.ndarray:
    """Frames farther than ``epsilon`` from the fit; too few: the ``2 * numframes2pick`` most distant
    (ordered as DeepLabCut orders them: ``argsort`` reversed, so NaN distances come first)."""
    distance = np.asarray(distance)
    found = np.flatnonzero(distance > epsilon)
    wanted = 2 * numframes2pick
    if len(found) < wanted < len(distance):
        found = np.argsort(distance)[::-1][:wanted]
    return found


def picking_range(n_frames: int, start: float, stop: float) -> tuple[int, int]:
    """config.yaml's ``start``/``stop`` (fractions of the video) as frame numbers, DeepLabCut's rounding."""
    return int(math.floor(n_frames * start)), int(math.ceil(n_frames * stop))


def inside_range(frames, first: int, last: int) -> np.ndarray:
    """``frames`` strictly inside ``(first, last)``, DeepLabCut's crop of flagged frames to the picking range."""
    frames = np.asarray(frames, dtype=np.int64)
    return frames[(frames > first) & (frames < last)]


def uniform_pick(frames, n: int, first: int, last: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``frames`` inside ``(first, last)`` at random; all of them when there are not more."""
    frames = inside_range(frames, first, last)
    return np.sort(rng.permutation(frames)[:n]) if len(frames) >= n else frames


def kmeans_pick(frames, images: np.ndarray, n: int, rng: np.random.Generator, batch_size: int = 100,
                max_iter: int = 50) -> np.ndarray:
    """One random frame per cluster of ``images [len(frames), ...]`` (the frames, downsampled) in ``n``
    MiniBatchKMeans clusters; all frames when there are fewer than ``n``. Empty clusters give none."""
    from sklearn.cluster import MiniBatchKMeans

    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) < n or n < 1:
        return frames if n >= 1 else frames[:0]
    data = np.asarray(images, np.float64).reshape(len(frames), -1)
    data = data - data.mean(axis=0)
    batch_size = max(1, batch_size if batch_size <= len(frames) else len(frames) // 2)
    kmeans = MiniBatchKMeans(n_clusters=n, tol=1e-3, batch_size=batch_size, max_iter=max_iter,
                             random_state=int(rng.integers(2 ** 31)))
    labels = kmeans.fit(data).labels_
    picked = [frames[rng.choice(np.flatnonzero(labels == k))] for k in range(n) if (labels == k).any()]
    return np.sort(np.array(picked, dtype=np.int64))
