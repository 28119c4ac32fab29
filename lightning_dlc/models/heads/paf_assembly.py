"""DeepLabCut's part-affinity-field predictor: smoothed peaks, locref, line integrals, greedy assembly.

It gives the keypoints of DeepLabCut 3.0.2's ``PartAffinityFieldPredictor`` with its default
``Assembler`` (optimal pairing per edge, ``pcutoff`` 0.1, at least 2 links per animal, pose NMS at
0.8 overlap, no calibration), numbers and tie-breaking included:

1. sigmoid heatmaps are smoothed by a normalised ``(2 * nms_radius + 1)``-square Gaussian;
2. peaks: cells equal to the max of their ``nms_radius``-square window and >= 0.01 (ties all kept);
3. a peak at cell (row, col) sits at ``stride * (col, row) + stride // 2 + locref * locref_std``;
4. each (a-peak, b-peak) pair of an edge (among the peaks the assembler can use) scores the
   norm of the trapezoidal integral of the field sampled at 10 cells on the segment between the
   two peak cells, divided by its length (rounded to 3 decimals, as DeepLabCut does);
5. links are chosen per edge by Hungarian matching and grown into animals, strongest first.

Steps 1-4 are batched tensor code on the maps' device (one transfer of the pair scores); step 5
is a graph walk per image in Python, whose set and heap orders decide ties exactly as
DeepLabCut's do.
"""
from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

PEAK_THRESHOLD = 0.01  # DeepLabCut's fixed threshold on the smoothed maps
PCUTOFF = 0.1  # DeepLabCut's Assembler default: weaker peaks are never linked


def smooth(heatmaps: torch.Tensor, sigma: float, size: int) -> torch.Tensor:
    """Depthwise convolution with a ``size``-square Gaussian whose 1D profile sums to 1 (zero padding)."""
    offsets = (torch.arange(size, dtype=torch.float32) - size // 2) ** 2
    profile = torch.softmax(-offsets / (2 * sigma**2), dim=0)
    C = heatmaps.shape[1]
    kernel = torch.outer(profile, profile)[None, None].repeat(C, 1, 1, 1).to(heatmaps.device, heatmaps.dtype)
    if heatmaps.device.type == "cpu":
        # oneDNN's channels-last depthwise kernel: about 5x faster on a CPU than the default layout's
        # (tests/models/test_paf_assembly_speed.py checks that the values are the same)
        heatmaps = heatmaps.contiguous(memory_format=torch.channels_last)
    return F.conv2d(heatmaps, kernel, stride=1, padding="same", groups=C).contiguous()


def window_max(x: torch.Tensor, window: int) -> torch.Tensor:
    """``F.max_pool2d(x, window, stride=1, padding=window // 2)``, exactly: running maxima of shifted
    views, along rows then columns. A CPU's max_pool2d is about 3x slower at DeepLabCut's window."""
    pad = window // 2
    for dim in (-2, -1):
        n = x.shape[dim] + 2 * pad - window + 1
        padded = F.pad(x, (0, 0, pad, pad) if dim == -2 else (pad, pad), value=float("-inf"))
        out = padded.narrow(dim, 0, n)
        for i in range(1, window):
            out = torch.maximum(out, padded.narrow(dim, i, n))
        x = out
    return x


def find_peak_cells(heatmaps: torch.Tensor, window: int, threshold: float = PEAK_THRESHOLD) -> torch.Tensor:
    """``[n, 4]`` (image, bodypart, row, col) of cells equal to their window's max and >= threshold.

    Sorted by image, bodypart, row, col. DeepLabCut's window is ``nms_radius`` wide (not
    ``2 * nms_radius + 1``), and equal neighbours are all peaks.
    """
    if heatmaps.device.type == "cpu":
        pooled = window_max(heatmaps, window)
    else:
        pooled = F.max_pool2d(heatmaps, kernel_size=window, stride=1, padding=window // 2)
    return torch.nonzero(heatmaps * (heatmaps == pooled).float() >= threshold)


def peak_positions(locref: torch.Tensor, peaks: torch.Tensor, stride: float, locref_std: float) -> torch.Tensor:
    """``[n, 2]`` (x, y) input pixels: the cell's corner plus ``stride // 2``, plus the locref offset."""
    B, C, H, W = locref.shape
    offsets = locref.reshape(B, C // 2, 2, H, W) * locref_std
    b, k, r, c = peaks.T
    strides = torch.tensor((stride, stride), dtype=torch.float32, device=locref.device)
    return strides * peaks[:, [3, 2]].int() + strides // 2 + offsets[b, k, :, r, c]


def pair_affinities(pafs: torch.Tensor, peaks: torch.Tensor, n_bodyparts: int, edges: list[tuple[int, int]],
                    kept: list[int], n_points: int = 10, decimals: int = 3) -> list[dict[int, np.ndarray]]:
    """PAF score of every (a-peak, b-peak) pair of every kept edge, all images at once.

    Args:
        pafs: ``[B, 2E, H, W]`` raw fields (x, y channels per edge); peaks: from :func:`find_peak_cells`.
        edges: the head's graph; kept: indices of the edges used for assembly.

    Returns:
        Per image, ``{edge index: [n_a, n_b] float32 affinities}`` for edges with peaks at both ends.
    """
    B, C, H, W = pafs.shape
    device = pafs.device
    fields = pafs.reshape(B, C // 2, 2, H, W)
    peaks = peaks.long()
    counts = torch.bincount(peaks[:, 0] * n_bodyparts + peaks[:, 1], minlength=B * n_bodyparts)
    starts = (counts.cumsum(0) - counts).reshape(B, n_bodyparts)
    counts = counts.reshape(B, n_bodyparts)
    kept_t = torch.as_tensor(kept, dtype=torch.long, device=device)
    ends = torch.as_tensor(edges, dtype=torch.long, device=device).reshape(-1, 2)[kept_t]  # [E', 2]
    n_a, n_b = counts[:, ends[:, 0]], counts[:, ends[:, 1]]  # [B, E']
    # every pair as (group, i, j): groups are (image, kept edge); i-major like DeepLabCut's
    per_group = (n_a * n_b).flatten()
    group = torch.repeat_interleave(torch.arange(per_group.numel(), device=device), per_group)
    q = torch.arange(group.numel(), device=device) - (per_group.cumsum(0) - per_group)[group]
    image, edge = group // len(kept), group % len(kept)
    nb = n_b.flatten()[group]
    src = starts[image, ends[edge, 0]] + q // nb
    dst = starts[image, ends[edge, 1]] + q % nb
    a, b = peaks[src][:, 2:].float(), peaks[dst][:, 2:].float()  # (row, col)
    length = (b - a).norm(dim=1) + torch.tensor(np.spacing(1, dtype=np.float32), device=device)
    t = torch.linspace(0, 1, n_points, device=device, dtype=torch.float32)[None, :, None]
    cells = (a[:, None] + t * (b - a)[:, None]).to(torch.int32)
    cells[..., 0] = cells[..., 0].clamp(0, H - 1)
    cells[..., 1] = cells[..., 1].clamp(0, W - 1)
    index = (image[:, None].expand(-1, n_points), kept_t[edge][:, None].expand(-1, n_points))
    values = fields[index[0], index[1], :, cells[..., 0], cells[..., 1]]  # [n, n_points, 2]
    integral = torch.trapz(values, torch.flip(cells.float(), dims=[-1]), dim=1)
    scale = 10**decimals
    affinity = (torch.round(integral.norm(dim=1) / length * scale) / scale).cpu().numpy()
    bounds = np.concatenate([[0], per_group.cumsum(0).cpu().numpy()])
    shapes = torch.stack([n_a.flatten(), n_b.flatten()], 1).cpu().numpy()
    costs: list[dict[int, np.ndarray]] = [{} for _ in range(B)]
    for g in np.flatnonzero(bounds[1:] > bounds[:-1]):
        costs[g // len(kept)][kept[g % len(kept)]] = affinity[bounds[g]:bounds[g + 1]].reshape(shapes[g])
    return costs


class _Joint:
    __slots__ = ("pos", "confidence", "label", "idx")

    def __init__(self, pos: tuple, confidence: float, label: int, idx: int):
        self.pos, self.confidence, self.label, self.idx = pos, confidence, label, idx


class _Link:
    __slots__ = ("j1", "j2", "affinity", "idx")

    def __init__(self, j1: _Joint, j2: _Joint, affinity):
        self.j1, self.j2, self.affinity, self.idx = j1, j2, affinity, (j1.idx, j2.idx)


class _Animal:
    """A growing assembly: one joint per bodypart; ``data`` rows are (x, y, score, group)."""

    def __init__(self, n_parts: int):
        self.data = np.full((n_parts, 4), np.nan)
        self.data[:, 2] = 0  # DeepLabCut's assemblies start with confidence 0
        self.affinity = 0.0  # sum over links
        self.links: list[_Link] = []
        self.visible: set[int] = set()  # bodyparts
        self.idx: set[int] = set()  # joints

    def __len__(self) -> int:
        return len(self.visible)

    def shares_parts(self, other: _Animal) -> bool:
        return bool(self.visible & other.visible)

    def add_joint(self, joint: _Joint) -> bool:
        if joint.label in self.visible:
            return False
        self.data[joint.label] = *joint.pos, joint.confidence, -1
        self.visible.add(joint.label)
        self.idx.add(joint.idx)
        return True

    def add_link(self, link: _Link) -> bool:
        i, j = link.idx
        if i in self.idx and j in self.idx:  # closes a cycle: counts, adds nothing
            self.affinity += link.affinity
            self.links.append(link)
            return False
        if link.j1.label in self.visible and link.j2.label in self.visible:
            return False
        self.add_joint(link.j1)
        self.add_joint(link.j2)
        self.affinity += link.affinity
        self.links.append(link)
        return True

    def merged(self, other: _Animal) -> _Animal:
        out = _Animal(self.data.shape[0])
        for link in self.links + other.links:
            out.add_link(link)
        return out

    def overlap(self, other: _Animal) -> float:
        """Fraction of each animal's joints inside the intersection of both boxes (the smaller)."""
        xy1, xy2 = self.data[:, :2], other.data[:, :2]
        lo = np.maximum(np.nanmin(xy1, axis=0), np.nanmin(xy2, axis=0))
        hi = np.minimum(np.nanmax(xy1, axis=0), np.nanmax(xy2, axis=0))
        if hi[0] < lo[0] or hi[1] < lo[1]:
            return 0
        inside = [np.all((xy >= lo) & (xy <= hi), axis=1).sum() for xy in
                  (xy1[~np.isnan(xy1).any(axis=1)], xy2[~np.isnan(xy2).any(axis=1)])]
        return min(inside[0] / len(self), inside[1] / len(other))


class Assembler:
    """DeepLabCut's default greedy assembler for one image's joints and pair affinities."""

    def __init__(self, n_parts: int, max_animals: int, edges: list[tuple[int, int]], kept: list[int],
                 min_affinity: float = 0.05, pcutoff: float = 0.1, min_links: int = 2, max_overlap: float = 0.8):
        self.n_parts, self.max_animals, self.edges, self.kept = n_parts, max_animals, edges, kept
        self.min_affinity, self.pcutoff = min_affinity, pcutoff
        self.min_links, self.max_overlap = min_links, max_overlap

    def __call__(self, xy: list[np.ndarray], scores: list[np.ndarray], costs: dict[int, np.ndarray]) -> list[_Animal]:
        """xy, scores: per bodypart ``[n, 2]`` / ``[n]`` peaks; costs: :func:`pair_affinities` of the image."""
        bag: dict[int, list[_Joint]] = {}
        count = 0
        for label, (coords, conf) in enumerate(zip(xy, scores)):
            if not np.any(coords):  # DeepLabCut skips a bodypart whose peaks are all at (0, 0)
                continue
            bag[label] = [_Joint(tuple(p), float(c), label, count + n) for n, (p, c) in enumerate(zip(coords, conf))]
            count += len(coords)
        if not bag:
            return []
        if self.n_parts == 1:
            animals = [self._single(j) for j in bag[0] if j.confidence >= self.pcutoff]
            return animals[: self.max_animals]
        if self.max_animals == 1:
            animal = _Animal(self.n_parts)
            for label in range(self.n_parts):
                if label in bag:
                    animal.add_joint(max(bag[label], key=lambda j: j.confidence))
            return [animal]
        links = self._best_links(bag, costs)
        animals = self._build(links)
        for animal in animals[::-1]:
            if 0 < len(animal.links) < self.min_links or not len(animal):
                animals.remove(animal)
        animals = self._suppress_overlaps(animals)
        if len(animals) > self.max_animals:
            animals = sorted(animals, key=len, reverse=True)[: self.max_animals]
        return animals

    def _single(self, joint: _Joint) -> _Animal:
        animal = _Animal(self.n_parts)
        animal.add_joint(joint)
        return animal

    def _best_links(self, bag: dict[int, list[_Joint]], costs: dict[int, np.ndarray]) -> list[_Link]:
        """Per kept edge, a Hungarian matching between the most confident candidates at either end."""
        links = []
        # per bodypart, once: its candidates (best first) and their rows in the costs, which hold the
        # candidates only, in peak order (None: the same order, no reindexing)
        keep, rows = {}, {}
        for label, dets in bag.items():
            keep[label] = _candidates(dets, self.max_animals, self.pcutoff)
            order = np.searchsorted(sorted(keep[label]), keep[label])
            rows[label] = None if np.array_equal(order, np.arange(len(order))) else order
        for e in self.kept:
            s, t = self.edges[e]
            if s not in bag or t not in bag or e not in costs:
                continue
            aff = costs[e]
            if rows[s] is not None:
                aff = aff[rows[s]]
            if rows[t] is not None:
                aff = aff[:, rows[t]]
            aff = np.where(np.isnan(aff), 0.0, aff)  # a copy: the costs stay as they are
            for row, col in zip(*linear_sum_assignment(aff, maximize=True)):
                if aff[row, col] >= self.min_affinity:
                    links.append(_Link(bag[s][keep[s][row]], bag[t][keep[t][col]], aff[row, col]))
        return links

    def _build(self, links: list[_Link]) -> list[_Animal]:
        lookup: defaultdict[int, dict[int, _Link]] = defaultdict(dict)
        for link in links:
            i, j = link.idx
            lookup[i][j] = link
            lookup[j][i] = link
        animals: list[_Animal] = []
        assembled: set[int] = set()
        # 1. connected components that hold every bodypart are animals as they are
        chains = _components(links)
        chain_of = {i: n for n, chain in enumerate(chains) for i in chain}
        chain_links: defaultdict[int, list[_Link]] = defaultdict(list)  # each chain's links, in order
        for link in links:
            chain_links[chain_of[link.idx[0]]].append(link)
        for n, chain in enumerate(chains):
            if len(chain) != self.n_parts:
                continue
            animal = _Animal(self.n_parts)
            for link in chain_links[n]:
                i, j = link.idx
                if i < j and animal.add_link(link):  # DeepLabCut only takes (low, high) links here
                    lookup[i].pop(j)
                    lookup[j].pop(i)
            assembled.update(animal.idx)
            animals.append(animal)
        if len(animals) == self.max_animals:
            return animals
        # 2. grow new animals from the strongest unused links
        for link in sorted(links, key=lambda x: x.affinity, reverse=True):
            if any(i in assembled for i in link.idx):
                continue
            animal = _Animal(self.n_parts)
            animal.add_link(link)
            self._fill(animal, lookup, assembled)
            for used in animal.links:
                i, j = used.idx
                lookup[i].pop(j)
                lookup[j].pop(i)
            assembled.update(animal.idx)
            animals.append(animal)
        # 3. too many partial animals: merge those joined by an unused link (no shared bodypart)
        if len(animals) > self.max_animals:
            owner: dict[int, _Animal] = {}
            for animal in animals:
                if len(animal) != self.n_parts:
                    owner.update((i, animal) for i in animal.idx)
            used_links = {id(link) for animal in animals for link in animal.links}
            for link in links:
                i, j = link.idx
                if id(link) in used_links or i not in owner or j not in owner:
                    continue
                first, second = owner[i], owner[j]
                if not second.shares_parts(first):
                    first.__dict__.update(first.merged(second).__dict__)
                    animals.remove(second)
                    owner.update((idx, first) for idx in second.idx)
        # 4. complete the partial animals with any link left
        for animal in animals:
            if len(animal) != self.n_parts:
                self._fill(animal, lookup, assembled)
                assembled.update(animal.idx)
        return animals

    def _fill(self, animal: _Animal, lookup: defaultdict, assembled: set[int]) -> None:
        """Add the strongest links touching the animal, one joint at a time (a heap, ties in push order)."""
        heap: list = []
        seen: set[tuple[int, int]] = set()
        counter = itertools.count()

        def push(i: int) -> None:
            for j, link in lookup[i].items():
                if j in animal.idx or link.idx in seen:
                    continue
                heapq.heappush(heap, (-link.affinity, next(counter), link))
                seen.add(link.idx)

        for i in animal.idx:
            push(i)
        while heap and len(animal) < self.n_parts:
            best = heapq.heappop(heap)[2]
            i, j = best.idx
            if i in animal.idx:
                new = j
            elif j in animal.idx:
                new = i
            else:
                continue
            if new in assembled:
                continue
            animal.add_link(best)
            push(new)  # even when the link was refused, as DeepLabCut does

    def _suppress_overlaps(self, animals: list[_Animal]) -> list[_Animal]:
        if not 0 < self.max_overlap < 1:
            return animals
        overlaps = _overlaps(animals)  # every pair at once: the same numbers as _Animal.overlap
        pending = list(range(len(animals)))
        kept = []
        while pending:
            best = max(pending, key=lambda n: animals[n].affinity)  # first of equals
            pending.remove(best)
            kept.append(animals[best])
            pending = [n for n in pending if overlaps[best, n] < self.max_overlap]
        return kept


def _overlaps(animals: list[_Animal]) -> np.ndarray:
    """``[n, n]`` :meth:`_Animal.overlap` of every pair of animals (each with at least one joint), vectorised."""
    xy = np.stack([a.data[:, :2] for a in animals]) if animals else np.zeros((0, 1, 2))  # [n, K, 2]
    seen = ~np.isnan(xy).any(-1)  # [n, K]
    lo_own = np.where(seen[..., None], xy, np.inf).min(1)  # [n, 2] (nanmin over the seen joints)
    hi_own = np.where(seen[..., None], xy, -np.inf).max(1)
    lo = np.maximum(lo_own[:, None], lo_own[None])  # [n, n, 2]: the boxes' intersection
    hi = np.minimum(hi_own[:, None], hi_own[None])
    inside = (seen[None, :, :, None] & (xy[None] >= lo[:, :, None]) & (xy[None] <= hi[:, :, None])).all(-1).sum(-1)
    counts = np.array([len(a) for a in animals], dtype=float)
    share = inside / np.maximum(counts, 1)[None]  # [a, b]: b's joints inside (a, b)'s box, over len(b)
    out = np.minimum(share, share.T)
    empty = (hi < lo).any(-1)
    return np.where(empty, 0.0, out)


def _candidates(dets: list[_Joint], max_animals: int, pcutoff: float) -> list[int]:
    """The joints an edge may link: the ``max_animals`` most confident (stable), at least ``pcutoff``."""
    best = sorted(range(len(dets)), key=lambda n: dets[n].confidence, reverse=True)[:max_animals]
    return [n for n in best if dets[n].confidence >= pcutoff]


def candidate_mask(peaks: torch.Tensor, scores: torch.Tensor, n_bodyparts: int, max_animals: int,
                   pcutoff: float) -> torch.Tensor:
    """``[n]`` bool: the peaks :func:`_candidates` would pick per (image, bodypart), found on the device.

    Only their pairs are ever read by the assembler, so only they are scored: cost stays
    ``O(E * max_animals^2)`` pairs however many peaks a noisy map has.
    """
    n = len(scores)
    group = peaks[:, 0].long() * n_bodyparts + peaks[:, 1].long()
    by_score = torch.sort(scores, descending=True, stable=True).indices
    order = by_score[torch.sort(group[by_score], stable=True).indices]  # grouped, best first, ties in peak order
    counts = torch.bincount(group, minlength=int(group.max()) + 1 if n else 0)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=scores.device) - starts[group[order]]
    return (rank < max_animals) & (scores.double() >= pcutoff)


def _components(links: list[_Link]) -> list[set[int]]:
    """Connected components of the link graph, in order of each one's first joint among the links."""
    parent: dict[int, int] = {}

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    order = []
    for link in links:
        for n in link.idx:
            if n not in parent:
                parent[n] = n
                order.append(n)
        a, b = root(link.idx[0]), root(link.idx[1])
        if a != b:
            parent[b] = a
    groups: dict[int, set[int]] = {}
    for n in order:
        groups.setdefault(root(n), set()).add(n)
    return list(groups.values())


@torch.no_grad()
def predict_paf(heatmaps: torch.Tensor, locref: torch.Tensor, pafs: torch.Tensor, edges: list[tuple[int, int]],
                stride: float, n_individuals: int, edges_to_keep: list[int] | None = None,
                locref_std: float = 7.2801, nms_radius: int = 5, sigma: float = 1.0,
                min_affinity: float = 0.05) -> torch.Tensor:
    """DeepLabCut's ``PartAffinityFieldPredictor`` on a head's raw outputs.

    Args:
        heatmaps: ``[B, K, H, W]`` logits; locref ``[B, 2K, H, W]``; pafs ``[B, 2E, H, W]``.
        edges: the head's graph; edges_to_keep: indices of the edges assembly uses (None = all).
        stride: input pixels per map cell.

    Returns:
        ``[B, n_individuals, K, 3]`` (x, y, smoothed score) in input pixels, animals in
        DeepLabCut's order; NaN for missing animals and bodyparts.
    """
    B, K = heatmaps.shape[:2]
    kept = list(range(len(edges))) if edges_to_keep is None else list(edges_to_keep)
    out = torch.full((B, n_individuals, K, 3), float("nan"))
    probs = smooth(heatmaps.float().sigmoid(), sigma, 2 * nms_radius + 1)
    peaks = find_peak_cells(probs, nms_radius)
    if not torch.any(peaks):  # DeepLabCut: no peaks, or one at image 0, bodypart 0, cell (0, 0)
        return out.to(heatmaps.device)
    xy = peak_positions(locref.float(), peaks, stride, locref_std).cpu().numpy()
    peak_scores = probs[tuple(peaks.T)]
    candidates = candidate_mask(peaks, peak_scores, K, n_individuals, PCUTOFF)
    costs = pair_affinities(pafs.float(), peaks[candidates], K, edges, kept)
    scores = peak_scores.cpu().numpy()
    where = peaks[:, :2].cpu().numpy()
    assembler = Assembler(K, n_individuals, edges, kept, min_affinity=min_affinity, pcutoff=PCUTOFF)
    for b in range(B):
        per_part = [np.flatnonzero((where[:, 0] == b) & (where[:, 1] == k)) for k in range(K)]
        animals = assembler([xy[i] for i in per_part], [scores[i] for i in per_part], costs[b])
        for n, animal in enumerate(animals[:n_individuals]):
            out[b, n] = torch.from_numpy(animal.data[:, :3])
    out[..., 2] = torch.where(out[..., 0].isnan(), float("nan"), out[..., 2])
    return out.to(heatmaps.device)
