"""DeepLabCut's side of tests/project/test_ctd_pytorch_config_peer.py, run in its own environment through
tests/dlc_peer.py "call" jobs: its create_training_dataset for conditional top-down (ctd_*) net_types, its
validation of the files we write, and its raw defaults for every ctd net_type."""
from __future__ import annotations

from pathlib import Path


def _read(path: Path) -> dict:
    from ruamel.yaml import YAML

    with open(path, encoding="utf-8") as stream:
        return YAML(typ="safe").load(stream)


def create_shuffles(config: str, cases: list) -> list[dict]:
    """``deeplabcut.create_training_dataset(config, Shuffles=[n], net_type=..., ctd_conditions=...)`` per case
    ``(shuffle, net_type, ctd_conditions)``; the files it wrote (pytorch_config.yaml, test/pose_cfg.yaml)."""
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path

    out = []
    for shuffle, net_type, conditions in cases:
        deeplabcut.create_training_dataset(config, Shuffles=[shuffle], net_type=net_type, ctd_conditions=conditions,
                                           userfeedback=False, engine=deeplabcut.Engine.PYTORCH)
        train_dir = Path(return_train_network_path(config, shuffle=shuffle)[2])
        out.append({"pytorch_config": _read(train_dir / "pytorch_config.yaml"),
                    "pose_cfg": _read(train_dir.parent / "test" / "pose_cfg.yaml")})
    return out


def validate(paths: list[str]) -> list[dict]:
    """Our pytorch_config.yaml files as DeepLabCut reads and writes them back (its validation's defaults)."""
    from deeplabcut.pose_estimation_pytorch.config import PoseConfig

    return [PoseConfig.from_yaml(path).to_dict(normalize=True) for path in paths]


def raw_defaults(config: str, conditions) -> dict:
    """DeepLabCut's defaults (before its validation) for every ctd net_type it offers, for the project."""
    from deeplabcut.core.config.project_config import ProjectConfig
    from deeplabcut.pose_estimation_pytorch.config.enums import NetType
    from deeplabcut.pose_estimation_pytorch.config.make_pose_config import (build_pose_config_defaults,
                                                                            resolve_net_type_and_task)
    from deeplabcut.pose_estimation_pytorch.config.metadata import PoseMetadata

    project = ProjectConfig.from_any(config)
    out = {}
    for name in (a for a in NetType.available_aliases() if a.startswith("ctd_")):
        net_type, task = resolve_net_type_and_task(name, default="resnet_50", top_down=False)
        metadata = PoseMetadata.build(project, pose_config_path="pytorch_config.yaml")
        out[name] = build_pose_config_defaults(net_type=net_type, metadata=metadata, task=task, multi_animal=True,
                                               ctd_conditions=conditions)
    return out
