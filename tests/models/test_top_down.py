"""Top-down pose models: every named config builds; crops carry labels exactly; predictions land in image pixels."""
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.data.crops import crop_images, crop_transforms, from_crop
from lightning_dlc.models.heads.simcc import SimCCHead
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.preprocess import normalize_images
from lightning_dlc.models.top_down import TopDown
from lightning_dlc.project.records import ProjectMeta

TOP_DOWN = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem.startswith(("top_down_", "rtmpose_")))
MULTI = ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("a", "b", "c"), unique_bodyparts=("feeder",))
HEAVY = {"top_down_resnet_101", "top_down_hrnet_w48", "top_down_cspnext_x", "rtmpose_x", "top_down_resnet_50", "rtmpose_m"}


def model_config(name: str, *overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false", *overrides])
    return cfg.model


def test_deeplabcut_top_down_names_have_configs():
    expected = {"top_down_resnet_50", "top_down_resnet_101", "top_down_hrnet_w18", "top_down_hrnet_w32",
                "top_down_hrnet_w48", "top_down_cspnext_s", "top_down_cspnext_m", "top_down_cspnext_x",
                "rtmpose_s", "rtmpose_m", "rtmpose_x"}
    assert set(TOP_DOWN) == expected | {"top_down_resnet_18"}  # + the small one


def test_crop_sizes_are_deeplabcuts():
    for name in TOP_DOWN:
        crop = list(model_config(name).top_down.crop_size)
        assert crop == ([384, 384] if name == "rtmpose_x" else [256, 256]), name  # DeepLabCut's top_down_crop


def small(name: str):
    """The config with small crops (speed); RTMPose's SimCC head is told the same size."""
    crop = "[64,48]" if name.startswith("rtmpose") else "[64,64]"
    extra = [f"model.heads.single.bodypart.input_size={crop}"] if name.startswith("rtmpose") else []
    return model_config(name, f"model.top_down.crop_size={crop}", *extra)


@pytest.mark.parametrize("name", [n if n not in HEAVY else pytest.param(n, marks=pytest.mark.slow) for n in TOP_DOWN])
def test_named_top_down_config_reads_one_animal_per_crop(name):
    meta = MULTI
    model = model_from_config(small(name), meta).eval()
    top_down = model.top_down
    assert isinstance(top_down, TopDown)
    assert list(model.heads) == ["bodypart"]  # no PAFs, no unique/identity heads on crops
    head = model.heads["bodypart"]
    if name.startswith("rtmpose"):
        assert isinstance(head, SimCCHead)
    else:
        assert head.stride in (4, 8, 16, 32)  # the head family decides; crops map back whatever it is
    images = torch.randint(0, 256, (2, 3, 180, 240), dtype=torch.uint8)
    boxes = torch.tensor([[[10.0, 20.0, 90.0, 60.0], [100.0, 100.0, 200.0, 170.0], [float("nan")] * 4],
                          [[50.0, 10.0, 120.0, 150.0]] + [[float("nan")] * 4] * 2])
    predicted = top_down.predict(model, images, boxes, meta.max_individuals)
    assert predicted.shape == (2, meta.max_individuals, 3, 3)
    found = torch.isfinite(predicted[..., 0]).all(-1)
    expected = torch.isfinite(boxes[:, : meta.max_individuals]).all(-1)
    assert torch.equal(found, expected)  # one animal per finite box, NaN rows elsewhere
    # row n is what the model reads in box n's crop, mapped back through the crop's transform
    b, n = 1, 0
    crop = crop_images(images[b: b + 1], boxes[b: b + 1, n: n + 1], top_down.crop_size)[0]
    with torch.no_grad():
        in_crop = model.predict(model(normalize_images(crop)))["bodypart"][0, 0]
    expected_points = from_crop(in_crop, crop_transforms(boxes[b, n], top_down.crop_size))
    assert torch.allclose(predicted[b, n], expected_points, rtol=1e-3, atol=1e-3)  # untrained: values ~1e5, float32 batching noise


def test_training_crops_put_labels_where_the_pixels_are():
    """A dot drawn at each label appears in the crop exactly where the crop's labels say."""
    top_down = TopDown(crop_size=(64, 48), margin=6, jitter_shift=0.1, jitter_scale=0.1)
    images = torch.zeros(2, 3, 120, 160, dtype=torch.uint8)
    keypoints = torch.full((2, 2, 3, 3), float("nan"))
    keypoints[0, 0] = torch.tensor([[20.0, 30.0, 2], [40.0, 50.0, 2], [30.0, 60.0, 2]])
    keypoints[0, 1] = torch.tensor([[100.0, 80.0, 2], [130.0, 90.0, 2], [float("nan")] * 3])
    keypoints[1, 0] = torch.tensor([[70.0, 20.0, 2], [80.0, 40.0, 2], [90.0, 30.0, 2]])
    for b, n, k in torch.nonzero(torch.isfinite(keypoints[..., 0])).tolist():
        x, y = keypoints[b, n, k, :2].long().tolist()
        images[b, :, y, x] = 255
    sizes = torch.tensor([[120, 160], [120, 160]])
    torch.manual_seed(0)
    crops = top_down.training_crops(images, keypoints, sizes, generator=torch.Generator().manual_seed(3))
    assert crops.images.shape == (3, 3, 64, 48) and crops.keypoints.shape == (3, 1, 3, 3)
    assert crops.image_index.tolist() == [0, 0, 1] and crops.individual.tolist() == [0, 1, 0]
    for crop, labels, t in zip(crops.images.float(), crops.keypoints[:, 0], crops.transforms):
        # DeepLabCut's map puts a pixel's dot 0.5 / scale - 0.5 crop pixels after its label
        labels = labels.clone()
        labels[:, :2] += 0.5 / t[:2] - 0.5
        for x, y, _ in labels[torch.isfinite(labels[:, 0])].tolist():
            # the bright dot's intensity-weighted centre near the label (bilinear spreads it)
            ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
            near = ((xs - x).abs() <= 3) & ((ys - y).abs() <= 3)
            weight = crop[0] * near
            assert weight.sum() > 0
            cx, cy = (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()
            assert abs(cx - x) < 0.35 and abs(cy - y) < 0.35


def test_jitter_moves_boxes_within_its_bounds_and_no_jitter_keeps_them():
    top_down = TopDown(jitter_shift=0.1, jitter_scale=0.2)
    boxes = torch.tensor([[[10.0, 10.0, 110.0, 60.0]]]).expand(1, 500, 4)
    jittered = top_down.jitter(boxes, torch.Generator().manual_seed(0))
    centre_shift = ((jittered[..., :2] + jittered[..., 2:]) - (boxes[..., :2] + boxes[..., 2:])) / 2
    assert (centre_shift.abs() <= torch.tensor([10.0, 5.0]) + 1e-4).all()
    ratio = (jittered[..., 2:] - jittered[..., :2]) / (boxes[..., 2:] - boxes[..., :2])
    assert ratio.min() >= 0.8 - 1e-5 and ratio.max() <= 1.2 + 1e-5 and ratio.std() > 0.05
    assert torch.equal(TopDown(jitter_shift=0, jitter_scale=0).jitter(boxes), boxes)


def test_crops_are_the_images_pixels_under_the_transform():
    """The crop pixel (x, y) is the image's bilinear sample at the transformed point."""
    top_down = TopDown(crop_size=(32, 32))
    image = torch.arange(100 * 120, dtype=torch.float32).reshape(1, 1, 100, 120).expand(1, 3, 100, 120)
    boxes = torch.tensor([[[20.0, 30.0, 60.0, 50.0]]])
    crops = top_down.crops(image.contiguous(), boxes)
    direct = crop_images(image.contiguous(), boxes, (32, 32))[0, 0]
    assert torch.allclose(crops.images[0], direct)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="crop_size"):
        TopDown(crop_size=(4, 4))
    with pytest.raises(ValueError, match="jitter"):
        TopDown(jitter_shift=1.5)
