"""Every named model config (DeepLabCut's net_type names) builds, runs and fits the project it is given."""
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.heatmap import HeatmapHead
from lightning_dlc.models.heads.paf import PafHead, paf_graph
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

TOP_DOWN = ("top_down_", "rtmpose_")  # tests/models/test_top_down.py builds those
FIXED_CROP = ("animaltokenpose_",)  # top-down on 256 x 256 crops only: tests/models/test_dlc_tokenpose_models.py
CONDITIONAL = ("ctd_",)  # crops with conditions: tests/models/test_dlc_ctd_models.py
NAMES = sorted(p.stem for p in (CONF / "model").glob("*.yaml")
               if not p.stem.startswith(TOP_DOWN + FIXED_CROP + CONDITIONAL))
SINGLE = ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("animal",))
MULTI = ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("a", "b"), unique_bodyparts=("feeder",),
                    skeleton=(("snout", "head"), ("head", "tail")), identity=True)
# (backbone stride, multi-animal heatmap output stride) as DeepLabCut 3 builds them; single-animal
# heads stay at stride 8 (4 on HRNet)
STRIDES = {"resnet_50": (16, 8), "resnet_101": (16, 8), "resnet_18": (16, 8), "dlcrnet_stride16_ms5": (16, 4),
           "dlcrnet_stride32_ms5": (32, 4), "cspnext_s": (32, 8), "cspnext_m": (32, 8), "cspnext_x": (32, 8),
           **{f"hrnet_w{w}": (4, 4) for w in (18, 32, 48)}, **{f"dekr_w{w}": (4, 4) for w in (18, 32, 48)}}
# multi-animal PAF heads (DeepLabCut's DLCRNetHead): a padded deconv, 5 stages, an unpadded deconv
# (2 on dlcrnet_stride32_ms5): backbone stride / 4, maps of 2 * (2h) + 1 cells
PAF_STRIDES = {"resnet_50": 4, "resnet_101": 4, "resnet_18": 4, "dlcrnet_stride16_ms5": 4, "dlcrnet_stride32_ms5": 4,
               "cspnext_s": 8, "cspnext_m": 8, "cspnext_x": 8, **{f"hrnet_w{w}": 1 for w in (18, 32, 48)}}
HEAVY = {"resnet_101", "hrnet_w48", "dekr_w48", "cspnext_x", "dlcrnet_stride32_ms5"}


def model_config(name: str, *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false", *overrides])
    return cfg.model


def test_every_deeplabcut_net_type_has_a_config():
    expected = {"resnet_50", "resnet_101", "hrnet_w18", "hrnet_w32", "hrnet_w48", "dekr_w18", "dekr_w32",
                "dekr_w48", "dlcrnet_stride16_ms5", "dlcrnet_stride32_ms5", "cspnext_s", "cspnext_m", "cspnext_x"}
    assert expected <= set(NAMES)
    assert set(NAMES) <= set(STRIDES)


@pytest.mark.parametrize("name", [n if n not in HEAVY else pytest.param(n, marks=pytest.mark.slow) for n in NAMES])
@pytest.mark.parametrize("meta", [SINGLE, MULTI], ids=["single", "multi"])
def test_named_config_builds_and_predicts(name, meta):
    model = model_from_config(model_config(name), meta).eval()
    backbone_stride, head_stride = STRIDES[name]
    assert model.backbone.stride == backbone_stride
    head = model.heads["bodypart"]
    single_heatmap = not meta.multianimal and not name.startswith("dekr")
    if single_heatmap:  # DeepLabCut's head_bodyparts.yaml: one unpadded 3x3 deconv (2H + 1)
        head_stride = backbone_stride / 2
    elif name in PAF_STRIDES:
        head_stride = PAF_STRIDES[name]
    assert head.stride == head_stride
    if meta.multianimal and not name.startswith("dekr"):
        assert isinstance(head, PafHead) and head.edges == paf_graph(3)  # the full graph, as DeepLabCut
    elif not meta.multianimal:
        assert type(head) is HeatmapHead or name.startswith("dekr")
    assert ("identity" in model.heads) == meta.identity
    assert ("unique_bodypart" in model.heads) == bool(meta.unique_bodyparts)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 128, 160))
    if meta.multianimal and name in PAF_STRIDES:  # unpadded deconvs: 2H + 1 (twice on dlcrnet_stride32_ms5)
        h, w = 128 // backbone_stride * 2, 160 // backbone_stride * 2
        for _ in range(1 + (name == "dlcrnet_stride32_ms5")):
            h, w = 2 * h + 1, 2 * w + 1
        assert outputs["bodypart"]["heatmap"].shape[-2:] == (h, w)
    elif single_heatmap:
        size = (2 * (128 // backbone_stride) + 1, 2 * (160 // backbone_stride) + 1)
        assert outputs["bodypart"]["heatmap"].shape[-2:] == size
    else:
        assert outputs["bodypart"]["heatmap"].shape[-2:] == (128 // head_stride, 160 // head_stride)
    predicted = model.predict(outputs)
    assert predicted["bodypart"].shape == (1, meta.max_individuals, 3, 3)


def test_skeleton_edges_and_head_overrides():
    cfg = model_config("resnet_50", "model.heads.multi.bodypart.edges=skeleton",
                       "model.heads.multi.bodypart.paf_width=12", "model.backbone.output_stride=8")
    model = model_from_config(cfg, MULTI)
    assert model.heads["bodypart"].edges == [(0, 1), (1, 2)]
    assert model.heads["bodypart"].paf_width == 12 and model.backbone.stride == 8


def test_unknown_model_lists_the_options():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="resnet_50"):
        model_config("resnet_5O")
