"""Heatmap/locref targets and decoding: round trips, DeepLabCut's weights, NMS bounds, dtypes.

(tests/models/test_dlc_heatmap_models.py compares the same functions with DeepLabCut's own.)"""
from __future__ import annotations

import math

import pytest
import torch

from lightning_dlc.models.heads.heatmap_targets import (
    LOCREF_STD,
    decode_single,
    decode_top_k,
    find_peaks,
    grid_to_pixels,
    heatmap_targets,
    locref_targets,
    pixels_to_grid,
    refine,
)

MAP = (48, 64)  # H != W catches swapped axes


def make_keypoints(n_images, n_individuals, n_bodyparts, stride, seed=0, pad=False):
    """Random, well-separated keypoints with the awkward cases planted in them.

    Image 0: bodypart 0 of individual 0 on the left border, bodypart 1 in the
    bottom-right corner. Image 1: bodypart 2 of individual 0 outside the image,
    bodypart 3 NaN, bodypart 4 finite but visibility 0. ``pad`` appends an
    all-NaN individual.
    """
    g = torch.Generator().manual_seed(seed)
    H, W = MAP
    size = torch.tensor([W * stride, H * stride], dtype=torch.float32)
    shape = (n_images, n_individuals, n_bodyparts, 2)
    xy = torch.rand(shape, generator=g) * size - 0.5
    fixed = torch.zeros(shape[:-1], dtype=torch.bool)
    xy[0, 0, 0] = torch.tensor([-0.45, 3.2 * stride])
    xy[0, 0, 1] = size - 0.55
    xy[1, 0, 2] = torch.tensor([-3.0, 10.0])
    fixed[0, 0, :2] = fixed[1, 0, 2] = True
    # resample points too close to another individual's same bodypart, so each
    # individual keeps its own peak and locref disk
    for _ in range(1000):
        d = torch.cdist(xy.transpose(1, 2), xy.transpose(1, 2))  # [B, K, N, N]
        d += torch.eye(n_individuals) * 1e9
        close = (d < 6 * stride).any(-1).transpose(1, 2) & ~fixed
        if not close.any():
            break
        xy[close] = torch.rand(int(close.sum()), 2, generator=g) * size - 0.5
    assert not close.any()
    kp = torch.cat([xy, torch.full(shape[:-1] + (1,), 2.0)], -1)
    kp[1, 0, 3, :2] = float("nan")
    kp[1, 0, 3, 2] = 0
    kp[1, 0, 4, 2] = 0
    if pad:
        kp = torch.cat([kp, torch.full((n_images, 1, n_bodyparts, 3), float("nan"))], 1)
    return kp


def labeled(kp):
    x, y, v = kp.unbind(-1)
    return (v > 0) & x.isfinite() & y.isfinite()


def expected_labeled(kp, stride):
    """Labeled and on the map (cell j spans pixels [j * s, (j + 1) * s)): decodable to its cell."""
    H, W = MAP
    x, y, _ = kp.unbind(-1)
    return labeled(kp) & (x >= 0) & (x < W * stride) & (y >= 0) & (y < H * stride)


def targets(kp, stride):
    heat, w = heatmap_targets(kp, MAP, stride, sigma=1.5 * stride)
    loc, lw = locref_targets(kp, MAP, stride, radius=2 * stride)
    return heat, w, loc, lw


def test_grid_pixel_mapping_inverts():
    g = torch.tensor([0.0, 1.0, 2.5, 63.0])
    for s in (1, 2, 4, 8, 3.5):
        assert torch.allclose(pixels_to_grid(grid_to_pixels(g, s), s), g)
    assert grid_to_pixels(0.0, 8) == 4.0  # DeepLabCut's j * stride + stride / 2


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_round_trip_single(stride):
    kp = make_keypoints(3, 1, 5, stride)
    heat, w, loc, lw = targets(kp, stride)
    ok = expected_labeled(kp, stride)[:, 0]  # [B, K]
    assert (w == 1).all()  # DeepLabCut's default: no gradient masking

    pred = decode_single(heat, loc, stride, LOCREF_STD)
    assert pred.shape == (3, 1, 5, 3)
    err = (pred[:, 0, :, :2] - kp[:, 0, :, :2]).abs()[ok]
    assert err.max() < 0.01
    assert (pred[:, 0, :, 2][ok] > 0.85).all()
    assert (pred[:, 0, :, 2][~labeled(kp)[:, 0]] == 0).all()  # empty map: score 0

    coarse = decode_single(heat, None, stride, LOCREF_STD)
    err = (coarse[:, 0, :, :2] - kp[:, 0, :, :2]).abs()[ok]
    assert err.max() <= stride / 2 + 1e-4


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_round_trip_top_k(stride):
    kp = make_keypoints(3, 3, 5, stride, seed=stride, pad=True)
    n = kp.shape[1]
    heat, w, loc, lw = targets(kp, stride)
    ok = expected_labeled(kp, stride)  # [B, N, K]
    assert (w == 1).all()

    for locref, tol in ((loc, 0.01), (None, stride / 2 + 1e-4)):
        pred = decode_top_k(heat, locref, stride, LOCREF_STD, n_individuals=n, threshold=0.01)
        assert pred.shape == (3, n, 5, 3)
        found = ~pred[..., 2].isnan()
        assert torch.equal(found.sum(1), labeled(kp).sum(1))  # one candidate per labeled keypoint (off-map too)
        scores = torch.where(found, pred[..., 2], -1.0)
        assert (scores[:, :-1] >= scores[:, 1:]).all()  # sorted per bodypart
        assert pred[~found].isnan().all()
        # each labeled keypoint has a candidate within tol (and vice versa, counts being equal)
        gt = torch.where(ok[..., None], kp[..., :2], 1e9).transpose(1, 2)  # [B, K, N, 2]
        cand = torch.where(found[..., None], pred[..., :2], -1e9).transpose(1, 2)
        d = (gt[:, :, :, None] - cand[:, :, None]).abs().amax(-1).amin(-1)  # [B, K, N]
        assert d.transpose(1, 2)[ok].max() < tol


def test_unlabeled_keypoints_make_no_target_and_off_map_ones_do():
    """DeepLabCut's generators: flags <= 0 draw nothing; a labeled keypoint off the map still has its tail."""
    s = 4
    kp = torch.full((2, 2, 3, 3), float("nan"))
    kp[0, 0, 0] = torch.tensor([20.0, 30.0, 2.0])
    kp[0, 1, 2] = torch.tensor([-5.0, 30.0, 2.0])  # left of the image
    kp[1, 0, 2] = torch.tensor([10.0, MAP[0] * s + 1.0, 1.0])  # below it
    kp[1, 1, 1] = torch.tensor([50.0, 50.0, 0.0])  # finite but unlabeled
    drawn = torch.tensor([[1.0, 0, 1], [0, 0, 1]])
    heat, w, loc, lw = targets(kp, s)
    assert (w == 1).all()
    assert torch.equal(heat.amax((-2, -1)) > 0, drawn > 0)
    assert torch.equal(lw.amax((-2, -1)) > 0, drawn.repeat_interleave(2, 1) > 0)
    for mode in ("gaussian", "plateau"):
        heat, w = heatmap_targets(kp, MAP, s, sigma=6.0, radius=10.0, mode=mode)
        assert not heat[drawn == 0].any()


def test_weights_follow_deeplabcuts_flags():
    """Undefined (-1) weighs 0; with gradient masking, unlabeled (0 or NaN x/y) weighs background_weight."""
    kp = torch.full((1, 3, 4, 3), float("nan"))  # the third individual is padding: ignored
    kp[0, :2, :, :] = torch.tensor([5.0, 5.0, 2.0])
    kp[0, 0, 1, 2] = 0  # unlabeled
    kp[0, 1, 2, 2] = -1  # undefined
    kp[0, 0, 3, :2] = float("nan")  # unlabeled: no coordinates
    _, w = heatmap_targets(kp, MAP, 4, sigma=5.0)
    assert w[0, :, 0, 0].tolist() == [1.0, 1.0, 0.0, 1.0]
    _, w = heatmap_targets(kp, MAP, 4, sigma=5.0, gradient_masking=True, background_weight=0.25)
    assert w[0, :, 0, 0].tolist() == [1.0, 0.25, 0.0, 0.25]


def test_no_individuals():
    heat, w = heatmap_targets(torch.zeros(2, 0, 3, 3), MAP, 4, sigma=5.0)
    loc, lw = locref_targets(torch.zeros(2, 0, 3, 3), MAP, 4, radius=8.0)
    assert heat.shape == (2, 3, *MAP) and loc.shape == (2, 6, *MAP)
    assert not (heat.any() or loc.any() or lw.any()) and (w == 1).all()


def test_gaussian_peak_is_one_at_a_cell_centre():
    s, sigma = 4, 6.0
    kp = torch.tensor([[[[grid_to_pixels(10.0, s), grid_to_pixels(7.0, s), 2.0]]]])
    heat, _ = heatmap_targets(kp, MAP, s, sigma=sigma)
    assert heat[0, 0, 7, 10] == 1 and heat.max() == 1
    assert torch.isclose(heat[0, 0, 7, 11], torch.tensor(math.exp(-(s**2) / (2 * sigma**2))))
    assert torch.isclose(heat[0, 0, 8, 11], torch.tensor(math.exp(-2 * s**2 / (2 * sigma**2))))


def test_plateau_is_one_within_radius_and_zero_outside():
    s, r = 2, 9.0
    kp = torch.tensor([[[[20.3, 40.7, 2.0]], [[60.0, 45.0, 2.0]], [[float("nan"), 1.0, 2.0]]]])
    heat, _ = heatmap_targets(kp, MAP, s, radius=r, mode="plateau")
    ys, xs = (grid_to_pixels(torch.arange(n, dtype=torch.float32), s) for n in MAP)
    d2 = (ys[:, None] - kp[0, :2, 0, 1, None, None]) ** 2 + (xs - kp[0, :2, 0, 0, None, None]) ** 2
    assert torch.equal(heat[0, 0], (d2 <= r**2).any(0).float())
    assert set(heat.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("mode", ["plateau", "gaussian"])
def test_locref_last_individual_wins(mode):
    """As DeepLabCut's generators overwrite in individual order: plateau, the last disk holding the
    cell (0 elsewhere); Gaussian, the last labeled individual everywhere (weights only in disks)."""
    s, r = 2, 12.0
    H, W = 8, 20
    kp = torch.tensor([[[[10.2, 7.0, 2.0]], [[21.0, 6.4, 2.0]], [[3.0, 3.0, 0.0]]]])  # overlapping disks
    loc, lw = locref_targets(kp, (H, W), s, radius=r, locref_std=LOCREF_STD, mode=mode)
    for i in range(H):
        for j in range(W):
            c = torch.tensor([grid_to_pixels(float(j), s), grid_to_pixels(float(i), s)])
            inside = (kp[0, :2, 0, :2] - c).norm(dim=-1) <= r
            owner = 1 if mode == "gaussian" or inside[1] else 0 if inside[0] else None
            assert lw[0, :, i, j].tolist() == [float(inside.any())] * 2
            if owner is None:
                assert not loc[0, :, i, j].any()
            else:
                assert torch.allclose(loc[0, :, i, j], (kp[0, owner, 0, :2] - c) / LOCREF_STD, atol=1e-6)


def test_find_peaks_is_bounded_on_noise():
    g = torch.Generator().manual_seed(0)
    heat = torch.rand(1, 20, 160, 120, generator=g)
    xy, scores, valid = find_peaks(heat, max_peaks=10, threshold=0.0)
    assert xy.shape == (1, 20, 10, 2) and scores.shape == valid.shape == (1, 20, 10)
    assert (valid.sum(-1) <= 10).all()
    assert (scores[..., :-1] >= scores[..., 1:]).all()
    col, row = xy[valid].long().unbind(-1)
    assert torch.equal(heat[0].flatten(1)[valid[0].nonzero()[:, 0], row * 120 + col], scores[valid])
    cand = decode_top_k(heat, None, 8, LOCREF_STD, n_individuals=3)
    assert cand.shape == (1, 3, 20, 3)


def test_find_peaks_pads_and_breaks_ties():
    heat = torch.zeros(1, 2, 3, 4)
    heat[0, 0, 1, 1] = heat[0, 0, 1, 2] = 0.7  # a two-cell tie: one peak
    xy, scores, valid = find_peaks(heat, max_peaks=20, threshold=0.0)
    assert xy.shape == (1, 2, 20, 2)
    assert valid.sum() == 1 and scores[0, 0, 0] == 0.7 and torch.equal(xy[0, 0, 0], torch.tensor([2.0, 1.0]))
    assert xy[~valid].isnan().all() and (scores[~valid] == float("-inf")).all()
    assert refine(xy, None, 4).isnan().sum() == 2 * 39


def test_refine_handles_nan_peaks():
    loc = torch.randn(2, 6, 5, 7)
    peaks = torch.tensor([[3.0, 4.0], [float("nan")] * 2]).expand(2, 3, 2, 2)
    out = refine(peaks, loc, 4, 2.0)
    assert out[:, :, 1].isnan().all()
    want = grid_to_pixels(torch.tensor([3.0, 4.0]), 4) + loc.view(2, 3, 2, 5, 7)[..., 4, 3] * 2.0
    assert torch.allclose(out[:, :, 0], want)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes_follow_inputs(dtype):
    s = 4
    kp = make_keypoints(2, 1, 5, s).to(dtype)
    heat, w, loc, lw = targets(kp, s)
    assert {t.dtype for t in (heat, w, loc, lw)} == {dtype}
    out_dtype = torch.promote_types(dtype, torch.float32)  # coordinates never in half precision
    pred = decode_single(heat, loc, s, LOCREF_STD)
    cand = decode_top_k(heat, loc, s, LOCREF_STD, n_individuals=2, threshold=0.01)
    assert pred.dtype == cand.dtype == out_dtype
    ok = expected_labeled(kp.float(), s)[:, 0]
    tol = 0.01 if dtype == torch.float64 else 0.05  # bf16 offsets carry ~8 bits
    assert (pred[:, 0, :, :2] - kp[:, 0, :, :2].to(out_dtype)).abs()[ok].max() < tol


def test_autocast_and_no_grad():
    s = 4
    kp = make_keypoints(2, 1, 5, s)
    ok = expected_labeled(kp, s)[:, 0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        heat, w, loc, lw = targets(kp, s)
        pred = decode_single(heat, loc, s, LOCREF_STD)
        pred_bf16 = decode_single(heat.bfloat16(), loc.bfloat16(), s, LOCREF_STD)
    assert heat.dtype == pred.dtype == pred_bf16.dtype == torch.float32
    assert (pred[:, 0, :, :2] - kp[:, 0, :, :2]).abs()[ok].max() < 0.01
    assert (pred_bf16[:, 0, :, :2] - kp[:, 0, :, :2]).abs()[ok].max() < 0.05


@pytest.mark.gpu
def test_runs_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    s, dev = 4, torch.device("cuda")
    kp = make_keypoints(3, 3, 5, s, pad=True)
    heat, w, loc, lw = targets(kp.to(dev), s)
    assert {t.device.type for t in (heat, w, loc, lw)} == {"cuda"}
    cand = decode_top_k(heat, loc, s, LOCREF_STD, n_individuals=4, threshold=0.01)
    ref = decode_top_k(*(t.cpu() for t in (heat, loc)), s, LOCREF_STD, n_individuals=4, threshold=0.01)
    assert cand.device.type == "cuda"
    assert torch.allclose(cand.cpu(), ref, atol=1e-3, equal_nan=True)
