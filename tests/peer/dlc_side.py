"""Runs inside DeepLabCut 3.0.2's own virtual environment (never imported by our tests).

    python dlc_side.py REQUEST.pt RESULT.pt

REQUEST holds a list of jobs; for each one DeepLabCut builds the model of a net_type for a
project (its own config files, its own PoseModel.build), gives every weight a random value
(normalisation statistics and affine parameters moved away from their defaults), runs the
inputs through it and its predictors, and decodes any head maps it is given. RESULT holds,
per job, DeepLabCut's pose config, state dict, head outputs and predictions, so the tests in
our environment can load the same weights into our model and compare.
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from deeplabcut.pose_estimation_pytorch.config import PoseConfig
from deeplabcut.pose_estimation_pytorch.models.model import PoseModel

NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


def project_config(project: dict, folder: Path) -> dict:
    multi = project.get("multianimal", True)
    bodyparts = list(project["bodyparts"])
    return dict(
        Task="peer", scorer="peer", date="Jan1", project_path=str(folder), iteration=0,
        multianimalproject=multi, identity=project.get("identity", False),
        bodyparts="MULTI!" if multi else bodyparts,
        multianimalbodyparts=bodyparts if multi else [],
        uniquebodyparts=list(project.get("unique_bodyparts", [])),
        individuals=list(project.get("individuals", ["animal0"])) if multi else ["single"],
        skeleton=[list(e) for e in project.get("skeleton", [])], TrainingFraction=[0.95],
        default_net_type="resnet_50", video_sets={},
    )


def randomize(model: nn.Module, seed: int) -> None:
    """Every parameter and statistic gets a seeded value that makes outputs far from zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, NORMS):
                if getattr(module, "weight", None) is not None:
                    module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                    module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
                if getattr(module, "running_mean", None) is not None:
                    module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=gen))
                    module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))
        norm_params = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
        for param in model.parameters():
            if id(param) in norm_params:
                continue
            fan_in = math.prod(param.shape[1:]) if param.dim() > 1 else param.numel()
            param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(max(fan_in, 1)))


def run_job(job: dict, folder: Path) -> dict:
    cfg = PoseConfig.build(project_config(job["project"], folder), folder / "pytorch_config.yaml",
                           top_down=job.get("top_down", False), net_type=job["net_type"],
                           detector_type=job.get("detector_type"),
                           **({"ctd_conditions": job["ctd_conditions"]} if "ctd_conditions" in job else {}))
    cfg = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else dict(cfg)
    for key, value in job.get("config_updates", {}).items():  # "model.heads.bodypart.x": value
        node = cfg
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    if job.get("shapes_only"):  # names and shapes only: cheap for every net_type at once
        with torch.device("meta"):  # nothing allocated or initialised
            model = PoseModel.build(cfg["model"], pretrained_backbone=False)
        return {"config": cfg, "shapes": {k: tuple(v.shape) for k, v in model.state_dict().items()}}
    model = PoseModel.build(cfg["model"], pretrained_backbone=False)
    if job.get("state_dict") is not None:
        model.load_state_dict(job["state_dict"], strict=True)
    else:
        randomize(model, job.get("seed", 0))
    model.eval()
    model.output_features = bool(job.get("backbone_features", False))  # outputs["backbone"]["features"]
    result = {"config": cfg, "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
              "outputs": [], "predictions": [], "decoded": []}
    with torch.no_grad():
        for i, images in enumerate(job.get("inputs", [])):
            # conditional (ctd_*) models: cond_kpts [B, 1, K, 3], as DeepLabCut's CTD runner gives them
            conditions = job.get("conditions")
            outputs = model(images, cond_kpts=conditions[i]) if conditions else model(images)
            result["outputs"].append(outputs)
            result["predictions"].append(model.get_predictions(outputs) if job.get("predict", True) else None)
        for maps in job.get("maps", []):  # head outputs made up by the test: decoders only
            result["decoded"].append(model.get_predictions(maps))
    return result


def call_function(job: dict) -> dict:
    """``{"kind": "call", "function": "package.module:name", "args": [...], "kwargs": {...}}``:
    any DeepLabCut function on the test's arrays (decoders, crops, assembly); ``attribute``
    names a method of the result of calling ``function`` with ``init_args``/``init_kwargs``."""
    import importlib

    module, _, name = job["function"].partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if job.get("attribute"):
        target = getattr(target(*job.get("init_args", []), **job.get("init_kwargs", {})), job["attribute"])
    return {"value": target(*job.get("args", []), **job.get("kwargs", {}))}


def offline_backbone_weights() -> None:
    """torchvision's Faster R-CNN MobileNetV3 builds on ImageNet backbone weights even untrained
    (DeepLabCut's ``pretrained=False``); offline, its seeded initialisation stands in for the
    download (same architecture: FrozenBatchNorm2d, the same trainable layers)."""
    import torchvision
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models._api import WeightsEnum

    download = WeightsEnum.get_state_dict

    def get_state_dict(self, *args, **kwargs):
        if isinstance(self, MobileNet_V3_Large_Weights):
            return torchvision.models.mobilenet_v3_large(weights=None).state_dict()
        return download(self, *args, **kwargs)

    WeightsEnum.get_state_dict = get_state_dict


def run_detector(job: dict) -> dict:
    """``{"kind": "detector", "detector_type": "ssdlite", "seed": 0, "images": [uint8 (H, W, 3)]}``:
    DeepLabCut's detector from its own config (torchvision's initialisation, seeded), its inference
    transform on each image; returns its state dict, what its torchvision model sees after its own
    transform (``seen``) and the detections."""
    import deeplabcut.pose_estimation_pytorch.config as config_package
    from deeplabcut.core.config import read_config_as_dict
    from deeplabcut.pose_estimation_pytorch.data.transforms import build_transforms
    from deeplabcut.pose_estimation_pytorch.models.detectors import DETECTORS

    configs = Path(config_package.__file__).parent
    offline_backbone_weights()
    base = read_config_as_dict(configs / "base" / "base_detector.yaml")
    model_cfg = read_config_as_dict(configs / "detectors" / f"{job['detector_type']}.yaml")["model"]
    torch.manual_seed(job.get("seed", 0))
    detector = DETECTORS.build(dict(model_cfg), pretrained=False)
    detector.eval()  # DeepLabCut's train() returns None
    transform = build_transforms(base["data"]["inference"])
    result = {"state_dict": {k: v.clone() for k, v in detector.state_dict().items()}, "seen": [], "detections": []}
    with torch.no_grad():
        for image in job["images"]:
            h, w = image.shape[:2]
            x = transform(image=image, keypoints=[], class_labels=[], bboxes=[[0, 0, w, h]], bbox_labels=["image"])
            x = torch.from_numpy(x["image"]).permute(2, 0, 1)[None].float()
            result["seen"].append(detector.model.transform(list(x))[0].tensors)
            result["detections"].append(detector(x)[1])
    return result


def main(request_path: str, result_path: str) -> None:
    request = torch.load(request_path, weights_only=False)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, job in enumerate(request["jobs"]):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            try:
                if job.get("kind") == "detector":
                    results.append(run_detector(job))
                    continue
                results.append(call_function(job) if job.get("kind") == "call" else run_job(job, folder))
            except Exception as error:  # reported to the test, which names the job
                results.append({"error": f"{type(error).__name__}: {error}"})
    torch.save({"results": results}, result_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
