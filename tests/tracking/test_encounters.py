"""Close encounters: phantom animals merged, animals made of two cut and given back, before tracking."""
from __future__ import annotations

import numpy as np

from lightning_dlc.tracking.encounters import median_body_size, separate_animals, separate_frame
from lightning_dlc.tracking.metrics import tracking_metrics
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.synthetic import noisy_detections
from lightning_dlc.tracking.tracklets import link_detections


def _fish(x0: float, y: float, k: int = 6, length: float = 30.0) -> np.ndarray:
    """``[k, 4]`` a straight fish from ``x0`` along x (likelihood 0.9, identity -1)."""
    xs = x0 + np.linspace(0, length, k)
    return np.stack([xs, np.full(k, y), np.full(k, 0.9), np.full(k, -1.0)], 1)


def test_a_phantom_twin_is_merged_into_the_more_confident_animal():
    a, b = _fish(0, 0), _fish(100, 0)
    twin = a + np.array([0.5, -0.5, 0, 0])
    twin[:, 2] = 0.5
    twin[0, :2] = a[0, :2] + 0.3
    a_missing = a.copy()
    a_missing[0, :2] = np.nan                          # the twin has the keypoint the animal lacks
    out = separate_frame(np.stack([a_missing, b, twin]), body_size=30.0)
    assert len(out) == 2
    kept = out[np.argmin(out[:, 1, 0])]
    np.testing.assert_allclose(kept[1:, :2], a[1:, :2])  # the confident one's keypoints stay
    assert np.isfinite(kept[0, :2]).all()               # and it gains the twin's


def test_an_animal_made_of_two_is_cut_and_its_parts_complete_the_others():
    a, b = _fish(0, 0), _fish(0, 40)                     # two fish side by side, 40 px apart
    merged = np.full_like(a, np.nan)
    merged[:3], merged[3:] = a[:3], b[3:]                # a's front with b's back: 1.7 fish long
    a_rest, b_rest = np.full_like(a, np.nan), np.full_like(b, np.nan)
    a_rest[3:], b_rest[:3] = a[3:], b[:3]
    out = separate_frame(np.stack([merged, a_rest, b_rest]), body_size=30.0)
    assert len(out) == 2
    order = np.argsort(out[:, 0, 1])
    np.testing.assert_allclose(out[order[0], :, :2], a[:, :2])
    np.testing.assert_allclose(out[order[1], :, :2], b[:, :2])


def test_separate_animals_reports_frames_and_keeps_clean_frames(scene):
    detections = noisy_detections(scene.truth, seed=0, false_positives=0.0)
    body = median_body_size(detections)
    assert 0.5 * scene.length < body < 2 * scene.length
    detections[7] = np.concatenate([detections[7], detections[7][:1] + [0.5, 0.5, -0.1, 0]])  # a phantom
    out, changed = separate_animals(detections)
    assert changed["phantom"] == [7] and len(out[7]) == len(detections[7]) - 1
    assert len(out[8]) == len(detections[8])
    truth = scene.truth.copy()
    truth[..., :2][truth[..., 2] <= 0] = np.nan
    tracks = stitch_tracklets(link_detections(out), 3, n_frames=len(truth))
    assert tracking_metrics(truth, tracks, 0.5 * scene.length)["switches"] == 0
