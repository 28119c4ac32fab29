"""DeepLabCut 3.0.2's heatmap models, exactly: the same layers, weights, outputs, targets and decoding.

Each net_type is built in both engines; DeepLabCut's (randomized) state dict loads strictly into
ours (the key map is the identity), and head outputs, predictions, synthetic-map decoding,
target generators and loss criteria are compared. Skips where DeepLabCut's environment is absent.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dlc_peer import run_peer
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads import losses
from lightning_dlc.models.heads.heatmap_targets import heatmap_targets, locref_targets
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import SINGLE_ANIMAL, ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

BACKBONES = ["resnet_50", "resnet_101", "hrnet_w18", "hrnet_w32", "hrnet_w48"]
CSPNEXT = ["cspnext_s", "cspnext_m", "cspnext_x"]
SIGMOID = {"model.heads.bodypart.predictor.apply_sigmoid": True, "model.heads.bodypart.predictor.clip_scores": False}
BODYPARTS = ["snout", "ear", "tail"]
SINGLE = {"bodyparts": BODYPARTS, "multianimal": False, "unique_bodyparts": ["feeder"]}
MULTI = {"bodyparts": BODYPARTS, "multianimal": True, "individuals": ["a", "b"]}
SINGLE_META = ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=(SINGLE_ANIMAL,), unique_bodyparts=("feeder",))
MULTI_META = ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("a", "b"))
GEN = "deeplabcut.pose_estimation_pytorch.models.target_generators.heatmap_targets:"
CRIT = "deeplabcut.pose_estimation_pytorch.models.criterions."


def images(*size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def synthetic_maps(k: int, size: tuple[int, int], seed: int) -> dict[str, torch.Tensor]:
    """Maps that trip decoders: ties, values above 1, maxima in the first row and column."""
    g = torch.Generator().manual_seed(seed)
    heat = torch.rand(2, k, *size, generator=g) * 1.5 - 0.3
    heat[0, 0, 0, 3] = heat[0, 0, 4, 1] = 2.0  # tie: the first in raster order wins
    heat[1, 0, 2, 0] = 1.7  # first column
    if k > 1:
        heat[0, 1, 0, 0] = 3.0  # corner
        heat[1, 1] = 0.25  # a flat map: all tied
    return {"heatmap": heat, "locref": torch.randn(2, 2 * k, *size, generator=g)}


def keypoints_for_targets() -> torch.Tensor:
    """[B=2, N=2, K=3, 3]: labeled, unlabeled (0), undefined (-1), outside the map, overlapping animals."""
    kp = torch.tensor([
        [[[10.0, 12.0, 2], [40.0, 30.0, 2], [5.0, 70.0, 1]],
         [[18.0, 15.0, 2], [0.0, 0.0, 0], [-6.0, 60.0, 2]]],
        [[[95.0, 3.0, 2], [22.0, 22.0, -1], [31.5, 33.5, 2]],
         [[90.0, 9.0, 1], [50.0, 20.0, 2], [0.0, 0.0, 0]]],
    ])
    return kp


TARGET_CASES = [  # (generator, gradient_masking, background_weight)
    ("HeatmapGaussianGenerator", False, 0.1),
    ("HeatmapGaussianGenerator", True, 0.0),
    ("HeatmapPlateauGenerator", False, 0.1),
    ("HeatmapPlateauGenerator", True, 0.3),
]
MAP, STRIDE = (9, 13), 8


def _jobs() -> list[dict]:
    jobs: list[dict] = []
    for name in BACKBONES + CSPNEXT:  # names and shapes of every variant, bottom-up and top-down
        jobs.append({"net_type": name, "project": SINGLE, "shapes_only": True})
        jobs.append({"net_type": name, "top_down": True, "project": MULTI, "shapes_only": True})
    jobs.append({"net_type": "resnet_50", "project": SINGLE, "inputs": [images(64, 96), images(67, 93, seed=1)],
                 "maps": [{"bodypart": synthetic_maps(3, MAP, 2), "unique_bodypart": synthetic_maps(1, MAP, 3)},
                          {"bodypart": synthetic_maps(3, (8, 8), 4), "unique_bodypart": synthetic_maps(1, (8, 8), 5)}]})
    jobs.append({"net_type": "hrnet_w18", "project": SINGLE, "inputs": [images(64, 96, seed=2)]})  # timm's HRNet
    # fails on sizes not divisible by 32 in both engines (DeepLabCut pads its inputs to 32)
    jobs.append({"net_type": "cspnext_s", "project": SINGLE, "inputs": [images(64, 96, seed=5), images(67, 93, seed=6)]})
    jobs.append({"net_type": "resnet_101", "project": SINGLE, "config_updates": SIGMOID,  # a logits head: sigmoid
                 "maps": [{"bodypart": synthetic_maps(3, MAP, 8), "unique_bodypart": synthetic_maps(1, MAP, 9)}]})
    jobs.append({"net_type": "hrnet_w18", "top_down": True, "project": MULTI,
                 "inputs": [images(256, 256, seed=3)]})
    jobs.append({"net_type": "resnet_50", "top_down": True, "project": MULTI, "inputs": [images(256, 256, seed=4)]})
    kp = keypoints_for_targets()
    outputs = {"heatmap": torch.zeros(2, 3, *MAP), "locref": torch.zeros(2, 6, *MAP)}
    for generator, masking, background in TARGET_CASES:
        jobs.append({"kind": "call", "function": GEN + generator, "attribute": "forward",
                     "init_kwargs": dict(num_heatmaps=3, pos_dist_thresh=17, heatmap_mode="KEYPOINT",
                                         gradient_masking=masking, background_weight=background,
                                         generate_locref=True, locref_std=7.2801),
                     "args": [STRIDE, outputs, {"keypoints": kp}]})
    g = torch.Generator().manual_seed(7)
    pred, target = torch.randn(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    weights = (torch.rand(2, 3, 5, 4, generator=g) > 0.5) * torch.rand(2, 3, 5, 4, generator=g)
    for criterion in ("WeightedMSECriterion", "WeightedHuberCriterion", "WeightedBCECriterion"):
        jobs.append({"kind": "call", "function": CRIT + "weighted:" + criterion, "attribute": "forward",
                     "args": [pred, target, weights]})
    jobs.append({"kind": "call", "function": CRIT + "aggregators:WeightedLossAggregator", "attribute": "forward",
                 "init_kwargs": {"weights": {"heatmap": 1.0, "locref": 0.05}},
                 "args": [{"heatmap": torch.tensor(0.7), "locref": torch.tensor(0.3)}]})
    return jobs


JOBS = _jobs()


@pytest.fixture(scope="module")
def peer() -> list[dict]:
    return run_peer(JOBS)


def model_job(peer: list[dict], net_type: str, top_down: bool, shapes_only: bool = False) -> tuple[dict, dict]:
    """The one model job (and its result) for these settings."""
    (found,) = [(j, r) for j, r in zip(JOBS, peer) if j.get("net_type") == net_type
                and j.get("top_down", False) == top_down and j.get("shapes_only", False) == shapes_only]
    return found


def our_model(net_type: str, meta: ProjectMeta, top_down: bool = False):
    name = f"top_down_{net_type}" if top_down else net_type
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false"])
    return model_from_config(cfg.model, meta)


def close(ours: torch.Tensor, theirs: torch.Tensor, what: str, atol: float = 1e-5) -> float:
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-4, atol=atol, msg=lambda m: f"{what}: {m}")
    return float((ours.float() - theirs.float()).abs().max())


@pytest.mark.parametrize("top_down", [False, True], ids=["bottom_up", "top_down"])
@pytest.mark.parametrize("net_type", BACKBONES + CSPNEXT)
def test_parameter_names_and_shapes_are_deeplabcuts(peer, net_type, top_down):
    _, theirs = model_job(peer, net_type, top_down, shapes_only=True)
    model = our_model(net_type, MULTI_META if top_down else SINGLE_META, top_down)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == theirs["shapes"], (
        f"missing {sorted(theirs['shapes'].keys() - ours.keys())[:8]}, extra {sorted(ours.keys() - theirs['shapes'].keys())[:8]}, "
        f"resized {[k for k in ours.keys() & theirs['shapes'].keys() if ours[k] != theirs['shapes'][k]][:8]}")


@pytest.mark.parametrize("net_type, top_down", [("resnet_50", False), ("hrnet_w18", False), ("cspnext_s", False),
                                                ("hrnet_w18", True), ("resnet_50", True)])
def test_outputs_and_predictions_match(peer, net_type, top_down):
    job, theirs = model_job(peer, net_type, top_down)
    model = our_model(net_type, MULTI_META if top_down else SINGLE_META, top_down)
    model.load_state_dict(theirs["state_dict"], strict=True)
    model.eval()
    for inputs, their_out, their_pred in zip(job["inputs"], theirs["outputs"], theirs["predictions"]):
        with torch.no_grad():
            ours = model(inputs)
        assert set(ours) == set(their_out)
        for role in their_out:
            assert set(ours[role]) == set(their_out[role])
            for name, value in their_out[role].items():
                diff = close(ours[role][name], value, f"{net_type} {role}/{name} {tuple(inputs.shape)}")
                print(f"{net_type} top_down={top_down} {tuple(inputs.shape[-2:])} {role}/{name}: max |diff| {diff:.2e}")
        if top_down:  # one animal per crop: the head's own decoding (crops belong to the top-down pipeline)
            predicted = {"bodypart": model.heads["bodypart"].predict(ours["bodypart"], 1)}
        else:
            predicted = model.predict(ours)
        for role, value in their_pred.items():
            diff = close(predicted[role], value["poses"], f"{net_type} {role} keypoints", atol=1e-3)
            print(f"{net_type} top_down={top_down} {tuple(inputs.shape[-2:])} {role} keypoints: max |diff| {diff:.2e}")


@pytest.mark.parametrize("net_type, overrides", [("resnet_50", []), ("resnet_101", ["model.heads.single.bodypart.loss=bce"])],
                         ids=["clipped_scores", "sigmoid"])
def test_decoding_synthetic_maps(peer, net_type, overrides):
    job, theirs = model_job(peer, net_type, False)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={net_type}", "model.backbone.pretrained=false", *overrides])
    model = model_from_config(cfg.model, SINGLE_META)
    for maps, decoded in zip(job["maps"], theirs["decoded"]):
        for role, value in decoded.items():
            ours = model.heads[role].predict(maps[role], 1)
            diff = close(ours, value["poses"], f"decoded {role} {tuple(maps[role]['heatmap'].shape)}", atol=1e-3)
            print(f"synthetic maps {net_type} {overrides} {role} {tuple(maps[role]['heatmap'].shape[-2:])}: "
                  f"max |diff| {diff:.2e}")


@pytest.mark.parametrize("case", TARGET_CASES, ids=lambda c: f"{c[0]}-mask{c[1]}")
def test_targets_match_deeplabcuts_generators(peer, case):
    generator, masking, background = case
    (_, theirs), = [(j, r) for j, r in zip(JOBS, peer) if j.get("function", "").endswith(generator)
                    and j["init_kwargs"]["gradient_masking"] == masking]
    theirs = theirs["value"]
    kp, mode = keypoints_for_targets(), "gaussian" if "Gaussian" in generator else "plateau"
    heat, weights = heatmap_targets(kp, MAP, STRIDE, sigma=2 * 17 / 3, radius=17.0, mode=mode,
                                    gradient_masking=masking, background_weight=background)
    locref, locref_weights = locref_targets(kp, MAP, STRIDE, 17.0, mode=mode)
    close(heat, theirs["heatmap"]["target"], "heatmap")
    close(weights.expand_as(heat), theirs["heatmap"]["weights"], "heatmap weights")
    close(locref, theirs["locref"]["target"], "locref")
    close(locref_weights, theirs["locref"]["weights"].float(), "locref weights")


def test_loss_criteria_reduce_as_deeplabcuts(peer):
    calls = [(j, r) for j, r in zip(JOBS, peer) if j.get("function", "").startswith(CRIT)]
    ours = {"WeightedMSECriterion": losses.weighted_mse, "WeightedHuberCriterion": losses.weighted_huber,
            "WeightedBCECriterion": losses.weighted_bce_with_logits}
    for job, theirs in calls:
        name = job["function"].rsplit(":", 1)[1]
        if name == "WeightedLossAggregator":
            value = losses.aggregate(job["args"][0], job["init_kwargs"]["weights"])
        else:
            value = ours[name](*job["args"])
        close(value, theirs["value"], name, atol=1e-6)
