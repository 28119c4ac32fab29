"""Deterministic synthetic fish tank: the footage and ground truth behind the built-in demo project.

Fish seen from above swim figure-eight paths through the middle of a textured tank, so they cross
and occlude each other often (what multi-animal tracking tests need). Every fish has its own colour
and pattern so identity can be learned. ``scene="hard"`` makes it harder (:class:`HardScene`). Keypoints are taken from the same spine the fish are drawn
from, so labels are exact to a fraction of a pixel.

Pixel convention (OpenCV's and DeepLabCut's): pixel (col, row) has its centre at x=col, y=row.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from lightning_dlc.data.demo_motion import (HALF_WIDTH, KEYPOINT_U, KEYPOINT_U_9, N_SPINE, SPINE_U, TAILBASE_INDEX,
                                            U_NOSE, U_TAILBASE, default_paths, hard_paths, spine_keypoints,
                                            swim_spines)

BODYPARTS = ("snout", "head", "dorsal", "tailbase", "tailtip")
BODYPARTS_9 = ("snout", "head", "gill", "pectoral", "dorsal", "anal", "tailbase", "tailmid", "tailtip")
# n_bodyparts -> (names, fractions of the body length from the snout)
BODYPART_SETS = {5: (BODYPARTS, KEYPOINT_U), 9: (BODYPARTS_9, KEYPOINT_U_9)}


def bodyparts(n_bodyparts: int = 5) -> tuple[str, ...]:
    """The demo fish's bodypart names: 5 (the default) or 9."""
    if n_bodyparts not in BODYPART_SETS:
        raise ValueError(f"n_bodyparts must be one of {sorted(BODYPART_SETS)}, got {n_bodyparts}")
    return BODYPART_SETS[n_bodyparts][0]

_LENGTH_FRAC = 0.23   # snout-to-tailtip length / min(width, height)
_TIP_PAD = 1.0        # px the outline reaches past snout and tailtip, so those keypoints sit on the fish

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
class HardScene:
    """Knobs of the harder scene (``render_scene(scene="hard")`` uses these defaults).

    Every pair of consecutive fish (0-1, 1-2, ...) swims side by side, bodies touching, for
    ``contact_seconds`` once (when the video is long enough: about 3 s per pair); once per video
    (videos of 3.8 s or more) fish 0, 3, ... swim out through the nearest edge until their centre is
    ``exit_reach`` body lengths past it (wholly out of view for about a second) and fish 2, 5, ...
    until their centre reaches it (half out), and come back. All fish wear one pattern on one base
    colour; consecutive fish differ by ``hue_step`` (of 256 hues) and ``size_step`` (relative body
    length), centred on the middle fish, unless ``look_alike`` (same colour, pattern and size).
    """
    look_alike: bool = False
    hue_step: int = 14
    size_step: float = 0.08
    contact_seconds: float = 1.2
    exit_reach: float = 1.0
    base_color: int = 0      # index into the palette
    pattern: str = "saddle"

    def __post_init__(self):
        if self.pattern not in _PATTERNS:
            raise ValueError(f"pattern must be one of {_PATTERNS}, got {self.pattern!r}")
        if not 0 <= self.size_step < 0.5 or self.contact_seconds < 0 or self.exit_reach < 0:
            raise ValueError(f"bad HardScene knobs: {self}")

    def _offset(self, i: int, n_fish: int) -> float:
        return 0.0 if self.look_alike else i - (n_fish - 1) / 2.0

    def size_factors(self, n_fish: int) -> np.ndarray:
        return np.array([1.0 + self.size_step * self._offset(i, n_fish) for i in range(n_fish)])

    def color(self, i: int, n_fish: int) -> np.ndarray:
        return _rotate_hue(_PALETTE[self.base_color], int(round(self.hue_step * self._offset(i, n_fish))))


def hard_scene(scene: str | HardScene, look_alike: bool = False) -> HardScene | None:
    """The knobs ``render_scene`` renders with: None for the default scene."""
    if isinstance(scene, HardScene):
        return HardScene(**{**scene.__dict__, "look_alike": scene.look_alike or look_alike})
    if scene == "hard":
        return HardScene(look_alike=look_alike)
    if scene == "default":
        if look_alike:
            raise ValueError("look_alike=True needs scene='hard' (the default scene's fish all differ)")
        return None
    raise ValueError(f"scene must be 'default', 'hard' or a HardScene, got {scene!r}")


@dataclass(frozen=True)
class DemoScene:
    frames: np.ndarray      # uint8 [n_frames, height, width, 3], RGB
    keypoints: np.ndarray   # float32 [n_frames, n_fish, n_bodyparts, 2], pixel x, y
    visible: np.ndarray     # bool [n_frames, n_fish, n_bodyparts]
    landmark: np.ndarray    # float32 [2], x, y of the feeder (a fixed, never occluded marker)
    fps: float


# ----------------------------------------------------------------------------------------------
# Looks


def _fish_color(i: int) -> np.ndarray:
    if i < len(_PALETTE):
        return _PALETTE[i]
    # Beyond the palette: rotate the hue of a palette colour so later fish still differ.
    return _rotate_hue(_PALETTE[i % len(_PALETTE)], 37 * (i // len(_PALETTE)))


def _rotate_hue(rgb: np.ndarray, shift: int) -> np.ndarray:
    """RGB colour with its hue turned by ``shift`` of 256 (OpenCV's full-range HSV)."""
    base = rgb.astype(np.uint8).reshape(1, 1, 3)
    hsv = cv2.cvtColor(base, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + shift) % 256
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).reshape(3).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Shapes


def _half_widths(length: float):
    """Half-widths of the body (0..U_TAILBASE) and of the tail fin (U_TAILBASE..1) on the grid."""
    wmax = HALF_WIDTH * length
    wped = 0.3 * wmax
    u = SPINE_U
    body = np.where(
        u < U_NOSE,
        wmax * np.clip(1 - ((U_NOSE - u) / U_NOSE) ** 2, 0, None) ** 0.6,
        wped + (wmax - wped) * 0.5 * (1 + np.cos(np.pi * np.clip((u - U_NOSE) / (U_TAILBASE - U_NOSE), 0, 1))),
    )
    fin = wped + (1.05 * wmax - wped) * np.clip((u - U_TAILBASE) / (1 - U_TAILBASE), 0, 1) ** 0.8
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
        kb = TAILBASE_INDEX + 2  # body runs a little past the tail base, over the fin root: no seam
        left, right = side(wbody, 1.0), side(wbody, -1.0)
        self.body = _fx(np.concatenate([nose_tip, left[:, :, 1:kb], right[:, :, 1:kb][:, :, ::-1]], 2))
        k0 = TAILBASE_INDEX - 3
        lf, rf = side(wfin, 1.0), side(wfin, -1.0)
        self.fin = _fx(np.concatenate([lf[:, :, k0:], tail_tip, rf[:, :, k0:][:, :, ::-1]], 2))
        # Fin rays: from the fin root to its trailing edge.
        root = spine[:, :, TAILBASE_INDEX]
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
    def __init__(self, i: int, shapes: _Shapes, length: float, base: np.ndarray | None = None,
                 pattern: str | None = None):
        base = _fish_color(i) if base is None else base
        self.pattern = _PATTERNS[i % len(_PATTERNS)] if pattern is None else pattern
        self.body = tuple(float(c) for c in base)
        self.outline = tuple(float(c) * 0.45 for c in base)
        self.fin = tuple(float(c) * 0.6 + 255 * 0.25 for c in base)  # paler, like a thin fin
        self.ray = tuple(float(c) * 0.5 for c in base)
        dark = (28.0, 26.0, 30.0)
        light = (246.0, 244.0, 236.0)
        lum = base @ np.array([0.299, 0.587, 0.114])
        contrast = dark if lum > 110 else light
        self.polys: list[tuple[np.ndarray, tuple]] = []  # arrays [F, 1, ...], indexed [f, 0] when drawn
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
            self.lines.append((_fx(shapes.spine[:, :, 6:TAILBASE_INDEX + 1]), max(1, int(round(0.05 * length))), contrast))
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
                 fps: float = 30.0, seed: int = 0, scene: str | HardScene = "default",
                 look_alike: bool = False, n_bodyparts: int = 5) -> DemoScene:
    """Render the scene. Same arguments, same bits.

    n_fish=0 renders the empty tank (same background and sensor noise as any n_fish for that
    seed), which is useful as a reference. Fish i looks the same in every seed and for every
    n_fish; its path depends on seed and i only.

    ``scene="hard"`` (or a :class:`HardScene` of knobs): fish that touch, leave the frame and come
    back, and look nearly alike (``look_alike=True``: exactly alike); see :class:`HardScene`.
    ``n_bodyparts``: 5 (:data:`BODYPARTS`) or 9 (:data:`BODYPARTS_9`) keypoints on the same fish.
    """
    names = bodyparts(n_bodyparts)
    if n_frames < 1 or n_fish < 0 or width < 32 or height < 32 or fps <= 0:
        raise ValueError(f"bad scene size: n_frames={n_frames} n_fish={n_fish} {width}x{height} fps={fps}")
    hard = hard_scene(scene, look_alike)
    # Independent streams, so background and noise don't change with n_fish and fish i doesn't
    # change with how many fish come after it.
    ss_bg, ss_noise, ss_landmark, ss_fish = np.random.SeedSequence(seed).spawn(4)
    fish_rngs = [np.random.default_rng(s) for s in ss_fish.spawn(n_fish)]
    length = _LENGTH_FRAC * min(width, height)

    background = _background(np.random.default_rng(ss_bg), width, height, length)
    landmark = _landmark(np.random.default_rng(ss_landmark), width, height)
    _draw_feeder(background, landmark, _FEEDER_RADIUS * min(width, height))

    t = np.arange(n_frames) / float(fps)
    lengths = [length] * n_fish
    if n_fish and hard is None:
        pos, heading, curvature, speed = default_paths(t, fish_rngs, width, height, length)
        spine = swim_spines(pos, heading, curvature, speed, fish_rngs, float(fps), length)
    elif n_fish:
        lengths = list(length * hard.size_factors(n_fish))
        pos, heading, curvature, speed = hard_paths(t, fish_rngs, width, height, lengths, hard.exit_reach,
                                                    hard.contact_seconds)
        spine = swim_spines(pos, heading, curvature, speed, fish_rngs, float(fps), np.array(lengths))
    else:
        spine = np.zeros((n_frames, 0, N_SPINE, 2))
    keypoints = (spine_keypoints(spine, BODYPART_SETS[n_bodyparts][1]) if n_fish
                 else np.zeros((n_frames, 0, len(names), 2)))
    # One fish at a time: each has its own body length.
    shapes = [_Shapes(spine[:, i:i + 1], lengths[i]) for i in range(n_fish)]
    if hard is None:
        styles = [_FishStyle(i, shapes[i], length) for i in range(n_fish)]
    else:
        styles = [_FishStyle(i, shapes[i], lengths[i], hard.color(i, n_fish), hard.pattern) for i in range(n_fish)]

    # Sensor noise: random bytes through a Gaussian quantile table, far cheaper than float normals.
    nd = NormalDist(0.0, _NOISE_SIGMA)
    table = np.rint([nd.inv_cdf((b + 0.5) / 256) for b in range(256)]).astype(np.int32)
    lut_up = np.clip(table, 0, 255).astype(np.uint8)
    lut_down = np.clip(-table, 0, 255).astype(np.uint8)
    noise_rng = np.random.default_rng(ss_noise)

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    visible = np.zeros((n_frames, n_fish, len(names)), bool)
    labels = np.zeros((height, width), np.uint8)
    kp_col = np.clip(np.rint(keypoints[..., 0]), 0, width - 1).astype(np.intp)
    kp_row = np.clip(np.rint(keypoints[..., 1]), 0, height - 1).astype(np.intp)
    fish_ids = np.arange(1, n_fish + 1)[:, None]
    aa, l8 = cv2.LINE_AA, cv2.LINE_8
    for f in range(n_frames):
        img = frames[f]
        img[:] = background
        labels[:] = 0
        for i, (st, sh) in enumerate(zip(styles, shapes)):
            pecs = [sh.pecs[f, 0, 0], sh.pecs[f, 0, 1]]
            fin, body = sh.fin[f, 0], sh.body[f, 0]
            eyes = sh.eyes[f, 0]
            eye_r = sh.eye_r
            cv2.fillPoly(img, pecs, st.fin, aa, _SHIFT)
            cv2.polylines(img, pecs, True, st.outline, 1, aa, _SHIFT)
            cv2.fillPoly(img, [fin], st.fin, aa, _SHIFT)
            cv2.polylines(img, list(sh.rays[f, 0]), False, st.ray, 1, aa, _SHIFT)
            cv2.polylines(img, [fin], True, st.outline, 1, aa, _SHIFT)
            cv2.fillPoly(img, [body], st.body, aa, _SHIFT)
            for poly, color in st.polys:
                cv2.fillPoly(img, [poly[f, 0]], color, aa, _SHIFT)
            for line, thickness, color in st.lines:
                cv2.polylines(img, [line[f, 0]], False, color, thickness, aa, _SHIFT)
            for centers, r, color in st.circles:
                cv2.circle(img, tuple(int(v) for v in centers[f, 0]), r, color, -1, aa, _SHIFT)
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
