"""IdentityHead (DeepLabCut's head_identity.yaml): plateau targets per identity, BCE, read-out and reordering."""
from __future__ import annotations

import pytest
import torch

from lightning_dlc.models.heads.identity import IdentityHead, assign_identities, identity_scores, identity_targets

STRIDE, SIZE = 8, (96, 128)  # features [B, C, 12, 16] -> identity map 25 x 33 at stride 4


def make_head(n_identities=3):
    torch.manual_seed(0)
    return IdentityHead(in_channels=8, in_stride=STRIDE, n_identities=n_identities, radius=9.0)


def features(batch=2):
    return torch.randn(batch, 8, SIZE[0] // STRIDE, SIZE[1] // STRIDE)


def three_animals(batch=2, k=4, seed=0):
    """Three animals in separate thirds of the image, keypoints spread within each."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, 3, k, 2, generator=g) * torch.tensor([30.0, 80.0]) + 4
    xy[..., 0] += 42.0 * torch.arange(3).view(1, 3, 1)
    return torch.cat([xy, torch.full((batch, 3, k, 1), 2.0)], -1)


def test_shapes_names_and_targets():
    head = make_head()
    out = head(features())
    assert out["heatmap"].shape == (2, 3, 25, 33) and head.stride == 4
    assert set(head.state_dict()) == {"heatmap_head.deconv_layers.0.weight", "heatmap_head.deconv_layers.0.bias"}
    kp = three_animals()
    t = head.targets(kp, out)
    assert t["heatmap"].shape == (2, 3, 25, 33) and t["heatmap_weights"].shape == (2, 3, 1, 1)
    assert ((t["heatmap"] == 0) | (t["heatmap"] == 1)).all() and (t["heatmap"].sum((2, 3)) > 0).all()
    # map n covers individual n's keypoints
    col = (kp[0, 1, 0, 0] / 4).floor().long()
    row = (kp[0, 1, 0, 1] / 4).floor().long()
    assert t["heatmap"][0, 1, row, col] == 1 and t["heatmap"][0, 0, row, col] == 0


def test_overlapping_animals_both_maps_on():
    kpts = torch.tensor([[[[20.0, 20.0, 1.0]], [[26.0, 20.0, 1.0]]]])
    t, w = identity_targets(kpts, (12, 16), 4, radius=9.0, n_identities=3)
    assert t[0, 0, 5, 5] == 1 and t[0, 1, 5, 5] == 1 and t[0, 2].sum() == 0 and (w == 1).all()


def test_identity_maps_and_assignment_reorder_shuffled_poses():
    head = make_head()
    kpts = three_animals()
    out = head(features())
    logits = {"heatmap": 20.0 * head.targets(kpts, out)["heatmap"] - 10}
    maps = head.identity_maps(logits)
    assert maps.shape == (2, 3, 100, 132)  # int(25 * 4), int(33 * 4) input pixels
    perm = [torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])]
    shuffled = torch.stack([kpts[b, perm[b]] for b in range(2)])
    poses = torch.cat([shuffled[..., :2], torch.rand(2, 3, 4, 1) * 0.5 + 0.5], -1)  # x, y, score
    scores = head.predict(logits, poses)
    assert torch.equal(scores.argmax(-1), torch.stack(perm))
    assert torch.equal(assign_identities(poses, scores)[..., :2], kpts[..., :2])


def test_missing_keypoints_count_as_zero():
    maps = torch.ones(1, 2, 10, 10)
    poses = torch.tensor([[[[1.0, 1.0, 0.5], [float("nan"), float("nan"), float("nan")]]]])
    assert torch.allclose(identity_scores(maps, poses), torch.tensor([[[0.25, 0.25]]]))
    out = assign_identities(poses, torch.tensor([[[0.1, 0.9]]]))
    assert out.shape == (1, 2, 2, 3) and out[0, 0].isnan().all() and torch.equal(out[0, 1, 0], poses[0, 0, 0])


def test_more_individuals_than_identities_is_an_error():
    with pytest.raises(ValueError, match="identities"):
        identity_targets(three_animals(), (25, 33), 4, 9.0, n_identities=2)


def test_gradient_flows_and_loss_decreases():
    head = make_head()
    kpts = three_animals()
    x = features().requires_grad_()
    outputs = head(x)
    losses = head.loss(outputs, head.targets(kpts, outputs))
    assert set(losses) == {"heatmap", "total"}
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
