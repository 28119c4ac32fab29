"""The model folder api.create_training_dataset writes for a conditional top-down (ctd_*) net_type equals
DeepLabCut 3.0.2's own (its create_training_dataset, run in its environment: tests/dlc_peer.py), key by key.

On the 3-fish demo: ctd_conditions as a shuffle, (shuffle, snapshot name) and (shuffle, snapshot index), for
an RTMPose, a CoAM and an HRNet pre-network model; and the raw defaults of every ctd net_type DeepLabCut offers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project import shuffles as _shuffles
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc_defaults import CTD_NET_TYPES, pose_config_defaults, with_ctd_conditions
from dlc_peer import run_peer  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

SIDE = "ctd_config_side"
CASES = [(2, "ctd_prenet_rtmpose_s", 1), (3, "ctd_coam_w32", (1, "snapshot-best-010.pt")),
         (4, "ctd_prenet_hrnet_w32", (1, -1))]
# allowed differences, and why: the two projects lie in different folders
PATHS = ("metadata.project_path", "metadata.pose_config_path")
# DeepLabCut writes its validation's defaults too (null fields, inference options) and the conditions in its
# source form ({source: shuffle, shuffle: 1, config: null, ...}); our files leave them to its validation, as for
# every other net_type (tests/project/test_pytorch_config_peer.py): the validated files are compared whole
CONDITIONS = "inference.conditions"

def flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def differences(ours: dict, theirs: dict, allowed=PATHS) -> list[str]:
    a, b = flat(ours), flat(theirs)
    return [f"{k}: ours {a.get(k)!r}, DeepLabCut {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not k.startswith(allowed)]


def read(path: Path) -> dict:
    with open(path, encoding="utf-8") as stream:
        return YAML(typ="safe").load(stream)


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctd_peer")
    ours = make_demo_project(root / "ours", n_frames=12, n_labeled=6, size=64)
    theirs = root / "theirs"
    shutil.copytree(ours.parent, theirs)
    text = (theirs / "config.yaml").read_text().replace(str(ours.parent), str(theirs))
    (theirs / "config.yaml").write_text(text)
    return ours, theirs / "config.yaml"


def test_ctd_model_folders_equal_deeplabcuts(projects):
    ours, theirs = projects
    cfg = ProjectConfig.read(ours)
    ours_files = []
    for shuffle, net_type, conditions in CASES:
        api.create_training_dataset(ours, Shuffles=[shuffle], net_type=net_type, ctd_conditions=conditions)
        train_dir = _shuffles.model_folder(cfg, cfg.training_fractions[0], shuffle) / "train"
        ours_files.append(train_dir)
    dlc, validated = run_peer([
        {"kind": "call", "function": f"{SIDE}:create_shuffles", "args": [str(theirs), CASES]},
        {"kind": "call", "function": f"{SIDE}:validate",
         "args": [[str(d / "pytorch_config.yaml") for d in ours_files]]}])
    for (shuffle, net_type, _), train_dir, theirs_files, ours_validated in zip(CASES, ours_files, dlc["value"],
                                                                              validated["value"]):
        written = read(train_dir / "pytorch_config.yaml")
        # through DeepLabCut's validation, our file is DeepLabCut's: no difference but the project's folder
        assert differences(ours_validated, theirs_files["pytorch_config"]) == [], net_type
        # as written, every field of ours is DeepLabCut's (it writes its validation's defaults as well)
        a, b = flat(written), flat(theirs_files["pytorch_config"])
        assert [k for k in a if a[k] != b.get(k, "missing") and not k.startswith(PATHS + (CONDITIONS,))] == []
        assert {k: v for k, v in flat(b).items() if k.startswith(CONDITIONS) and v not in (None, "", 0)} == \
            {f"{CONDITIONS}.{k}": v for k, v in written["inference"]["conditions"].items()} | \
            {f"{CONDITIONS}.source": "shuffle"}
        assert written["method"] == "ctd" and written["net_type"] == net_type
        assert differences(read(train_dir.parent / "test" / "pose_cfg.yaml"), theirs_files["pose_cfg"],
                           ("dataset",)) == [], net_type


def test_every_ctd_net_types_defaults_equal_deeplabcuts(projects):
    ours, theirs = projects
    meta = ProjectConfig.read(ours).meta()
    (dlc,) = run_peer([{"kind": "call", "function": f"{SIDE}:raw_defaults", "args": [str(theirs), 1]}])
    assert sorted(dlc["value"]) == sorted(CTD_NET_TYPES)
    for net_type, theirs_raw in dlc["value"].items():
        written = with_ctd_conditions(pose_config_defaults(net_type, meta, project_path="p",
                                                           pose_config_path="pytorch_config.yaml"), 1)
        # inference: DeepLabCut writes InferenceConfig()'s defaults there, ours only the conditions
        assert differences(written, theirs_raw, PATHS + ("inference.",)) == [], net_type
        assert written["inference"]["conditions"] == theirs_raw["inference"]["conditions"] == {"shuffle": 1}
