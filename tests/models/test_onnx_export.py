"""Pose networks as ONNX graphs: dynamic batch and size, named raw head outputs equal to torch's, sidecar facts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.models.onnx_export import decoding_info, export_pose_network, require
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta


def test_missing_runtime_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install lightning_dlc\[onnx\]"):
        require("onnxruntime_that_is_not_installed")


@pytest.mark.slow
def test_graph_outputs_equal_torch_at_other_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    meta = ProjectMeta(bodyparts=("snout", "tail"), individuals=("animal",), unique_bodyparts=("corner",))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, meta).eval()
    path = tmp_path / "pose.onnx"
    names = export_pose_network(model, path)
    assert names == [("bodypart", "heatmap"), ("bodypart", "locref"), ("unique_bodypart", "heatmap"),
                     ("unique_bodypart", "locref")]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [f"{r}.{k}" for r, k in names]
    for batch, h, w in ((1, 64, 96), (3, 128, 64)):  # neither the traced batch (2) nor its size
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {"images": x.numpy()})
        for (role, key), value in zip(names, got):
            assert value.shape == tuple(expected[role][key].shape)
            np.testing.assert_allclose(value, expected[role][key].numpy(), atol=1e-4, rtol=0)
    info = decoding_info(model, names)
    assert info["bodyparts"] == ["snout", "tail"] and info["unique_bodyparts"] == ["corner"]
    assert info["stride"] == model.heads["bodypart"].stride and info["top_down"] is None
    assert info["locref_std"] == model.heads["bodypart"].locref_std
    assert [o["name"] for o in info["outputs"]] == [o.name for o in session.get_outputs()]
