"""Constant-velocity Kalman filters for many tracks at once.

Every coordinate of a track's feature vector (box corners, ellipse moments, keypoints) moves with
its own constant velocity and is measured with independent noise, so the filter splits into one
2-state filter (position, velocity) per coordinate: all of them are updated together as arrays,
and a coordinate that is not measured (NaN) in a frame is only predicted.
"""
from __future__ import annotations

import numpy as np


class ConstantVelocityKalman:
    """``n`` tracks of ``d`` coordinates: ``x [n, d, 2]`` (position, velocity), covariance ``P [n, d, 2, 2]``.

    process_noise: variance added to the velocity per frame (px^2); measurement_noise: variance
    of a measured position (px^2); initial_velocity_var: how unsure a new track's velocity is.
    """

    def __init__(self, dim: int, process_noise: float = 1.0, measurement_noise: float = 4.0,
                 initial_velocity_var: float = 100.0):
        self.dim = dim
        self.q = float(process_noise)
        self.r = float(measurement_noise)
        self.v0 = float(initial_velocity_var)
        self.x = np.zeros((0, dim, 2))
        self.P = np.zeros((0, dim, 2, 2))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def position(self) -> np.ndarray:
        """``[n, d]`` current position estimates."""
        return self.x[..., 0]

    def add(self, z: np.ndarray) -> None:
        """Start tracks at measurements ``z [m, d]`` (NaN coordinates start at 0 with a huge variance)."""
        z = np.asarray(z, np.float64).reshape(-1, self.dim)
        known = np.isfinite(z)
        x = np.zeros((len(z), self.dim, 2))
        x[..., 0] = np.where(known, z, 0.0)
        P = np.zeros((len(z), self.dim, 2, 2))
        P[..., 0, 0] = np.where(known, self.r, 1e6)
        P[..., 1, 1] = self.v0
        self.x = np.concatenate([self.x, x])
        self.P = np.concatenate([self.P, P])

    def keep(self, mask: np.ndarray) -> None:
        """Drop the tracks where ``mask`` is False."""
        self.x, self.P = self.x[mask], self.P[mask]

    def predict(self) -> np.ndarray:
        """Advance one frame (x += v); returns the predicted positions ``[n, d]``."""
        x, P = self.x, self.P
        x[..., 0] += x[..., 1]
        p00, p01, p11 = P[..., 0, 0], P[..., 0, 1], P[..., 1, 1]
        # F P F^T with F = [[1, 1], [0, 1]], plus Q on the velocity.
        P[..., 0, 0] = p00 + 2 * p01 + p11
        P[..., 0, 1] = P[..., 1, 0] = p01 + p11
        P[..., 1, 1] = p11 + self.q
        return self.position

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct tracks ``rows`` with measurements ``z [len(rows), d]``; NaN coordinates are skipped."""
        if len(rows) == 0:
            return
        x, P = self.x[rows], self.P[rows]
        z = np.asarray(z, np.float64)
        known = np.isfinite(z)
        innovation = np.where(known, z - x[..., 0], 0.0)
        s = P[..., 0, 0] + self.r
        k0, k1 = P[..., 0, 0] / s, P[..., 1, 0] / s           # Kalman gain
        k0, k1 = np.where(known, k0, 0.0), np.where(known, k1, 0.0)
        x[..., 0] += k0 * innovation
        x[..., 1] += k1 * innovation
        p00, p01, p11 = P[..., 0, 0].copy(), P[..., 0, 1].copy(), P[..., 1, 1].copy()
        P[..., 0, 0] = (1 - k0) * p00
        P[..., 0, 1] = P[..., 1, 0] = (1 - k0) * p01
        P[..., 1, 1] = p11 - k1 * p01
        self.x[rows], self.P[rows] = x, P
