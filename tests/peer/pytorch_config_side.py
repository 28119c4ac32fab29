"""DeepLabCut's side of the pytorch_config tests (tests/project/test_pytorch_config_peer.py), run in its own
environment through tests/dlc_peer.py "call" jobs: its own file for a project, its validation and
builders run on the files we write, and its defaults beside ours for every net_type."""
from __future__ import annotations

import copy


def dlc_pytorch_config(project: dict, path: str, net_type: str, top_down: bool = False,
                       detector_type: str | None = None) -> dict:
    """What DeepLabCut's PoseConfig.build writes for the project (saved at ``path``), as a dict."""
    from deeplabcut.pose_estimation_pytorch.config import PoseConfig

    config = PoseConfig.build(project, path, top_down=top_down, net_type=net_type, detector_type=detector_type,
                              save=True)
    return config.to_dict(normalize=True)


def check_our_files(pose_config_path: str, test_config_path: str) -> dict:
    """Load our pytorch_config.yaml and test/pose_cfg.yaml as DeepLabCut does and build what they describe:
    the pose model (untrained backbone), its optimizer and schedule, the detector. Returns the validated
    config and what was built."""
    from deeplabcut.pose_estimation_pytorch.config import PoseConfig, TestConfig
    from deeplabcut.pose_estimation_pytorch.models import PoseModel
    from deeplabcut.pose_estimation_pytorch.models.detectors import DETECTORS
    from deeplabcut.pose_estimation_pytorch.runners.schedulers import build_scheduler
    from deeplabcut.pose_estimation_pytorch.runners.train import build_optimizer

    config = PoseConfig.from_yaml(pose_config_path).to_dict(normalize=True)
    test = TestConfig.from_yaml(test_config_path).to_dict(normalize=True)
    model = PoseModel.build(copy.deepcopy(config["model"]), pretrained_backbone=False)  # it edits the dict
    optimizer = build_optimizer(model, config["runner"]["optimizer"])
    scheduler = build_scheduler(config["runner"]["scheduler"], optimizer)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    built = {"config": config, "test": test, "n_parameters": sum(p.numel() for p in model.parameters()),
             "keys": sorted(model.state_dict()), "scheduler": type(scheduler).__name__, "lrs": lrs}
    if config.get("detector"):
        detector_model = dict(config["detector"]["model"])
        detector = DETECTORS.build(detector_model, pretrained=False) if detector_model["type"] == "SSDLite" else None
        built["detector"] = type(detector).__name__ if detector is not None else detector_model["variant"]
    return built


def defaults_pairs(cases: list[dict]) -> dict:
    """For each case (a project's config.yaml, net_type, top_down, detector_type, and our defaults dict):
    DeepLabCut's ``PoseConfig.build`` output and our dict, both through its validation
    (``PoseConfig.from_dict(...).to_dict(normalize=True)``); a case DeepLabCut refuses returns its error.
    Also the net_types and detector_types DeepLabCut offers, to check that every one was compared."""
    from deeplabcut.pose_estimation_pytorch.config import PoseConfig
    from deeplabcut.pose_estimation_pytorch.config.enums import DetectorType, NetType

    pairs = []
    for case in cases:
        try:
            dlc = PoseConfig.build(case["project"], case["pose_config_path"], net_type=case["net_type"],
                                   top_down=case["top_down"], detector_type=case["detector_type"], save=False)
            ours = PoseConfig.from_dict(copy.deepcopy(case["ours"]))
            pairs.append({"dlc": dlc.to_dict(normalize=True), "ours": ours.to_dict(normalize=True)})
        except Exception as error:  # noqa: BLE001 - reported per case by the test
            pairs.append({"error": f"{type(error).__name__}: {error}"})
    return {"pairs": pairs, "net_types": NetType.available_aliases(),
            "detector_types": [d.value for d in DetectorType]}
