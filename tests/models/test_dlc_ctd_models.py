"""Conditional top-down (ctd_*) models against DeepLabCut 3.0.2 itself (tests/dlc_peer.py).

The 7 ctd net_types and DeepLabCut's 2 human variants (384 x 288 crops): same state-dict keys and
shapes (identity key map) as DeepLabCut builds from its own configs; with DeepLabCut's (randomized)
weights loaded into ours, the same head outputs and keypoints for the same crops and conditions
(small crops: the configs' img_size overridden on both sides); the condition encoder gives
DeepLabCut's maps, quirks included (pixel int(x) - 1, -1 wraps); DeepLabCut's model folder for a
ctd net_type loads through our model-folder reader.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from dlc_peer import Largest, run_peer
from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.simcc import default_sigma
from lightning_dlc.models.keypoint_encoders import StackedKeypointEncoder
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

NET_TYPES = ("ctd_prenet_rtmpose_s", "ctd_prenet_rtmpose_m", "ctd_prenet_rtmpose_x", "ctd_prenet_hrnet_w32",
             "ctd_prenet_hrnet_w48", "ctd_coam_w32", "ctd_coam_w48", "ctd_prenet_rtmpose_x_human", "ctd_coam_w48_human")
BODYPARTS = ("snout", "left_ear", "right_ear", "tail")
META = ProjectMeta(bodyparts=BODYPARTS, individuals=("a", "b"))
PROJECT = {"bodyparts": list(BODYPARTS), "individuals": ["a", "b"], "multianimal": True}
# (net_type, (H, W)): CoAM on a non-square crop too, where DeepLabCut resizes conditions to (W, H)
FORWARD = [("ctd_prenet_rtmpose_s", (64, 96)), ("ctd_prenet_hrnet_w32", (64, 64)), ("ctd_coam_w32", (64, 64)),
           ("ctd_coam_w32", (64, 96))]
ENCODER = "deeplabcut.pose_estimation_pytorch.models.modules.kpt_encoders:StackedKeypointEncoder"
LARGEST = Largest("ctd")


def conditions(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    """[batch, 4, 3] (x, y, score) in crop pixels: inside; missing (NaN, 0); score 0 with coordinates;
    x in [0, 1) (DeepLabCut's -1 wraps to the last column); outside; exactly on the far border."""
    H, W = size
    g = torch.Generator().manual_seed(H * W)
    xy = torch.rand(batch, 4, 2, generator=g) * torch.tensor([W - 2.0, H - 2.0]) + 1
    kp = torch.cat([xy, torch.rand(batch, 4, 1, generator=g) * 0.9 + 0.1], -1)
    kp[0, 1] = torch.tensor([float("nan"), float("nan"), 0.0])
    kp[0, 2, 2] = 0.0
    kp[1, 0, 0] = 0.4
    kp[1, 1] = torch.tensor([W + 3.0, 5.0, 0.8])
    kp[1, 2] = torch.tensor([float(W), float(H), 0.7])
    return kp


def images(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(sum(size)))


def size_updates(net_type: str, size: tuple[int, int]) -> dict:
    """DeepLabCut's config for an (H, W) crop: img_size; RTMPose's head made for it (sizes (W, H) there)."""
    H, W = size
    updates = {"model.backbone.img_size": [H, W]}
    if "rtmpose" in net_type:
        head, sigma = "model.heads.bodypart", list(default_sigma(size))
        updates.update({f"{head}.input_size": [W, H], f"{head}.in_featuremap_size": [H // 32, W // 32],
                        f"{head}.target_generator.input_size": [W, H], f"{head}.target_generator.sigma": sigma,
                        f"{head}.predictor.sigma": sigma})
    return updates


def model_config(name: str, size: tuple[int, int] | None = None):
    overrides = [f"model={name}", "model.backbone.pretrained=false"]
    if size is not None:
        crop = f"[{size[0]},{size[1]}]"
        overrides.append(f"model.top_down.crop_size={crop}")
        if "rtmpose" in name:
            overrides.append(f"model.heads.single.bodypart.input_size={crop}")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides).model


@pytest.fixture(scope="module")
def peer():
    shapes = [{"net_type": n, "project": PROJECT, "ctd_conditions": 1, "shapes_only": True} for n in NET_TYPES]
    forward = [{"net_type": n, "project": PROJECT, "ctd_conditions": 1, "seed": i, "inputs": [images(size)],
                "conditions": [conditions(size).unsqueeze(1)], "config_updates": size_updates(n, size)}
               for i, (n, size) in enumerate(FORWARD)]
    encode = [{"kind": "call", "function": ENCODER, "attribute": "__call__",
               "init_kwargs": {"num_joints": 4, "kernel_size": [15, 15], "img_size": list(size)},
               "args": [conditions(size).numpy(), list(size)]} for size in ((64, 64), (48, 80))]
    results = run_peer([*shapes, *forward, *encode])
    yield {"shapes": results[:len(shapes)], "forward": list(zip(forward, results[len(shapes):-len(encode)])),
           "encode": results[-len(encode):]}
    LARGEST.print()


def close(what: str, ours: torch.Tensor, theirs, atol: float = 1e-5, scale: float | None = None) -> None:
    """Within ``atol`` times the output's scale (default: its largest magnitude, at least 1): 0-255
    condition maps through random weights make heatmaps of ~1e4, where float32 sums in another order
    differ by ~1e-6 of that."""
    ours, theirs = ours.double(), torch.as_tensor(theirs).double()
    if scale is None:
        scale = theirs.abs().max().item() if theirs.numel() else 1.0
    atol *= max(1.0, scale)
    LARGEST.note(what, (ours - theirs).abs().max() if ours.numel() else 0.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("index", range(len(NET_TYPES)))
def test_parameter_names_and_shapes_are_deeplabcuts(peer, index):
    name = NET_TYPES[index]
    theirs = peer["shapes"][index]
    cfg = model_config(name)
    with torch.device("meta"):  # shapes only: no memory, no init time
        ours = model_from_config(cfg, META)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    expected = theirs["shapes"]
    assert shapes == expected, (
        f"missing {sorted(expected.keys() - shapes.keys())[:6]}, extra {sorted(shapes.keys() - expected.keys())[:6]}, "
        f"resized {[k for k in shapes.keys() & expected.keys() if shapes[k] != expected[k]][:6]}")
    assert ours.conditional and cfg.conditional
    dlc = theirs["config"]
    backbone = dlc["model"]["backbone"]
    # the crop the model is made for (DeepLabCut's data section says 256 x 256 even for rtmpose_x's 384)
    assert list(cfg.top_down.crop_size) == backbone["img_size"]
    if "rtmpose" in name:
        assert dlc["model"]["heads"]["bodypart"]["input_size"] == backbone["img_size"][::-1]  # (W, H) there
    assert cfg.top_down.margin == dlc["data"]["bbox_margin"]
    assert list(ours.backbone.cond_enc.kernel_size) == backbone["kpt_encoder"]["kernel_size"]


@pytest.mark.parametrize("index", range(len(FORWARD)))
def test_outputs_and_keypoints_equal_deeplabcuts(peer, index):
    job, theirs = peer["forward"][index]
    name, size = FORWARD[index]
    model = model_from_config(model_config(name, size), META).eval()
    model.load_state_dict(theirs["state_dict"], strict=True)
    cond = job["conditions"][0][:, 0]
    with torch.no_grad():
        outputs = model(job["inputs"][0], cond)
        predicted = model.heads["bodypart"].predict(outputs["bodypart"], 1)  # one animal per crop
    their_out = theirs["outputs"][0]["bodypart"]
    assert set(outputs["bodypart"]) == set(their_out)
    for key, value in their_out.items():
        close(f"{name} {size} {key}", outputs["bodypart"][key], value)
    poses = theirs["predictions"][0]["bodypart"]["poses"]
    # keypoints: 1e-3 pixels, times the location refinement's scale (its offsets of ~1e4 times locref_std)
    refine = their_out["locref"].abs().max().item() * 7.2801 if "locref" in their_out else 1.0
    close(f"{name} {size} keypoints", predicted[..., :2], poses[..., :2], atol=1e-3, scale=refine)
    close(f"{name} {size} scores", predicted[..., 2], poses[..., 2])
    with torch.no_grad():  # the conditions change the answer
        assert not torch.allclose(model(job["inputs"][0], cond.flip(0))["bodypart"][next(iter(their_out))],
                                  outputs["bodypart"][next(iter(their_out))])


@pytest.mark.parametrize("index", range(2))
def test_condition_maps_equal_deeplabcuts(peer, index):
    theirs = torch.from_numpy(peer["encode"][index]["value"]).permute(0, 3, 1, 2)  # (B, H, W, C) there
    size = tuple(theirs.shape[-2:])
    ours = StackedKeypointEncoder(4, (15, 15))(conditions(size), size)
    close(f"condition maps {size}", ours, theirs, atol=1e-3)  # 0-255 scale
    assert ours.amax(dim=(1, 2, 3)).tolist() == [255.0, 255.0]
    assert ours[1, 0, :, -1].amax() > 0  # x = 0.4: DeepLabCut's last column
    assert ours[0, 1].abs().sum() == 0 and ours[0, 2].abs().sum() == 0 and ours[1, 1].abs().sum() == 0


def test_a_ctd_model_needs_conditions():
    model = model_from_config(model_config("ctd_prenet_hrnet_w32", (64, 64)), META).eval()
    with pytest.raises(ValueError, match="conditional .CTD. model: it needs conditions"):
        model(images((64, 64)))
    with pytest.raises(ValueError, match=r"conditions must be \[batch, 4 bodyparts, 3\]"):
        model(images((64, 64)), conditions((64, 64))[:, :3])
    coam = model_from_config(model_config("ctd_coam_w32", (64, 64)), META).eval()
    with pytest.raises(ValueError, match="made for .64, 64. .height, width. inputs"):
        coam(images((64, 96)), conditions((64, 96)))
    assert np.isfinite(coam(images((64, 64)), conditions((64, 64)))["bodypart"]["heatmap"].detach().numpy()).all()


def test_deeplabcut_ctd_model_folder_loads_here(peer, tmp_path):
    """DeepLabCut's pytorch_config.yaml + snapshot for a ctd net_type (its CoAM made for 64 x 96 crops)
    rebuild our model through the model-folder reader, which then gives DeepLabCut's outputs."""
    import yaml

    from lightning_dlc.inference.predict import load_model
    from lightning_dlc.models.dlc_model_folder import from_dlc_snapshot

    index = FORWARD.index(("ctd_coam_w32", (64, 96)))
    job, theirs = peer["forward"][index]
    project = tmp_path / "project"
    train = project / "dlc-models-pytorch" / "iteration-0" / "peerJan1-trainset95shuffle1" / "train"
    train.mkdir(parents=True)
    (project / "config.yaml").write_text(yaml.safe_dump(dict(
        Task="peer", scorer="peer", date="Jan1", project_path=str(project), iteration=0, multianimalproject=True,
        identity=False, bodyparts="MULTI!", multianimalbodyparts=list(BODYPARTS), uniquebodyparts=[],
        individuals=["a", "b"], skeleton=[], TrainingFraction=[0.95], video_sets={})))
    (train / "pytorch_config.yaml").write_text(yaml.safe_dump(theirs["config"]))
    snapshot = train / "snapshot-005.pt"
    torch.save({"model": theirs["state_dict"], "metadata": {"epoch": 5}}, snapshot)
    contents = from_dlc_snapshot(snapshot)
    assert contents["run_config"]["model"]["top_down"]["crop_size"] == [64, 96]
    assert contents["run_config"]["model"]["conditional"] is True
    model = load_model(snapshot)  # the path analysis and evaluation take: strict, shapes checked
    assert model.conditional
    with torch.no_grad():
        outputs = model(job["inputs"][0], job["conditions"][0][:, 0])
    for key, value in theirs["outputs"][0]["bodypart"].items():
        close(f"model folder ctd_coam_w32 {key}", outputs["bodypart"][key], value)
