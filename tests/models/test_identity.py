"""IdentityHead: targets, loss, read-out at assembled keypoints and Hungarian reordering."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_dlc.models.heads.identity import IdentityHead, assign_identities, identity_targets

STRIDE, SIZE = 8, (96, 128)  # features [B, C, 12, 16] -> identity map 24 x 32 at stride 4


def make_head(n_identities=3, **kw):
    torch.manual_seed(0)
    return IdentityHead(in_channels=8, in_stride=STRIDE, n_identities=n_identities, radius=9.0, **{"n_upsample": 1, **kw})


def features(batch=2):
    return torch.randn(batch, 8, SIZE[0] // STRIDE, SIZE[1] // STRIDE)


def three_animals(batch=2, k=4, seed=0):
    """Three animals in separate thirds of the image, keypoints spread within each."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, 3, k, 2, generator=g) * torch.tensor([30.0, 80.0]) + 4
    xy[..., 0] += 42.0 * torch.arange(3).view(1, 3, 1)
    return torch.cat([xy, torch.full((batch, 3, k, 1), 2.0)], -1)


def perfect_logits(head, kpts):
    outputs = head(features(kpts.shape[0]))
    targets = head.targets(kpts, outputs)
    return {"identity": 20.0 * targets["identity"]}, targets


def test_shapes_and_targets():
    head = make_head()
    outputs = head(features())
    assert head.stride == 4 and outputs["identity"].shape == (2, 3, 24, 32)
    kpts = three_animals()
    t = head.targets(kpts, outputs)
    assert t["identity"].shape == (2, 3, 24, 32) and t["identity_weights"].shape == (2, 1, 24, 32)
    assert torch.equal(t["identity"].sum(1, keepdim=True), t["identity_weights"]), "one-hot where supervised"
    assert 0 < t["identity_weights"].mean() < 1, "only cells near animals are supervised"
    # the cell under each keypoint teaches that keypoint's individual
    col = ((kpts[..., 0] + 0.5) / head.stride - 0.5).round().long()
    row = ((kpts[..., 1] + 0.5) / head.stride - 0.5).round().long()
    for b in range(2):
        for n in range(3):
            assert (t["identity"][b, :, row[b, n], col[b, n]].argmax(0) == n).all()


def test_perfect_logits_give_the_right_identity():
    head = make_head()
    kpts = three_animals()
    logits, _ = perfect_logits(head, kpts)
    probs = head.predict(logits, kpts)
    assert probs.shape == (2, 3, 3)
    assert torch.allclose(probs, torch.eye(3).expand(2, 3, 3), atol=1e-4)
    assert head.loss(logits, head.targets(kpts, logits))["total"] < 1e-4


def test_overlapping_animals_nearest_wins():
    kpts = torch.tensor([[[[20.0, 20.0, 1.0]], [[30.0, 20.0, 1.0]]]])  # 10 px apart, radius 9
    t, w = identity_targets(kpts, (12, 16), 4, radius=9.0, n_identities=2)
    assert torch.equal(t.sum(1, keepdim=True), w)
    assert t[0, 0, 5, 4] == 1 and t[0, 1, 5, 7] == 1  # cells at (x=17.5, 29.5): nearest animal


def test_assignment_reorders_shuffled_poses():
    head = make_head()
    kpts = three_animals()
    logits, _ = perfect_logits(head, kpts)
    perm = [torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])]
    shuffled = torch.stack([kpts[b, perm[b]] for b in range(2)])
    poses = torch.cat([shuffled[..., :2], torch.rand(2, 3, 4, 1)], -1)  # x, y, score
    probs = head.predict(logits, poses)
    assert torch.equal(probs.argmax(-1), torch.stack(perm))
    reordered = assign_identities(poses, probs)
    assert torch.equal(reordered[..., :2], kpts[..., :2])


def test_missing_keypoints_and_empty_individuals():
    head = make_head(n_identities=4)  # identity 3 never labeled: targets padded with a zero channel
    kpts = three_animals()
    kpts[0, 1] = float("nan")  # individual 1 absent from image 0
    kpts[1, 0, :2, :2] = float("nan")  # some keypoints missing
    kpts[1, 2, 0, 2] = 0.0  # labeled "not visible"
    logits, targets = perfect_logits(head, kpts)
    assert torch.isfinite(targets["identity"]).all() and targets["identity"][:, 3].sum() == 0
    assert targets["identity"][0, 1].sum() == 0
    poses = kpts.clone()
    poses[..., 2] = 0.9
    poses[1, 2, 0, :] = float("nan")
    probs = head.predict(logits, poses)
    assert probs.shape == (2, 3, 4)
    assert torch.isnan(probs[0, 1]).all() and torch.isfinite(probs[1]).all()
    assert (probs[0, [0, 2]].argmax(-1) == torch.tensor([0, 2])).all()
    assert (probs[1].argmax(-1) == torch.arange(3)).all()
    out = assign_identities(poses, probs)
    assert out.shape == (2, 4, 4, 3)
    assert torch.equal(out[0, 0], poses[0, 0]) and torch.equal(out[0, 2], poses[0, 2])
    assert torch.isnan(out[0, 1]).all() and torch.isnan(out[:, 3]).all()
    # nothing labeled at all: zero loss, no NaN
    empty = torch.full_like(kpts, float("nan"))
    outputs = head(features())
    t = head.targets(empty, outputs)
    assert t["identity_weights"].sum() == 0 and head.loss(outputs, t)["total"] == 0


def test_more_individuals_than_identities_is_an_error():
    with pytest.raises(ValueError, match="identities"):
        make_head(n_identities=2).targets(three_animals(), {"identity": torch.zeros(2, 2, 24, 32)})


def test_more_animals_than_identities_drops_the_least_likely():
    poses = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, 2, 3)
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    out = assign_identities(poses, probs)
    assert out[0, :, 0, 0].tolist() == [0.0, 1.0]


def test_gradient_flows_and_loss_decreases():
    head = make_head()
    kpts = three_animals()
    x = features().requires_grad_()
    outputs = head(x)
    losses = head.loss(outputs, head.targets(kpts, outputs))
    assert set(losses) == {"identity", "total"}
    assert math.isclose(losses["total"].item(), math.log(3), rel_tol=0.3)  # near chance at init
    losses["total"].backward()
    assert x.grad.abs().sum() > 0 and all(p.grad.abs().sum() > 0 for p in head.parameters())
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    x = x.detach()
    for _ in range(20):
        opt.zero_grad()
        out = head(x)
        loss = head.loss(out, head.targets(kpts, out))["total"]
        loss.backward()
        opt.step()
    assert loss < losses["total"].item() * 0.9
