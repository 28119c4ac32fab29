"""Part-affinity fields (PAFs): targets, line-integral scores and greedy bottom-up assembly.

DeepLabCut's multi-animal bottom-up model (after OpenPose): besides one heatmap
per bodypart, the head predicts for every skeleton edge ``(a, b)`` a 2-channel
vector field that, on the limb of each animal, points from part ``a`` to part
``b``. At inference, each candidate pair (a peak of ``a``, a peak of ``b``) is
scored by the mean of the field along the segment between them, projected on
its direction; well-scored pairs are joined greedily into individuals.

Conventions are those of :mod:`heatmap_targets` (keypoints ``[B, N, K, 3]`` in
input pixels, missing = NaN or visibility 0, cell centres at
``(j + 0.5) * stride - 0.5``). Edges are a LongTensor (or nested list) ``[E, 2]``
of bodypart indices; PAF channels are ``x0, y0, x1, y1, ...`` (edge e owns
channels ``2e`` and ``2e + 1``), like locref. A PAF head is a regression: pass
its raw output, not a sigmoid.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lightning_dlc.models.heads.heatmap_targets import (
    LOCREF_STD,
    _cell_centres,
    _target_points,
    _work_dtype,
    find_peaks,
    pixels_to_grid,
    refine,
)


def _edges(edges, n_bodyparts: int, device) -> torch.Tensor:
    e = torch.as_tensor(edges, dtype=torch.long, device=device).reshape(-1, 2)
    if e.numel() and (e.min() < 0 or e.max() >= n_bodyparts):
        raise ValueError(f"edges must index bodyparts 0..{n_bodyparts - 1}, got {e.tolist()}")
    return e


def paf_targets(
    keypoints: torch.Tensor,
    edges,
    map_size: tuple[int, int],
    stride: float,
    width: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PAF targets: on each labeled limb, the unit vector from part a to part b.

    A cell belongs to the limb of individual n for edge (a, b) if its centre is
    within ``width`` input pixels of the line through a and b and its projection
    on that line falls within the segment extended by ``width`` at both ends (a
    rectangle, like OpenPose's bounding-box test), so the field also covers the
    joints themselves, where the line integral samples its ends. Where limbs of
    several individuals cover a cell, their vectors are averaged (sum / count),
    as in OpenPose. A limb needs both ends labeled and inside the map; one of
    length 0 has no direction and draws nothing.

    Memory and time are O(B * N * E * H * W) (one pass, no loops).

    Args:
        keypoints: ``[B, N, K, 3]`` (x, y, visibility) in input pixels.
        edges: ``[E, 2]`` bodypart index pairs (a, b).
        map_size: ``(H, W)`` of the head's output; stride: input pixels per cell.
        width: half-width of a limb's band, input pixels.

    Returns:
        pafs ``[B, 2E, H, W]`` (x, y per edge; 0 off every limb); weights
        ``[B, 2E, 1, 1]``: 1 if the edge is labeled (both ends) in at least one
        individual of the image, else 0, so images where nobody's limb is labeled
        don't teach "no limb here". Keypoints' dtype and device.
    """
    if width <= 0:
        raise ValueError(f"width must be > 0 (input pixels), got {width}")
    H, W = map_size
    x, y, ok = _target_points(keypoints, map_size, stride)  # [B, N, K]
    ia, ib = _edges(edges, x.shape[-1], x.device).unbind(1)
    ax, ay, vx, vy = x[..., ia], y[..., ia], x[..., ib] - x[..., ia], y[..., ib] - y[..., ia]  # [B, N, E]
    length = torch.hypot(vx, vy)
    labeled = ok[..., ia] & ok[..., ib]
    drawn = labeled & (length > 0)
    ux, uy = (torch.where(drawn, v / length.clamp_min(1e-12), 0.0) for v in (vx, vy))
    dx = _cell_centres(W, stride, x) - ax[..., None]  # [B, N, E, W]
    dy = _cell_centres(H, stride, x) - ay[..., None]  # [B, N, E, H]
    e4 = (slice(None),) * 3 + (None, None)  # [B, N, E] -> [B, N, E, 1, 1]
    along = ux[e4] * dx[..., None, :] + uy[e4] * dy[..., :, None]  # [B, N, E, H, W]
    across = ux[e4] * dy[..., :, None] - uy[e4] * dx[..., None, :]
    inside = (along >= -width) & (along <= length[e4] + width) & (across.abs() <= width) & drawn[e4]
    inside = inside.to(x.dtype)
    count = inside.sum(1)  # [B, E, H, W]
    field = torch.stack([torch.einsum("bnehw,bne->behw", inside, u) for u in (ux, uy)], 2)  # [B, E, 2, H, W]
    pafs = (field / count.clamp_min(1)[:, :, None]).flatten(1, 2)
    weights = labeled.any(1).repeat_interleave(2, dim=1)[..., None, None]
    return pafs.to(keypoints.dtype), weights.to(keypoints.dtype)


def paf_scores(
    pafs: torch.Tensor,
    stride: float,
    candidates_a: torch.Tensor,
    candidates_b: torch.Tensor,
    n_samples: int = 10,
) -> torch.Tensor:
    """Line-integral affinity of every (a, b) candidate pair, for all edges at once.

    For a pair, ``n_samples`` points evenly spaced from a to b (both included)
    are sampled bilinearly from edge e's field and dotted with the unit vector
    a -> b; the affinity is their mean (1 on a perfect limb, ~0 across
    unrelated animals, negative when pointing backwards).

    Cost: O(B * E * P * Q * n_samples) gathers, one ``grid_sample`` call.

    Args:
        pafs: ``[B, 2E, H, W]`` raw PAF output.
        candidates_a: ``[B, E, P, 2]`` (x, y) input pixels of edge e's a-part
            candidates; NaN rows are invalid. candidates_b: ``[B, E, Q, 2]``.

    Returns:
        ``[B, E, P, Q]`` affinities, at least float32; ``-inf`` where either
        candidate is invalid (sorts last, fails any threshold), 0 for
        coincident candidates (no direction).
    """
    B, C, H, W = pafs.shape
    E, P, Q = C // 2, candidates_a.shape[2], candidates_b.shape[2]
    dt = torch.promote_types(_work_dtype(pafs), _work_dtype(candidates_a))
    a, b = candidates_a.to(dt)[:, :, :, None], candidates_b.to(dt)[:, :, None]  # [B, E, P, 1, 2], [B, E, 1, Q, 2]
    valid = torch.isfinite(a).all(-1) & torch.isfinite(b).all(-1)  # [B, E, P, Q]
    a, b = torch.nan_to_num(a), torch.nan_to_num(b)
    v = b - a
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    t = torch.linspace(0, 1, n_samples, device=pafs.device, dtype=dt)[:, None]
    points = a[..., None, :] + t * v[..., None, :]  # [B, E, P, Q, S, 2]
    # align_corners=True: -1 / +1 are the centres of the first / last cell
    scale = torch.tensor([max(W - 1, 1), max(H - 1, 1)], device=pafs.device, dtype=dt)
    grid = pixels_to_grid(points, stride) / scale * 2 - 1
    field = F.grid_sample(pafs.to(dt).reshape(B * E, 2, H, W), grid.reshape(B * E, P * Q, n_samples, 2),
                          mode="bilinear", padding_mode="border", align_corners=True)  # [B*E, 2, P*Q, S]
    dot = (field * u.reshape(B * E, P * Q, 2).transpose(1, 2)[..., None]).sum(1)  # [B*E, P*Q, S]
    return torch.where(valid, dot.mean(-1).reshape(B, E, P, Q), float("-inf"))


def _greedy_match(scores: np.ndarray, min_score: float) -> np.ndarray:
    """One-to-one greedy matching per (image, edge), best pair first: ``[B, E, P, Q]`` -> match ``[B, E, P]``.

    match[b, e, i] is the matched column, or -1. Batched over B and E: at most
    min(P, Q) rounds of one argmax each (numpy: tiny arrays, many rounds).
    """
    B, E, P, Q = scores.shape
    s = np.where(scores > min_score, scores, -np.inf).reshape(B * E, P, Q)  # also drops NaN
    match = np.full((B * E, P), -1)
    rows = np.arange(B * E)
    for _ in range(min(P, Q)):
        flat = s.reshape(B * E, P * Q).argmax(1)
        i, j = flat // Q, flat % Q
        found = s[rows, i, j] > -np.inf
        if not found.any():
            break
        r, i, j = rows[found], i[found], j[found]
        match[r, i] = j
        s[r, i, :] = -np.inf  # the matched row and column are used up
        s[r, :, j] = -np.inf
    return match.reshape(B, E, P)


def _find(parent: list[int], node: int) -> int:
    while parent[node] != node:
        parent[node] = parent[parent[node]]  # path halving
        node = parent[node]
    return node


def assemble(
    peaks_xy: torch.Tensor,
    peak_scores: torch.Tensor,
    valid: torch.Tensor,
    pafs: torch.Tensor,
    edges,
    stride: float,
    n_individuals: int,
    min_affinity: float = 0.05,
    n_samples: int = 10,
    max_length: float | None = None,
    min_parts: int = 1,
) -> torch.Tensor:
    """Greedy bottom-up assembly of peaks into individuals (OpenPose / DeepLabCut style).

    1. Score every pair of candidates of every edge by :func:`paf_scores`
       (tensor ops, all edges at once); pairs farther apart than ``max_length``
       pixels (a distance prior, off by default) or scoring <= ``min_affinity``
       are dropped.
    2. Per edge, greedy one-to-one matching by affinity (a peak joins at most one
       partner per edge), batched over images and edges.
    3. All matched links, best affinity first across edges, merge their peaks'
       groups (union-find) unless the merged group would hold two peaks of one
       bodypart; with a tree skeleton that never happens, with cycles (DLC's
       densely connected graphs) the weaker, contradicting link is skipped.
    4. Groups (unlinked peaks are one-part groups) are ranked by score = sum of
       their peak scores + sum of their link affinities, ties by number of
       parts; groups with fewer than ``min_parts`` parts are dropped and the best
       ``n_individuals`` are returned.

    Complexity: scoring O(B * E * P^2 * n_samples) tensor work on the maps'
    device; then one transfer of ``[B, E, P, P]`` scores to the CPU, at most P
    batched numpy rounds of matching; the Python part, per image, touches at most
    E * P links and K * P peaks (union-find, near O(1) each) and sorts them.
    P is ``find_peaks``' ``max_peaks``, so cost is bounded for any map, noisy
    ones from an untrained model included.

    Args:
        peaks_xy: ``[B, K, P, 2]`` (x, y) input pixels; peak_scores, valid: ``[B, K, P]``.
        pafs: ``[B, 2E, H, W]``; edges: ``[E, 2]``; stride: input pixels per PAF cell.

    Returns:
        ``[B, n_individuals, K, 3]`` (x, y, peak score), best individual first,
        at least float32, on the peaks' device; NaN where a part is missing.
    """
    B, K, P, _ = peaks_xy.shape
    edges = _edges(edges, K, peaks_xy.device)
    if pafs.shape[1] != 2 * len(edges):
        raise ValueError(f"pafs need 2 channels per edge: {len(edges)} edges, got {pafs.shape[1]} channels")
    xy = torch.where(valid[..., None], peaks_xy.to(_work_dtype(peaks_xy)), float("nan"))
    ca, cb = xy[:, edges[:, 0]], xy[:, edges[:, 1]]  # [B, E, P, 2]
    aff = paf_scores(pafs, stride, ca, cb, n_samples)  # [B, E, P, P]
    if max_length is not None:
        aff = aff.masked_fill(torch.cdist(torch.nan_to_num(ca), torch.nan_to_num(cb)) > max_length, float("-inf"))

    # the sequential part, on the CPU
    aff = aff.cpu().numpy()
    match = _greedy_match(aff, min_affinity)
    link_aff = np.take_along_axis(aff, np.maximum(match, 0)[..., None], 3)[..., 0]  # [B, E, P]
    xy_np, scores_np = xy.cpu().numpy(), peak_scores.to(xy.dtype).cpu().numpy()
    valid_np, edges_l = valid.cpu().numpy(), edges.tolist()
    out = np.full((B, n_individuals, K, 3), np.nan, dtype=xy_np.dtype)
    for b in range(B):
        parent = list(range(K * P))  # node k * P + p
        parts: dict[int, dict[int, int]] = {}  # root -> {bodypart: peak}
        linked: dict[int, float] = {}  # root -> sum of link affinities
        e_idx, i_idx = np.nonzero(match[b] >= 0)
        order = np.argsort(-link_aff[b, e_idx, i_idx], kind="stable")  # best link first, across edges
        e_idx, i_idx = e_idx[order], i_idx[order]
        links = zip(e_idx.tolist(), i_idx.tolist(), match[b, e_idx, i_idx].tolist(), link_aff[b, e_idx, i_idx].tolist())
        for e, i, j, a in links:
            ka, kb = edges_l[e]
            ra, rb = _find(parent, ka * P + i), _find(parent, kb * P + j)
            if ra != rb:
                pa, pb = parts.pop(ra, {ka: i}), parts.pop(rb, {kb: j})
                if pa.keys() & pb.keys():  # would give one animal two of a bodypart
                    parts[ra], parts[rb] = pa, pb
                    continue
                parent[rb] = ra
                parts[ra] = pa | pb
                linked[ra] = linked.pop(ra, 0.0) + linked.pop(rb, 0.0)
            linked[ra] = linked.get(ra, 0.0) + a
        for k, p in zip(*np.nonzero(valid_np[b])):  # unlinked peaks stand alone
            node = int(k) * P + int(p)
            if parent[node] == node and node not in parts:
                parts[node] = {int(k): int(p)}
        groups = [(sum(scores_np[b, k, p] for k, p in g.items()) + linked.get(r, 0.0), len(g), g)
                  for r, g in parts.items() if len(g) >= min_parts]
        groups.sort(key=lambda s: s[:2], reverse=True)
        for row, (_, _, g) in enumerate(groups[:n_individuals]):
            ks, ps = list(g.keys()), list(g.values())
            out[b, row, ks, :2] = xy_np[b, ks, ps]
            out[b, row, ks, 2] = scores_np[b, ks, ps]
    return torch.from_numpy(out).to(peaks_xy.device)


def predict_paf(
    heatmaps: torch.Tensor,
    locref: torch.Tensor | None,
    pafs: torch.Tensor,
    edges,
    stride: float,
    n_individuals: int,
    max_peaks: int | None = None,
    peak_threshold: float = 0.1,
    locref_std: float = LOCREF_STD,
    nms_radius: int = 1,
    min_affinity: float = 0.05,
    n_samples: int = 10,
    max_length: float | None = None,
    min_parts: int = 1,
) -> torch.Tensor:
    """Multi-animal bottom-up predictor: find_peaks -> refine -> assemble.

    Args:
        heatmaps: ``[B, K, H, W]`` probabilities (sigmoid applied); locref
            ``[B, 2K, H, W]`` or None; pafs ``[B, 2E, H, W]`` raw, same map size.
        max_peaks: candidates kept per bodypart (default ``2 * n_individuals + 4``:
            room for every animal plus as many spurious or doubled peaks, so a
            false positive that outscores a real part does not push it out,
            while capping the P^2 pair scoring for noisy maps).
        Remaining arguments: see :func:`find_peaks` and :func:`assemble`.

    Returns:
        ``[B, n_individuals, K, 3]`` (x, y, score) in input pixels, best
        individual first, NaN where missing.
    """
    if max_peaks is None:
        max_peaks = 2 * n_individuals + 4
    peaks, scores, valid = find_peaks(heatmaps, max_peaks, peak_threshold, nms_radius)
    xy = refine(peaks, locref, stride, locref_std)
    return assemble(xy, scores, valid, pafs, edges, stride, n_individuals, min_affinity=min_affinity,
                    n_samples=n_samples, max_length=max_length, min_parts=min_parts)
