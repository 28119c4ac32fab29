import pytest
import torch

from lightning_dlc.models.backbones import TimmBackbone
from lightning_dlc.models.heads.heatmap import HeatmapHead
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.project.records import ProjectMeta

SINGLE = ProjectMeta(bodyparts=("snout", "ear", "tail"), individuals=("animal",))
MULTI = ProjectMeta(bodyparts=("snout", "tail"), individuals=("a", "b", "c"), unique_bodyparts=("feeder",))


def tiny_model(meta, loss="mse"):
    backbone = TimmBackbone("resnet18", pretrained=False, out_index=2)  # stride 8
    heads = {role: (lambda **kw: HeatmapHead(**kw, n_upsample=1, loss=loss, radius=9.0))
             for role in ("bodypart", "unique_bodypart")}
    return PoseModel(backbone, heads, meta)


def keypoints(n, k, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = 4 + torch.rand(2, n, k, 2, generator=g) * (size - 8)
    return torch.cat([xy, torch.full((2, n, k, 1), 2.0)], dim=-1)


def test_forward_shapes_and_stride():
    model = tiny_model(SINGLE)
    outputs = model(torch.zeros(2, 3, 64, 96))
    head = model.heads["bodypart"]
    assert head.stride == 4
    # DeepLabCut's unpadded 3x3 deconv: 2H + 1
    assert outputs["bodypart"]["heatmap"].shape == (2, 3, 17, 25)
    assert outputs["bodypart"]["locref"].shape == (2, 6, 17, 25)
    assert "unique_bodypart" not in model.heads, "no unique bodyparts in this project: no head"


@pytest.mark.parametrize("meta", [SINGLE, MULTI])
def test_targets_decode_back_through_the_predictor(meta):
    """Feed the head its own targets as outputs: the predictor returns the labels (the round trip)."""
    model = tiny_model(meta)
    n, k = len(meta.individuals), len(meta.bodyparts)
    kpts = keypoints(n, k, size=40)
    kpts[..., 0] += 40 * torch.arange(n).view(1, n, 1)  # animals apart: one peak each
    kpts[0, 0, 1] = float("nan")  # a missing keypoint
    outputs = model(torch.zeros(2, 3, 128, 128))
    head = model.heads["bodypart"]
    targets = head.targets(kpts, outputs["bodypart"])
    assert targets["heatmap_weights"][0, 1].item() == 1.0  # DeepLabCut's bottom-up heads: no gradient masking
    predicted = head.predict({"heatmap": targets["heatmap"], "locref": targets["locref"]},
                             n_individuals=1 if not meta.multianimal else 3)
    if not meta.multianimal:
        labeled = ~torch.isnan(kpts[..., 0])
        err = (predicted[..., :2] - kpts[..., :2]).norm(dim=-1)[labeled]
        assert err.max() < 0.05
        assert torch.isnan(predicted[0, 0, 1, 0]) or predicted[0, 0, 1, 2] < 0.01
    else:
        # Unassembled candidates: every labeled keypoint is found among its bodypart's peaks.
        for b in range(2):
            for k in range(2):
                truth = kpts[b, :, k, :2][~torch.isnan(kpts[b, :, k, 0])]
                found = predicted[b, :, k, :2]
                dist = torch.cdist(truth, found.nan_to_num(1e6)).min(dim=1).values
                assert dist.max() < 0.05


def test_loss_backward_and_masking():
    model = tiny_model(MULTI, loss="bce")
    kpts = keypoints(3, 2)
    kpts[:, 2] = float("nan")  # a padded individual
    unique = keypoints(1, 1)[:, 0]
    outputs = model(torch.rand(2, 3, 64, 64))
    losses = model.loss(outputs, kpts, unique)
    assert set(losses) >= {"bodypart/heatmap", "bodypart/locref", "unique_bodypart/heatmap", "total"}
    losses["total"].backward()
    assert model.backbone.model is not None
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    predicted = model.predict(outputs)
    assert predicted["bodypart"].shape == (2, 3, 2, 3)
    assert predicted["unique_bodypart"].shape == (2, 1, 1, 3)


def test_unknown_head_role():
    with pytest.raises(ValueError, match="unknown head roles \\['identiti'\\]"):
        PoseModel(TimmBackbone("resnet18", pretrained=False), {"identiti": HeatmapHead}, SINGLE)
