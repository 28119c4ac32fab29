"""DetectorModule: trains on PoseDataModule batches (boxes from keypoints + margin), logs box mAP/mAR."""
import math
import warnings
from functools import partial

import lightning as L
import pytest
import torch

from lightning_dlc.data.crops import boxes_with_margin
from lightning_dlc.data.datamodule import PoseDataModule
from lightning_dlc.data.dataset import resize_points, to_original_pixels
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.lit.detector import DetectorModule
from lightning_dlc.models.detectors import build_detector

NAME = "fasterrcnn_mobilenet_v3_large_fpn"
FEW = dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
           rpn_post_nms_top_n_test=50, box_batch_size_per_image=64)


def small_detector(size=64):
    torch.manual_seed(0)
    return build_detector(NAME, pretrained=False, min_size=size, max_size=size, torchvision_kwargs=FEW)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector") / "fishtank"
    make_demo_project(out, n_frames=24, n_labeled=12, size=128)
    return out


@pytest.mark.slow  # trains a detector
def test_one_epoch_on_the_demo_logs_box_metrics_and_saves_a_loadable_checkpoint(tiny_demo, tmp_path):
    datamodule = PoseDataModule(source="demo", project=str(tiny_demo), num_workers=0, batch_size=4,
                                pin_memory=False)
    module = DetectorModule(small_detector(128), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                            run_config={"detector": {"name": NAME}})
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    for name in ("test.bbox_mAP", "test.bbox_mAR", "test.bbox_mAP50", "train.loss_classifier"):
        assert name in metrics and math.isfinite(float(metrics[name])), name
    assert 0 <= float(metrics["test.bbox_mAP"]) <= float(metrics["test.bbox_mAP50"]) <= 100
    assert 0 <= float(metrics["test.bbox_mAR"]) <= 100

    path = tmp_path / "snapshot-detector-001.ckpt"
    trainer.save_checkpoint(path, weights_only=True)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # plain containers only
    assert checkpoint["detector"] == {"name": NAME, "n_classes": 1} and checkpoint["run_config"]["detector"]
    reloaded = build_detector(NAME, pretrained=False, weights=path, min_size=128, max_size=128,
                              torchvision_kwargs=FEW)
    for key, value in module.detector.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def batch_of(keypoints, scale=1.0, size=(64, 80)):
    b = len(keypoints)
    return {"image": torch.randint(0, 255, (b, 3, 64, 96), dtype=torch.uint8), "keypoints": keypoints,
            "unique_keypoints": torch.zeros(b, 0, 3), "boxes": torch.full((b, keypoints.shape[1], 4), float("nan")),
            "index": torch.arange(b), "scale": torch.full((b,), scale), "sizes": torch.tensor([size] * b)}


def test_target_boxes_are_deeplabcuts_in_original_pixels_whatever_the_resize():
    original = torch.full((1, 2, 3, 3), float("nan"))
    original[0, 0] = torch.tensor([[40.0, 30, 2], [100, 60, 2], [70, 110, 2]])
    scale = 0.5  # a 160 x 128 image shown at 80 x 64
    resized = original.clone()
    resized[..., :2] = resize_points(original[..., :2], scale)
    module = DetectorModule(small_detector())
    boxes = to_original_pixels(module.target_boxes(batch_of(resized, scale, size=(64, 80))), scale)
    expected = boxes_with_margin(original, 20, size=(128, 160))
    assert torch.allclose(boxes[0, 0], expected[0, 0], atol=1e-4)
    assert torch.allclose(boxes[0, 0], torch.tensor([20.0, 10, 120, 128]))  # clipped at the bottom edge (DeepLabCut: [0, H])
    assert torch.isnan(boxes[0, 1]).all()


@pytest.mark.slow  # trains a detector
def test_images_without_animals_train_the_background():
    keypoints = torch.full((2, 3, 4, 3), float("nan"))
    keypoints[0, 1] = torch.tensor([[10.0, 12, 2], [30, 20, 2], [25, 40, 2], [12, 30, 2]])
    module = DetectorModule(small_detector())
    module.train()
    targets = module._targets(module.target_boxes(batch_of(keypoints)))
    assert [len(t["boxes"]) for t in targets] == [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        loss = module.training_step(batch_of(keypoints), 0)
        loss.backward()
        empty = module.training_step(batch_of(torch.full((2, 3, 4, 3), float("nan"))), 1)
    assert torch.isfinite(loss) and torch.isfinite(empty)


def test_boxes_from_the_labels_and_bad_settings():
    keypoints = torch.full((1, 1, 2, 3), float("nan"))
    batch = batch_of(keypoints)
    batch["boxes"][0, 0] = torch.tensor([1.0, 2, 30, 40])
    module = DetectorModule(small_detector(), boxes="labels")
    assert torch.equal(module.target_boxes(batch), batch["boxes"])
    with pytest.raises(ValueError, match="boxes"):
        DetectorModule(small_detector(), boxes="segmentation")
    with pytest.raises(ValueError, match="augment"):
        DetectorModule(small_detector(), boxes="labels", augment=torch.nn.Identity())
