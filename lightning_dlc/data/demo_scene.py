"""Deterministic synthetic fish tank: the footage and ground truth behind the built-in demo project.

Fish seen from above swim figure-eight paths through the middle of a textured tank, so they cross
and occlude each other often (what multi-animal tracking tests need). Every fish has its own colour
and pattern so identity can be learned. Keypoints are taken from the same spine the fish are drawn
from, so labels are exact to a fraction of a pixel.

Pixel convention (OpenCV's and DeepLabCut's): pixel (col, row) has its centre at x=col, y=row.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

BODYPARTS = ("snout", "head", "dorsal", "tailbase", "tailtip")

# Anatomy along the body as a fraction of snout-to-tailtip length.
_KP_U = np.array([0.0, 0.13, 0.40, 0.78, 1.0])  # one per BODYPART
_U_NOSE = 0.22        # end of the rounded head, widest point of the body
_U_TAILBASE = 0.78    # caudal peduncle: body ends, tail fin begins
_U_ANCHOR = 0.5       # the point that follows the trajectory
_K = 51               # spine samples; 0.78 and 0.5 fall on the grid (index 39 and 25)
_KB = 39
_KA = 25
_U = np.linspace(0.0, 1.0, _K)

_LENGTH_FRAC = 0.23   # snout-to-tailtip length / min(width, height)
_HALF_WIDTH = 0.085   # max body half-width / length
_TIP_PAD = 1.0        # px the outline reaches past snout and tailtip, so those keypoints sit on the fish
_WALL_MARGIN = 0.18   # body lengths between the anchor's swimming area and the walls

_SHIFT = 4            # cv2 fixed-point bits: subpixel-exact drawing
_ONE = 1 << _SHIFT

_FEEDER_RADIUS = 0.032  # / min(width, height)
_NOISE_SIGMA = 2.0    # sensor noise, grey levels

# Base RGB colours, maximally distinct first; fish i gets colour i and pattern i % 5.
_PALETTE = np.array([
    (242, 120, 24),   # orange
    (40, 92, 222),    # blue
    (196, 222, 40),   # yellow-green
    (214, 50, 168),   # magenta
    (236, 236, 232),  # white
    (200, 28, 36),    # red
    (32, 196, 204),   # cyan
    (122, 62, 196),   # purple
    (52, 52, 60),     # black
    (40, 150, 64),    # green
], dtype=np.float64)
_PATTERNS = ("bands", "spots", "saddle", "stripe", "twotone")


@dataclass(frozen=True)
class DemoScene:
    frames: np.ndarray      # uint8 [n_frames, height, width, 3], RGB
    keypoints: np.ndarray   # float32 [n_frames, n_fish, n_bodyparts, 2], pixel x, y
    visible: np.ndarray     # bool [n_frames, n_fish, n_bodyparts]
    landmark: np.ndarray    # float32 [2], x, y of the feeder (a fixed, never occluded marker)
    fps: float


# ----------------------------------------------------------------------------------------------
# Motion


def _fish_color(i: int) -> np.ndarray:
    if i < len(_PALETTE):
        return _PALETTE[i]
    # Beyond the palette: rotate the hue of a palette colour so later fish still differ.
    base = _PALETTE[i % len(_PALETTE)].astype(np.uint8).reshape(1, 1, 3)
    hsv = cv2.cvtColor(base, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + 37 * (i // len(_PALETTE))) % 256
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).reshape(3).astype(np.float64)


def _paths(t: np.ndarray, rngs, width: int, height: int, length: float):
    """Anchor position, heading, path curvature and speed, each [n_frames, n_fish].

    Each fish runs a slowly precessing figure eight centred on the tank. A figure eight never
    stops (its speed has a positive lower bound), so the heading is always defined, and every
    fish passes through the centre twice per lap, which makes crossings frequent.
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ax = width / 2.0 - 0.5 - _WALL_MARGIN * length
    ay = height / 2.0 - 0.5 - _WALL_MARGIN * length
    h = 1e-3  # s, for central differences of the analytic path
    pos = np.empty((len(t), len(rngs), 2))
    vel = np.empty_like(pos)
    acc = np.empty_like(pos)
    for i, rng in enumerate(rngs):
        b = rng.uniform(0.45, 0.7)            # lobe height / half-width of the eight
        psi = rng.uniform(-0.5, 0.5)          # skews the eight; |psi| < pi/2 keeps speed > 0
        alpha0 = i * 2.399963 + rng.uniform(-0.3, 0.3)  # golden-angle spread of orientations
        precess = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.1)  # rad/s
        direction = rng.choice([-1.0, 1.0])
        body_lengths_per_s = rng.uniform(1.3, 1.9)
        size = rng.uniform(0.65, 1.0)          # smaller eights: shorter laps, more centre passes
        warp = rng.uniform(0.15, 0.3)         # speed varies by +-warp around the mean
        warp_w = 2 * np.pi / rng.uniform(2.0, 4.0)
        warp_phase, phase0 = rng.uniform(0, 2 * np.pi, size=2)

        tau = np.linspace(0, 2 * np.pi, 2001)
        q = np.stack([np.sin(tau), b * np.sin(2 * tau + psi)], -1)
        qnorm = np.linalg.norm(q, axis=-1).max() / size  # the eight fills `size` of the unit disk
        q /= qnorm
        ca, sa = np.cos(alpha0), np.sin(alpha0)
        lap = np.stack([ax * (ca * q[:, 0] - sa * q[:, 1]), ay * (sa * q[:, 0] + ca * q[:, 1])], -1)
        lap_px = np.linalg.norm(np.diff(lap, axis=0), axis=-1).sum()
        omega = direction * 2 * np.pi * body_lengths_per_s * length / lap_px

        def at(tt, b=b, psi=psi, alpha0=alpha0, precess=precess, omega=omega, warp=warp,
               warp_w=warp_w, warp_phase=warp_phase, phase0=phase0, qnorm=qnorm):
            tau_t = phase0 + omega * (tt + warp / warp_w * np.sin(warp_w * tt + warp_phase))
            qx = np.sin(tau_t) / qnorm
            qy = b * np.sin(2 * tau_t + psi) / qnorm
            al = alpha0 + precess * tt
            c, s = np.cos(al), np.sin(al)
            return np.stack([cx + ax * (c * qx - s * qy), cy + ay * (s * qx + c * qy)], -1)

        p0, pm, pp = at(t), at(t - h), at(t + h)
        pos[:, i] = p0
        vel[:, i] = (pp - pm) / (2 * h)
        acc[:, i] = (pp - 2 * p0 + pm) / (h * h)
    speed = np.linalg.norm(vel, axis=-1)
    heading = np.arctan2(vel[..., 1], vel[..., 0])
    curvature = (vel[..., 0] * acc[..., 1] - vel[..., 1] * acc[..., 0]) / np.maximum(speed, 1e-9) ** 3
    return pos, heading, curvature, speed


def _spines(pos, heading, curvature, speed, rngs, fps: float, length: float):
    """Spine points [n_frames, n_fish, _K, 2] from snout (index 0) to tailtip (index _K-1)."""
    n_frames, n_fish = heading.shape
    beat_hz = np.array([rng.uniform(2.0, 2.8) for rng in rngs])
    beat_amp = np.array([rng.uniform(0.3, 0.4) for rng in rngs])  # rad, tail-fin yaw
    beat_phase0 = np.array([rng.uniform(0, 2 * np.pi) for rng in rngs])
    # Faster fish beat faster; integrating the frequency keeps the phase smooth when speed changes.
    rel_speed = np.clip(speed / np.maximum(speed.mean(axis=0, keepdims=True), 1e-9), 0.6, 1.6)
    beat = beat_phase0 + 2 * np.pi * np.cumsum(beat_hz * rel_speed, axis=0) / fps

    u_mid = 0.5 * (_U[1:] + _U[:-1])
    envelope = 0.04 + 0.96 * u_mid ** 2  # head barely yaws, tail swings
    wave = np.sin(beat[..., None] - 2 * np.pi * u_mid / 0.9)  # travelling wave, 0.9 body lengths
    # The body trails along its curved path: points behind the anchor had the heading the path had
    # there; clipped so tight turns don't fold the fish.
    kappa = np.clip(curvature, -1.2 / length, 1.2 / length)
    angle = (heading[..., None] - kappa[..., None] * (u_mid - _U_ANCHOR) * length
             + beat_amp[None, :, None] * envelope * wave)
    seg = length / (_K - 1)
    step = -seg * np.stack([np.cos(angle), np.sin(angle)], -1)  # snout -> tail runs against heading
    spine = np.concatenate([np.zeros((n_frames, n_fish, 1, 2)), np.cumsum(step, axis=2)], axis=2)
    return spine - spine[:, :, _KA:_KA + 1] + pos[:, :, None, :]


def _keypoints(spine: np.ndarray) -> np.ndarray:
    # Linear interpolation along the drawn polyline, so keypoints lie on the drawn midline.
    pos = _KP_U * (_K - 1)
    lo = np.minimum(np.floor(pos).astype(int), _K - 2)
    frac = (pos - lo)[:, None]
    return spine[:, :, lo] * (1 - frac) + spine[:, :, lo + 1] * frac


# ----------------------------------------------------------------------------------------------
# Shapes


def _half_widths(length: float):
    """Half-widths of the body (0.._U_TAILBASE) and of the tail fin (_U_TAILBASE..1) on the grid."""
    wmax = _HALF_WIDTH * length
    wped = 0.3 * wmax
    u = _U
    body = np.where(
        u < _U_NOSE,
        wmax * np.clip(1 - ((_U_NOSE - u) / _U_NOSE) ** 2, 0, None) ** 0.6,
        wped + (wmax - wped) * 0.5 * (1 + np.cos(np.pi * np.clip((u - _U_NOSE) / (_U_TAILBASE - _U_NOSE), 0, 1))),
    )
    fin = wped + (1.05 * wmax - wped) * np.clip((u - _U_TAILBASE) / (1 - _U_TAILBASE), 0, 1) ** 0.8
    return body, fin


def _fx(a: np.ndarray) -> np.ndarray:
    return np.rint(a * _ONE).astype(np.int32)


class _Shapes:
    """All polygons and circles of all fish in all frames, in cv2 fixed point, built vectorised."""

    def __init__(self, spine: np.ndarray, length: float):
        fwd = np.gradient(-spine, axis=2)  # tangent pointing to the snout
        fwd /= np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-9)
        normal = np.stack([-fwd[..., 1], fwd[..., 0]], -1)
        wbody, wfin = _half_widths(length)
        self.wbody = wbody
        self.spine, self.normal = spine, normal

        def side(w, sign):
            return spine + sign * w[:, None] * normal

        nose_tip = spine[:, :, :1] + _TIP_PAD * fwd[:, :, :1]
        tail_tip = spine[:, :, -1:] - _TIP_PAD * fwd[:, :, -1:]
        kb = _KB + 2  # body runs a little past the tail base, over the fin root: no seam
        left, right = side(wbody, 1.0), side(wbody, -1.0)
        self.body = _fx(np.concatenate([nose_tip, left[:, :, 1:kb], right[:, :, 1:kb][:, :, ::-1]], 2))
        k0 = _KB - 3
        lf, rf = side(wfin, 1.0), side(wfin, -1.0)
        self.fin = _fx(np.concatenate([lf[:, :, k0:], tail_tip, rf[:, :, k0:][:, :, ::-1]], 2))
        # Fin rays: from the fin root to its trailing edge.
        root = spine[:, :, _KB]
        edge = np.stack([lf[:, :, -1] * (1 - a) + rf[:, :, -1] * a for a in (0.15, 0.5, 0.85)], 2)
        self.rays = _fx(np.stack([np.broadcast_to(root[:, :, None], edge.shape), edge], 3))
        # Pectoral fins: small swept-back flaps behind the head.
        k1, k2, k3 = 11, 15, 17
        pecs = []
        for sign in (1.0, -1.0):
            s = side(wbody, sign)
            tip = spine[:, :, k3] + sign * (wbody[k3] + 0.09 * length) * normal[:, :, k3]
            pecs.append(np.stack([s[:, :, k1], tip, s[:, :, k2]], 2))
        self.pecs = _fx(np.stack(pecs, 2))  # [F, N, 2, 3, 2]
        # Eyes: bulge out of the head outline, as fish seen from above do.
        ke = 5
        self.eyes = _fx(np.stack([spine[:, :, ke] + s * 0.8 * wbody[ke] * normal[:, :, ke] for s in (1.0, -1.0)], 2))
        self.eye_r = int(round(0.03 * length * _ONE))
        self.left, self.right = left, right

    def band(self, k1: int, k2: int) -> np.ndarray:
        """Polygon covering the body between spine samples k1 and k2: a pattern clipped to the body."""
        return _fx(np.concatenate([self.left[:, :, k1:k2 + 1], self.right[:, :, k1:k2 + 1][:, :, ::-1]], 2))

    def point(self, k: int, lateral: float) -> np.ndarray:
        return self.spine[:, :, k] + lateral * self.wbody[k] * self.normal[:, :, k]


class _FishStyle:
    def __init__(self, i: int, shapes: _Shapes, length: float):
        base = _fish_color(i)
        self.pattern = _PATTERNS[i % len(_PATTERNS)]
        self.body = tuple(float(c) for c in base)
        self.outline = tuple(float(c) * 0.45 for c in base)
        self.fin = tuple(float(c) * 0.6 + 255 * 0.25 for c in base)  # paler, like a thin fin
        self.ray = tuple(float(c) * 0.5 for c in base)
        dark = (28.0, 26.0, 30.0)
        light = (246.0, 244.0, 236.0)
        lum = base @ np.array([0.299, 0.587, 0.114])
        contrast = dark if lum > 110 else light
        self.polys: list[tuple[np.ndarray, tuple]] = []  # arrays [F, N, ...], indexed [f, i] when drawn
        self.circles: list[tuple[np.ndarray, int, tuple]] = []
        self.lines: list[tuple[np.ndarray, int, tuple]] = []
        # The layout of the pattern depends on the fish index only, so identities look the same
        # in every seed.
        lay = np.random.default_rng(7919 + i)
        if self.pattern == "bands":       # clownfish-like: light bands edged dark
            for k1, k2 in ((8, 11), (19, 23), (31, 34)):
                self.polys.append((shapes.band(k1 - 1, k2 + 1), dark))
                self.polys.append((shapes.band(k1, k2), light))
        elif self.pattern == "spots":
            # Staggered left/right so the spots spread over the whole back.
            for j, k in enumerate(range(10, 37, 4)):
                lat = (0.5 if j % 2 else -0.5) + float(lay.uniform(-0.1, 0.1))
                r = max(0.8, 0.36 * shapes.wbody[k])
                self.circles.append((_fx(shapes.point(k, lat)), int(round(r * _ONE)), contrast))
        elif self.pattern == "saddle":    # plain body with one wide dark band
            self.polys.append((shapes.band(17, 25), dark if lum > 80 else light))
        elif self.pattern == "stripe":    # contrasting line along the back, head to tail base
            self.lines.append((_fx(shapes.spine[:, :, 6:_KB + 1]), max(1, int(round(0.05 * length))), contrast))
        elif self.pattern == "twotone":   # contrasting head
            self.polys.append((shapes.band(1, 13), contrast))


# ----------------------------------------------------------------------------------------------
# Background


def _background(rng: np.random.Generator, width: int, height: int, length: float):
    """Sand-bottomed tank: gradient, cloudy low-frequency shading, grain, pebbles, darker walls."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xn = xx / max(width - 1, 1) * 2 - 1
    yn = yy / max(height - 1, 1) * 2 - 1
    base = np.array([150.0, 146.0, 124.0]) + rng.uniform(-8, 8, size=3)
    g = rng.uniform(-1, 1, size=2)
    img = np.empty((height, width, 3), np.float32)
    img[:] = base.astype(np.float32)
    img *= (1 + 0.1 * (g[0] * xn + g[1] * yn))[..., None]
    clouds = cv2.resize(rng.standard_normal((5, 5, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    img += 9 * clouds.mean(axis=2, keepdims=True) + 3 * clouds
    ripple = cv2.resize(rng.standard_normal((max(2, height // 6), max(2, width // 6))).astype(np.float32),
                        (width, height), interpolation=cv2.INTER_LINEAR)
    img += 5 * ripple[..., None]
    grain = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 0.7)
    img += 14 * grain[..., None]
    # Pebbles: small, roundish, low contrast: texture, not fish-like distractors.
    pebbles = np.zeros((height, width, 3), np.float32)
    n_peb = max(1, width * height // 700)
    for _ in range(n_peb):
        c = rng.uniform([0, 0], [width - 1, height - 1])
        axes = rng.uniform(0.6, 2.2, size=2) * length / 59.0
        tone = rng.uniform(-30, 22) + rng.uniform(-5, 5, size=3)
        cv2.ellipse(pebbles, (_fx(c[0]).item(), _fx(c[1]).item()),
                    (_fx(axes[0]).item(), _fx(axes[1]).item()), float(rng.uniform(0, 180)), 0, 360,
                    tuple(float(v) for v in tone), -1, cv2.LINE_AA, _SHIFT)
    img += cv2.GaussianBlur(pebbles, (0, 0), 0.6)
    r = np.sqrt(xn ** 2 + yn ** 2) / np.sqrt(2)
    img *= (1 - 0.35 * r ** 4)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _landmark(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    # A corner: the fish's figure eights stay inside the inscribed ellipse, so it is never occluded.
    corner = rng.integers(0, 4)
    fx = 0.07 + rng.uniform(-0.01, 0.01)
    fy = 0.07 + rng.uniform(-0.01, 0.01)
    x = fx * (width - 1) if corner % 2 == 0 else (1 - fx) * (width - 1)
    y = fy * (height - 1) if corner < 2 else (1 - fy) * (height - 1)
    return np.array([x, y], np.float64)


def _draw_feeder(img: np.ndarray, center: np.ndarray, radius: float) -> None:
    c = (int(_fx(center[0])), int(_fx(center[1])))
    aa = cv2.LINE_AA
    cv2.circle(img, c, int(_fx(radius * 1.05)), (40, 36, 34), -1, aa, _SHIFT)
    cv2.circle(img, c, int(_fx(radius * 0.85)), (220, 30, 30), -1, aa, _SHIFT)
    cv2.circle(img, c, int(_fx(radius * 0.55)), (250, 250, 245), -1, aa, _SHIFT)
    arm = radius * 0.45
    th = max(1, int(round(radius * 0.16)))
    for dx, dy in ((arm, 0.0), (0.0, arm)):
        p1 = (int(_fx(center[0] - dx)), int(_fx(center[1] - dy)))
        p2 = (int(_fx(center[0] + dx)), int(_fx(center[1] + dy)))
        cv2.line(img, p1, p2, (20, 20, 24), th, aa, _SHIFT)


# ----------------------------------------------------------------------------------------------
# Rendering


def render_scene(n_frames: int = 300, n_fish: int = 3, width: int = 256, height: int = 256,
                 fps: float = 30.0, seed: int = 0) -> DemoScene:
    """Render the scene. Same arguments, same bits.

    n_fish=0 renders the empty tank (same background and sensor noise as any n_fish for that
    seed), which is useful as a reference. Fish i looks the same in every seed and for every
    n_fish; its path depends on seed and i only.
    """
    if n_frames < 1 or n_fish < 0 or width < 32 or height < 32 or fps <= 0:
        raise ValueError(f"bad scene size: n_frames={n_frames} n_fish={n_fish} {width}x{height} fps={fps}")
    # Independent streams, so background and noise don't change with n_fish and fish i doesn't
    # change with how many fish come after it.
    ss_bg, ss_noise, ss_landmark, ss_fish = np.random.SeedSequence(seed).spawn(4)
    fish_rngs = [np.random.default_rng(s) for s in ss_fish.spawn(n_fish)]
    length = _LENGTH_FRAC * min(width, height)

    background = _background(np.random.default_rng(ss_bg), width, height, length)
    landmark = _landmark(np.random.default_rng(ss_landmark), width, height)
    _draw_feeder(background, landmark, _FEEDER_RADIUS * min(width, height))

    t = np.arange(n_frames) / float(fps)
    if n_fish:
        pos, heading, curvature, speed = _paths(t, fish_rngs, width, height, length)
        spine = _spines(pos, heading, curvature, speed, fish_rngs, float(fps), length)
    else:
        spine = np.zeros((n_frames, 0, _K, 2))
    keypoints = _keypoints(spine) if n_fish else np.zeros((n_frames, 0, len(BODYPARTS), 2))
    shapes = _Shapes(spine, length)
    styles = [_FishStyle(i, shapes, length) for i in range(n_fish)]

    # Sensor noise: random bytes through a Gaussian quantile table, far cheaper than float normals.
    nd = NormalDist(0.0, _NOISE_SIGMA)
    table = np.rint([nd.inv_cdf((b + 0.5) / 256) for b in range(256)]).astype(np.int32)
    lut_up = np.clip(table, 0, 255).astype(np.uint8)
    lut_down = np.clip(-table, 0, 255).astype(np.uint8)
    noise_rng = np.random.default_rng(ss_noise)

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    visible = np.zeros((n_frames, n_fish, len(BODYPARTS)), bool)
    labels = np.zeros((height, width), np.uint8)
    kp_col = np.clip(np.rint(keypoints[..., 0]), 0, width - 1).astype(np.intp)
    kp_row = np.clip(np.rint(keypoints[..., 1]), 0, height - 1).astype(np.intp)
    fish_ids = np.arange(1, n_fish + 1)[:, None]
    aa, l8 = cv2.LINE_AA, cv2.LINE_8
    eye_r = shapes.eye_r
    for f in range(n_frames):
        img = frames[f]
        img[:] = background
        labels[:] = 0
        for i, st in enumerate(styles):
            pecs = [shapes.pecs[f, i, 0], shapes.pecs[f, i, 1]]
            fin, body = shapes.fin[f, i], shapes.body[f, i]
            eyes = shapes.eyes[f, i]
            cv2.fillPoly(img, pecs, st.fin, aa, _SHIFT)
            cv2.polylines(img, pecs, True, st.outline, 1, aa, _SHIFT)
            cv2.fillPoly(img, [fin], st.fin, aa, _SHIFT)
            cv2.polylines(img, list(shapes.rays[f, i]), False, st.ray, 1, aa, _SHIFT)
            cv2.polylines(img, [fin], True, st.outline, 1, aa, _SHIFT)
            cv2.fillPoly(img, [body], st.body, aa, _SHIFT)
            for poly, color in st.polys:
                cv2.fillPoly(img, [poly[f, i]], color, aa, _SHIFT)
            for line, thickness, color in st.lines:
                cv2.polylines(img, [line[f, i]], False, color, thickness, aa, _SHIFT)
            for centers, r, color in st.circles:
                cv2.circle(img, tuple(int(v) for v in centers[f, i]), r, color, -1, aa, _SHIFT)
            cv2.polylines(img, [body], True, st.outline, 1, aa, _SHIFT)
            for e in eyes:
                cv2.circle(img, (int(e[0]), int(e[1])), eye_r, (16, 16, 20), -1, aa, _SHIFT)
            # Who owns each pixel, later fish overwriting earlier ones: the occlusion map.
            fid = i + 1
            cv2.fillPoly(labels, pecs + [fin, body], fid, l8, _SHIFT)
            for e in eyes:
                cv2.circle(labels, (int(e[0]), int(e[1])), eye_r, fid, -1, l8, _SHIFT)
        if n_fish:
            owner = labels[kp_row[f], kp_col[f]]
            visible[f] = owner <= fish_ids  # hidden only under a fish drawn later
        u = np.frombuffer(noise_rng.bytes(img.size), np.uint8).reshape(img.shape)
        cv2.subtract(cv2.add(img, cv2.LUT(u, lut_up)), cv2.LUT(u, lut_down), dst=img)

    inside = ((keypoints[..., 0] >= 0) & (keypoints[..., 0] <= width - 1)
              & (keypoints[..., 1] >= 0) & (keypoints[..., 1] <= height - 1))
    visible &= inside
    return DemoScene(frames=frames, keypoints=keypoints.astype(np.float32), visible=visible,
                     landmark=landmark.astype(np.float32), fps=float(fps))


# ----------------------------------------------------------------------------------------------
# Video


_CODEC_ARGS = {
    # No B-frames: OpenCV's frame-index seeking (used for frame extraction) is exact without them.
    "libx264": ["-c:v", "libx264", "-preset", "medium", "-crf", "17", "-bf", "0",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    "libvpx-vp9": ["-c:v", "libvpx-vp9", "-crf", "24", "-b:v", "0", "-deadline", "good",
                   "-cpu-used", "4", "-row-mt", "0", "-pix_fmt", "yuv420p"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"],
}


def write_video(path, frames: np.ndarray, fps: float, codec: str = "libx264") -> None:
    """Encode RGB frames ``[n, height, width, 3]`` uint8 with :class:`VideoEncoder` (atomic, deterministic)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [n, height, width, 3] RGB, got {frames.dtype} {frames.shape}")
    with VideoEncoder(path, frames.shape[2], frames.shape[1], fps, codec) as encoder:
        for frame in frames:
            encoder.write(frame)


class VideoEncoder:
    """Stream RGB frames into a video with imageio-ffmpeg's bundled ffmpeg, one frame at a time.

    codec 'libx264' -> H.264 mp4 with pix_fmt yuv420p (plays everywhere); 'libvpx-vp9' -> VP9 (.webm
    or .mp4); 'mjpeg' -> MJPEG (.avi). Writes a temporary file in the same folder, renamed into place
    when the ``with`` block ends without an error (else removed); deterministic output; ffmpeg's log
    is kept in a file and shown only if it fails.
    """

    def __init__(self, path, width: int, height: int, fps: float, codec: str = "libx264"):
        import imageio_ffmpeg  # only video writing needs it

        if codec not in _CODEC_ARGS:
            raise ValueError(f"codec must be one of {sorted(_CODEC_ARGS)}, got {codec!r}")
        if codec != "mjpeg" and (width % 2 or height % 2):
            raise ValueError(f"{codec} with 4:2:0 chroma needs even width and height, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.codec, self.shape = Path(path), codec, (height, width, 3)
        # Same folder (so the rename is atomic), same suffix (ffmpeg picks the container from it).
        self._tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:12]}.tmp{self.path.suffix}")
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", repr(float(fps)),
            "-i", "-", "-an", *_CODEC_ARGS[codec],
            # Bit-exact: no encoder version strings or timestamps in the container.
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            str(self._tmp),
        ]
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg can never block on it
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        self._broken = False

    def write(self, frame: np.ndarray) -> None:
        """One RGB frame ``[height, width, 3]`` uint8."""
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 {self.shape}, got {frame.dtype} {frame.shape}")
        if not self._broken:
            try:
                self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:
                self._broken = True  # ffmpeg died; its log says why at close

    def close(self, keep: bool = True) -> None:
        """Finish the file and rename it into place (``keep``), or discard it."""
        try:
            self._proc.stdin.close()
            rc = self._proc.wait()
            if keep and rc != 0:
                self._log.seek(0)
                msg = self._log.read().decode(errors="replace").strip()[-2000:]
                raise RuntimeError(f"ffmpeg failed ({rc}) writing {self.path} with {self.codec}: {msg}")
            if keep:
                os.replace(self._tmp, self.path)
        finally:
            self._log.close()
            if self._tmp.exists():
                self._tmp.unlink()

    def __enter__(self) -> "VideoEncoder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep=exc_type is None)
