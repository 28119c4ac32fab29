"""How the demo's fish move: anchor paths, swimming spines and the keypoints on them.

The default scene: each fish runs a slowly precessing figure eight through the middle of the tank.
The hard scene (``render_scene(scene="hard")``) adds, on the same figure eights: excursions out
of view (partly or wholly) and back, and for each pair of consecutive fish one stretch where the
second swims beside the first, bodies touching.

Paths are functions of time, differentiated numerically, so heading and curvature stay exact.
"""
from __future__ import annotations

import numpy as np

# Anatomy along the body as a fraction of snout-to-tailtip length.
KEYPOINT_U = np.array([0.0, 0.13, 0.40, 0.78, 1.0])  # one per bodypart
# The 9-bodypart fish: the five above plus gill, pectoral, anal fin and the middle of the tail fin.
KEYPOINT_U_9 = np.array([0.0, 0.13, 0.22, 0.31, 0.40, 0.59, 0.78, 0.89, 1.0])
U_NOSE = 0.22          # end of the rounded head, widest point of the body
U_TAILBASE = 0.78      # caudal peduncle: body ends, tail fin begins
U_ANCHOR = 0.5         # the point that follows the trajectory
N_SPINE = 51           # spine samples; 0.78 and 0.5 fall on the grid (index 39 and 25)
TAILBASE_INDEX = 39
ANCHOR_INDEX = 25
SPINE_U = np.linspace(0.0, 1.0, N_SPINE)
HALF_WIDTH = 0.085     # max body half-width / length

WALL_MARGIN = 0.18     # body lengths between the anchor's swimming area and the walls
_H = 1e-3              # s, for central differences of the analytic paths


def figure_eight(rng: np.random.Generator, i: int, center, axes, length: float,
                 alpha0: float | None = None, size: float | None = None, precess_scale: float = 1.0):
    """Fish i's path, a function of time (s) -> anchor [..., 2] px.

    A figure eight never stops (its speed has a positive lower bound), so the heading is always
    defined, and every fish passes through the centre twice per lap, which makes crossings frequent.
    ``alpha0``/``size`` override the random orientation and extent (the rng is drawn the same way).
    """
    cx, cy = center
    ax, ay = axes
    b = rng.uniform(0.45, 0.7)            # lobe height / half-width of the eight
    psi = rng.uniform(-0.5, 0.5)          # skews the eight; |psi| < pi/2 keeps speed > 0
    a0 = i * 2.399963 + rng.uniform(-0.3, 0.3)  # golden-angle spread of orientations
    precess = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.1)  # rad/s
    direction = rng.choice([-1.0, 1.0])
    body_lengths_per_s = rng.uniform(1.3, 1.9)
    fill = rng.uniform(0.65, 1.0)          # smaller eights: shorter laps, more centre passes
    warp = rng.uniform(0.15, 0.3)         # speed varies by +-warp around the mean
    warp_w = 2 * np.pi / rng.uniform(2.0, 4.0)
    warp_phase, phase0 = rng.uniform(0, 2 * np.pi, size=2)
    if alpha0 is not None:
        a0 = alpha0
    if size is not None:
        fill = size
    precess = precess * precess_scale

    tau = np.linspace(0, 2 * np.pi, 2001)
    q = np.stack([np.sin(tau), b * np.sin(2 * tau + psi)], -1)
    qnorm = np.linalg.norm(q, axis=-1).max() / fill  # the eight fills `fill` of the unit disk
    q /= qnorm
    ca, sa = np.cos(a0), np.sin(a0)
    lap = np.stack([ax * (ca * q[:, 0] - sa * q[:, 1]), ay * (sa * q[:, 0] + ca * q[:, 1])], -1)
    lap_px = np.linalg.norm(np.diff(lap, axis=0), axis=-1).sum()
    omega = direction * 2 * np.pi * body_lengths_per_s * length / lap_px

    def at(tt):
        tau_t = phase0 + omega * (tt + warp / warp_w * np.sin(warp_w * tt + warp_phase))
        qx = np.sin(tau_t) / qnorm
        qy = b * np.sin(2 * tau_t + psi) / qnorm
        al = a0 + precess * tt
        c, s = np.cos(al), np.sin(al)
        return np.stack([cx + ax * (c * qx - s * qy), cy + ay * (s * qx + c * qy)], -1)

    return at


def kinematics(paths, t: np.ndarray):
    """Anchor position [n_frames, n_fish, 2], heading, path curvature and speed [n_frames, n_fish]."""
    pos = np.empty((len(t), len(paths), 2))
    vel = np.empty_like(pos)
    acc = np.empty_like(pos)
    for i, at in enumerate(paths):
        p0, pm, pp = at(t), at(t - _H), at(t + _H)
        pos[:, i] = p0
        vel[:, i] = (pp - pm) / (2 * _H)
        acc[:, i] = (pp - 2 * p0 + pm) / (_H * _H)
    speed = np.linalg.norm(vel, axis=-1)
    heading = np.arctan2(vel[..., 1], vel[..., 0])
    curvature = (vel[..., 0] * acc[..., 1] - vel[..., 1] * acc[..., 0]) / np.maximum(speed, 1e-9) ** 3
    return pos, heading, curvature, speed


def default_paths(t: np.ndarray, rngs, width: int, height: int, length: float):
    """The default scene: every fish on its own figure eight, inside the tank."""
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    axes = (width / 2.0 - 0.5 - WALL_MARGIN * length, height / 2.0 - 0.5 - WALL_MARGIN * length)
    return kinematics([figure_eight(rng, i, center, axes, length) for i, rng in enumerate(rngs)], t)


def hard_paths(t: np.ndarray, rngs, width: int, height: int, lengths, exit_reach: float,
               contact_seconds: float, gap: float = 0.95):
    """The hard scene: figure eights inside the tank, plus once per video fish 0, 3, ... swim out
    through the nearest edge until their anchor is ``exit_reach`` body lengths past it (wholly out of
    view for a while) and fish 2, 5, ... until it reaches the edge (partly out), then come back;
    fish k+1 swims beside fish k for ``contact_seconds``, the bodies' widest points ``gap`` x
    touching apart, once per pair."""
    mean_length = float(np.mean(lengths))
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    axes = (width / 2.0 - 0.5 - WALL_MARGIN * mean_length, height / 2.0 - 0.5 - WALL_MARGIN * mean_length)
    paths = [figure_eight(rng, i, center, axes, lengths[i]) for i, rng in enumerate(rngs)]
    duration = float(t[-1] - t[0])
    for i in range(len(paths)):
        if i % 3 == 1 or exit_reach <= 0 or duration < 2 * (_EXIT_HALF + _RAMP) + 1:
            continue
        reach = (exit_reach if i % 3 == 0 else 0.0) * lengths[i]
        target = t[0] + duration * ((0.3, None, 0.7)[i % 3] + 0.07 * (i // 3)) % duration
        paths[i] = _excursion(paths[i], t, target, center, width, height, reach, lengths[i])
    episodes: list[float] = []
    half = 0.5 * contact_seconds
    for k in range(len(paths) - 1):
        if contact_seconds <= 0:
            break
        touching = gap * HALF_WIDTH * (lengths[k] + lengths[k + 1])
        # The cheapest time whose joining and leaving turn the follower no faster than a fish turns.
        best = None
        for tc in _contact_times(paths[k + 1], paths[k], t, width, height, mean_length, half, episodes)[:_TRIES]:
            path = _beside(paths[k + 1], paths[k], tc, half, _RAMP, touching)
            turn = _max_turn(path, t[np.abs(t - tc) <= half + _RAMP])
            if best is None or turn < best[0]:
                best = (turn, tc, path)
            if turn <= _MAX_TURN:
                break
        if best is not None:
            episodes.append(best[1])
            paths[k + 1] = best[2]
    return kinematics(paths, t)


_RAMP = 0.8       # s to join or leave another fish, or to swim out of view or back
_EXIT_HALF = 0.6  # s an excursion stays at its farthest
_MAX_TURN = 0.3   # rad per frame: faster turns look like a flip
_TRIES = 60       # candidate contact times tried


def _max_turn(path, t) -> float:
    """Largest change of heading between consecutive frames ``t`` (rad)."""
    v = path(t + _H) - path(t - _H)
    heading = np.arctan2(v[:, 1], v[:, 0])
    return float(np.abs((np.diff(heading) + np.pi) % (2 * np.pi) - np.pi).max()) if len(t) > 1 else 0.0


def _window(tt, tc: float, half: float, ramp: float):
    """1 within ``half`` of ``tc``, 0 beyond ``half + ramp``, smootherstep between (curvature stays continuous)."""
    s = np.clip((half + ramp - np.abs(np.asarray(tt) - tc)) / ramp, 0.0, 1.0)
    return s ** 3 * (s * (6 * s - 15) + 10)


def _excursion(path, t, target: float, center, width: int, height: int, reach: float, length: float):
    """The path, pushed out through the nearest edge around a time near ``target``: the time within
    a second of it when the fish heads most directly out, so the push never stops it; the push
    adds at most about 2 body lengths per second."""
    near = t[np.abs(t - target) <= 1.0]
    p, v = path(near), path(near + _H) - path(near - _H)
    off = p - np.asarray(center)
    along_x = np.abs(off[:, 0]) / (width - 1) >= np.abs(off[:, 1]) / (height - 1)
    axis = np.where(along_x[:, None], [[1.0, 0.0]], [[0.0, 1.0]]) * np.sign(off)
    outward = (v * axis).sum(-1) / np.maximum(np.linalg.norm(v, axis=-1), 1e-12)
    j = int(np.argmax(outward))
    tc, u = float(near[j]), axis[j]
    edge = (width - 1) if u[0] > 0 else 0.0 if u[0] < 0 else (height - 1) if u[1] > 0 else 0.0
    depth = abs(edge - p[j] @ np.abs(u)) + reach  # px from where the fish is at tc to past the edge
    ramp = max(_RAMP, depth / length)  # smootherstep's steepest slope is 1.875 / ramp

    def at(tt):
        return path(tt) + (_window(tt, tc, _EXIT_HALF, ramp) * depth)[..., None] * u

    return at




def _contact_times(follower, leader, t, width, height, length, half, taken) -> list[float]:
    """Times, best first, when the follower is closest to the leader heading the same way (over the
    episode), both in view, away from other episodes and the video's ends; none for videos too short."""
    pf, pl = follower(t), leader(t)
    vf = follower(t + _H) - follower(t - _H)
    vl = leader(t + _H) - leader(t - _H)
    cos = (vf * vl).sum(-1) / np.maximum(np.linalg.norm(vf, axis=-1) * np.linalg.norm(vl, axis=-1), 1e-12)
    cost = np.linalg.norm(pf - pl, axis=-1) / length + 2.0 * (1 - cos)
    # Averaged over the whole episode, ramps included: joining from far or against the leader's
    # heading would make the follower dart or spin.
    span_frames = max(1, int(round((half + _RAMP) / max(float(t[1] - t[0]), 1e-9)))) if len(t) > 1 else 1
    cost = np.convolve(cost, np.ones(2 * span_frames + 1) / (2 * span_frames + 1), mode="same")
    margin = 0.7 * length
    in_view = np.ones(len(t), bool)
    for p in (pf, pl):
        in_view &= (p[:, 0] > margin) & (p[:, 0] < width - 1 - margin)
        in_view &= (p[:, 1] > margin) & (p[:, 1] < height - 1 - margin)
    span = half + _RAMP
    ok = in_view & (t >= t[0] + span) & (t <= t[-1] - span)
    for other in taken:
        ok &= np.abs(t - other) > 2 * span + 0.5
    candidates = np.flatnonzero(ok)
    return [float(v) for v in t[candidates[np.argsort(cost[candidates], kind="stable")]]]


def _beside(follower, leader, tc: float, half: float, ramp: float, distance: float):
    """The follower's path, pulled beside the leader (on the side it comes from) around ``tc``."""
    d0 = leader(tc + _H) - leader(tc - _H)
    side = np.sign(d0[0] * (follower(tc) - leader(tc))[1] - d0[1] * (follower(tc) - leader(tc))[0]) or 1.0

    def at(tt):
        pf, pl = follower(tt), leader(tt)
        d = leader(tt + 1e-4) - leader(tt - 1e-4)
        normal = np.stack([-d[..., 1], d[..., 0]], -1) / np.linalg.norm(d, axis=-1, keepdims=True)
        return pf + _window(tt, tc, half, ramp)[..., None] * (pl + side * distance * normal - pf)

    return at


def swim_spines(pos, heading, curvature, speed, rngs, fps: float, length):
    """Spine points [n_frames, n_fish, N_SPINE, 2] from snout (index 0) to tailtip (index N_SPINE-1).

    ``length``: body length (px), one for all fish or one per fish.
    """
    n_frames, n_fish = heading.shape
    lengths = np.asarray(length, np.float64)
    per_sample = lengths[:, None] if lengths.ndim else length  # against [..., spine samples]
    beat_hz = np.array([rng.uniform(2.0, 2.8) for rng in rngs])
    beat_amp = np.array([rng.uniform(0.3, 0.4) for rng in rngs])  # rad, tail-fin yaw
    beat_phase0 = np.array([rng.uniform(0, 2 * np.pi) for rng in rngs])
    # Faster fish beat faster; integrating the frequency keeps the phase smooth when speed changes.
    rel_speed = np.clip(speed / np.maximum(speed.mean(axis=0, keepdims=True), 1e-9), 0.6, 1.6)
    beat = beat_phase0 + 2 * np.pi * np.cumsum(beat_hz * rel_speed, axis=0) / fps

    u_mid = 0.5 * (SPINE_U[1:] + SPINE_U[:-1])
    envelope = 0.04 + 0.96 * u_mid ** 2  # head barely yaws, tail swings
    wave = np.sin(beat[..., None] - 2 * np.pi * u_mid / 0.9)  # travelling wave, 0.9 body lengths
    # The body trails along its curved path: points behind the anchor had the heading the path had
    # there; clipped so tight turns don't fold the fish.
    kappa = np.clip(curvature, -1.2 / length, 1.2 / length) if not lengths.ndim else \
        np.clip(curvature, -1.2 / lengths, 1.2 / lengths)
    angle = (heading[..., None] - kappa[..., None] * (u_mid - U_ANCHOR) * per_sample
             + beat_amp[None, :, None] * envelope * wave)
    seg = length / (N_SPINE - 1) if not lengths.ndim else (lengths / (N_SPINE - 1))[:, None, None]
    step = -seg * np.stack([np.cos(angle), np.sin(angle)], -1)  # snout -> tail runs against heading
    spine = np.concatenate([np.zeros((n_frames, n_fish, 1, 2)), np.cumsum(step, axis=2)], axis=2)
    return spine - spine[:, :, ANCHOR_INDEX:ANCHOR_INDEX + 1] + pos[:, :, None, :]


def spine_keypoints(spine: np.ndarray, u: np.ndarray = KEYPOINT_U) -> np.ndarray:
    """Keypoints [..., n_bodyparts, 2] at fractions ``u`` of the body length, by linear interpolation
    along the drawn polyline, so they lie on the drawn midline."""
    pos = u * (N_SPINE - 1)
    lo = np.minimum(np.floor(pos).astype(int), N_SPINE - 2)
    frac = (pos - lo)[:, None]
    return spine[:, :, lo] * (1 - frac) + spine[:, :, lo + 1] * frac
