"""DEKR head: shapes, target/decode round trip, masking and area scaling, degenerate batches, speed."""
from __future__ import annotations

import itertools
import math
import time

import pytest
import torch

from lightning_dlc.models.heads.dekr import DEKRHead, decode_dekr, dekr_targets
from lightning_dlc.models.heads.heatmap_targets import grid_to_pixels

K = 4
MAP = (32, 40)  # H != W catches swapped axes
STRIDE = 4.0


def three_animals() -> torch.Tensor:
    """``[2, 3, K, 3]``: image 0 has 3 well-separated animals of different sizes; image 1 has
    one animal (missing bodypart 2) and two all-NaN padding rows."""
    centres = torch.tensor([[30.0, 28.0], [110.0, 40.0], [70.0, 100.0]])
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
        best = min(best, float(err.max()))
    return best


@pytest.mark.parametrize("in_stride,n_upsample,stride", [(4, 0, 4.0), (8, 1, 4.0), (16, None, 4.0)])
def test_shapes_and_stride(in_stride, n_upsample, stride):
    head = DEKRHead(in_channels=6, in_stride=in_stride, n_bodyparts=K, n_upsample=n_upsample,
                    channels=8, offset_channels=3)
    assert head.stride == stride
    assert head.sigma == 2 * stride and head.offset_radius == 4 * stride
    h, w = 5, 7
    out = head(torch.randn(2, 6, h, w))
    scale = int(in_stride / stride)
    assert out["heatmap"].shape == (2, K + 1, h * scale, w * scale)
    assert out["offset"].shape == (2, 2 * K, h * scale, w * scale)


def test_round_trip_decodes_labeled_keypoints():
    kp = three_animals()
    t = dekr_targets(kp, MAP, STRIDE, sigma=8.0, offset_radius=16.0)
    assert t["heatmap"].shape == (2, K + 1, *MAP) and t["offset"].shape == (2, 2 * K, *MAP)
    head = DEKRHead(in_channels=4, in_stride=4, n_bodyparts=K, sigma=8.0, offset_radius=16.0)
    pred = head.predict({"heatmap": t["heatmap"], "offset": t["offset"]}, n_individuals=3)
    assert pred.shape == (2, 3, K, 3) and pred.dtype == torch.float32
    assert match_error(pred[0], kp[0]) < 1.0
    # image 1: one animal, its missing bodypart still gets a coordinate; the other rows are NaN
    assert match_error(pred[1, :1], kp[1, :1]) < 1.0
    assert torch.isnan(pred[1, 1:]).all()
    # scores: high for found animals, sorted best first
    scores = pred[0, :, :, 2]
    assert (scores > 0.8).all() and (scores <= 1.0).all()
    assert (scores.mean(-1).diff() <= 1e-6).all()


def test_nearest_centre_wins_and_weights():
    kp = three_animals()
    t = dekr_targets(kp, MAP, STRIDE, sigma=8.0, offset_radius=16.0)
    w = t["offset_weights"]
    # missing bodypart 2 of image 1's animal: zero weight and zero target everywhere
    assert (w[1, 4:6] == 0).all() and (t["offset"][1, 4:6] == 0).all()
    assert (w[1, :4] > 0).any()
    # x and y channels share a weight; supervised cells lie within the radius of a centre
    assert torch.equal(w[:, 0::2], w[:, 1::2])
    centres = kp[0, :, :, :2].mean(1)  # all labeled in image 0
    ys, xs = grid_to_pixels(torch.arange(MAP[0]), STRIDE), grid_to_pixels(torch.arange(MAP[1]), STRIDE)
    d = ((ys[:, None, None] - centres[:, 1]) ** 2 + (xs[None, :, None] - centres[:, 0]) ** 2).sqrt()
    assert torch.equal(w[0, 0] > 0, d.min(-1).values <= 16.0)
    # area scaling: the weight is 1 / sqrt(box area) of the animal owning the cell
    box = kp[0, :, :, :2].amax(1) - kp[0, :, :, :2].amin(1)
    owner = d.argmin(-1)
    expected = (box[:, 0] * box[:, 1]).rsqrt()[owner] * (d.min(-1).values <= 16.0)
    torch.testing.assert_close(w[0, 0], expected)
    # visibility 0 masks a keypoint like NaN does
    kp2 = kp.clone()
    kp2[0, 1, 3, 2] = 0
    w2 = dekr_targets(kp2, MAP, STRIDE, sigma=8.0, offset_radius=16.0)["offset_weights"]
    assert (w2[0, 6:8][:, owner == 1] == 0).all() and (w2[0, 6:8][:, owner == 0] > 0).any()


def test_overlapping_animals_take_nearest_centre():
    kp = torch.tensor([[[[40.0, 60.0, 1], [60.0, 60.0, 1]], [[64.0, 60.0, 1], [84.0, 60.0, 1]]]])
    t = dekr_targets(kp, MAP, STRIDE, sigma=8.0, offset_radius=20.0)  # centres x=50 and 74, disks overlap
    row = round((60 + 0.5) / STRIDE - 0.5)
    x = grid_to_pixels(torch.arange(MAP[1]), STRIDE)
    target_x0 = t["offset"][0, 0, row]
    weighted = t["offset_weights"][0, 0, row] > 0
    owner_x0 = torch.where((x - 50).abs() <= (x - 74).abs(), 40.0, 64.0)
    torch.testing.assert_close(target_x0[weighted], (owner_x0 - x)[weighted])
    assert weighted.sum() > 10


@pytest.mark.parametrize("n", [0, 2])
def test_no_individuals_do_not_crash(n):
    kp = torch.full((2, n, K, 3), float("nan"))
    head = DEKRHead(in_channels=3, in_stride=4, n_bodyparts=K, channels=4, offset_channels=2)
    out = head(torch.randn(2, 3, 6, 8))
    t = head.targets(kp, out)
    assert t["heatmap"].shape == (2, K + 1, 6, 8) and t["offset"].shape == (2, 2 * K, 6, 8)
    for key in ("heatmap", "heatmap_weights", "offset", "offset_weights"):
        assert torch.isfinite(t[key]).all() and (t[key] == 0).all(), key
    losses = head.loss(out, t)
    assert set(losses) == {"heatmap", "offset", "total"} and losses["total"].item() == 0.0
    pred = head.predict({"heatmap": t["heatmap"], "offset": t["offset"]}, n_individuals=3)
    assert pred.shape == (2, 3, K, 3) and torch.isnan(pred).all()


def test_gradient_flows_through_loss():
    torch.manual_seed(0)
    head = DEKRHead(in_channels=5, in_stride=8, n_bodyparts=K, n_upsample=1, channels=8, offset_channels=3)
    out = head(torch.randn(2, 5, 8, 10))  # maps 16 x 20 cells, 64 x 80 pixels
    kp = three_animals() * torch.tensor([0.5, 0.5, 1.0])
    t = head.targets(kp, out)
    losses = head.loss(out, t)
    assert losses["offset"] > 0 and losses["heatmap"] > 0
    losses["total"].backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert head.offset[-1].weight.grad.abs().sum() > 0 and head.heatmap[-1].weight.grad.abs().sum() > 0


def test_bf16_keypoints_keep_dtype():
    kp = three_animals().to(torch.bfloat16)
    t = dekr_targets(kp, MAP, STRIDE, sigma=8.0, offset_radius=16.0)
    assert all(v.dtype == torch.bfloat16 for v in t.values())


def test_predict_on_noise_is_bounded_and_fast():
    torch.manual_seed(0)
    head = DEKRHead(in_channels=4, in_stride=4, n_bodyparts=K, centre_threshold=0.0)
    outputs = {"heatmap": torch.rand(2, K + 1, 96, 96), "offset": torch.randn(2, 2 * K, 96, 96) * 200}
    outputs["offset"][0, 0, :5] = float("inf")
    start = time.perf_counter()
    pred = head.predict(outputs, n_individuals=5)
    assert time.perf_counter() - start < 2.0
    assert pred.shape == (2, 5, K, 3)
    found = torch.isfinite(pred[..., 2]).all(-1)
    assert found.any()
    scores = pred[..., 2][found]
    assert (scores >= 0).all() and (scores <= 1).all()
    assert head.predict(outputs, n_individuals=0).shape == (2, 0, K, 3)


def test_decode_drops_duplicate_centre_peaks():
    kp = three_animals()[:1, :1]
    t = dekr_targets(kp, MAP, STRIDE, sigma=8.0, offset_radius=16.0)
    heat = t["heatmap"].clone()
    # a second, weaker centre peak 3 cells away inside the same offset disk
    peak = heat[0, K].flatten().argmax()
    r, c = divmod(int(peak), MAP[1])
    heat[0, K, r, c + 3] = 0.9
    heat[0, K, r, c + 2] = 0.1
    assert torch.isfinite(decode_dekr(heat, t["offset"], STRIDE, 2, pose_nms_distance=0.0)).all()  # no NMS: kept
    pred = decode_dekr(heat, t["offset"], STRIDE, n_individuals=2, pose_nms_distance=8.0)
    assert match_error(pred[0, :1], kp[0]) < 1.0
    assert torch.isnan(pred[0, 1]).all()
