"""Known animals (``identity: true``): the identity head's evidence over the whole video, for stitching.

Each keypoint of a tracklet carries the identity the head gave its animal (the assemblies pickle's 4th
column; -1: none), so each frame votes for identities (:meth:`Tracklet.frame_votes`). From the votes:

- :func:`split_at_identity_changes`: a tracklet whose frames vote steadily for one identity, then steadily for
  another, followed the wrong animal through a close encounter: it is cut there (a majority over
  ``2 * min_run + 1`` frames changes, and each side holds ``min_run`` frames; two tracklets that swapped animals
  are cut at the same frame), so stitching can relink the parts;
- :class:`IdentityCost`: stitching's ``extra_cost`` hook: a link whose two tracklets the head calls the same
  animal is up to ``weight`` body sizes cheaper, one it calls two animals up to ``weight`` dearer, one it cannot
  tell (no votes, or chance-level votes) unchanged;
- :func:`name_tracks_by_identity`: tracks reordered so that track i is identity i (the Hungarian method on the
  votes each track collected over the whole video), then any tracklet the head confidently gives another
  identity moves to that identity's track where it is free (or trades places with the tracklets there when
  they, in turn, belong to its track);
- :func:`identity_tracklets`: DeepLabCut's ``identity_only``: each frame's animals assigned to identities by the
  Hungarian method on the softmax of their likelihood-summed identity votes; tracklet i is identity i.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lightning_dlc.tracking.tracklets import Tracklet, clean_detections, frames_of

__all__ = ["IdentityCost", "identity_count", "identity_tracklets", "name_tracks_by_identity",
           "split_at_identity_changes"]

DEFAULT_WEIGHT = 3.0      # body sizes: more than stitching's link bonus (2), so a link the head calls two animals
                          # costs more than continuing a track gains (at 2 the two cancel: measured on the hard demo's
                          # trained model, IDF1 0.69 at 2, 0.87 at 3; on true poses with 25 % wrong identities 0.962 -> 0.965)
DEFAULT_MIN_RUN = 5       # frames an identity must hold on each side of a cut
_ALIGN = 3                # frames: two tracklets' cuts this close are one swap, cut at one frame
_EVIDENCE = 1.0           # log odds one frame's vote gives its identity (a head right ~3 times in 4 with 2 animals)
_CONFIDENT = 0.95         # posterior of another identity that moves a tracklet to that identity's track, ...
_CONFIDENT_SHARE = 0.6    # ... when that identity also has this share of its votes (a crowd of split votes does not)


def identity_count(tracklets: Sequence[Tracklet]) -> int:
    """1 + the largest identity any tracklet's keypoints carry (0: no identities)."""
    top = [np.nanmax(t.data[..., 3]) for t in tracklets if t.data.shape[-1] > 3 and np.isfinite(t.data[..., 3]).any()]
    return int(max(top, default=-1)) + 1


def _smoothed_labels(votes: np.ndarray, min_run: int) -> np.ndarray:
    """Per frame the identity most voted for within ``min_run`` frames each side (-1: no votes near)."""
    window = 2 * min_run + 1
    padded = np.concatenate([np.zeros((min_run + 1, votes.shape[1])), votes, np.zeros((min_run, votes.shape[1]))])
    summed = np.cumsum(padded, 0)
    local = summed[window:] - summed[:-window]
    return np.where(local.sum(1) > 0, local.argmax(1), -1)


def _refined_cut(votes: np.ndarray, left: int, right: int, lo: int, hi: int) -> int:
    """The frame in ``(lo, hi]`` where identity ``left`` gives way to ``right`` best agrees with the frames' votes."""
    before = np.cumsum(np.r_[0.0, votes[lo:hi, left]])
    after = np.cumsum(np.r_[0.0, votes[lo:hi, right][::-1]])[::-1]
    return lo + 1 + int(np.argmax((before + after)[1:]))


def _end_cut(votes: np.ndarray, identity: int, min_run: int, at_start: bool) -> int | None:
    """Length of the stretch (shorter than ``min_run``) at one end voting at least 2 frames more for another
    identity than for the tracklet's: a tracker that followed another animal for its last or first frames."""
    best, best_gain = None, 2.0 - 1e-9
    for m in range(2, min(min_run, len(votes) - min_run + 1)):
        part = votes[:m] if at_start else votes[-m:]
        total = part.sum(0)
        other = int(total.argmax())
        if other != identity and total[other] - total[identity] >= best_gain:
            best, best_gain = m, total[other] - total[identity]
    return best


def _identity_cuts(votes: np.ndarray, min_run: int) -> list[int]:
    labels = _smoothed_labels(votes, min_run)
    known = np.flatnonzero(labels >= 0)
    if len(known) < 2 * min_run:
        return []
    filled = labels[known[np.clip(np.searchsorted(known, np.arange(len(votes)), side="right") - 1, 0, None)]]
    runs = np.split(np.arange(len(votes)), np.flatnonzero(np.diff(filled)) + 1)
    long = [r for r in runs if len(r) >= min_run]
    cuts = [_refined_cut(votes, filled[a[0]], filled[b[0]], max(a[0], b[0] - 2 * min_run),
                         min(b[-1], a[-1] + 2 * min_run))
            for a, b in zip(long, long[1:]) if filled[a[0]] != filled[b[0]]]
    head = _end_cut(votes, filled[long[0][0]], min_run, at_start=True) if long else None
    tail = _end_cut(votes, filled[long[-1][0]], min_run, at_start=False) if long else None
    return sorted({*cuts, *([head] if head else []), *([len(votes) - tail] if tail else [])})


def _sides(t: Tracklet, votes: np.ndarray, frame: int, reach: int) -> tuple[int, int, int, int, int]:
    """(first index, cut index, end index, identity before, identity after) of the ``reach`` frames each side."""
    cut = int(np.searchsorted(t.frames, frame))
    lo, hi = max(cut - reach, 0), min(cut + reach, len(t))
    return lo, cut, hi, int(votes[lo:cut].sum(0).argmax()), int(votes[cut:hi].sum(0).argmax())


def _align_swaps(tracklets: Sequence[Tracklet], votes: list[np.ndarray], cuts: list[list[int]],
                 reach: int) -> None:
    """Cuts (frames) of two tracklets at most ``_ALIGN`` frames apart move to one frame, the one where the votes
    of both agree best: two tracklets whose animals swapped are then cut at the same frame, and each part can
    be linked to the other's (a part a frame too long would overlap the next one)."""
    found = sorted((f, k, j) for k, frames in enumerate(cuts) for j, f in enumerate(frames))
    for (fa, ka, ja), (fb, kb, jb) in zip(found, found[1:]):
        if ka == kb or not 0 < fb - fa <= _ALIGN or cuts[ka][ja] != fa or cuts[kb][jb] != fb:
            continue
        scores = np.zeros(fb - fa + 1)
        for k, frame in ((ka, fa), (kb, fb)):
            t, v = tracklets[k], votes[k]
            lo, _, hi, before, after = _sides(t, v, frame, reach)
            for n, f in enumerate(range(fa, fb + 1)):
                c = int(np.clip(np.searchsorted(t.frames, f), lo, hi))
                scores[n] += v[lo:c, before].sum() + v[c:hi, after].sum()
        cuts[ka][ja] = cuts[kb][jb] = fa + int(np.argmax(scores))


def split_at_identity_changes(tracklets: Sequence[Tracklet], n_identities: int,
                              min_run: int = DEFAULT_MIN_RUN) -> list[Tracklet]:
    """Tracklets cut where their identity changes for good (module doc): where the majority over ``2 * min_run + 1``
    frames changes (cut at the frame that best splits the votes; two tracklets cut within ``_ALIGN`` frames of
    each other at one frame), and where their first or last few frames vote for another animal; tracklets
    without votes are kept whole."""
    tracklets = list(tracklets)
    votes = [t.frame_votes(n_identities) for t in tracklets]
    cuts = [[int(t.frames[c]) for c in _identity_cuts(v, min_run)] for t, v in zip(tracklets, votes)]
    _align_swaps(tracklets, votes, cuts, 2 * min_run)
    out = []
    for t, frames in zip(tracklets, cuts):
        index = sorted({int(i) for i in np.searchsorted(t.frames, frames)} - {0, len(t)})
        out += [Tracklet(f, d) for f, d in zip(np.split(t.frames, index), np.split(t.data, index)) if len(f)]
    return out


def _probabilities(t: Tracklet, n_identities: int) -> tuple[np.ndarray, np.ndarray]:
    """(posterior ``[I]`` of the tracklet's identity, its votes ``[I]`` in frames) over the whole tracklet.

    Frames are taken as independent evidence, each right with odds ``e`` against any one other identity
    (:data:`_EVIDENCE`): the posterior is ``softmax(votes * log(e))``, so one frame says little and ten agreeing
    frames settle it; a tracklet without votes is uniform."""
    votes = t.frame_votes(n_identities).sum(0)
    z = votes * _EVIDENCE
    e = np.exp(z - z.max())
    return e / e.sum(), votes


class IdentityCost:
    """The identity head's verdict on a link as a cost in body sizes (module doc).

    With ``p``, ``q`` the two tracklets' identity probabilities and ``c = 1 / n_identities`` (chance), the
    agreement ``s = p . q`` gives ``-weight * (s - c) / (1 - c)`` above chance, ``weight * (c - s) / c`` below."""

    def __init__(self, n_identities: int, weight: float = DEFAULT_WEIGHT):
        if n_identities < 2:
            raise ValueError(f"identity costs need at least 2 identities, got {n_identities}")
        self.n_identities, self.weight = int(n_identities), float(weight)
        self._cache: dict[int, tuple[Tracklet, np.ndarray, float]] = {}

    def probabilities(self, t: Tracklet) -> tuple[np.ndarray, np.ndarray]:
        if id(t) not in self._cache:  # the tracklet is kept with its entry, so its id stays its own
            self._cache[id(t)] = (t, *_probabilities(t, self.n_identities))
        return self._cache[id(t)][1:]

    def __call__(self, earlier: Sequence[Tracklet], i: np.ndarray, later: Sequence[Tracklet],
                 j: np.ndarray) -> np.ndarray:
        a = [self.probabilities(earlier[k]) for k in i]
        b = [self.probabilities(later[k]) for k in j]
        if not a:
            return np.zeros(0)
        p, q = np.stack([x[0] for x in a]), np.stack([x[0] for x in b])
        voted = np.array([x[1].sum() > 0 for x in a]) & np.array([x[1].sum() > 0 for x in b])
        s, c = (p * q).sum(1), 1.0 / self.n_identities
        cost = np.where(s >= c, -self.weight * (s - c) / (1 - c), self.weight * (c - s) / c)
        return np.where(voted, cost, 0.0)


def _overlapping(track: Sequence[Tracklet], t: Tracklet) -> list[Tracklet]:
    return [u for u in track if u is not t and u.start <= t.end and t.start <= u.end
            and len(np.intersect1d(u.frames, t.frames, assume_unique=True))]


def name_tracks_by_identity(paths: list[list[Tracklet]], n_identities: int) -> list[list[Tracklet]]:
    """Tracks (lists of tracklets) reordered so that track i is identity i, then tracklets moved to the track of
    the identity they confidently show (module doc). Tracks beyond the identities keep their order after them."""
    n_tracks = len(paths)
    gains = np.array([[sum(t.frame_votes(n_identities)[:, k].sum() for t in path) for k in range(n_identities)]
                      for path in paths]).reshape(n_tracks, n_identities)
    rows, cols = linear_sum_assignment(gains, maximize=True)
    slot = {int(r): int(c) for r, c in zip(rows, cols) if c < n_tracks}
    free = iter([k for k in range(n_tracks) if k not in slot.values()])
    named: list[list[Tracklet]] = [[] for _ in range(n_tracks)]
    for r, path in enumerate(paths):
        named[slot[r] if r in slot else next(free)] = list(path)
    where = {id(t): k for k, path in enumerate(named) for t in path}
    for t in sorted((t for path in named for t in path), key=len, reverse=True):
        here = where[id(t)]
        p, votes = _probabilities(t, n_identities)
        target = int(p.argmax())
        if (target == here or target >= n_tracks or p[target] < _CONFIDENT
                or votes[target] < _CONFIDENT_SHARE * votes.sum()):
            continue
        blocking = _overlapping(named[target], t)
        if any(_probabilities(u, n_identities)[0].argmax() != here for u in blocking):
            continue
        if any(_overlapping([v for v in named[here] if v is not t], u) for u in blocking):
            continue
        named[here] = [u for u in named[here] if u is not t] + blocking
        named[target] = [u for u in named[target] if not any(u is b for b in blocking)] + [t]
        where.update({id(t): target, **{id(u): here for u in blocking}})
    return [sorted(path, key=lambda u: u.start) for path in named]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def identity_tracklets(detections: Mapping[int, np.ndarray] | Sequence[np.ndarray], n_identities: int,
                       n_frames: int | None = None, pcutoff: float = 0.0) -> list[Tracklet]:
    """DeepLabCut's ``identity_only`` tracklets: ``[tracklet of identity i for i in range(n_identities)]`` (module
    doc; identities no animal ever got are left out). Animals without an identity, or beyond the identities
    in a frame, are dropped, as DeepLabCut's Hungarian assignment drops them."""
    frames: list[list[int]] = [[] for _ in range(n_identities)]
    rows: list[list[np.ndarray]] = [[] for _ in range(n_identities)]
    for frame, animals in frames_of(detections, n_frames):
        animals = clean_detections(animals if animals is not None else np.zeros((0, 0, 4)), pcutoff)
        if not len(animals) or animals.shape[-1] < 4:
            continue
        scores = np.zeros((len(animals), n_identities))
        for a, pose in enumerate(animals):
            pose = pose[np.isfinite(pose[:, :2]).all(1) & (pose[:, 3] >= 0) & (pose[:, 3] < n_identities)]
            if len(pose):
                ids, inverse = np.unique(pose[:, 3].astype(np.int64), return_inverse=True)
                scores[a, ids] = _softmax(np.bincount(inverse.ravel(), weights=pose[:, 2]))
        for a, k in zip(*linear_sum_assignment(scores, maximize=True)):
            if scores[a, k] > 0:
                frames[k].append(frame)
                rows[k].append(animals[a])
    return [Tracklet(f, np.stack(r)) for f, r in zip(frames, rows) if f]
