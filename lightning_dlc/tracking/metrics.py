"""Multi-object tracking scores over arrays: identity switches, MOTA (CLEAR MOT) and IDF1.

Ground truth ``[T, G, K, >=2]`` and tracks ``[T, H, K, >=2]`` (x, y first; NaN: absent). An
animal is present in a frame when it has a finite keypoint; a track matches an animal when their
mean keypoint distance (over the keypoints both have) is below ``threshold`` px.

- MOTA = 1 - (misses + false positives + identity switches) / ground-truth detections, matching
  frame by frame (a match of the previous frame is kept while it stays under the threshold, the
  rest are matched by Hungarian assignment); a switch is an animal matched to a different track
  than the last one it was matched to.
- IDF1 = 2 IDTP / (ground-truth detections + track detections), with IDTP the frames matched
  under the best one-to-one pairing of animals and tracks over the whole video.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["clear_mot", "id_scores", "pose_distances", "tracking_metrics"]


def pose_distances(truth: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """``[T, G, H]`` mean keypoint distance per frame, animal and track; NaN without a shared keypoint."""
    a = np.asarray(truth, np.float64)[..., :2]
    b = np.asarray(tracks, np.float64)[..., :2]
    d = np.linalg.norm(a[:, :, None] - b[:, None], axis=-1)    # [T, G, H, K]
    shared = np.isfinite(d).sum(-1)
    return np.where(shared > 0, np.nansum(d, -1) / np.maximum(shared, 1), np.nan)


def _present(poses: np.ndarray) -> np.ndarray:
    return np.isfinite(np.asarray(poses, np.float64)[..., :2]).all(-1).any(-1)


def clear_mot(distances: np.ndarray, truth_present: np.ndarray, track_present: np.ndarray,
              threshold: float) -> dict:
    """CLEAR MOT counts from ``distances [T, G, H]`` and presence masks ``[T, G]``, ``[T, H]``."""
    n_frames, n_truth, _ = distances.shape
    last = np.full(n_truth, -1)           # the track each animal was last matched to
    matched_now = np.full(n_truth, -1)
    misses = false_positives = switches = matches = 0
    for t in range(n_frames):
        ok = np.nan_to_num(distances[t], nan=np.inf) < threshold
        pairs = np.full(n_truth, -1)
        kept = (matched_now >= 0) & ok[np.arange(n_truth), np.maximum(matched_now, 0)]
        pairs[kept] = matched_now[kept]
        free_g = np.flatnonzero(~kept & truth_present[t])
        free_h = np.setdiff1d(np.flatnonzero(track_present[t]), pairs[kept])
        if len(free_g) and len(free_h):
            cost = np.where(ok[np.ix_(free_g, free_h)], np.nan_to_num(distances[t][np.ix_(free_g, free_h)]), 1e9)
            g, h = linear_sum_assignment(cost)
            good = cost[g, h] < 1e9
            pairs[free_g[g[good]]] = free_h[h[good]]
        new = (pairs >= 0) & (pairs != matched_now)
        switches += int(((last >= 0) & new & (last != pairs)).sum())
        last = np.where(pairs >= 0, pairs, last)
        matched_now = pairs
        n_matched = int((pairs >= 0).sum())
        matches += n_matched
        misses += int(truth_present[t].sum()) - n_matched
        false_positives += int(track_present[t].sum()) - n_matched
    n_truth_detections = int(truth_present.sum())
    mota = 1 - (misses + false_positives + switches) / n_truth_detections if n_truth_detections else float("nan")
    return {"mota": float(mota), "switches": switches, "misses": misses, "false_positives": false_positives,
            "matches": matches, "truth_detections": n_truth_detections}


def id_scores(distances: np.ndarray, truth_present: np.ndarray, track_present: np.ndarray,
              threshold: float) -> dict:
    """IDF1, IDP, IDR under the best one-to-one pairing of animals and tracks."""
    within = np.nan_to_num(distances, nan=np.inf) < threshold
    within &= truth_present[:, :, None] & track_present[:, None, :]
    overlap = within.sum(0)                                      # [G, H] frames matched
    g, h = linear_sum_assignment(overlap, maximize=True)
    idtp = int(overlap[g, h].sum())
    n_truth, n_track = int(truth_present.sum()), int(track_present.sum())
    total = n_truth + n_track
    return {"idf1": 2 * idtp / total if total else float("nan"),
            "idp": idtp / n_track if n_track else float("nan"),
            "idr": idtp / n_truth if n_truth else float("nan"), "idtp": idtp}


def tracking_metrics(truth: np.ndarray, tracks: np.ndarray, threshold: float) -> dict:
    """IDF1, MOTA, identity switches and their counts for tracks against the ground truth."""
    truth, tracks = np.asarray(truth, np.float64), np.asarray(tracks, np.float64)
    if len(truth) != len(tracks):
        raise ValueError(f"{len(truth)} frames of ground truth for {len(tracks)} frames of tracks")
    distances = pose_distances(truth, tracks)
    present_truth, present_track = _present(truth), _present(tracks)
    return {**id_scores(distances, present_truth, present_track, threshold),
            **clear_mot(distances, present_truth, present_track, threshold)}
