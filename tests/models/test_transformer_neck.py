"""TransformerNeck: shapes and stride for any input size, gradients, and use inside PoseModel."""
from __future__ import annotations

from functools import partial

import pytest
import torch

from lightning_dlc.models.backbones import TimmBackbone
from lightning_dlc.models.heads.heatmap import HeatmapHead
from lightning_dlc.models.necks import TransformerNeck
from lightning_dlc.models.necks.transformer import sine_position_embedding
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.project.records import ProjectMeta


def tiny_neck(**kw):
    return TransformerNeck(**{"in_channels": 16, "in_stride": 8, "dim": 32, "depth": 2, "heads": 4, **kw})


@pytest.mark.parametrize("patch_size", [1, 2, 3])
@pytest.mark.parametrize("size", [(8, 12), (13, 7)])
def test_shapes_and_stride(size, patch_size):
    torch.manual_seed(0)
    neck = tiny_neck(patch_size=patch_size, out_channels=24)
    out = neck(torch.randn(2, 16, *size))
    assert out.shape == (2, 24, *size)
    assert neck.out_channels == 24 and neck.stride == 8
    assert torch.isfinite(out).all()


def test_out_channels_default_to_dim():
    neck = tiny_neck()
    assert neck.out_channels == 32
    assert neck(torch.randn(1, 16, 5, 6)).shape == (1, 32, 5, 6)


def test_position_embedding_is_spatial():
    emb = sine_position_embedding(4, 5, 32)
    assert emb.shape == (20, 32)
    assert torch.unique(emb, dim=0).shape[0] == 20, "every cell gets its own position"
    with pytest.raises(ValueError):
        sine_position_embedding(4, 5, 30)


def test_attention_is_global_and_gradients_flow():
    torch.manual_seed(0)
    neck = tiny_neck(patch_size=2)
    x = torch.randn(1, 16, 8, 8, requires_grad=True)
    out = neck(x)
    # one output cell ... (squared: a plain channel sum of a LayerNorm output is constant, its gradient 0)
    out[0, :, 0, 0].pow(2).sum().backward()
    assert x.grad[0, :, -1, -1].abs().sum() > 0, "... depends on the far corner of the input"
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in neck.parameters())


def test_inside_pose_model():
    torch.manual_seed(0)
    meta = ProjectMeta(bodyparts=("snout", "tail"), individuals=("animal",))
    backbone = TimmBackbone("resnet18", pretrained=False, out_index=2)  # stride 8, 128 channels
    neck = partial(TransformerNeck, dim=32, depth=1, heads=4, patch_size=2)
    model = PoseModel(backbone, {"bodypart": partial(HeatmapHead, radius=9.0, n_upsample=1)}, meta, neck=neck)
    assert model.neck.stride == backbone.stride == 8
    outputs = model(torch.randn(2, 3, 64, 96))
    assert outputs["bodypart"]["heatmap"].shape == (2, 2, 17, 25)  # DeepLabCut's unpadded deconv: 2H + 1
    kpts = torch.tensor([[10.0, 20.0, 2.0], [40.0, 30.0, 2.0]]).expand(2, 1, 2, 3)
    losses = model.loss(outputs, kpts)
    losses["total"].backward()
    assert torch.isfinite(losses["total"])
    assert model.neck.embed.weight.grad.abs().sum() > 0
    assert model.predict(outputs)["bodypart"].shape == (2, 1, 2, 3)
