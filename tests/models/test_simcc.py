"""SimCC head: shapes, label/decode round trip, masking, input-size errors, loss and gradients."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_dlc.models.heads.simcc import (
    GatedAttentionUnit,
    SimCCHead,
    default_sigma,
    simcc_decode,
    simcc_targets,
)

INPUT = (48, 64)  # (H, W); H != W catches swapped axes
STRIDE, C, K = 8, 16, 5


def make_head(**kwargs):
    torch.manual_seed(0)
    return SimCCHead(C, STRIDE, K, input_size=INPUT, hidden=32, gau_qk_dim=16, **kwargs)


def features(batch=2, size=(INPUT[0] // STRIDE, INPUT[1] // STRIDE)):
    return torch.randn(batch, C, *size, generator=torch.Generator().manual_seed(1))


def make_keypoints(batch=3, individuals=2, seed=0):
    """Random in-image keypoints; image 1 has bodypart 1 NaN, 2 invisible, 3 outside the image."""
    g = torch.Generator().manual_seed(seed)
    H, W = INPUT
    xy = torch.rand(batch, individuals, K, 2, generator=g) * torch.tensor([W, H]) - 0.5
    kp = torch.cat([xy, torch.full((batch, individuals, K, 1), 2.0)], -1)
    kp[0, 0, 0, :2] = torch.tensor([-0.45, H - 0.55])  # on the borders
    kp[1, 0, 1, :2] = float("nan")
    kp[1, 0, 2, 2] = 0
    kp[1, 0, 3, :2] = torch.tensor([W + 3.0, 10.0])
    return kp


def test_default_sigma_matches_rtmpose():
    assert default_sigma((256, 192)) == pytest.approx((4.9, 5.66), abs=0.01)
    assert default_sigma((256, 256)) == pytest.approx((5.66, 5.66), abs=0.01)
    assert default_sigma((384, 288)) == pytest.approx((6.0, 6.93), abs=0.01)
    # constant width in pixels across split ratios
    assert default_sigma((256, 256), 3.0)[0] == pytest.approx(1.5 * default_sigma((256, 256))[0])


@pytest.mark.parametrize("gau", [True, False])
def test_shapes_and_predict_layout(gau):
    head = make_head(gau=gau)
    out = head(features())
    assert out["x"].shape == (2, K, 128) and out["y"].shape == (2, K, 96)
    assert head.stride == 0.5
    pose = head.predict(out, n_individuals=3)
    assert pose.shape == (2, 3, K, 3) and pose.dtype == torch.float32
    assert torch.isfinite(pose[:, 0]).all() and torch.isnan(pose[:, 1:]).all()
    assert ((pose[:, 0, :, 2] > 0) & (pose[:, 0, :, 2] <= 1)).all()
    assert head.predict(out).shape == (2, 1, K, 3)


def test_feature_size_rounds_up_like_strided_convs():
    head = SimCCHead(C, STRIDE, K, input_size=(50, 70), hidden=32, gau_qk_dim=16)
    assert head.feature_size == (7, 9)
    assert head(features(1, (7, 9)))["x"].shape == (1, K, 140)


def test_wrong_input_size_is_a_clear_error():
    head = make_head()
    with pytest.raises(ValueError, match=r"input_size \(H, W\) = \(48, 64\).*resize or crop"):
        head(features(1, (8, 6)))


@pytest.mark.parametrize("split_ratio", [1.0, 2.0, 3.0])
def test_targets_round_trip(split_ratio):
    kp = make_keypoints()
    head = make_head(split_ratio=split_ratio)
    t = head.targets(kp, {})
    assert t["x"].shape == (3, K, round(INPUT[1] * split_ratio)) and t["y"].shape == (3, K, INPUT[0] * split_ratio)
    pose = head.predict({"x": t["x"], "y": t["y"]}, n_individuals=2)
    ok = t["weights"].bool()
    err = (pose[:, 0, :, :2] - kp[:, 0, :, :2]).abs()
    # bins span pixels [0, W - 1/k]: inside them, within half a bin (required: 1 / split_ratio px)
    inside = (kp[:, 0, :, :2] >= 0) & (kp[:, 0, :, :2] <= torch.tensor([INPUT[1], INPUT[0]]) - 1 / split_ratio)
    assert err[ok[..., None] & inside].max() <= 0.5 / split_ratio + 1e-5
    assert err[ok].max() <= 0.5 + 1e-5  # within half a pixel of the border: clamped to the edge bin
    assert err[0, 0, 0] == pytest.approx(0.45)  # x = -0.45 decodes to pixel 0
    assert torch.isnan(pose[:, 1]).all()
    assert (pose[:, 0, :, 2][ok] > 0.4).all()  # a clean label decodes confidently


def test_missing_keypoints_are_masked_and_other_individuals_ignored():
    kp = make_keypoints()
    x, y, w = simcc_targets(kp, INPUT, 2.0, default_sigma(INPUT))
    expected = torch.ones(3, K)
    expected[1, 1:4] = 0
    assert torch.equal(w, expected)
    assert (x[w == 0] == 0).all() and (y[w == 0] == 0).all()
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    # only individual 0 matters
    kp2 = kp.clone()
    kp2[:, 1:] = float("nan")
    for a, b in zip((x, y, w), simcc_targets(kp2, INPUT, 2.0, default_sigma(INPUT))):
        assert torch.equal(a, b)
    # no individuals at all: everything masked, loss finite and 0
    head = make_head()
    t = head.targets(kp[:, :0], {})
    assert (t["weights"] == 0).all()
    loss = head.loss(head(features(3)), t)["total"]
    assert torch.isfinite(loss) and loss == 0


def test_masked_keypoints_do_not_affect_loss():
    head = make_head()
    kp = make_keypoints()
    out = head(features(3))
    t = head.targets(kp, out)
    base = head.loss(out, t)["total"]
    garbage = {k: v.clone() for k, v in out.items()}
    garbage["x"][1, 1:4] = 1e3 * torch.randn(3, garbage["x"].shape[-1])
    assert torch.allclose(head.loss(garbage, t)["total"], base)


def test_target_bin_convention():
    kp = torch.tensor([[[[10.0, 7.0, 1.0]]]])
    x, y, _ = simcc_targets(kp, INPUT, 2.0, (1.0, 1.0))
    assert x[0, 0].argmax() == 20 and x[0, 0, 20] == 1  # bin j <-> pixel j / split_ratio
    assert y[0, 0].argmax() == 14
    half = simcc_targets(torch.tensor([[[[10.25, 7.0, 1.0]]]]), INPUT, 2.0, (1.0, 1.0))[0]
    assert torch.allclose(half[0, 0, 20], half[0, 0, 21])


@pytest.mark.parametrize("label_softmax", [True, False])
def test_loss_prefers_true_target(label_softmax):
    head = make_head(label_softmax=label_softmax)
    kp = make_keypoints(individuals=1)
    t = head.targets(kp, {})
    shifted_kp = kp.clone()
    shifted_kp[..., :2] += 3.0
    shifted = head.targets(shifted_kp, {})
    true = head.loss({"x": t["x"], "y": t["y"]}, t)
    wrong = head.loss({"x": shifted["x"], "y": shifted["y"]}, t)
    assert set(true) == {"simcc", "total"}
    assert true["total"] < wrong["total"]
    if label_softmax:  # the label itself is the KL minimiser of softmax(beta * logits)
        assert true["total"] < 1e-5


def test_gradient_flows_and_loss_decreases():
    head = make_head()
    kp = make_keypoints(batch=2, individuals=1)
    feats = features(2).requires_grad_()
    out = head(feats)
    loss = head.loss(out, head.targets(kp, out))["total"]
    loss.backward()
    assert torch.isfinite(loss) and feats.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = loss.item()
    for _ in range(20):
        opt.zero_grad()
        out = head(feats.detach())
        loss = head.loss(out, head.targets(kp, out))["total"]
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_bf16_outputs_decode_in_float32():
    kp = make_keypoints(individuals=1)
    x, y, w = simcc_targets(kp.bfloat16(), INPUT, 2.0, default_sigma(INPUT))
    assert x.dtype == torch.bfloat16
    pose = simcc_decode(x, y, 2.0, (100.0, 100.0))
    assert pose.dtype == torch.float32
    err = (pose[..., :2] - kp[:, 0, :, :2]).abs()[w.bool()]
    assert err.max() <= 1.0  # bf16 keypoints and labels: within a pixel


def test_gau_is_permutation_equivariant_over_tokens():
    torch.manual_seed(0)
    gau = GatedAttentionUnit(32, qk_dim=16)
    x = torch.randn(2, 7, 32)
    perm = torch.randperm(7)
    assert torch.allclose(gau(x)[:, perm], gau(x[:, perm]), atol=1e-5)
    assert not math.isclose(gau(x).sub(x).abs().max().item(), 0.0)
