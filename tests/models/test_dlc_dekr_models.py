"""DeepLabCut 3.0.2's DEKR models (dekr_w18/w32/w48), exactly: layers, weights, outputs, targets, loss, decoding.

Each net_type is built in both engines; DeepLabCut's (randomized) state dict loads strictly into
ours (the key map is the identity), and head outputs, predictions, synthetic-map decoding, the
target generator and the loss criteria are compared. Skips where DeepLabCut's environment is absent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dlc_peer import Largest, run_peer
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.dekr import DEKRHead
from lightning_dlc.models.heads.dekr_decode import decode_dekr, local_maxima
from lightning_dlc.models.heads.dekr_targets import animal_areas, dekr_targets, with_centres
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

NET_TYPES = ["dekr_w18", "dekr_w32", "dekr_w48"]
BODYPARTS = ["snout", "ear", "tail"]
SINGLE = {"bodyparts": BODYPARTS, "multianimal": False, "unique_bodyparts": ["feeder"]}
MULTI = {"bodyparts": BODYPARTS, "multianimal": True, "individuals": ["a", "b", "c"]}
FULL = {**MULTI, "unique_bodyparts": ["feeder"], "identity": True}
META = {"single": ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("single",), unique_bodyparts=("feeder",)),
        "multi": ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("a", "b", "c")),
        "full": ProjectMeta(bodyparts=tuple(BODYPARTS), individuals=("a", "b", "c"), unique_bodyparts=("feeder",),
                            identity=True)}
DLC = "deeplabcut.pose_estimation_pytorch."
PREDICTOR = DLC + "models.predictors.dekr_predictor:DEKRPredictor"
K, MAP, STRIDE = 3, (15, 21), 4
LARGEST = Largest("dekr")  # printed with -s


def images(*size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def synthetic_maps(size: tuple[int, int], seed: int) -> dict[str, torch.Tensor]:
    """Maps that trip decoders: tied centre peaks, values above 1, maxima in the first row and column."""
    g = torch.Generator().manual_seed(seed)
    heat = torch.rand(2, K + 1, *size, generator=g) * 1.5 - 0.3
    heat[0, K, 0, 6] = heat[0, K, 9, 1] = 2.0  # tie between two centres
    heat[0, K, 5, 0] = 1.7  # first column
    heat[1, K] = 0.25  # a flat centre map: every cell ties
    heat[1, 0, 0, :] = 1.3  # a bodypart ridge in the first row
    offset = torch.randn(2, 2 * K, *size, generator=g) * 4
    # the tied centres (x 6, y 0) and (x 1, y 9) regress nearly the same pose: pose NMS drops one
    offset[0, 0::2, 0, 6] = offset[0, 0::2, 9, 1] + 5.01
    offset[0, 1::2, 0, 6] = offset[0, 1::2, 9, 1] - 9.0
    return {"heatmap": heat, "offset": offset}


def target_keypoints() -> torch.Tensor:
    """[B=3, N=3, K, 3]: labeled, occluded (1), unlabeled (NaN), undefined (-1), outside the map, an
    empty animal, overlapping animals: the larger first (image 0), the smaller first (image 1: it keeps
    its cells), and the larger taking the smaller's cells with its first joint (image 2: then it
    overwrites its later joints there too, as DeepLabCut's loop does)."""
    nan = float("nan")
    return torch.tensor([
        [[[10.0, 12.0, 2], [30.0, 26.0, 2], [5.0, 50.0, 1]],
         [[18.0, 15.0, 2], [nan, nan, 0], [-6.0, 40.0, 2]],
         [[60.0, 30.0, 2], [70.0, 34.0, 2], [66.0, 44.0, 2]]],
        [[[75.0, 3.0, 2], [22.0, 22.0, -1], [31.5, 33.5, 2]],
         [[70.0, 9.0, 1], [50.0, 20.0, 2], [nan, nan, 0]],
         [[45.0, 10.0, 2], [80.0, 40.0, 2], [60.0, 30.0, 2]]],
        [[[nan, nan, 0], [50.0, 20.0, 2], [40.0, 25.0, 2]],
         [[75.0, 3.0, 2], [22.0, 22.0, 2], [31.5, 33.5, 2]],
         [[nan, nan, 0], [nan, nan, 0], [nan, nan, 0]]],
    ])


def dlc_keypoints(kp: torch.Tensor) -> torch.Tensor:
    """DeepLabCut's form: unlabeled keypoints at (0, 0) with visibility 0."""
    return torch.where(kp[..., :2].isfinite().all(-1, keepdim=True), kp, torch.zeros(3))


def model_config(name: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false"]).model


def _jobs() -> list[dict]:
    jobs: list[dict] = []
    for name in NET_TYPES:
        jobs.append({"net_type": name, "project": SINGLE, "shapes_only": True})
        jobs.append({"net_type": name, "project": FULL, "shapes_only": True})
    jobs.append({"net_type": "dekr_w18", "project": MULTI, "inputs": [images(64, 96), images(96, 64, seed=1)],
                 "maps": [{"bodypart": synthetic_maps(MAP, 2)}, {"bodypart": synthetic_maps((11, 9), 3)}]})
    jobs.append({"net_type": "dekr_w18", "project": SINGLE, "inputs": [images(64, 96, seed=4)]})
    kp = target_keypoints()
    centres = with_centres(kp)
    area = animal_areas(kp, (MAP[0] * STRIDE, MAP[1] * STRIDE))
    outputs = {"heatmap": torch.zeros(len(kp), K + 1, *MAP), "offset": torch.zeros(len(kp), 2 * K, *MAP)}
    jobs.append({"kind": "call", "function": DLC + "models.target_generators.dekr_targets:DEKRGenerator",
                 "init_kwargs": {"num_joints": K, "pos_dist_thresh": 17, "bg_weight": 0.1}, "attribute": "forward",
                 "args": [STRIDE, outputs, {"keypoints": torch.cat([dlc_keypoints(kp), centres[:, :, K:]], 2),
                                            "area": area}]})
    for image in dlc_keypoints(kp).numpy().astype(np.float64):
        jobs.append({"kind": "call", "function": DLC + "data.dataset:PoseDataset.add_center_keypoints",
                     "args": [image]})
        jobs.append({"kind": "call", "function": DLC + "data.utils:bbox_from_keypoints",
                     "args": [image, MAP[0] * STRIDE, MAP[1] * STRIDE, 20]})
    g = torch.Generator().manual_seed(7)
    loss_inputs = {"output": torch.randn(2, 2 * K, *MAP, generator=g), "target": torch.randn(2, 2 * K, *MAP, generator=g),
                   "weights": (torch.rand(2, 2 * K, *MAP, generator=g) > 0.7) * torch.rand(2, 2 * K, *MAP, generator=g)}
    for criterion in ("DEKRHeatmapLoss", "DEKROffsetLoss"):
        jobs.append({"kind": "call", "function": DLC + f"models.criterions.dekr:{criterion}", "attribute": "forward",
                     "kwargs": loss_inputs})
    for options in PREDICTOR_OPTIONS:
        jobs.append({"kind": "call", "function": PREDICTOR, "init_kwargs": {"num_animals": 3, **options},
                     "attribute": "forward", "args": [STRIDE, synthetic_maps(MAP, 5)]})
    return jobs


PREDICTOR_OPTIONS = [
    {"apply_sigmoid": False, "clip_scores": True, "use_heatmap": True, "keypoint_score_type": "heatmap",
     "max_absorb_distance": 3},
    {"apply_sigmoid": True, "clip_scores": False, "use_heatmap": False, "keypoint_score_type": "center"},
    {"apply_sigmoid": False, "clip_scores": False, "use_heatmap": False, "keypoint_score_type": "combined",
     "apply_pose_nms": False},
]
N_NET_JOBS = 2 * len(NET_TYPES)
TARGETS = N_NET_JOBS + 2  # then per target image: centres, box
LOSSES = TARGETS + 1 + 2 * len(target_keypoints())  # heatmap, offset
PREDICTORS = LOSSES + 2


@pytest.fixture(scope="module")
def peer() -> list[dict]:
    return run_peer(_jobs())


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    LARGEST.print()


note = LARGEST.note


def dlc_poses(poses: torch.Tensor) -> torch.Tensor:
    """DeepLabCut marks poses NMS dropped with -1 (x, y and score); ours are NaN rows."""
    return torch.where((poses == -1).all(-1, keepdim=True).all(-2, keepdim=True), float("nan"), poses)


def assert_poses(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = dlc_poses(theirs.float())
    torch.testing.assert_close(ours[..., :2], theirs[..., :2], rtol=0, atol=1e-3, equal_nan=True)
    torch.testing.assert_close(ours[..., 2], theirs[..., 2], rtol=1e-4, atol=1e-5, equal_nan=True)
    note("keypoint difference (px)", (ours[..., :2] - theirs[..., :2]).abs().nan_to_num().max())


@pytest.mark.parametrize("index", range(N_NET_JOBS))
def test_same_parameter_names_and_shapes(peer, index):
    name = NET_TYPES[index // 2]
    meta = META["single" if index % 2 == 0 else "full"]
    ours = {k: tuple(v.shape) for k, v in model_from_config(model_config(name), meta).state_dict().items()}
    theirs = peer[index]["shapes"]
    assert sorted(set(ours) ^ set(theirs)) == []
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}


@pytest.mark.parametrize("index,meta", [(N_NET_JOBS, "multi"), (N_NET_JOBS + 1, "single")])
def test_same_outputs_and_predictions(peer, index, meta):
    result = peer[index]
    model = model_from_config(model_config("dekr_w18"), META[meta])
    model.load_state_dict(result["state_dict"], strict=True)
    model.eval()
    job = _jobs()[index]
    for inputs, theirs, predicted in zip(job["inputs"], result["outputs"], result["predictions"]):
        with torch.no_grad():
            outputs = model(inputs)
        for role, maps in theirs.items():
            for key, value in maps.items():
                if role == "bodypart" and key == "heatmap":  # DeepLabCut's predictor zeroed non-peak centres in place
                    outputs[role][key][:, K:] = local_maxima(outputs[role][key][:, K:])
                torch.testing.assert_close(outputs[role][key], value, rtol=1e-4, atol=1e-5)
                note(f"{role} {key} difference", (outputs[role][key] - value).abs().max())
        ours = model.predict(outputs)  # the masked centre map decodes as the raw one
        assert_poses(ours["bodypart"], predicted["bodypart"]["poses"])
        if "unique_bodypart" in predicted:
            assert_poses(ours["unique_bodypart"], predicted["unique_bodypart"]["poses"])


def test_same_decoding_of_synthetic_maps(peer):
    head = DEKRHead(in_channels=8, in_stride=STRIDE, n_bodyparts=K)
    job = _jobs()[N_NET_JOBS]
    for maps, decoded in zip(job["maps"], peer[N_NET_JOBS]["decoded"]):
        assert_poses(head.predict(maps["bodypart"], 3), decoded["bodypart"]["poses"])
    for options, result in zip(PREDICTOR_OPTIONS, peer[PREDICTORS:]):
        ours = decode_dekr(**synthetic_maps(MAP, 5), stride=STRIDE, n_individuals=3,
                           score_type=options["keypoint_score_type"],
                           **{k: v for k, v in options.items() if k != "keypoint_score_type"})
        assert_poses(ours, result["value"]["poses"])


def test_same_targets(peer):
    kp = target_keypoints()
    theirs = peer[TARGETS]["value"]
    ours = dekr_targets(kp, MAP, STRIDE, 17.0)
    for name in ("heatmap", "offset"):
        torch.testing.assert_close(ours[name], theirs[name]["target"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours[f"{name}_weights"], theirs[name]["weights"], rtol=1e-4, atol=1e-5)
        note(f"target {name} difference", (ours[name] - theirs[name]["target"]).abs().max())
    assert (theirs["offset"]["weights"] > 0).sum() > 20  # the case is not empty


def test_same_centres_and_areas(peer):
    kp = target_keypoints()
    centres, areas = with_centres(kp), animal_areas(kp, (MAP[0] * STRIDE, MAP[1] * STRIDE))
    for b in range(kp.shape[0]):
        theirs = torch.as_tensor(peer[TARGETS + 1 + 2 * b]["value"])
        torch.testing.assert_close(centres[b, :, K].double(), theirs[:, K], rtol=1e-6, atol=1e-5)
        box = torch.as_tensor(peer[TARGETS + 2 + 2 * b]["value"])
        torch.testing.assert_close(areas[b].double(), box[:, 2].clamp(min=1) * box[:, 3].clamp(min=1))


def test_same_losses(peer):
    loss_job = _jobs()[LOSSES]["kwargs"]
    head = DEKRHead(in_channels=8, in_stride=STRIDE, n_bodyparts=K)
    outputs = {"heatmap": loss_job["output"], "offset": loss_job["output"]}
    targets = {"heatmap": loss_job["target"], "heatmap_weights": loss_job["weights"], "offset": loss_job["target"],
               "offset_weights": loss_job["weights"]}
    losses = head.loss(outputs, targets)
    torch.testing.assert_close(losses["heatmap"], peer[LOSSES]["value"])
    torch.testing.assert_close(losses["offset"], peer[LOSSES + 1]["value"])
    torch.testing.assert_close(losses["total"], (losses["heatmap"] + 0.03 * losses["offset"]) / 2)
