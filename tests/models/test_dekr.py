"""DEKR head (DeepLabCut's layers, targets and decoding): shapes, round trip, overlaps, degenerate batches, speed.

Equality with DeepLabCut itself is tests/models/test_dlc_dekr_models.py; these run without it.
"""
from __future__ import annotations

import itertools
import math
import time

import pytest
import torch
import torch.nn.functional as F

from lightning_dlc.models.heads.dekr import AdaptBlock, DEKRHead
from lightning_dlc.models.heads.dekr_decode import decode_dekr
from lightning_dlc.models.heads.dekr_targets import animal_areas, dekr_targets, with_centres

K = 4
MAP = (32, 40)  # H != W catches swapped axes
STRIDE = 4.0


def three_animals() -> torch.Tensor:
    """``[2, 3, K, 3]``: image 0 has 3 well-separated animals of different sizes; image 1 has
    one animal (missing bodypart 2) and two all-NaN padding rows."""
    centres = torch.tensor([[31.0, 29.2], [111.3, 41.0], [71.0, 101.1]])  # off half cells: no tied centre peaks
    spread = torch.tensor([[-8.0, -6.0], [9.0, -4.0], [3.0, 11.0], [-4.0, -1.0]])
    xy = centres[:, None] + spread * torch.tensor([1.0, 1.5, 0.7])[:, None, None]
    kp = torch.cat([xy, torch.full((3, K, 1), 2.0)], -1)
    other = torch.full((3, K, 3), float("nan"))
    other[0] = kp[1] + torch.tensor([-30.0, 60.0, 0.0])
    other[0, 2] = float("nan")
    return torch.stack([kp, other])


def match_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Largest keypoint error (labeled keypoints only) under the best assignment of animals."""
    n = true.shape[0]
    labeled = torch.isfinite(true[..., 0])
    best = math.inf
    for perm in itertools.permutations(range(pred.shape[0]), n):
        err = (pred[list(perm), :, :2] - true[..., :2]).norm(dim=-1)[labeled]
        best = min(best, float(err.nan_to_num(nan=math.inf).max()))
    return best


def small_head(**kwargs) -> DEKRHead:
    return DEKRHead(in_channels=6, in_stride=4, n_bodyparts=K, heatmap_channels=8, offset_channels=3, **kwargs)


def test_shapes_and_stride():
    head = small_head()
    assert head.stride == 4.0
    out = head(torch.randn(2, 6, 5, 7))
    assert out["heatmap"].shape == (2, K + 1, 5, 7)
    assert out["offset"].shape == (2, 2 * K, 5, 7)
    # DeepLabCut's "dekr" init: biases 0, every other parameter small
    for name, param in head.named_parameters():
        assert (param == 0).all() if "bias" in name else param.abs().max() < 0.01, name


def test_adapt_block_taps_are_dy_dx():
    """Zero transform and a translation of (dy, dx) = (0, 1) sample one pixel to the right."""
    torch.manual_seed(0)
    block = AdaptBlock(3).eval()
    with torch.no_grad():
        block.transform_matrix_conv.weight.zero_()
        block.transform_matrix_conv.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))  # identity matrix
        block.translation_conv.weight.zero_()
        block.translation_conv.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.randn(1, 3, 6, 8)
    shifted = torch.cat([x[..., 1:], torch.zeros(1, 3, 6, 1)], -1)
    expected = F.relu(block.bn(F.conv2d(shifted, block.adapt_conv.weight, padding=1)) + x)
    with torch.no_grad():
        torch.testing.assert_close(block(x)[..., 1:-1], expected[..., 1:-1])  # edges: padding differs


def test_round_trip_decodes_labeled_keypoints():
    kp = three_animals()
    t = dekr_targets(kp, MAP, STRIDE)
    assert t["heatmap"].shape == (2, K + 1, *MAP) and t["offset"].shape == (2, 2 * K, *MAP)
    head = small_head()
    pred = head.predict({"heatmap": t["heatmap"], "offset": t["offset"]}, n_individuals=3)
    assert pred.shape == (2, 3, K, 3) and pred.dtype == torch.float32
    assert match_error(pred[0], kp[0]) < 1e-4
    # image 1: one animal, its missing bodypart still gets a coordinate
    assert match_error(pred[1], kp[1, :1]) < 1e-4
    found = pred[0, :, :, 2]
    assert (found > 0.8).all() and (found <= 1.0).all()


def test_targets_geometry_and_weights():
    kp = three_animals()
    t = dekr_targets(kp, MAP, STRIDE)
    # DeepLabCut's cell centres: pixel x sits at cell (x - s/2) / s; the heatmap peaks there
    x, y = kp[0, 0, 0, :2]
    alone = dekr_targets(kp[:1, :1], MAP, STRIDE)["heatmap"][0, 0]
    row, col = divmod(int(alone.argmax()), MAP[1])
    assert (row, col) == (round(float((y - 2) / 4)), round(float((x - 2) / 4)))
    # offsets are cells, cell - keypoint; x and y share a weight, 1 / sqrt(box area)
    w = t["offset_weights"]
    assert torch.equal(w[:, 0::2], w[:, 1::2])
    area = animal_areas(kp, (MAP[0] * STRIDE, MAP[1] * STRIDE))
    assert set(w[0, 0].unique().tolist()) == {0.0, *area[0].rsqrt().tolist()}
    cells = w[0, 0] == area[0, 0].rsqrt()
    ys, xs = torch.meshgrid(torch.arange(MAP[0]), torch.arange(MAP[1]), indexing="ij")
    torch.testing.assert_close(t["offset"][0, 0][cells], xs[cells] - (x - 2) / 4)
    # missing bodypart 2 of image 1's animal: zero weight and zero target everywhere
    assert (w[1, 4:6] == 0).all() and (t["offset"][1, 4:6] == 0).all()
    # heatmap weights: 1 on the Gaussians' windows, 0.1 elsewhere
    torch.testing.assert_close(t["heatmap_weights"].unique(), torch.tensor([0.1, 1.0]))


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_overlapping_animals_smaller_keeps_the_cell(order):
    small = torch.tensor([[40.0, 60.0, 2], [52.0, 62.0, 2]])
    large = torch.tensor([[50.0, 52.0, 2], [80.0, 76.0, 2]])
    kp = torch.stack([small, large])[list(order)][None]  # centres 19 px apart: their squares overlap
    t = dekr_targets(kp, MAP, STRIDE)
    area = animal_areas(kp, (MAP[0] * STRIDE, MAP[1] * STRIDE))[0]
    small_weight = area[order.index(0)].rsqrt()
    both = (dekr_targets(kp[:, :1], MAP, STRIDE)["offset_weights"][0, 0] > 0) & (
        dekr_targets(kp[:, 1:], MAP, STRIDE)["offset_weights"][0, 0] > 0)
    assert both.sum() > 10
    assert (t["offset_weights"][0, 0][both] == small_weight).all()


@pytest.mark.parametrize("n", [0, 2])
def test_no_individuals_do_not_crash(n):
    kp = torch.full((2, n, K, 3), float("nan"))
    head = small_head()
    out = head(torch.randn(2, 6, 6, 8))
    t = head.targets(kp, out)
    assert t["heatmap"].shape == (2, K + 1, 6, 8) and t["offset"].shape == (2, 2 * K, 6, 8)
    assert (t["heatmap"] == 0).all() and (t["offset"] == 0).all() and (t["offset_weights"] == 0).all()
    assert torch.allclose(t["heatmap_weights"], torch.tensor(0.1))
    losses = head.loss(out, t)
    assert set(losses) == {"heatmap", "offset", "total"} and losses["offset"].item() == 0.0
    assert torch.isfinite(losses["total"])
    pred = head.predict(out, n_individuals=3)
    assert pred.shape == (2, 3, K, 3)


def test_centres_and_areas():
    kp = three_animals()
    centres = with_centres(kp)
    assert centres.shape == (2, 3, K + 1, 3)
    torch.testing.assert_close(centres[0, :, K, :2], kp[0, :, :, :2].mean(1))
    assert (centres[1, 1:, K] == 0).all() and centres[1, 0, K, 2] == 2
    area = animal_areas(kp, (128.0, 160.0))
    box = kp[0, 0, :, :2].amax(0) - kp[0, 0, :, :2].amin(0) + 40  # 20 px margin each side
    torch.testing.assert_close(area[0, 0], box.prod())
    assert (area[1, 1:] == 1).all()


def test_gradient_flows_through_loss():
    torch.manual_seed(0)
    head = small_head()
    out = head(torch.randn(2, 6, 32, 40))
    losses = head.loss(out, head.targets(three_animals(), out))
    assert losses["offset"] > 0 and losses["heatmap"] > 0
    losses["total"].backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert head.offset_head.offset_final_layer[0].weight.grad.abs().sum() > 0
    assert head.heatmap_head.head_heatmap[1].weight.grad.abs().sum() > 0


def test_bf16_keypoints_give_float32_targets():
    t = dekr_targets(three_animals().to(torch.bfloat16), MAP, STRIDE)
    assert all(v.dtype == torch.float32 for v in t.values())


def test_predict_on_noise_is_bounded_and_fast():
    torch.manual_seed(0)
    head = small_head()
    outputs = {"heatmap": torch.rand(2, K + 1, 96, 96) * 2, "offset": torch.randn(2, 2 * K, 96, 96) * 50}
    start = time.perf_counter()
    pred = head.predict(outputs, n_individuals=5)
    assert time.perf_counter() - start < 2.0
    assert pred.shape == (2, 5, K, 3)
    scores = pred[..., 2][pred[..., 2].isfinite()]
    assert (scores >= 0).all() and (scores <= 1).all()
    assert head.predict(outputs, n_individuals=0).shape == (2, 0, K, 3)
    tiny = {"heatmap": torch.rand(1, K + 1, 2, 2), "offset": torch.zeros(1, 2 * K, 2, 2)}
    assert head.predict(tiny, n_individuals=6).shape == (1, 6, K, 3)  # more animals than cells: NaN rows


def test_pose_nms_drops_duplicates_and_orders_like_deeplabcut():
    heat = torch.zeros(1, K + 1, 12, 12)
    heat[0, :K] = 1.0  # keypoint scores = centre scores
    offset = torch.zeros(1, 2 * K, 12, 12)
    spread = torch.arange(K) - 2.0
    for (r, c), score in zip([(2, 2), (2, 5), (9, 9)], [0.9, 0.8, 0.7]):  # A, B, C: 3+ cells apart
        heat[0, K, r, c] = score
        offset[0, 0::2, r, c] = spread
    offset[0, 0::2, 2, 5] = spread + 3.0  # B regresses A's pose: a duplicate
    pred = decode_dekr(heat, offset, STRIDE, n_individuals=3)
    assert torch.isnan(pred[0, 2]).all()  # B dropped, last
    # survivors in DeepLabCut's order (reversed centre scores): C, then A
    torch.testing.assert_close(pred[0, :2, 0], torch.tensor([[(9 + 2) * 4 + 2.0, 9 * 4 + 2.0, 0.7],
                                                              [(2 + 2) * 4 + 2.0, 2 * 4 + 2.0, 0.9]]))
    kept = decode_dekr(heat, offset, STRIDE, n_individuals=3, apply_pose_nms=False)
    assert torch.isfinite(kept).all()
