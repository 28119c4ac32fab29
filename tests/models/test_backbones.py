"""Backbones: output shapes, local weights, and the error when pretrained weights cannot be had."""
from __future__ import annotations

import pytest
import timm
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file

from lightning_dlc.models.backbones import CSPNeXt, DLCRNet, HRNet, ResNet, TimmBackbone

H, W = 64, 96  # divisible by 32; not square, so a swapped H/W shows

# name: (factory taking pretrained/weights, expected (out_channels, stride) as DeepLabCut 3 has them)
CASES = {
    "timm-mobilenetv3": (lambda **kw: TimmBackbone("mobilenetv3_small_100", **kw), (576, 32)),
    "resnet50": (lambda **kw: ResNet("resnet50", **kw), (2048, 16)),
    "resnet50-os32": (lambda **kw: ResNet("resnet50", output_stride=32, **kw), (2048, 32)),
    "resnet50-os8-bn": (lambda **kw: ResNet("resnet50", output_stride=8, group_norm=False, **kw), (2048, 8)),
    "resnet101": (lambda **kw: ResNet("resnet101", **kw), (2048, 16)),
    "resnet101-gn": (lambda **kw: ResNet("resnet101", group_norm=True, **kw), (2048, 16)),
    "hrnet_w18": (lambda **kw: HRNet("w18", **kw), (18, 4)),
    "hrnet_w18-interpolate": (lambda **kw: HRNet("w18", interpolate_branches=True, **kw), (18 * 15, 4)),
    "hrnet_w18-incre": (lambda **kw: HRNet("w18", increased_channel_count=True, **kw), (128, 4)),
    "hrnet_w32": (lambda **kw: HRNet("w32", **kw), (32, 4)),
    "hrnet_w48": (lambda **kw: HRNet("w48", **kw), (48, 4)),
    "cspnext_s": (lambda **kw: CSPNeXt("s", **kw), (512, 32)),
    "cspnext_m": (lambda **kw: CSPNeXt("m", **kw), (768, 32)),
    "cspnext_x": (lambda **kw: CSPNeXt("x", **kw), (1280, 32)),
    "dlcrnet-os16": (lambda **kw: DLCRNet(16, **kw), (2304, 16)),
    "dlcrnet-os32": (lambda **kw: DLCRNet(32, **kw), (2304, 32)),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test downloads: the hub answers from an empty cache, as on a machine without internet."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)  # read at import, so patch the live value too
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


@pytest.mark.slow  # builds every backbone, saves and reloads it
@torch.no_grad()
@pytest.mark.parametrize("name", CASES)
def test_shape_and_local_weights_round_trip(name, tmp_path):
    make, (channels, stride) = CASES[name]
    torch.manual_seed(0)
    model = make(pretrained=False).eval()
    assert (model.out_channels, model.stride) == (channels, stride)
    images = torch.randn(1, 3, H, W)
    features = model(images)
    assert features.shape == (1, channels, H // stride, W // stride)

    path = tmp_path / "backbone.pt"
    torch.save(model.state_dict(), path)
    # pretrained=True: local weights replace the download (offline fixture: a download would fail)
    loaded = make(pretrained=True, weights=path).eval()
    assert torch.equal(loaded(images), features)


DOWNLOADED = ["timm-mobilenetv3", "resnet50", "resnet101", "hrnet_w18", "hrnet_w32", "hrnet_w48", "dlcrnet-os16"]


@pytest.mark.parametrize("name", DOWNLOADED)
def test_pretrained_download_failure_says_what_to_do(name):
    with pytest.raises(RuntimeError) as error:
        CASES[name][0](pretrained=True)
    message = str(error.value)
    assert "model.backbone.pretrained=false" in message and "model.backbone.weights=PATH" in message
    assert isinstance(error.value.__cause__, OSError)  # the hub's own error, chained


@pytest.mark.parametrize(
    ("name", "model_name"),
    [
        ("timm-mobilenetv3", "mobilenetv3_small_100"),
        ("resnet50", "resnet50_gn"),
        ("resnet101", "resnet101"),
        ("hrnet_w48", "hrnet_w48"),
        ("dlcrnet-os16", "resnet50"),
        ("resnet101-gn", "resnet101"),  # no such weights anywhere: fails before any download
        ("cspnext_s", "cspnext_s"),  # Hugging Face hub download, offline here
        ("cspnext_x", "cspnext_x"),
    ],
)
def test_pretrained_error_names_the_model(name, model_name):
    with pytest.raises(RuntimeError, match=f"backbone '{model_name}'.*model.backbone.weights=PATH"):
        CASES[name][0](pretrained=True)


def test_weights_of_another_variant_are_rejected(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(ResNet("resnet50", group_norm=False, pretrained=False).state_dict(), path)
    with pytest.raises(RuntimeError, match=r"do not fit ResNet: \d+ missing keys \['model.layer3."):
        ResNet("resnet101", pretrained=False, weights=path)
    torch.save(HRNet("w18", pretrained=False).state_dict(), path)  # same keys, other widths
    with pytest.raises(RuntimeError, match="do not fit HRNet.*size mismatch"):
        HRNet("w32", pretrained=False, weights=path)
    extra = {**CSPNeXt("s", pretrained=False).state_dict(), "extra.weight": torch.zeros(1)}
    torch.save({"state_dict": extra}, path)
    with pytest.raises(RuntimeError, match=r"unexpected keys \['extra.weight'\]"):
        CSPNeXt("s", pretrained=False, weights=path)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        CSPNeXt("s", weights=tmp_path / "nowhere.pt")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd},
        # a DeepLabCut snapshot: the whole pose model under "model", backbone under "backbone."
        lambda sd: {"model": {"heads.bodypart.w": torch.ones(2), **{f"backbone.{k}": v for k, v in sd.items()}}},
        # a Lightning checkpoint of a module holding the pose model as `model`
        lambda sd: {"state_dict": {f"model.backbone.{k}": v for k, v in sd.items()}, "epoch": 3},
    ],
    ids=["state_dict", "model", "dlc-snapshot", "lightning"],
)
def test_checkpoint_forms(wrap, tmp_path):
    source = CSPNeXt("s", pretrained=False)
    torch.save(wrap(source.state_dict()), tmp_path / "ckpt.pt")
    loaded = CSPNeXt("s", weights=tmp_path / "ckpt.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("make", "timm_name"),
    [
        (lambda p: TimmBackbone("mobilenetv3_small_100", weights=p), "mobilenetv3_small_100"),
        (lambda p: HRNet("w18", weights=p), "hrnet_w18"),  # features model drops incre modules + classifier
        (lambda p: DLCRNet(weights=p), "resnet50"),  # fusion layers stay at their init
    ],
)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_plain_timm_checkpoint(make, timm_name, suffix, tmp_path):
    """ImageNet weights fetched elsewhere (timm's file of the full classifier) load offline."""
    full = timm.create_model(timm_name, pretrained=False).state_dict()
    path = tmp_path / f"model{suffix}"
    save_file(full, path) if suffix == ".safetensors" else torch.save(full, path)
    inner = make(path).model.state_dict()
    assert inner and all(torch.equal(value, full[key]) for key, value in inner.items())


def test_plain_timm_checkpoint_of_another_model_is_rejected(tmp_path):
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(RuntimeError, match="do not fit ResNet: .*missing keys"):
        ResNet("resnet50", weights=tmp_path / "r18.pt")


def test_any_timm_model_any_level():
    model = TimmBackbone("mobilenetv3_small_100", pretrained=False, out_index=2)
    assert (model.out_channels, model.stride) == (24, 8)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 24, 8, 8)


def test_built_by_hydra():
    config = {"_target_": "lightning_dlc.models.backbones.ResNet", "variant": "resnet50", "pretrained": False}
    model = instantiate(config)
    assert isinstance(model, ResNet) and model.stride == 16
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())  # DeepLabCut's resnet50_gn


@pytest.mark.slow  # builds every backbone, saves and reloads it
def test_dlcrnet_fusion_banks_are_detached_like_deeplabcuts():
    """DeepLabCut reads the banks through detaching hooks: no gradient reaches layer1 through them."""
    model = DLCRNet(pretrained=False)
    model(torch.randn(2, 3, 64, 64))[:, :128].sum().backward()  # bank1 channels only
    assert model.model.conv1.weight.grad is None or not model.model.conv1.weight.grad.any()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResNet("resnet34", pretrained=False),
        lambda: ResNet("resnet50", output_stride=4, pretrained=False),
        lambda: HRNet("w64", pretrained=False),
        lambda: CSPNeXt("xl", pretrained=False),
        lambda: DLCRNet(8, pretrained=False),
        lambda: TimmBackbone("no_such_net", pretrained=False),
    ],
)
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_freeze_bn_stats_keeps_batchnorm_in_eval_mode():
    """DeepLabCut's hrnet_* configs freeze BatchNorm statistics; weights still learn unless frozen too."""
    model = HRNet("w18", pretrained=False, freeze_bn_stats=True).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms) and model.training
    assert all(m.weight.requires_grad for m in norms)
    model = HRNet("w18", pretrained=False, freeze_bn_weights=True).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training and not m.weight.requires_grad for m in norms)
