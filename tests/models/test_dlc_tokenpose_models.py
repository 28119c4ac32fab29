"""``animaltokenpose_base`` is DeepLabCut 3.0.2's TokenPose, layer for layer (issue 15).

HRNet-W32 + DeepLabCut's ``Transformer`` neck + ``TransformerHead``: both engines build it, our
model loads DeepLabCut's (randomized) state dict with the identity key map, and head outputs,
decoded keypoints, targets and loss must agree. The neck's position embedding is made for 64 x 64
features, so DeepLabCut only runs 256 x 256 crops: there is no odd-size check here (our neck
refuses other sizes with a clear error, DeepLabCut fails inside its einops/broadcasts).
"""
from functools import partial
from pathlib import Path

import pytest
import torch
from dlc_peer import run_peer
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.tokenpose import TokenPoseHead
from lightning_dlc.models.necks.tokenpose import TokenPoseNeck, tokenpose_sine_embedding
from lightning_dlc.models.pose_model import PoseModel, model_from_config
from lightning_dlc.models.top_down import TopDown
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

NET_TYPE = "animaltokenpose_base"
DLC = "deeplabcut.pose_estimation_pytorch"
SINGLE = ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("single",))
# DeepLabCut refuses unique bodyparts in top-down models
MULTI = ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("a", "b"))
CROP = 256
STRIDE = 4


def peer_project(meta: ProjectMeta) -> dict:
    return {"bodyparts": list(meta.bodyparts), "individuals": list(meta.individuals),
            "multianimal": meta.multianimal, "unique_bodyparts": list(meta.unique_bodyparts),
            "identity": meta.identity}


def synthetic_maps() -> torch.Tensor:
    """Logits ``[2, 3, 64, 64]`` with ties, saturated sigmoids and peaks on the first row/column."""
    gen = torch.Generator().manual_seed(3)
    maps = torch.randn(2, 3, 64, 64, generator=gen)
    maps[0, 0, 10, 20] = maps[0, 0, 30, 5] = 6.0  # exact tie: the first in raster order wins
    maps[0, 1, 0, 37] = 9.0  # first row
    maps[0, 2, 41, 0] = 9.0  # first column
    maps[1, 0, 50, 50], maps[1, 0, 60, 2] = 20.0, 30.0  # both sigmoid to 1.0 in float32: a tie after it
    maps[1, 1, 0, 0] = 2.5  # the corner
    maps[1, 2] = -3.0  # a flat map: the first cell
    return maps


def labels() -> torch.Tensor:
    """Crop keypoints ``[2, 1, 3, 3]``: edges, outside the crop, unlabeled (0) and undefined (-1)."""
    return torch.tensor([[[[0.0, 0.0, 2.0], [255.0, 130.5, 2.0], [300.0, -10.0, 2.0]]],
                         [[[17.3, 240.9, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1.0]]]])


def our_model(meta: ProjectMeta):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={NET_TYPE}", "model.backbone.pretrained=false"])
    return model_from_config(cfg.model, meta)


@pytest.fixture(scope="module")
def peer():
    image = torch.randn(1, 3, CROP, CROP, generator=torch.Generator().manual_seed(1))
    target_generator = {"function": f"{DLC}.models.target_generators.heatmap_targets:HeatmapPlateauGenerator",
                        "init_kwargs": {"num_heatmaps": 3, "pos_dist_thresh": 17, "heatmap_mode": "KEYPOINT",
                                        "generate_locref": False}}
    # our targets, for DeepLabCut's loss on the same maps (the targets themselves are compared below)
    ours = TokenPoseHead(576, STRIDE, 3).targets(labels(), {})
    criterion_args = [synthetic_maps(), ours["heatmap"], ours["heatmap_weights"].expand(2, 3, 64, 64).contiguous()]
    jobs = [
        {"net_type": NET_TYPE, "top_down": True, "project": peer_project(MULTI), "shapes_only": True,
         "detector_type": "ssdlite"},
        {"net_type": NET_TYPE, "top_down": True, "project": peer_project(SINGLE), "seed": 0,
         "inputs": [image], "maps": [{"bodypart": {"heatmap": synthetic_maps()}}]},
        {"kind": "call", "function": f"{DLC}.models.necks.utils:make_sine_position_embedding", "args": [16, 16, 192]},
        {"kind": "call", **target_generator, "attribute": "forward",
         "args": [float(STRIDE), {"heatmap": torch.zeros(2, 3, 64, 64)}, {"keypoints": labels()}]},
        {"kind": "call", "function": f"{DLC}.models.criterions.weighted:WeightedBCECriterion",
         "attribute": "forward", "args": criterion_args},
    ]
    shapes, run, sine, targets, loss = run_peer(jobs)
    return {"shapes": shapes["shapes"], "run": run, "image": image, "sine": sine["value"],
            "targets": targets["value"], "loss": loss["value"]}


@pytest.fixture(scope="module")
def loaded(peer):
    """Our model with DeepLabCut's weights (identity key map, strict), in eval mode."""
    model = our_model(SINGLE)
    model.load_state_dict(peer["run"]["state_dict"], strict=True)
    return model.eval()


def test_same_parameters_as_deeplabcut(peer):
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in our_model(MULTI).state_dict().items()}
    theirs = {k: tuple(v) for k, v in peer["shapes"].items()}
    assert ours == theirs
    assert sum(torch.Size(s).numel() for s in ours.values()) == 34_571_687


def test_crop_size_is_deeplabcuts(peer, loaded):
    crop = peer["run"]["config"]["data"]["inference"]["top_down_crop"]
    assert loaded.top_down.crop_size == (crop["height"], crop["width"]) == (CROP, CROP)


def test_head_outputs_match(peer, loaded):
    with torch.no_grad():
        ours = loaded(peer["image"])["bodypart"]["heatmap"]
    theirs = peer["run"]["outputs"][0]["bodypart"]["heatmap"]
    assert ours.shape == theirs.shape == (1, 3, 64, 64)
    print(f"\n{NET_TYPE}: largest heatmap difference {(ours - theirs).abs().max().item():.3g} "
          f"(values up to {theirs.abs().max().item():.3g})")
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_decoded_keypoints_match(peer, loaded):
    theirs_outputs = peer["run"]["outputs"][0]
    ours = loaded.predict(theirs_outputs)["bodypart"]  # decoder alone, on DeepLabCut's own maps
    with torch.no_grad():
        end_to_end = loaded.predict(loaded(peer["image"]))["bodypart"]
    theirs = peer["run"]["predictions"][0]["bodypart"]["poses"]
    print(f"{NET_TYPE}: largest keypoint difference {(end_to_end - theirs).abs().max().item():.3g} px")
    torch.testing.assert_close(ours, theirs.float(), rtol=0, atol=1e-3)
    torch.testing.assert_close(end_to_end, theirs.float(), rtol=0, atol=1e-3)


def test_decoder_matches_on_synthetic_maps(peer, loaded):
    ours = loaded.predict({"bodypart": {"heatmap": synthetic_maps()}})["bodypart"]
    theirs = peer["run"]["decoded"][0]["bodypart"]["poses"].float()
    print(f"{NET_TYPE}: synthetic maps, largest keypoint difference {(ours - theirs).abs().max().item():.3g} px")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3)
    assert ours[0, 0, 0, :2].tolist() == [20 * STRIDE + 2, 10 * STRIDE + 2]  # the tie's first cell
    assert ours[1, 0, 0, :2].tolist() == [50 * STRIDE + 2, 50 * STRIDE + 2]  # saturated: first 1.0


def test_position_embedding_matches(peer):
    torch.testing.assert_close(tokenpose_sine_embedding(16, 16, 192), peer["sine"], rtol=0, atol=1e-6)


def test_targets_and_loss_match(peer, loaded):
    head = loaded.heads["bodypart"]
    outputs = {"heatmap": synthetic_maps()}
    ours = head.targets(labels(), outputs)
    theirs = peer["targets"]["heatmap"]
    torch.testing.assert_close(ours["heatmap"], theirs["target"], rtol=0, atol=0)
    torch.testing.assert_close(ours["heatmap_weights"].expand_as(theirs["weights"]), theirs["weights"],
                               rtol=0, atol=0)
    loss = head.loss(outputs, ours)  # DeepLabCut's WeightedBCECriterion on the same maps and targets
    torch.testing.assert_close(loss["total"], peer["loss"], rtol=1e-6, atol=1e-7)


class PatchStem(torch.nn.Module):
    """A stand-in backbone (stride 4) so the neck and head train in a tiny test."""

    out_channels, stride = 8, 4

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, self.out_channels, kernel_size=4, stride=4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def tiny_tokenpose(meta: ProjectMeta) -> PoseModel:
    """TokenPose on 32 x 32 crops: 8 x 8 features, 2 x 2 patches, 16-wide tokens."""
    neck = partial(TokenPoseNeck, feature_size=(8, 8), patch_size=(2, 2), dim=16, depth=1, heads=2, mlp_dim=3)
    head = partial(TokenPoseHead, hidden_heatmap_dim=32, heatmap_dim=64, heatmap_size=(8, 8))
    return PoseModel(PatchStem(), {"bodypart": head}, meta, neck, TopDown(crop_size=(32, 32)))


def test_training_step_reaches_every_parameter():
    """Top-down training as lit/pose.py runs it: crops, targets, BCE loss, gradients to every weight."""
    model = tiny_tokenpose(MULTI)
    images = torch.randint(0, 255, (1, 3, 48, 64), dtype=torch.uint8)
    keypoints = torch.tensor([[[[10.0, 12.0, 2.0], [20.0, 15.0, 2.0], [25.0, 30.0, 2.0]],
                               [[40.0, 20.0, 2.0], [50.0, 25.0, 2.0], [float("nan")] * 3]]])
    crops = model.top_down.training_crops(images, keypoints, torch.tensor([[48, 64]]))
    outputs = model(crops.images.float() / 255)
    assert outputs["bodypart"]["heatmap"].shape == (2, 3, 8, 8)
    loss = model.loss(outputs, crops.keypoints)["total"]
    loss.backward()
    assert torch.isfinite(loss)
    frozen = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not frozen, f"no gradient: {frozen}"
    assert "neck.pos_embedding" in model.state_dict()  # fixed (a buffer), saved as DeepLabCut saves it
    predictions = model.predict(outputs)["bodypart"]
    assert predictions.shape == (2, 1, 3, 3) and (predictions[..., 2] > 0).all()


def test_other_crop_sizes_are_refused():
    model = tiny_tokenpose(SINGLE).eval()
    with pytest.raises(ValueError, match="position embedding"):
        model(torch.zeros(1, 3, 36, 32))
