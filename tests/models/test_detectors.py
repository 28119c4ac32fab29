"""Detectors: every config builds and runs, COCO heads are cut to the project's classes, errors say what to do."""
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.detectors import DETECTORS, Detector, build_detector, head_classes, keep_classes

# small inputs and few proposals: seconds on a CPU
FEW = dict(rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
           rpn_post_nms_top_n_test=50, box_batch_size_per_image=32)
SMALL = {"fasterrcnn_mobilenet_v3_large_fpn": dict(min_size=64, max_size=96, torchvision_kwargs=FEW),
         "fasterrcnn_resnet50_fpn": dict(min_size=64, max_size=96, torchvision_kwargs=FEW),
         "fasterrcnn_resnet50_fpn_v2": dict(min_size=64, max_size=96, torchvision_kwargs=FEW),
         "ssdlite": dict(min_size=64, torchvision_kwargs=dict(topk_candidates=50))}


def detector_config(name: str):
    """``detector.model`` of conf/detector/<name>.yaml as Hydra composes it (with conf/detector/common)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"detector={name}"]).detector.model


def targets(*boxes):
    return [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
             "labels": torch.ones(len(b), dtype=torch.int64)} for b in boxes]


@pytest.mark.parametrize("name", DETECTORS)
def test_config_builds_a_detector_that_trains_and_predicts(name):
    cfg = detector_config(name)
    assert cfg.pretrained is True and cfg.weights is None  # COCO weights by default
    torch.manual_seed(0)
    detector = instantiate(cfg, pretrained=False, **SMALL[name])
    assert isinstance(detector, Detector) and detector.name == name and detector.n_classes == 1
    assert detector.freeze_bn_stats is (name != "fasterrcnn_resnet50_fpn")  # DeepLabCut's configs freeze them
    images = torch.rand(2, 3, 48, 64)
    detector.train()
    losses = detector(images, targets([[4.0, 6.0, 30.0, 40.0]], []))  # the second image has no animal
    assert losses and all(torch.isfinite(v) for v in losses.values())
    detector.eval()
    with torch.no_grad():
        found = detector(list(images))
    assert len(found) == 2
    for f in found:
        assert f["boxes"].shape[1] == 4 and len(f["boxes"]) == len(f["scores"]) <= detector.max_detections
        assert set(f["labels"].tolist()) <= {1}


class Recorder(nn.Module):
    """Stands in for a torchvision detector: records targets, returns fixed detections."""

    def forward(self, images, targets=None):
        if self.training:
            self.seen = targets
            return {"loss": torch.zeros(())}
        return [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 20.0]]), "scores": torch.ones(1),
                 "labels": torch.ones(1, dtype=torch.int64)} for _ in images]


def test_boxes_pass_as_torchvision_gives_them_and_deeplabcut_names_see_imagenet_normalized_images():
    detector = Detector(Recorder(), "recorder", 1, max_detections=5).train()
    detector(torch.zeros(1, 3, 8, 8), targets([[0.0, 0.0, 7.5, 7.5]]))
    assert torch.equal(detector.model.seen[0]["boxes"], torch.tensor([[0.0, 0.0, 7.5, 7.5]]))
    out = detector.eval()(torch.zeros(1, 3, 8, 8))
    assert torch.equal(out[0]["boxes"], torch.tensor([[0.0, 0.0, 10.0, 20.0]]))
    with pytest.raises(ValueError, match="float"):
        detector(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    # DeepLabCut's detectors read ImageNet-normalized images (torchvision normalizes them again)
    for name, normalized in (("ssdlite", True), ("fasterrcnn_resnet50_fpn_v2", True),
                             ("fasterrcnn_mobilenet_v3_large_fpn", True), ("fasterrcnn_resnet50_fpn", False)):
        assert build_detector(name, pretrained=False, **SMALL[name]).imagenet_input is normalized, name
    seen = []
    ours = Detector(Recorder(), "recorder", 1, max_detections=5, imagenet_input=True).eval()
    ours.model.register_forward_pre_hook(lambda module, args: seen.append(args[0][0]))
    image = torch.rand(3, 4, 5)
    ours([image])
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(seen[0], (image - mean) / std)


def test_deeplabcut_detector_defaults():
    assert build_detector("ssdlite", pretrained=False, **SMALL["ssdlite"]).max_detections == 200
    assert build_detector("ssdlite320_mobilenet_v3_large", pretrained=False, **SMALL["ssdlite"]).name == "ssdlite"
    cfg = detector_config("fasterrcnn_resnet50_fpn_v2")
    assert cfg.box_score_threshold == 0.01 and cfg.freeze_bn_stats is True  # DeepLabCut's


def fake_coco(name):
    """A torchvision-like 91-class state dict with random weights (COCO's layout, not its values)."""
    torch.manual_seed(1)
    return build_detector(name, n_classes=90, pretrained=False, **SMALL[name]).model.state_dict()


@pytest.mark.slow  # several seconds each on a CPU
@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_fpn", "ssdlite"])
def test_pretrained_keeps_cocos_background_and_first_class(name, monkeypatch, tmp_path):
    coco = fake_coco(name)
    assert head_classes(coco) == 91
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: coco)  # our fetch
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *a, **k: coco)  # torchvision's
    detector = build_detector(name, pretrained=True, **SMALL[name])
    assert detector.freeze_bn_stats
    state = detector.model.state_dict()
    assert head_classes(state) == 2
    expected = keep_classes(coco, 2)
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, expected[key]), key
    if name.startswith("ssdlite"):  # anchor-major channels: anchor a keeps rows a*91 + {0, 1}
        level0 = coco["head.classification_head.module_list.0.1.bias"]
        anchors = len(level0) // 91
        rows = torch.tensor([a * 91 + c for a in range(anchors) for c in (0, 1)])
        assert torch.equal(state["head.classification_head.module_list.0.1.bias"], level0[rows])
    detector.eval()
    with torch.no_grad():
        assert len(detector(torch.rand(1, 3, 48, 64))) == 1


@pytest.mark.parametrize("name", DETECTORS)
def test_offline_pretrained_error_says_what_to_do(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as error:
        build_detector(name, pretrained=True)
    message = str(error.value)
    assert name in message and "detector.model.pretrained=false" in message and "detector.model.weights=PATH" in message
    assert "no network" in message


@pytest.mark.slow  # several seconds each on a CPU
def test_local_weights_load_from_our_and_deeplabcut_files(tmp_path, monkeypatch):
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    torch.manual_seed(2)
    source = build_detector(name, pretrained=False, **SMALL[name])
    state = source.state_dict()  # "model.<torchvision key>": also DeepLabCut's detector snapshot layout
    files = {"lightning.ckpt": {"state_dict": {f"detector.{k}": v for k, v in state.items()}, "epoch": 3},
             "deeplabcut.pt": {"model": state, "metadata": {"epoch": 3}},
             "torchvision.pth": source.model.state_dict()}
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    for file, content in files.items():
        torch.save(content, tmp_path / file)
        loaded = build_detector(name, weights=tmp_path / file, **SMALL[name])  # pretrained=True, but no download
        assert loaded.freeze_bn_stats
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, state[key]), (file, key)
    # torchvision's COCO file, fetched elsewhere: the head is cut as with pretrained=True
    torch.save(fake_coco(name), tmp_path / "coco.pth")
    loaded = build_detector(name, weights=tmp_path / "coco.pth", **SMALL[name])
    assert head_classes(loaded.model.state_dict()) == 2
    # another architecture's file is refused, naming the file
    torch.save(fake_coco("ssdlite"), tmp_path / "ssd.pth")
    with pytest.raises(RuntimeError, match="ssd.pth"):
        build_detector(name, weights=tmp_path / "ssd.pth", **SMALL[name])


@pytest.mark.slow  # several seconds each on a CPU
def test_frozen_batchnorm_statistics_stay_put():
    detector = build_detector("ssdlite", pretrained=False, freeze_bn_stats=True, min_size=64)
    detector.train()
    norms = [m for m in detector.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    before = [m.running_mean.clone() for m in norms]
    detector(torch.rand(2, 3, 48, 64), targets([[4.0, 6.0, 30.0, 40.0]], [[10.0, 10.0, 20.0, 20.0]]))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown detector"):
        build_detector("yolo", pretrained=False)
    with pytest.raises(ValueError, match="max_size"):
        build_detector("ssdlite", pretrained=False, max_size=512)
    with pytest.raises(ValueError, match="n_classes"):
        build_detector("fasterrcnn_mobilenet_v3_large_fpn", n_classes=0, pretrained=False)
