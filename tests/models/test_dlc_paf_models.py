"""DeepLabCut 3.0.2's multi-animal PAF models, exactly: DLCRNet backbones, DLCRNetHead, identity head,
PAF / plateau targets and the PartAffinityFieldPredictor with its Assembler.

Every net_type of the family is built in both engines for a multi-animal project; parameter names
and shapes must be equal (the key map is the identity). For the DLCRNets (and the smallest ResNet,
HRNet and CSPNeXt), DeepLabCut's randomized state dict loads strictly into ours and head outputs
and assembled predictions are compared on inputs divisible by 32 and odd. Synthetic maps (ties,
logits far above 1, peaks in the first row and column, 10 animals x 9 bodyparts) must decode to
the same animals. Skips where DeepLabCut's environment is absent.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from dlc_peer import Largest, run_peer
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.identity import IdentityHead, identity_targets
from lightning_dlc.models.heads.paf import PafHead, paf_graph
from lightning_dlc.models.heads.paf_assembly import predict_paf
from lightning_dlc.models.heads.paf_targets import paf_targets
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

NET_TYPES = ["resnet_50", "resnet_101", "hrnet_w18", "hrnet_w32", "hrnet_w48", "cspnext_s", "cspnext_m",
             "cspnext_x", "dlcrnet_stride16_ms5", "dlcrnet_stride32_ms5"]
FORWARD = ["dlcrnet_stride16_ms5", "dlcrnet_stride32_ms5", "resnet_50", "hrnet_w18", "cspnext_s"]
BODYPARTS = ["snout", "ear", "tail"]
MULTI = {"bodyparts": BODYPARTS, "multianimal": True, "individuals": ["a", "b", "c"]}
FULL = {**MULTI, "identity": True}
META = {"multi": ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("a", "b", "c")),
        "full": ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("a", "b", "c"), identity=True)}
DLC = "deeplabcut.pose_estimation_pytorch.models."
PREDICTOR = DLC + "predictors.paf_predictor:PartAffinityFieldPredictor"
K, MAP, STRIDE = 3, (17, 23), 4
LARGEST = Largest("paf")  # printed with -s


def images(*size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def synthetic_maps(size: tuple[int, int], n_edges: int, seed: int) -> dict[str, torch.Tensor]:
    """Logits with ties, peaks in the first row and column, large values; random locref and PAFs."""
    g = torch.Generator().manual_seed(seed)
    heat = torch.randn(2, K, *size, generator=g) * 3 - 2
    heat[0, 0, 0, 4] = heat[0, 0, 0, 5] = 9.0  # a tie in the first row
    heat[0, 1, 6, 0] = 12.0  # first column
    heat[0, 2, 0, 0] = 7.0  # the corner
    heat[1, 1] = 0.5  # a flat map: every cell ties
    locref = torch.randn(2, 2 * K, *size, generator=g)
    paf = torch.randn(2, 2 * n_edges, *size, generator=g)
    return {"heatmap": heat, "locref": locref, "paf": paf}


def herd(n_animals: int = 10, n_parts: int = 9, seed: int = 0) -> torch.Tensor:
    """``[1, N, K, 3]`` animals on a 10 x 10-ish grid of cells, bodyparts along a short curve."""
    g = torch.Generator().manual_seed(seed)
    origin = torch.stack([torch.arange(n_animals) % 5 * 70 + 20, torch.arange(n_animals) // 5 * 90 + 20], 1).float()
    steps = torch.rand(n_animals, n_parts, 2, generator=g) * torch.tensor([6.0, 9.0]) + 1
    xy = origin[:, None] + steps.cumsum(1)
    return torch.cat([xy, torch.full((n_animals, n_parts, 1), 2.0)], -1)[None]


def perfect_maps(kp: torch.Tensor, size: tuple[int, int], stride: int) -> dict[str, torch.Tensor]:
    """Head outputs a trained model would give: peaked logits, exact locref, PAF targets."""
    from lightning_dlc.models.heads.heatmap_targets import heatmap_targets, locref_targets

    n_parts = kp.shape[2]
    heat, _ = heatmap_targets(kp, size, stride, sigma=stride, mode="gaussian")
    locref, _ = locref_targets(kp, size, stride, 2.0 * stride, mode="plateau")
    paf, _ = paf_targets(kp, paf_graph(n_parts), size, stride, 2.0 * stride)
    return {"heatmap": heat * 12 - 6, "locref": locref, "paf": paf}


def target_keypoints() -> torch.Tensor:
    """[B=2, N=3, K, 3]: labeled, occluded (1), unlabeled (NaN), overlapping limbs, an empty animal."""
    nan = float("nan")
    return torch.tensor([
        [[[10.0, 12.0, 2], [30.0, 26.0, 2], [5.0, 50.0, 1]],
         [[18.0, 15.0, 2], [nan, nan, 0], [40.0, 40.0, 2]],
         [[20.0, 30.0, 2], [70.0, 34.0, 2], [66.0, 44.0, 2]]],
        [[[75.0, 3.0, 2], [22.0, 22.0, 2], [31.5, 33.5, 2]],
         [[70.0, 9.0, 1], [50.0, 20.0, 2], [nan, nan, 0]],
         [[nan, nan, 0], [nan, nan, 0], [nan, nan, 0]]],
    ], dtype=torch.float64)


def dlc_keypoints(kp: torch.Tensor) -> torch.Tensor:
    """DeepLabCut's form: unlabeled keypoints at (0, 0) with visibility 0."""
    return torch.where(kp[..., :2].isfinite().all(-1, keepdim=True), kp, torch.zeros(3, dtype=kp.dtype))


def model_config(name: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false"]).model


def predictor_kwargs(n_animals: int, n_parts: int, edges_to_keep=None) -> dict:
    graph = [list(e) for e in paf_graph(n_parts)]
    return {"num_animals": n_animals, "num_multibodyparts": n_parts, "num_uniquebodyparts": 0, "graph": graph,
            "edges_to_keep": list(range(len(graph))) if edges_to_keep is None else edges_to_keep,
            "locref_stdev": 7.2801, "nms_radius": 5, "sigma": 1.0, "min_affinity": 0.05}


SHAPES = [(name, "multi") for name in NET_TYPES] + [("dlcrnet_stride16_ms5", "full"), ("resnet_50", "full")]
KEEP = [2, 0]  # a subset of the 3 edges, out of order


def _jobs() -> list[dict]:
    jobs: list[dict] = [{"net_type": n, "project": FULL if m == "full" else MULTI, "shapes_only": True}
                        for n, m in SHAPES]
    for name in FORWARD:
        project = FULL if name == "dlcrnet_stride16_ms5" else MULTI
        # DeepLabCut pads HRNet's inputs to multiples of 32 (its models need them): no odd size there
        sizes = [(64, 96), (67, 93)] if name.startswith("dlcrnet") else [(64, 96) if "hrnet" in name else (67, 93)]
        jobs.append({"net_type": name, "project": project,
                     "inputs": [images(*s, seed=i) for i, s in enumerate(sizes)]})
    identity = {"heatmap": synthetic_maps(MAP, 1, 9)["heatmap"]}  # DeepLabCut decodes every head's maps
    jobs[len(SHAPES)]["maps"] = [{"bodypart": synthetic_maps(MAP, 3, 2), "identity": identity},
                                 {"bodypart": synthetic_maps((9, 11), 3, 3), "identity": identity}]
    calls = [({"init_kwargs": predictor_kwargs(3, K)}, synthetic_maps(MAP, 3, 4)),
             ({"init_kwargs": predictor_kwargs(3, K, KEEP)}, synthetic_maps(MAP, 3, 5)),
             ({"init_kwargs": predictor_kwargs(1, K)}, synthetic_maps(MAP, 3, 6)),
             ({"init_kwargs": predictor_kwargs(10, 9)}, perfect_maps(herd(), (60, 90), STRIDE))]
    for init, maps in calls:
        jobs.append({"kind": "call", "function": PREDICTOR, "attribute": "forward", "args": [STRIDE, maps], **init})
    kp = dlc_keypoints(target_keypoints()).float()
    outputs = {"heatmap": torch.zeros(2, K, *MAP), "paf": torch.zeros(2, 6, *MAP)}
    jobs.append({"kind": "call", "function": DLC + "target_generators.pafs_targets:PartAffinityFieldGenerator",
                 "init_kwargs": {"graph": [list(e) for e in paf_graph(K)], "width": 20}, "attribute": "forward",
                 "args": [STRIDE, outputs, {"keypoints": kp}]})
    jobs.append({"kind": "call", "function": DLC + "target_generators.heatmap_targets:HeatmapPlateauGenerator",
                 "init_kwargs": {"num_heatmaps": 3, "pos_dist_thresh": 17, "heatmap_mode": "INDIVIDUAL",
                                 "generate_locref": False},
                 "attribute": "forward",
                 "args": [STRIDE, {"heatmap": torch.zeros(2, 3, *MAP)},
                          {"keypoints": kp, "individual_ids": torch.tensor([[0, 1, 2], [0, 1, 2]])}]})
    jobs.append({"kind": "call", "function": DLC + "predictors.identity_predictor:IdentityPredictor",
                 "attribute": "forward", "args": [STRIDE, {"heatmap": synthetic_maps(MAP, 1, 8)["heatmap"]}]})
    jobs.append({"kind": "call", "function": DLC + "target_generators.heatmap_targets:HeatmapPlateauGenerator",
                 "init_kwargs": {"num_heatmaps": K, "pos_dist_thresh": 17, "heatmap_mode": "KEYPOINT",
                                 "generate_locref": True, "locref_std": 7.2801},
                 "attribute": "forward",
                 "args": [STRIDE, {"heatmap": torch.zeros(2, K, *MAP), "locref": torch.zeros(2, 2 * K, *MAP)},
                          {"keypoints": kp}]})
    return jobs


N_FORWARD = len(FORWARD)
FIRST_CALL = len(SHAPES) + N_FORWARD


@pytest.fixture(scope="module")
def peer() -> list[dict]:
    return run_peer(_jobs())


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    LARGEST.print()


note = LARGEST.note


def dlc_poses(poses: torch.Tensor) -> torch.Tensor:
    """DeepLabCut's poses ``[..., 5]`` -> ours: -1 rows (no animal) and NaN joints as NaN (x, y, score)."""
    poses = poses[..., :3].float()
    empty = (poses == -1).all(-1, keepdim=True).all(-2, keepdim=True)
    poses = torch.where(empty, float("nan"), poses)
    return torch.where(poses[..., :1].isnan(), float("nan"), poses)


def assert_poses(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    theirs = dlc_poses(theirs)
    torch.testing.assert_close(ours[..., :2], theirs[..., :2], rtol=0, atol=1e-3, equal_nan=True)
    torch.testing.assert_close(ours[..., 2], theirs[..., 2], rtol=1e-4, atol=1e-5, equal_nan=True)
    note(f"keypoint difference (px), {what}", (ours[..., :2] - theirs[..., :2]).abs().nan_to_num().max())


@pytest.mark.parametrize("index", range(len(SHAPES)), ids=[f"{n}-{m}" for n, m in SHAPES])
def test_same_parameter_names_and_shapes(peer, index):
    name, meta = SHAPES[index]
    ours = {k: tuple(v.shape) for k, v in model_from_config(model_config(name), META[meta]).state_dict().items()}
    theirs = peer[index]["shapes"]
    assert sorted(set(ours) ^ set(theirs)) == []
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}


@pytest.mark.parametrize("name", FORWARD)
def test_same_outputs_and_predictions(peer, name):
    index = len(SHAPES) + FORWARD.index(name)
    result = peer[index]
    meta = META["full" if name == "dlcrnet_stride16_ms5" else "multi"]
    model = model_from_config(model_config(name), meta)
    model.load_state_dict(result["state_dict"], strict=True)
    model.eval()
    head = model.heads["bodypart"]
    job = _jobs()[index]
    for inputs, theirs, predicted in zip(job["inputs"], result["outputs"], result["predictions"]):
        with torch.no_grad():
            outputs = model(inputs)
        for role, maps in theirs.items():
            for key, value in maps.items():
                torch.testing.assert_close(outputs[role][key], value, rtol=1e-4, atol=1e-5)
                note(f"{role} {key} difference, {name}", (outputs[role][key] - value).abs().max())
        poses = head.predict(outputs["bodypart"], meta.max_individuals)
        assert_poses(poses, predicted["bodypart"]["poses"], name)
        if "identity" in predicted:
            maps = model.heads["identity"].identity_maps(outputs["identity"])
            torch.testing.assert_close(maps.permute(0, 2, 3, 1), predicted["identity"]["heatmap"], rtol=1e-4,
                                       atol=1e-5)


def test_same_decoding_of_synthetic_maps(peer):
    job, result = _jobs()[len(SHAPES)], peer[len(SHAPES)]
    head = PafHead(in_channels=8, in_stride=16, n_bodyparts=K)
    for maps, decoded in zip(job["maps"], result["decoded"]):
        assert_poses(head.predict(maps["bodypart"], 3), decoded["bodypart"]["poses"], "synthetic maps")


@pytest.mark.parametrize("call", range(4), ids=["3-animals", "edges-to-keep", "1-animal", "10x9-herd"])
def test_same_predictor(peer, call):
    job, theirs = _jobs()[FIRST_CALL + call], peer[FIRST_CALL + call]["value"]["poses"]
    init = job["init_kwargs"]
    maps = job["args"][1]
    start = time.perf_counter()
    ours = predict_paf(maps["heatmap"], maps["locref"], maps["paf"], [tuple(e) for e in init["graph"]], STRIDE,
                       init["num_animals"], edges_to_keep=init["edges_to_keep"])
    elapsed = time.perf_counter() - start
    assert_poses(ours, theirs, "predictor calls")
    if call == 3:  # the herd: every animal found, and fast
        assert ours[..., 0].isfinite().all()
        truth = herd()[0, :, :, :2]
        found = (ours[0, :, None, :, :2] - truth[None]).norm(dim=-1).amax(-1).amin(1)
        assert (found < 1e-3).all(), found
        note("10 x 9 herd assembly time (s)", elapsed)
        assert elapsed < 2.0


def test_same_paf_targets(peer):
    theirs = peer[FIRST_CALL + 4]["value"]["paf"]["target"]
    ours, weights = paf_targets(target_keypoints(), paf_graph(K), MAP, STRIDE, 20.0)
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-4, atol=1e-5)
    assert (weights == 1).all()
    note("PAF target difference", (ours.float() - theirs).abs().max())


def test_same_identity_targets_and_maps(peer):
    theirs = peer[FIRST_CALL + 5]["value"]["heatmap"]
    ours, weights = identity_targets(target_keypoints(), MAP, STRIDE, 17.0, 3)
    torch.testing.assert_close(ours.float(), theirs["target"], rtol=0, atol=0)
    torch.testing.assert_close(weights.float().expand_as(ours), theirs["weights"], rtol=0, atol=0)
    head = IdentityHead(in_channels=8, in_stride=2 * STRIDE, n_identities=3)
    maps = head.identity_maps({"heatmap": synthetic_maps(MAP, 1, 8)["heatmap"]})
    expected = peer[FIRST_CALL + 6]["value"]["heatmap"]
    torch.testing.assert_close(maps.permute(0, 2, 3, 1), expected, rtol=1e-4, atol=1e-5)
    note("identity map difference", (maps.permute(0, 2, 3, 1) - expected).abs().max())


def test_same_plateau_and_locref_targets(peer):
    theirs = peer[FIRST_CALL + 7]["value"]
    head = PafHead(in_channels=8, in_stride=4 * STRIDE, n_bodyparts=K)
    assert head.stride == STRIDE
    outputs = {"heatmap": torch.zeros(2, K, *MAP), "paf": torch.zeros(2, 6, *MAP)}
    ours = head.targets(target_keypoints(), outputs)
    for name in ("heatmap", "locref"):
        torch.testing.assert_close(ours[name].float(), theirs[name]["target"], rtol=1e-4, atol=1e-5)
        weights = ours[f"{name}_weights"].float().expand_as(ours[name])
        torch.testing.assert_close(weights, theirs[name]["weights"].float(), rtol=0, atol=0)
        note(f"{name} target difference", (ours[name].float() - theirs[name]["target"]).abs().max())
