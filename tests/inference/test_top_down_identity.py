"""Top-down models learn identity (ours): a crop's identity head trained from the labels' individuals names each
frame's animals whatever the order of the boxes; re-ID features are read from the crops' maps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.inference.features import APPEARANCE_CHANNELS, feature_channels
from lightning_dlc.inference.predict import predict_batch
from lightning_dlc.models.heads.identity import CropIdentityHead
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.preprocess import normalize_images
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # trains a model for its fixture

META = ProjectMeta(bodyparts=("front", "middle", "back"), individuals=("red", "blue"), identity=True)
SIZE, SIDE = 96, 20


def _scenes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``[n, 3, 96, 96]``: a red square (individual 0) and a blue one (1) at random places; labels
    ``[n, 2, 3, 3]`` (their top-left corner, centre, bottom-right corner; visible)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 3, SIZE, SIZE), np.uint8)
    labels = np.zeros((n, 2, 3, 3), np.float32)
    for i in range(n):
        x = rng.choice([4, 52]) + rng.integers(0, 16)  # one square in each half: never overlapping
        corners = [(x, rng.integers(4, 70)), ((56 if x < 52 else 4) + rng.integers(0, 16), rng.integers(4, 70))]
        for who, (cx, cy) in enumerate(corners):
            images[i, 0 if who == 0 else 2, cy: cy + SIDE, cx: cx + SIDE] = 230
            labels[i, who] = [[cx, cy, 2], [cx + SIDE / 2, cy + SIDE / 2, 2], [cx + SIDE, cy + SIDE, 2]]
    return torch.from_numpy(images), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def model():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=top_down_resnet_18", "model.backbone.pretrained=false",
                                          "model.backbone.name=regnetx_002", "model.top_down.crop_size=[48,48]"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, META)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = _scenes(64, seed=0)
    sizes = torch.tensor([[SIZE, SIZE]] * 8)
    model.train()
    for step in range(16):
        batch = slice(8 * (step % 8), 8 * (step % 8) + 8)
        crops = model.top_down.training_crops(images[batch], labels[batch], sizes)
        outputs = model(normalize_images(crops.images.float() / 255))
        loss = model.loss(outputs, crops.keypoints, None, crops.individual)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_top_down_identity_projects_get_a_crop_identity_head(model):
    assert isinstance(model.heads["identity"], CropIdentityHead)
    assert {"heads.identity.classifier.weight", "heads.identity.classifier.bias"} <= set(model.state_dict())


def test_rows_are_identities_whatever_the_order_of_the_boxes(model):
    images, labels = _scenes(8, seed=1)
    boxes = model.top_down.label_boxes(labels, torch.tensor([[SIZE, SIZE]] * 8))
    swapped = boxes.flip(1)                                    # box 0 now on the blue square
    out = predict_batch(model, images, boxes=swapped)
    assert out["identity"].shape == (8, 2, 2)
    right = (out["identity"].argmax(-1) == torch.arange(2)).float().mean()
    assert right >= 0.9                                        # row n: the animal most like identity n ...
    centre = out["bodypart"][:, :, 1, :2]
    own = (centre - labels[:, :, 1, :2]).norm(dim=-1)
    other = (centre - labels[:, :, 1, :2].flip(1)).norm(dim=-1)
    assert (own < other).all()                                 # ... and its keypoints are on that square


def test_features_of_a_top_down_model_come_from_its_crops(model):
    images, labels = _scenes(4, seed=2)
    boxes = model.top_down.label_boxes(labels, torch.tensor([[SIZE, SIZE]] * 4)).numpy()
    predictor = Predictor(model, device="cpu", channels_last=False)
    frames = images.permute(0, 2, 3, 1).numpy()
    out = predictor(frames, boxes=boxes[:, ::-1].copy(), features=True)
    plain = predictor(frames, boxes=boxes[:, ::-1].copy())
    np.testing.assert_allclose(out["bodypart"], plain["bodypart"], atol=1e-5)  # features change nothing
    assert out["features"].shape == (4, 2, 3, feature_channels(model))
    found = np.isfinite(out["bodypart"][..., 0])
    assert np.isfinite(out["features"][found]).all()
    # the appearance part (patch mean R, G, B) at the middle keypoint: the red square is redder
    red = out["features"][:, 0, 1, -APPEARANCE_CHANNELS]
    blue = out["features"][:, 1, 1, -APPEARANCE_CHANNELS]
    assert (red > blue).all()
    empty = predictor(frames, boxes=np.full((4, 2, 4), np.nan, np.float32), features=True)
    assert empty["features"].shape == (4, 2, 3, feature_channels(model)) and np.isnan(empty["features"]).all()


def test_bottom_up_identity_scores_stay_with_their_animals(monkeypatch):
    """With the animals reordered so that row n is identity n, the identity scores are reordered with them (as
    DeepLabCut's post-processing does): row n's scores are those of row n's animal."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.pretrained=false",
                                          "model.backbone.name=regnetx_002"])
    model = model_from_config(cfg.model, META).eval()
    poses = torch.tensor([[[[10.0, 10.0, 0.9]] * 3, [[50.0, 50.0, 0.9]] * 3]])      # [1, 2 animals, 3, 3]
    scores = torch.tensor([[[0.2, 0.7], [0.6, 0.1]]])                                # animal 0 looks like blue
    monkeypatch.setattr(model.heads["bodypart"], "predict", lambda outputs, n: poses)
    monkeypatch.setattr(model.heads["identity"], "predict", lambda outputs, keypoints: scores)
    out = model.predict({"bodypart": {}, "identity": {}})
    assert out["bodypart"][0, :, 0, 0].tolist() == [50.0, 10.0]                     # red first
    torch.testing.assert_close(out["identity"], scores[:, [1, 0]])
