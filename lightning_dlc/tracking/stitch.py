"""Stitching: tracklets -> ``n_tracks`` tracks over the whole video, by min-cost flow.

The graph (networkx): a source sending ``n_tracks`` units to a sink; every tracklet long enough
(``min_length``) is an edge ``in -> out`` of capacity 1 whose cost is minus its length (covering
frames is rewarded); a tracklet may follow another that ends before it starts, at most ``max_gap``
frames earlier, at the cost of the motion mismatch of that link; the source may feed any tracklet,
any tracklet may end in the sink, and the source may send flow straight to the sink (fewer animals
seen than ``n_tracks`` is not an error). The cheapest flow gives each track a chain of tracklets
that never overlap in time; every link gets a bonus, so continuing a track beats opening a spare
one. Shorter or unused tracklets then go where they fit best (free frames
of a track and a motion mismatch under one body size), and gaps up to ``fill_gaps`` frames are
filled by linear interpolation.

A link's cost is the mean keypoint distance between one tracklet's end carried forward with its
velocity and the next one's start carried back with its own, in body sizes (the median size of
the animals), plus a small cost per frame of gap, plus ``extra_cost`` when given (the hook re-identification
uses: ``extra_cost(earlier, i, later, j)`` -> costs ``[P]`` in body sizes of tracklet ``earlier[i]`` followed by
``later[j]``, for index arrays ``i``, ``j``).

Known animals: tracklets that carry identities (the identity head's, :mod:`~lightning_dlc.tracking.identity`)
are first cut where their identity changes for good, the identity head's verdict is added to every link's cost
(:class:`~lightning_dlc.tracking.identity.IdentityCost`), and the tracks come out named by identity: track i is
the animal the head calls individual i over the whole video (DeepLabCut 3.0.2 multiplies link costs by 0.01
for equal tracklet identities and sorts tracks by identity; ours also cuts and moves tracklets).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import networkx as nx
import numpy as np

from lightning_dlc.tracking.identity import (DEFAULT_WEIGHT, IdentityCost, identity_count, name_tracks_by_identity,
                                             split_at_identity_changes)
from lightning_dlc.tracking.trackers import median_size
from lightning_dlc.tracking.tracklets import Tracklet

__all__ = ["fill_gaps", "split_tracklets", "stitch_tracklets", "summed_costs"]

_VELOCITY_FRAMES = 5       # frames at each end a tracklet's velocity is measured over
_GAP_COST = 0.02           # body sizes per frame of gap: of two equally good links, the shorter wins
_MAX_RESIDUAL_COST = 1.0   # body sizes: a leftover tracklet joins a track only closer than this
_LINK_BONUS = 2.0          # body sizes taken off every link: continuing a track beats opening a spare one,
                           # so spare tracks stay empty rather than take over part of an animal's path
_COST_SCALE = 100          # the flow solver works in integers: costs in hundredths


def split_tracklets(tracklets: Sequence[Tracklet], at_gaps: bool = True) -> list[Tracklet]:
    """Drop frames without keypoints and, with ``at_gaps``, cut tracklets where frames are missing
    (a tracker coasting through them)."""
    out = []
    for t in tracklets:
        keep = np.isfinite(t.data[..., :2]).all(-1).any(-1)
        frames, data = t.frames[keep], t.data[keep]
        cuts = np.flatnonzero(np.diff(frames) != 1) + 1 if at_gaps else []
        out += [Tracklet(f, d) for f, d in zip(np.split(frames, cuts), np.split(data, cuts)) if len(f)]
    return out


class _Ends:
    """Keypoints, centroid velocity and frame at the start and end of each tracklet, as arrays."""

    def __init__(self, tracklets: Sequence[Tracklet]):
        self.tracklets = list(tracklets)
        self.start = np.array([t.start for t in tracklets], np.int64)
        self.end = np.array([t.end for t in tracklets], np.int64)
        self.first = np.stack([t.data[0, :, :2] for t in tracklets]) if tracklets else np.zeros((0, 0, 2))
        self.last = np.stack([t.data[-1, :, :2] for t in tracklets]) if tracklets else np.zeros((0, 0, 2))
        self.v_start = np.array([_velocity(t, head=True) for t in tracklets]).reshape(-1, 2)
        self.v_end = np.array([_velocity(t, head=False) for t in tracklets]).reshape(-1, 2)


def _velocity(t: Tracklet, head: bool) -> np.ndarray:
    """Centroid displacement per frame over the first (head) or last few frames; 0 when unknown."""
    part = slice(0, _VELOCITY_FRAMES) if head else slice(-_VELOCITY_FRAMES, None)
    c, f = t.centroids()[part], t.frames[part]
    ok = np.isfinite(c).all(1)
    if ok.sum() < 2:
        return np.zeros(2)
    c, f = c[ok], f[ok]
    return (c[-1] - c[0]) / (f[-1] - f[0])


ExtraCost = Callable[[Sequence[Tracklet], np.ndarray, Sequence[Tracklet], np.ndarray], np.ndarray]


def summed_costs(*costs: ExtraCost | None) -> ExtraCost | None:
    """One ``extra_cost`` hook adding up several (None: none given)."""
    given = [c for c in costs if c is not None]
    if len(given) < 2:
        return given[0] if given else None
    return lambda earlier, i, later, j: sum(c(earlier, i, later, j) for c in given)


def _link_costs(a: _Ends, i: np.ndarray, b: _Ends, j: np.ndarray, scale: float,
                extra_cost: ExtraCost | None = None) -> np.ndarray:
    """Cost of tracklet ``i`` (of ``a``) being followed by ``j`` (of ``b``), for arrays of pairs, in body sizes."""
    gap = (b.start[j] - a.end[i]).astype(np.float64)
    forward = a.last[i] + (a.v_end[i] * gap[:, None])[:, None]       # [P, K, 2]
    backward = b.first[j] - (b.v_start[j] * gap[:, None])[:, None]
    err = (np.linalg.norm(forward - b.first[j], axis=-1) + np.linalg.norm(backward - a.last[i], axis=-1)) / 2
    shared = np.isfinite(err)
    mean = np.where(shared, np.nan_to_num(err), 0).sum(1) / np.maximum(shared.sum(1), 1)
    # Without a keypoint in common, compare centroids.
    centroid = np.linalg.norm(np.nanmean(forward, 1) - np.nanmean(b.first[j], 1), axis=-1)
    mean = np.where(shared.any(1), mean, centroid)
    cost = mean / scale + _GAP_COST * gap
    return cost + extra_cost(a.tracklets, i, b.tracklets, j) if extra_cost is not None and len(i) else cost


def _default_max_gap(tracklets: Sequence[Tracklet], n_tracks: int, n_frames: int) -> int:
    """1.5 x the longest run of frames in which fewer than ``n_tracks`` tracklets are present."""
    present = np.zeros(n_frames + 1, np.int64)
    np.add.at(present, [t.start for t in tracklets], 1)
    np.add.at(present, [t.end + 1 for t in tracklets], -1)
    short = np.cumsum(present)[:n_frames] < n_tracks
    edges = np.flatnonzero(np.diff(np.r_[0, short.astype(np.int8), 0]))
    longest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    return max(1, int(1.5 * (longest + 1)))


def _candidate_links(ends: _Ends, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j) with j starting 1..max_gap frames after i ends, without a Python loop over pairs."""
    order = np.argsort(ends.start, kind="stable")
    starts = ends.start[order]
    lo = np.searchsorted(starts, ends.end, side="right")
    hi = np.searchsorted(starts, ends.end + max_gap, side="right")
    counts = hi - lo
    i = np.repeat(np.arange(len(ends.end)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return i, order[np.repeat(lo, counts) + offsets]


def _flow_paths(tracklets: Sequence[Tracklet], n_tracks: int, max_gap: int, scale: float,
                extra_cost: ExtraCost | None = None) -> list[list[int]]:
    """Chains of tracklet indices, one per track found (at most ``n_tracks``), by min-cost flow."""
    ends = _Ends(tracklets)
    i, j = _candidate_links(ends, max_gap)
    cost = np.rint((_link_costs(ends, i, ends, j, scale, extra_cost) - _LINK_BONUS) * _COST_SCALE).astype(np.int64)
    graph = nx.DiGraph()
    graph.add_node("source", demand=-n_tracks)
    graph.add_node("sink", demand=n_tracks)
    graph.add_edge("source", "sink", capacity=n_tracks, weight=0)
    for k, t in enumerate(tracklets):
        graph.add_edge("source", ("in", k), capacity=1, weight=0)
        graph.add_edge(("in", k), ("out", k), capacity=1, weight=-len(t) * _COST_SCALE)
        graph.add_edge(("out", k), "sink", capacity=1, weight=0)
    graph.add_edges_from((("out", int(a)), ("in", int(b)), {"capacity": 1, "weight": int(w)})
                         for a, b, w in zip(i, j, cost))
    _, flow = nx.network_simplex(graph)
    following = {}
    for node, targets in flow.items():
        for target, units in targets.items():
            if units and isinstance(node, tuple) and node[0] == "out" and isinstance(target, tuple):
                following[node[1]] = target[1]
    firsts = [target[1] for target, units in flow["source"].items() if units and target != "sink"]
    paths = []
    for k in firsts:
        path = [k]
        while path[-1] in following:
            path.append(following[path[-1]])
        paths.append(path)
    return paths


def _add_residuals(residuals: Sequence[Tracklet], paths: list[list[Tracklet]], occupied: np.ndarray,
                   scale: float, max_gap: int, extra_cost: ExtraCost | None = None) -> None:
    """Put leftover tracklets (longest first) into the track where they fit best, if any fits."""
    for r in sorted(residuals, key=len, reverse=True):
        free = ~occupied[r.frames].any(0)                          # [n_tracks]
        best, best_cost = -1, _MAX_RESIDUAL_COST
        here = _Ends([r])
        for track in np.flatnonzero(free):
            before = [t for t in paths[track] if r.start - max_gap <= t.end < r.start]
            after = [t for t in paths[track] if r.end < t.start <= r.end + max_gap]
            costs = []
            if before:
                costs.append(_link_costs(_Ends(before[-1:]), np.zeros(1, int), here, np.zeros(1, int), scale,
                                         extra_cost)[0])
            if after:
                costs.append(_link_costs(here, np.zeros(1, int), _Ends(after[:1]), np.zeros(1, int), scale,
                                         extra_cost)[0])
            if costs and np.mean(costs) < best_cost:
                best, best_cost = track, float(np.mean(costs))
        if best >= 0:
            occupied[r.frames, best] = True
            paths[best] = sorted([*paths[best], r], key=lambda t: t.start)


def fill_gaps(tracks: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate runs of at most ``max_gap`` missing frames, per track and keypoint.

    tracks ``[T, ...]`` (NaN: missing; a point is missing when its x is). Returns a new array.
    """
    out = np.array(tracks, np.float64, copy=True)
    if max_gap < 1 or len(out) < 3:
        return out
    flat = out.reshape(len(out), -1, out.shape[-1])               # [T, M, C]
    known = np.isfinite(flat[..., 0])                              # [T, M]
    t = np.arange(len(out))[:, None]
    prev = np.maximum.accumulate(np.where(known, t, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(known, t, len(out))[::-1], axis=0)[::-1]
    gap = nxt - prev - 1
    fill = ~known & (prev >= 0) & (nxt < len(out)) & (gap <= max_gap)
    rows, cols = np.nonzero(fill)
    p, n = prev[rows, cols], nxt[rows, cols]
    w = ((rows - p) / (n - p))[:, None]
    flat[rows, cols] = flat[p, cols] * (1 - w) + flat[n, cols] * w
    return out


def stitch_tracklets(tracklets: Sequence[Tracklet], n_tracks: int, n_frames: int | None = None,
                     min_length: int = 5, split: bool = True, max_gap: int | None = None,
                     fill: int = 0, add_residuals: bool = True, extra_cost: ExtraCost | None = None,
                     use_identity: bool | None = None, identity_weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """Tracklets -> tracks ``[n_frames, n_tracks, K, C]`` (NaN where a track has no animal).

    Args:
        n_tracks: tracks to make (the number of animals).
        n_frames: the video's frames (default: up to the last tracklet's end).
        min_length: tracklets shorter than this only fill in after the flow (DeepLabCut: 10; shorter ones
            carry identities through close encounters, where trackers fragment).
        split: first cut tracklets where the tracker coasted over missing frames.
        max_gap: most frames between two linked tracklets (default: 1.5 x the longest stretch
            with fewer tracklets than tracks).
        fill: interpolate gaps of up to this many frames (0: none).
        add_residuals: put short and unused tracklets where they fit.
        extra_cost: added to every link's cost (see the module doc; re-identification's embedding distance).
        use_identity: use the tracklets' identities (module doc); None: when they carry any (2 or more).
        identity_weight: body sizes the identity head's verdict adds to or takes off a link.
    Tracks are ordered by when they first appear, or, with identities, track i is identity i.
    """
    if n_tracks < 1:
        raise ValueError(f"n_tracks must be at least 1, got {n_tracks}")
    tracklets = split_tracklets(tracklets, at_gaps=split)
    n_identities = identity_count(tracklets) if use_identity is not False else 0
    if use_identity and n_identities < 2:
        raise ValueError("use_identity=True, but the tracklets carry fewer than 2 identities (analyze with a model "
                         "trained with identity: true)")
    if n_identities >= 2:
        tracklets = split_at_identity_changes(tracklets, n_identities)
        extra_cost = summed_costs(extra_cost, IdentityCost(n_identities, identity_weight))
    if n_frames is None:
        n_frames = max((t.end + 1 for t in tracklets), default=0)
    tracklets = [t for t in tracklets if t.end < n_frames]
    shape = tracklets[0].data.shape[1:] if tracklets else (0, 3)
    tracks = np.full((n_frames, n_tracks, *shape), np.nan)
    if not tracklets:
        return tracks
    long = [t for t in tracklets if len(t) >= min_length]
    scale = median_size(np.concatenate([t.data[..., :2] for t in tracklets]), default=1.0)  # px; 1: unknown
    if max_gap is None:
        max_gap = _default_max_gap(long or tracklets, n_tracks, n_frames)
    chains = _flow_paths(long, n_tracks, max_gap, scale, extra_cost) if long else []
    used = {k for chain in chains for k in chain}
    paths = [[long[k] for k in chain] for chain in chains] + [[] for _ in range(n_tracks - len(chains))]
    paths.sort(key=lambda p: (p[0].start, float(np.nanmean(p[0].data[0, :, 0]))) if p else (n_frames, 0.0))
    occupied = np.zeros((n_frames, n_tracks), bool)
    for k, path in enumerate(paths):
        for t in path:
            occupied[t.frames, k] = True
    if add_residuals:
        residuals = [t for t in tracklets if len(t) < min_length] + [t for k, t in enumerate(long) if k not in used]
        _add_residuals(residuals, paths, occupied, scale, max_gap, extra_cost)
    if n_identities >= 2:
        paths = name_tracks_by_identity(paths, n_identities)
    for k, path in enumerate(paths):
        for t in path:
            tracks[t.frames, k] = t.data
    return fill_gaps(tracks, fill) if fill else tracks
