"""SimCC (RTMCC) head: shapes, label/decode round trip, masking, input-size errors, loss and gradients.

tests/models/test_dlc_rtmpose_models.py checks the same functions against DeepLabCut itself."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.models.heads.simcc import (
    GatedAttentionUnit,
    ScaleNorm,
    SimCCHead,
    default_sigma,
    kl_discrete_loss,
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
    """Random in-image keypoints; image 1 has bodypart 1 NaN, 2 invisible, 3 far outside the image."""
    g = torch.Generator().manual_seed(seed)
    H, W = INPUT
    xy = torch.rand(batch, individuals, K, 2, generator=g) * torch.tensor([W, H]) - 0.5
    kp = torch.cat([xy, torch.full((batch, individuals, K, 1), 2.0)], -1)
    kp[0, 0, 0, :2] = torch.tensor([-0.45, H - 0.55])  # on the borders
    kp[1, 0, 1, :2] = float("nan")
    kp[1, 0, 2, 2] = 0
    kp[1, 0, 3, :2] = torch.tensor([W + 30.0, 10.0])  # its label misses every bin
    return kp


def test_default_sigma_is_deeplabcuts():
    assert default_sigma((256, 192)) == (4.9, 5.66)  # (sigma_x, sigma_y) for (H, W)
    assert default_sigma((256, 256)) == (5.66, 5.66)
    assert default_sigma((384, 288)) == (6.0, 6.93)
    assert default_sigma((64, 100)) == pytest.approx((3.87, 3.51))  # other sides: 2.87 + 0.01 * side


def test_shapes_and_predict_layout():
    head = make_head()
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
    # labels sit on whole bins: round(x * split_ratio), halves to even (numpy's around)
    for px, peak in ((10.25, 20), (10.75, 22), (10.3, 21)):
        label = simcc_targets(torch.tensor([[[[px, 7.0, 1.0]]]]), INPUT, 2.0, (1.0, 1.0))[0][0, 0]
        assert label.argmax() == peak and label[peak] == 1


def test_labels_near_the_image_count_far_ones_do_not():
    sigma = (2.0, 2.0)  # labels reach 3 sigma = 6 bins
    kp = torch.tensor([[[[-3.0, 5.0, 2.0], [-4.0, 5.0, 2.0], [5.0, 5.0, 0.0]]]])
    x, _, w = simcc_targets(kp, INPUT, 2.0, sigma)
    assert w.tolist() == [[1.0, 0.0, 0.0]]  # bin -6: its label still reaches bin 0; bin -8 does not
    assert x[0, 0, 0] == pytest.approx(math.exp(-36 / 8)) and (x[0, 1:] == 0).all()


def test_standard_labels_are_smoothed_one_hots():
    kp = torch.tensor([[[[10.0, 7.0, 2.0], [64.0, 7.0, 2.0]]]])  # the second is one bin past the end
    x, y, w = simcc_targets(kp, INPUT, 2.0, (1.0, 1.0), "standard", 0.1)
    assert w.tolist() == [[1.0, 0.0]]
    assert x[0, 0, 20] == pytest.approx(0.9) and x[0, 0, 0] == pytest.approx(0.1 / 127)
    normalized = simcc_targets(kp, INPUT, 2.0, (2.0, 2.0), normalize=True)[0]
    assert normalized[0, 0].sum() == pytest.approx(1.0, abs=1e-4)  # area 1


def test_kl_loss_sums_over_the_batch_and_divides_by_keypoints():
    logits, labels = torch.randn(2, 3, 10), torch.rand(2, 3, 10)
    one = kl_discrete_loss(logits[:1], labels[:1], None)
    two = kl_discrete_loss(torch.cat([logits[:1]] * 2), torch.cat([labels[:1]] * 2), None)
    assert two == pytest.approx(2 * one)  # DeepLabCut's: no mean over the batch
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    masked = kl_discrete_loss(logits, labels, weights)
    assert masked == pytest.approx(kl_discrete_loss(logits[:1, [0, 2]], labels[:1, [0, 2]], None) * 2 / 3)


def test_scale_norm_clamps_the_norm():
    norm = ScaleNorm(4)
    assert torch.equal(norm(torch.zeros(2, 4)), torch.zeros(2, 4))  # no NaN for a zero vector
    x = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    assert torch.allclose(norm(x), x / 2.5)  # ||x|| / sqrt(dim)


def test_flat_outputs_decode_to_bin_minus_one():
    x, y = torch.zeros(1, 2, 128), torch.zeros(1, 2, 96)
    x[0, 1, 7], y[0, 1, 3] = 1.0, 1.0
    pose = simcc_decode(x, y, 2.0, (10.0, 10.0))
    assert pose[0, 0, :2].tolist() == [-0.5, -0.5] and pose[0, 0, 2] == pytest.approx(1 / 128)
    assert pose[0, 1, :2].tolist() == [3.5, 1.5]


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
    assert set(true) == {"x", "y", "total"} and true["total"] == (true["x"] + true["y"]) / 2
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


def test_simcc_head_set_builds_on_whole_single_animal_images():
    """Our `simcc` head set (not a DeepLabCut net_type): the RTMCC head on whole fixed-size images."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from lightning_dlc.models.pose_model import model_from_config
    from lightning_dlc.project.records import ProjectMeta

    conf = CONF_DIR
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "heads@model.heads=simcc",
                                          "model.backbone.pretrained=false",
                                          "model.heads.single.bodypart.input_size=[64,96]"])
    model = model_from_config(cfg.model, ProjectMeta(bodyparts=("a", "b"), individuals=("animal",)))
    assert isinstance(model.heads["bodypart"], SimCCHead)
    outputs = model(torch.randn(2, 3, 64, 96))
    keypoints = torch.tensor([[[[10.0, 20.0, 2.0], [50.0, 30.0, 2.0]]]]).repeat(2, 1, 1, 1)
    loss = model.loss(outputs, keypoints)["total"]
    assert torch.isfinite(loss) and loss > 0
    assert model.predict(outputs)["bodypart"].shape == (2, 1, 2, 3)
