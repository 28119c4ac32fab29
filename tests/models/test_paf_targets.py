"""PAF targets, line-integral scores and greedy assembly: synthetic cases, the demo's ground truth, noise."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import lightning_dlc.models.heads.paf_targets as paf_module
from lightning_dlc.models.heads.heatmap_targets import heatmap_targets, locref_targets
from lightning_dlc.models.heads.paf_targets import assemble, paf_scores, paf_targets, predict_paf

NAN = float("nan")


def kp_tensor(*individuals):
    """Individuals as lists of (x, y) or None (missing) -> [1, N, K, 3] with visibility 2."""
    rows = [[(NAN, NAN, 0.0) if p is None else (*p, 2.0) for p in ind] for ind in individuals]
    return torch.tensor([rows], dtype=torch.float32)


def maps(kp, edges, map_size, stride, width=None):
    """Perfect head outputs for kp: heatmaps, locref, pafs."""
    heat, _ = heatmap_targets(kp, map_size, stride, sigma=stride)
    loc, _ = locref_targets(kp, map_size, stride, radius=2 * stride)
    paf, _ = paf_targets(kp, edges, map_size, stride, width or stride)
    return heat, loc, paf


def match_individuals(pred, truth):
    """Predicted rows -> true individuals by minimum mean distance (Hungarian); [n_pred] truth index or -1."""
    d = np.linalg.norm(pred[:, None, :, :2] - truth[None, :, :, :2], axis=-1)  # [n_pred, n_true, K]
    both = np.isfinite(d)
    cost = np.where(both.any(-1), np.nansum(d, -1) / np.maximum(both.sum(-1), 1), 1e6)
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(pred), -1)
    out[rows] = np.where(cost[rows, cols] < 1e6, cols, -1)
    return out


# ---- paf_targets ------------------------------------------------------------------------------

def test_paf_targets_unit_vectors_on_limb_zero_off_it():
    stride, size = 2, (30, 40)
    kp = kp_tensor([(10.5, 20.5), (50.5, 20.5), (26.5, 8.5)])  # horizontal limb 0->1, diagonal 0->2 (3-4-5)
    paf, w = paf_targets(kp, torch.tensor([[0, 1], [0, 2]]), size, stride, width=3.0)
    assert paf.shape == (1, 4, *size) and w.shape == (1, 4, 1, 1) and (w == 1).all()
    xs = torch.arange(size[1]) * stride + 0.5  # cell centres in pixels
    ys = torch.arange(size[0]) * stride + 0.5
    row = int((ys == 20.5).nonzero())
    on = (xs >= 10.5) & (xs <= 50.5)
    assert torch.allclose(paf[0, 0, row, on], torch.tensor(1.0)) and (paf[0, 1, row] == 0).all()
    # band: |perpendicular distance| <= width, projection within the segment +- width
    near = (ys - 20.5).abs() <= 3
    band = near[:, None] & ((xs >= 10.5 - 3) & (xs <= 50.5 + 3))[None]
    assert torch.equal(paf[0, 0] != 0, band)
    # the diagonal limb points (16, -12) / 20 = (0.8, -0.6) along its middle
    mid = (int(((ys - 14.5).abs()).argmin()), int(((xs - 18.5).abs()).argmin()))
    assert torch.allclose(paf[0, 2:4, mid[0], mid[1]], torch.tensor([0.8, -0.6]), atol=1e-6)
    assert paf[0, 2:4, 0, -1].abs().sum() == 0  # far from it


def test_paf_targets_average_where_limbs_cross_and_mask_missing_ends():
    stride, size = 1, (40, 40)
    # ind 0 horizontal through (20, 20), ind 1 vertical through it; ind 2 has bodypart 1 missing
    kp = kp_tensor([(5, 20), (35, 20), (5, 5)], [(20, 5), (20, 35), None], [(30, 30), None, (35, 35)])
    edges = torch.tensor([[0, 1], [1, 2]])
    paf, w = paf_targets(kp, edges, size, stride, width=2.0)
    assert torch.allclose(paf[0, 0:2, 20, 20], torch.tensor([0.5, 0.5]))  # (1,0) and (0,1) averaged
    assert torch.allclose(paf[0, 0:2, 20, 10], torch.tensor([1.0, 0.0]))
    assert torch.allclose(paf[0, 0:2, 10, 20], torch.tensor([0.0, 1.0]))
    # edge 1-2: only ind 0 has both ends; ind 2's half-labeled limb draws nothing
    assert paf[0, 2:4, 32:35, 32:35].abs().sum() == 0
    assert w.flatten().tolist() == [1, 1, 1, 1]
    # an edge nobody has labeled is masked out of the loss
    kp[0, 0, 2] = torch.tensor([NAN, NAN, 0.0])
    kp[0, 2, 2, 2] = 0  # visibility 0 counts as missing too
    paf, w = paf_targets(kp, edges, size, stride, width=2.0)
    assert w.flatten().tolist() == [1, 1, 0, 0] and paf[0, 2:].abs().sum() == 0


def test_paf_targets_dtype_and_batch_with_padding():
    kp = kp_tensor([(5, 5), (30, 5)]).repeat(2, 1, 1, 1)
    kp = torch.cat([kp, torch.full((2, 1, 2, 3), NAN)], 1)  # padded individual
    kp[1, 0, 1, 2] = 0
    paf, w = paf_targets(kp.to(torch.bfloat16), [[0, 1]], (10, 10), 4, 4.0)
    assert paf.dtype == torch.bfloat16 and w.flatten().tolist() == [1, 1, 0, 0]
    assert paf[0].abs().sum() > 0 and paf[1].abs().sum() == 0
    with pytest.raises(ValueError, match="edges"):
        paf_targets(kp, [[0, 2]], (10, 10), 4, 4.0)


# ---- paf_scores ------------------------------------------------------------------------------

def test_paf_scores_line_integral():
    stride, size = 4, (32, 32)
    kp = kp_tensor([(20, 20), (60, 20)], [(120, 110), (120, 70)])
    _, _, paf = maps(kp, [[0, 1]], size, stride)
    a = kp[:, :, 0, :2][:, None]  # [B, E=1, P=2, 2]
    b = torch.cat([kp[:, :, 1, :2], torch.full((1, 1, 2), NAN)], 1)[:, None]  # plus an invalid slot
    s = paf_scores(paf, stride, a, b, n_samples=10)
    assert s.shape == (1, 1, 2, 3)
    assert s[0, 0, 0, 0] > 0.95 and s[0, 0, 1, 1] > 0.95  # true limbs
    assert s[0, 0, 0, 1] < 0.3 and s[0, 0, 1, 0] < 0.3  # across animals
    assert torch.isneginf(s[0, 0, :, 2]).all()
    assert paf_scores(paf, stride, b[:, :, :2], a, 10)[0, 0, 0, 0] < -0.95  # backwards


# ---- assemble / predict_paf: synthetic --------------------------------------------------------

CHAIN = torch.tensor([[0, 1], [1, 2]])


def test_two_individuals_exact_grouping():
    stride, size = 4, (40, 40)
    # side by side, parallel, 20 px apart: a nearest-neighbour grouping could cross them, the PAF must not
    kp = kp_tensor([(40, 30), (42, 70), (40, 110)], [(62, 110), (60, 70), (62, 30)])
    pred = predict_paf(*maps(kp, CHAIN, size, stride), CHAIN, stride, n_individuals=2)
    assert pred.shape == (1, 2, 3, 3)
    order = match_individuals(pred[0].numpy(), kp[0].numpy())
    assert sorted(order) == [0, 1]
    assert torch.allclose(pred[0, :, :, :2], kp[0, order, :, :2], atol=1e-3)
    assert (pred[0, :, :, 2] > 0.9).all()  # heatmap value at the peak cell


@pytest.mark.parametrize("cyclic", [False, True])
def test_missing_middle_keypoint_groups_nothing_wrong(cyclic):
    stride, size = 4, (40, 40)
    kp = kp_tensor([(20, 20), None, (20, 120)], [(100, 20), (100, 70), (100, 120)])
    edges = torch.cat([CHAIN, torch.tensor([[0, 2]])]) if cyclic else CHAIN
    pred = predict_paf(*maps(kp, edges, size, stride), edges, stride, n_individuals=3)[0]
    assert torch.allclose(pred[0, :, :2], kp[0, 1, :, :2], atol=1e-3)  # the complete one, first
    if cyclic:  # the 0-2 edge still joins the two ends of the first individual
        assert torch.allclose(pred[1, [0, 2], :2], kp[0, 0, [0, 2], :2], atol=1e-3)
        assert pred[1, 1].isnan().all() and pred[2].isnan().all()
    else:  # without it, its ends stay apart: two one-part individuals, never attached to the other
        singles = sorted(int(k) for k in pred[1:, :, 0].isfinite().nonzero()[:, 1])
        assert singles == [0, 2] and (pred[1:, :, 0].isfinite().sum(1) == 1).all()
        for k in (0, 2):
            found = pred[1:, k, :2][pred[1:, k, 0].isfinite()]
            assert torch.allclose(found, kp[0, 0, k, :2], atol=1e-3)


def test_more_candidates_than_individuals_keeps_the_best():
    stride, size = 4, (40, 40)
    strong = kp_tensor([(20, 20), (20, 60), (20, 100)], [(80, 20), (80, 60), (80, 100)])
    weak = kp_tensor([(130, 20), (130, 60), (130, 100)])
    spurious = kp_tensor([(140, 140), None, None])  # one bright, unconnected peak
    heat_s, loc, paf = maps(torch.cat([strong, weak], 1), CHAIN, size, stride)
    heat_s = torch.maximum(heatmap_targets(strong, size, stride, sigma=stride)[0],
                           0.5 * heatmap_targets(weak, size, stride, sigma=stride)[0])
    heat = torch.maximum(heat_s, 0.95 * heatmap_targets(spurious, size, stride, sigma=stride)[0])
    loc = loc + locref_targets(spurious, size, stride, 2 * stride)[0]  # disjoint disks
    pred = predict_paf(heat, loc, paf, CHAIN, stride, n_individuals=2)[0]
    order = match_individuals(pred.numpy(), strong[0].numpy())
    assert sorted(order) == [0, 1] and torch.allclose(pred[:, :, :2], strong[0, order, :, :2], atol=1e-3)
    pred = predict_paf(heat, loc, paf, CHAIN, stride, n_individuals=5)[0]
    assert torch.allclose(pred[2, :, :2], weak[0, 0, :, :2], atol=1e-3)  # 3 parts at 0.5 beat 1 at 0.95
    assert torch.allclose(pred[3, 0, :2], spurious[0, 0, 0, :2], atol=1e-3) and pred[3, 1:].isnan().all()
    assert pred[4].isnan().all()
    assert predict_paf(heat, loc, paf, CHAIN, stride, n_individuals=5, min_parts=2)[0, 3:].isnan().all()


def test_assemble_without_any_peaks():
    P = 4
    out = assemble(torch.full((2, 3, P, 2), NAN), torch.full((2, 3, P), float("-inf")),
                   torch.zeros(2, 3, P, dtype=torch.bool), torch.zeros(2, 4, 8, 8), CHAIN, 4, n_individuals=3)
    assert out.shape == (2, 3, 3, 3) and out.isnan().all()


# ---- the demo project's ground truth ---------------------------------------------------------

@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory):
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.project import load_dlc_project

    data = load_dlc_project(make_demo_project(tmp_path_factory.mktemp("paf") / "fish", n_frames=60, n_labeled=10))
    bp = data.meta.bodyparts
    edges = torch.tensor([[bp.index(a), bp.index(b)] for a, b in data.meta.skeleton])
    kp = torch.from_numpy(np.stack([r.keypoints for r in data.records]))  # [10, 3, 5, 3]
    return kp, edges, data.records[0].size


def reachable(truth, edges):
    """Per individual, the labeled parts in its largest skeleton-connected labeled component [N, K]."""
    labeled = np.isfinite(truth[..., 0])
    out = np.zeros_like(labeled)
    for n, lab in enumerate(labeled):
        comp = {k: {k} for k in np.flatnonzero(lab)}
        for a, b in edges.tolist():
            if lab[a] and lab[b] and comp[a] is not comp[b]:
                merged = comp[a] | comp[b]
                for k in merged:
                    comp[k] = merged
        if comp:
            out[n, list(max(comp.values(), key=len))] = True
    return out


def check_frame(pred, truth, edges, tol=2.0):
    """(mixed parts, reachable labeled parts missed, all matched) for one frame."""
    order = match_individuals(pred, truth)
    mixed = missed = 0
    for row, n in enumerate(order):
        got = np.isfinite(pred[row, :, 0])
        if n < 0:
            mixed += got.sum()
            continue
        err = np.linalg.norm(pred[row, :, :2] - truth[n, :, :2], axis=-1)
        mixed += (got & ~(err <= tol)).sum()  # a part of another fish, or a wrong place
        missed += (reachable(truth, edges)[n] & ~got).sum()
    return int(mixed), int(missed), sorted(order.tolist()) == list(range(len(truth)))


@pytest.mark.parametrize("stride", [4, 8])
def test_demo_ground_truth_assembles_the_fish(demo_truth, stride):
    kp, edges, (width, height) = demo_truth
    size = (height // stride, width // stride)
    pred = predict_paf(*maps(kp, edges, size, stride), edges, stride, n_individuals=3).numpy()
    assert pred.shape == (len(kp), 3, 5, 3)
    truth = kp.numpy()
    xy = truth[..., :2]
    gaps = np.array([np.nanmin(np.linalg.norm(xy[f, :, None, :, None] - xy[f, None, :, None], axis=-1)
                               + np.eye(3)[:, :, None, None] * 1e9) for f in range(len(kp))])
    separated = gaps > 3 * stride
    assert separated.sum() >= 3 and (~separated).sum() >= 2  # the demo has both kinds
    results = [check_frame(pred[f], truth[f], edges) for f in range(len(kp))]
    for f, (mixed, missed, matched) in enumerate(results):
        print(f"stride {stride} frame {f} closest fish {gaps[f]:5.1f} px: mixed {mixed} missed {missed}")
        if separated[f] or stride == 4:
            # every labeled part found within 2 px (except beyond an unlabeled link of the chain), none mixed
            assert (mixed, missed, matched) == (0, 0, True), f"frame {f}"
    if stride == 8:
        # where fish come closer than ~1.5 cells, peaks of one bodypart merge and the coarse PAFs overlap: parts
        # get lost, and rarely joined to the wrong fish; still no frame loses a whole fish
        assert all(matched for _, _, matched in results)


# ---- an untrained model's output -------------------------------------------------------------

def test_untrained_model_is_bounded(monkeypatch):
    torch.manual_seed(0)
    K, E, n, stride = 9, 8, 10, 8
    edges = torch.tensor([[k, k + 1] for k in range(E)])
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 3 * K + 2 * E, 3, stride=2, padding=1),
    )
    with torch.no_grad():
        out = net(torch.rand(1, 3, 480, 640))
    assert out.shape[-2:] == (60, 80)
    # the head's noise, plus uniform noise in [0, 1]: the worst case for the number of peaks
    heat = torch.cat([out[:, :K].sigmoid(), torch.rand(1, K, 60, 80)])
    loc, paf = out[:, K:3 * K].repeat(2, 1, 1, 1), torch.cat([out[:, 3 * K:], torch.rand(1, 2 * E, 60, 80)])
    seen = []

    def spy(pafs, stride, a, b, n_samples=10):
        seen.append((a.shape, b.shape))
        return paf_scores(pafs, stride, a, b, n_samples)

    monkeypatch.setattr(paf_module, "paf_scores", spy)
    predict_paf(heat, loc, paf, edges, stride, n)  # warm-up
    start = time.perf_counter()
    pred = predict_paf(heat, loc, paf, edges, stride, n)
    print(f"\npredict_paf 2 x 640x480 (stride 8, K={K}, E={E}, n={n}): {1e3 * (time.perf_counter() - start):.1f} ms")
    assert pred.shape == (2, n, K, 3)
    max_peaks = 2 * n + 4
    assert seen[-1] == ((2, E, max_peaks, 2), (2, E, max_peaks, 2))
    finite = pred[..., 0].isfinite()
    assert (finite == pred.isfinite().all(-1)).all() and finite.any(-1).all()  # noise fills every individual
