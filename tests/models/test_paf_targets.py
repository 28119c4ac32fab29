"""PAF targets and DeepLabCut's PAF predictor on synthetic cases, the demo's ground truth and noise.

Exactness against DeepLabCut itself is in test_dlc_paf_models.py; these check behaviour without it.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import lightning_dlc.models.heads.paf_assembly as assembly_module
from lightning_dlc.models.heads.heatmap_targets import heatmap_targets, locref_targets
from lightning_dlc.models.heads.paf_assembly import predict_paf
from lightning_dlc.models.heads.paf_targets import paf_cell_centres, paf_targets

NAN = float("nan")


def kp_tensor(*individuals):
    """Individuals as lists of (x, y) or None (missing) -> [1, N, K, 3] with visibility 2."""
    rows = [[(NAN, NAN, 0.0) if p is None else (*p, 2.0) for p in ind] for ind in individuals]
    return torch.tensor([rows], dtype=torch.float32)


def maps(kp, edges, map_size, stride, width=None):
    """Perfect head outputs for kp: peaked logits, locref, pafs."""
    heat, _ = heatmap_targets(kp, map_size, stride, sigma=stride)
    loc, _ = locref_targets(kp, map_size, stride, 2 * stride, mode="plateau")
    paf, _ = paf_targets(kp, edges, map_size, stride, width or stride)
    return heat * 12 - 6, loc, paf


# ---- paf_targets ------------------------------------------------------------------------------

def test_paf_targets_unit_vectors_fading_across_the_limb():
    stride, size = 2, (30, 40)
    kp = kp_tensor([(10.0, 20.0), (50.0, 20.0), (26.0, 8.0)])  # horizontal limb 0->1, diagonal 0->2 (3-4-5)
    paf, w = paf_targets(kp, torch.tensor([[0, 1], [0, 2]]), size, stride, width=4.0)
    assert paf.shape == (1, 4, *size) and w.shape == (1, 4, 1, 1) and (w == 1).all()
    xs = paf_cell_centres(size[1], stride, torch.zeros(()))  # j * 2 + 1
    ys = paf_cell_centres(size[0], stride, torch.zeros(()))
    on = (xs >= 10) & (xs <= 50)  # the band ends at the joints
    expected = torch.where(on[None], 1 - (ys[:, None] - 20).abs() / 4, 0.0).clamp(min=0)
    torch.testing.assert_close(paf[0, 0], expected)
    assert (paf[0, 1] == 0).all()
    mid = (int((ys - 15).abs().argmin()), int((xs - 17).abs().argmin()))  # on the diagonal limb
    direction = paf[0, 2:, mid[0], mid[1]]
    torch.testing.assert_close(direction / direction.norm(), torch.tensor([0.8, -0.6]))


def test_paf_targets_last_individual_wins_and_missing_ends_draw_nothing():
    kp = kp_tensor([(10.0, 20.0), (50.0, 20.0)], [(30.0, 0.0), (30.0, 40.0)], [(5.0, 5.0), None])
    paf, _ = paf_targets(kp, [[0, 1]], (20, 30), 2, width=3.0)
    crossing = paf[0, :, 10, 15]  # cell centre (31, 21): on both limbs; the vertical one (drawn last) wins
    assert crossing[0] == 0 and crossing[1] > 0
    alone, _ = paf_targets(kp[:, 2:], [[0, 1]], (20, 30), 2, width=3.0)
    assert (alone == 0).all()


def test_paf_targets_dtype_batch_and_no_individuals():
    kp = kp_tensor([(10.0, 20.0), (50.0, 20.0)]).double().repeat(2, 1, 1, 1)
    kp[1] = NAN
    paf, w = paf_targets(kp, [[0, 1]], (12, 16), 4, 5.0)
    assert paf.dtype == torch.float64 and paf[0].abs().sum() > 0 and (paf[1] == 0).all()
    empty, _ = paf_targets(torch.zeros(2, 0, 2, 3), [[0, 1]], (12, 16), 4, 5.0)
    assert empty.shape == (2, 2, 12, 16) and (empty == 0).all()
    with pytest.raises(ValueError):
        paf_targets(kp, [[0, 2]], (12, 16), 4, 5.0)


# ---- the predictor ----------------------------------------------------------------------------

def test_two_animals_assembled_exactly():
    kp = kp_tensor([(20.0, 20.0), (40.0, 24.0), (60.0, 30.0)], [(30.0, 80.0), (50.0, 76.0), (70.0, 90.0)])
    edges = [(0, 1), (0, 2), (1, 2)]
    pred = predict_paf(*maps(kp, edges, (30, 25), 4), edges, 4, n_individuals=2)
    assert pred.shape == (1, 2, 3, 3)
    for animal in kp[0]:
        err = (pred[0, :, :, :2] - animal[:, :2]).norm(dim=-1).amax(-1).min()
        assert err < 1e-3


def test_no_peaks_gives_nan_rows():
    out = predict_paf(torch.full((2, 3, 8, 8), -9.0), torch.zeros(2, 6, 8, 8), torch.zeros(2, 6, 8, 8),
                      [(0, 1), (0, 2), (1, 2)], 4, 3)
    assert out.shape == (2, 3, 3, 3) and out.isnan().all()


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory):
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.project import load_dlc_project

    data = load_dlc_project(make_demo_project(tmp_path_factory.mktemp("paf") / "fish", n_frames=60, n_labeled=10))
    bp = data.meta.bodyparts
    edges = [(bp.index(a), bp.index(b)) for a, b in data.meta.skeleton]
    kp = torch.from_numpy(np.stack([r.keypoints for r in data.records])).float()  # [10, 3, 5, 3]
    return kp, edges, data.records[0].size


def test_demo_ground_truth_assembles_the_fish(demo_truth):
    kp, edges, (width, height) = demo_truth
    stride = 4
    pred = predict_paf(*maps(kp, edges, (height // stride, width // stride), stride, width=2 * stride), edges,
                       stride, n_individuals=3)
    assert pred.shape == (len(kp), 3, 5, 3)
    truth = kp[..., :2]
    # every fish whose labeled parts are all found is found whole, at its labels, in one row
    rows_found = 0
    for f in range(len(kp)):
        for n in range(3):
            labeled = truth[f, n, :, 0].isfinite()
            err = (pred[f, :, labeled, :2] - truth[f, n, labeled]).norm(dim=-1).nan_to_num(1e9).amax(-1)
            rows_found += int(err.min() < 1.0)
    assert rows_found >= 0.8 * 3 * len(kp)


def test_untrained_model_is_bounded(monkeypatch):
    torch.manual_seed(0)
    K, n, stride = 9, 10, 8
    edges = [(a, b) for a in range(K) for b in range(a + 1, K)]
    heat = torch.rand(1, K, 60, 80) * 4 - 2  # noise: the worst case for the number of peaks
    loc, paf = torch.randn(1, 2 * K, 60, 80), torch.randn(1, 2 * len(edges), 60, 80)
    seen = []
    original = assembly_module.pair_affinities

    def spy(pafs, peaks, *args, **kwargs):
        seen.append(len(peaks))
        return original(pafs, peaks, *args, **kwargs)

    monkeypatch.setattr(assembly_module, "pair_affinities", spy)
    start = time.perf_counter()
    pred = predict_paf(heat, loc, paf, edges, stride, n)
    print(f"\npredict_paf 640x480 noise (stride 8, K={K}, E={len(edges)}, n={n}): "
          f"{1e3 * (time.perf_counter() - start):.1f} ms")
    assert pred.shape == (1, n, K, 3)
    assert seen[-1] <= K * n, "only the peaks the assembler can link are scored"
    finite = pred[..., 0].isfinite()
    assert (finite == pred[..., :2].isfinite().all(-1)).all()
