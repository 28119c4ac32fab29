"""Hand-made poses for the metric tests: one individual's keypoints from (x, y) points."""
from __future__ import annotations

import numpy as np

NAN = np.nan


def ind(points, score=1.0):
    """One individual [K, 3] from (x, y) points (None = missing); third value = score / visibility."""
    out = np.full((len(points), 3), NAN)
    for i, p in enumerate(points):
        if p is not None:
            out[i] = (p[0], p[1], score)
    return out


def gt_ind(points):
    return ind(points, 2.0)

