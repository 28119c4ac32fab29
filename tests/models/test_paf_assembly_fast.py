"""The CPU fast paths of the PAF predictor (benchmarks/multi_animal_speed.py) give the assemblies the plain
PyTorch ops gave: a fixed input of ten fish (a perfectly trained head's maps) through both."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lightning_dlc.models.heads.paf_assembly as paf_assembly
from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.models.heads.paf import paf_graph
from lightning_dlc.models.heads.paf_ideal import ideal_outputs

STRIDE = 4.0


@pytest.fixture(scope="module")
def ten_fish():
    """Two frames of ten fish, nine bodyparts, 640x480: the maps a perfect model outputs (padded to 32)."""
    scene = render_scene(n_frames=2, n_fish=10, width=640, height=480, n_bodyparts=9)
    poses = np.concatenate([scene.keypoints, scene.visible[..., None]], -1).astype(np.float32)
    edges = paf_graph(9)
    return ideal_outputs(torch.from_numpy(poses), (480 // 4, 640 // 4), STRIDE, edges), edges, poses


def reference_smooth(heatmaps, sigma, size):
    """The smoothing before the fast path: the default layout's depthwise convolution."""
    offsets = (torch.arange(size, dtype=torch.float32) - size // 2) ** 2
    profile = torch.softmax(-offsets / (2 * sigma**2), dim=0)
    C = heatmaps.shape[1]
    kernel = torch.outer(profile, profile)[None, None].repeat(C, 1, 1, 1)
    return F.conv2d(heatmaps.contiguous(), kernel, stride=1, padding="same", groups=C)


@pytest.mark.parametrize("window", [3, 5, 7])
def test_window_max_is_max_pool(window):
    x = torch.randint(0, 4, (2, 3, 17, 23)).float() / 4  # many ties
    expected = F.max_pool2d(x, window, stride=1, padding=window // 2)
    assert torch.equal(paf_assembly.window_max(x, window), expected)


def test_smooth_values_unchanged(ten_fish):
    probs = ten_fish[0]["heatmap"].sigmoid()
    assert torch.equal(paf_assembly.smooth(probs, 1.0, 11), reference_smooth(probs, 1.0, 11))


def test_assemblies_unchanged(ten_fish, monkeypatch):
    outputs, edges, poses = ten_fish
    fast = paf_assembly.predict_paf(outputs["heatmap"], outputs["locref"], outputs["paf"], edges, STRIDE, 10)
    monkeypatch.setattr(paf_assembly, "smooth", reference_smooth)
    monkeypatch.setattr(paf_assembly, "window_max", lambda x, w: F.max_pool2d(x, w, stride=1, padding=w // 2))
    plain = paf_assembly.predict_paf(outputs["heatmap"], outputs["locref"], outputs["paf"], edges, STRIDE, 10)
    assert torch.equal(fast.isnan(), plain.isnan()) and torch.equal(fast.nan_to_num(), plain.nan_to_num())
    # ten animals' worth of work: every fish assembled, its visible keypoints where they are
    found = ~fast[..., 0].isnan()
    assert found.any(-1).sum(-1).tolist() == [10, 10]
    assert int(found.sum()) == int((poses[..., 2] > 0).sum())
