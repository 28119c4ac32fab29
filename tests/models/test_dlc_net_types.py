"""Every DeepLabCut 3.0.2 net_type has a config here that builds DeepLabCut's architecture.

DeepLabCut lists its net_types and builds each one for a single-animal project and for a
multi-animal project with unique bodyparts and identity; our ``conf/model/<net_type>.yaml``
must give the same state-dict keys (the key map is the identity) with the same shapes, so the
same parameter count. Outputs and decoding per family: tests/models/test_dlc_*_models.py.
"""
from pathlib import Path

import pytest
import torch
from dlc_peer import run_peer
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

PROJECTS = {
    "single": ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("single",)),
    "multi": ProjectMeta(bodyparts=("snout", "head", "tail"), individuals=("a", "b"), unique_bodyparts=("feeder",),
                         identity=True),
}


def peer_project(meta: ProjectMeta) -> dict:
    return {"bodyparts": list(meta.bodyparts), "individuals": list(meta.individuals),
            "multianimal": meta.multianimal, "unique_bodyparts": list(meta.unique_bodyparts),
            "identity": meta.identity}


TOP_DOWN = ("top_down_", "rtmpose_", "animaltokenpose_", "ctd_")


def project_for(alias: str, kind: str) -> ProjectMeta:
    """DeepLabCut refuses top-down models for projects with unique bodyparts: leave those out there."""
    meta = PROJECTS[kind]
    if alias.startswith(TOP_DOWN):
        return ProjectMeta(bodyparts=meta.bodyparts, individuals=meta.individuals)
    return meta


def peer_job(alias: str, meta: ProjectMeta) -> dict:
    top_down = alias.startswith("top_down_")
    return {"net_type": alias.removeprefix("top_down_"), "top_down": top_down, "project": peer_project(meta),
            "shapes_only": True, **({"detector_type": "ssdlite"} if top_down else {}),
            **({"ctd_conditions": 1} if alias.startswith("ctd_") else {})}  # DeepLabCut needs a conditions source


@pytest.fixture(scope="module")
def deeplabcut_models():
    listed = run_peer([{"kind": "call",
                        "function": "deeplabcut.pose_estimation_pytorch.config.enums:NetType.available_aliases"}])
    aliases = list(listed[0]["value"])
    jobs = [(alias, kind) for alias in aliases for kind in PROJECTS]
    results = run_peer([peer_job(alias, project_for(alias, kind)) for alias, kind in jobs])
    return {job: result["shapes"] for job, result in zip(jobs, results)}


def our_shapes(alias: str, meta: ProjectMeta) -> dict[str, tuple[int, ...]]:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={alias}", "model.backbone.pretrained=false"])
    model = model_from_config(cfg.model, meta)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_every_deeplabcut_net_type_has_a_config(deeplabcut_models):
    ours = {p.stem for p in (CONF / "model").glob("*.yaml")}
    missing = sorted({alias for alias, _ in deeplabcut_models} - ours)
    assert not missing, f"DeepLabCut net_types without conf/model/<name>.yaml: {missing}"


@pytest.mark.parametrize("kind", list(PROJECTS))
def test_every_net_type_has_deeplabcuts_parameters(deeplabcut_models, kind):
    """Same keys, same shapes (so the same parameter count) for every net_type and project kind."""
    problems = []
    for alias in sorted({a for a, _ in deeplabcut_models}):
        theirs = deeplabcut_models[alias, kind]
        with torch.device("meta"):  # shapes only: nothing is allocated or initialised
            ours = our_shapes(alias, project_for(alias, kind))
        only_theirs, only_ours = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
        shapes = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k]) != tuple(theirs[k]))
        if only_theirs or only_ours or shapes:
            problems.append(f"{alias}: {len(only_theirs)} keys only in DeepLabCut {only_theirs[:3]}, "
                            f"{len(only_ours)} only here {only_ours[:3]}, "
                            f"{len(shapes)} shapes differ {[(k, ours[k], theirs[k]) for k in shapes[:2]]}")
    assert not problems, "\n".join(problems)
