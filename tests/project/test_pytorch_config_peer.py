"""Our pytorch_config.yaml against DeepLabCut 3.0.2's own (tests/dlc_peer.py: it runs in its environment).

For a single-animal, a multi-animal and two top-down projects: the file we write for a run passes
DeepLabCut's validation, builds its model, optimizer, schedule and detector, and equals the file
DeepLabCut itself writes for the same project and net_type field by field, except the training
settings we trained with (documented below); and DeepLabCut's own file, read into our config and
written back, gives DeepLabCut's fields again. For every net_type DeepLabCut offers (but ctd_*), in
single-animal, multi-animal and unique-bodypart + identity projects, top-down ones with each detector:
our defaults (lightning_dlc.project.dlc_defaults) are DeepLabCut's PoseConfig.build output after both
pass its validation, with no difference at all.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from lightning_dlc.lit.compose import compose_train_config
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc_defaults import BACKBONES, DETECTORS, NET_TYPES, pose_config_defaults, split_net_type
from lightning_dlc.project.pytorch_config import _dlc_meta, pytorch_config_from_run, write_pytorch_config
from lightning_dlc.project.pytorch_config_read import translate_pytorch_config
from dlc_peer import run_peer  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

SIDE = "pytorch_config_side"
# what our file may hold differently from DeepLabCut's defaults: the settings the run trained with
# (conf/ defaults or the user's), and paths of this machine
TRAINED_WITH = ("runner.optimizer", "runner.scheduler", "runner.snapshots.save_optimizer_state", "train_settings.",
                "runner.eval_interval", "device", "data.train.", "metadata.pose_config_path",
                "detector.runner.optimizer", "detector.runner.scheduler", "detector.train_settings.",
                "detector.runner.snapshots.save_optimizer_state", "detector.device")
# what a DeepLabCut file loses on the way through our config (logged when read; README, pytorch_config)
NOT_KEPT = ("data.train.random_bbox_transform.shift_prob", "data.train.random_bbox_transform.scale_prob",
            "train_settings.display_iters", "detector.train_settings.display_iters", "detector.data.",
            "metadata.pose_config_path")
# what DeepLabCut's validation fills in when it reads a file (its defaults), which the file we write leaves to it
VALIDATION_DEFAULTS = ("config_version", "inference.", "detector.inference.", "runner.device",
                       "detector.runner.device")

PROJECTS = {
    "single": dict(multianimalproject=False, bodyparts=["snout", "ear", "tail"], identity=False),
    "multi": dict(multianimalproject=True, bodyparts="MULTI!", multianimalbodyparts=["snout", "ear", "tail"],
                  individuals=["m1", "m2"], uniquebodyparts=[], identity=False),
    "unique_id": dict(multianimalproject=True, bodyparts="MULTI!",
                      multianimalbodyparts=["snout", "ear", "tail", "back"], individuals=["m1", "m2", "m3"],
                      uniquebodyparts=["tag", "lamp"], identity=True),
}
CASES = [  # (project, our model= choice, DeepLabCut's net_type, top_down, detector)
    ("single", "resnet_50", "resnet_50", False, None),
    ("multi", "dlcrnet_stride16_ms5", "dlcrnet_stride16_ms5", False, None),
    ("multi", "top_down_resnet_50", "resnet_50", True, "fasterrcnn_mobilenet_v3_large_fpn"),
    ("multi", "rtmpose_s", "rtmpose_s", True, "ssdlite"),
]


def write_project(folder: Path, kind: str) -> Path:
    data = dict(Task="peer", scorer="peer", date="Jan1", project_path=str(folder), iteration=0,
                TrainingFraction=[0.95], default_net_type="resnet_50", video_sets={}, skeleton=[],
                **PROJECTS[kind])
    folder.mkdir(parents=True, exist_ok=True)
    YAML().dump(data, folder / "config.yaml")
    return folder / "config.yaml"


def flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def differences(ours: dict, theirs: dict, allowed: tuple[str, ...]) -> list[str]:
    a, b = flat(ours), flat(theirs)
    # an unset flag is DeepLabCut's false (hist_eq, with_center_keypoints, ...)
    return [f"{k}: ours {a.get(k)!r}, DeepLabCut {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not k.startswith(allowed) and not (a.get(k) is None and b.get(k) is False)]


@pytest.fixture(scope="module")
def peer_results(tmp_path_factory):
    """Per case: our files (written from the composed run config) checked by DeepLabCut, and its own file."""
    root = tmp_path_factory.mktemp("pytorch_config")
    jobs, ours = [], []
    for i, (kind, model, net_type, top_down, detector) in enumerate(CASES):
        config = write_project(root / f"{i}-{kind}", kind)
        cfg = compose_train_config(["experiment=dlc", f"data.project={config}", f"model={model}",
                                    f"detector={detector or 'none'}", "output_dir=/tmp/unused"])
        from omegaconf import OmegaConf

        run = OmegaConf.to_container(cfg, resolve=True)
        project = ProjectConfig.read(config)
        written = pytorch_config_from_run(run, project.meta(), project=project)
        pose, test = write_pytorch_config(root / f"{i}-{kind}" / "model" / "train", written)
        ours.append((config, project, run))
        jobs += [{"kind": "call", "function": f"{SIDE}:check_our_files", "args": [str(pose), str(test)]},
                 {"kind": "call", "function": f"{SIDE}:dlc_pytorch_config",
                  "args": [str(config), str(root / f"{i}-dlc.yaml"), net_type],
                  "kwargs": {"top_down": top_down, "detector_type": detector}}]
    defaults = defaults_cases(root)
    jobs.append({"kind": "call", "function": f"{SIDE}:defaults_pairs", "args": [[c for _, c in defaults]]})
    results = run_peer(jobs, timeout=600)
    compared = results[-1]["value"]
    return {"runs": [(case, *ours[i], results[2 * i]["value"], results[2 * i + 1]["value"])
                     for i, case in enumerate(CASES)],
            "defaults": [(name, pair) for (name, _), pair in zip(defaults, compared["pairs"])],
            "net_types": compared["net_types"], "detector_types": compared["detector_types"]}


def defaults_cases(root: Path) -> list[tuple[str, dict]]:
    """Every net_type in the projects DeepLabCut builds it for: bottom-up ones single-animal (not
    dlcrnet: it needs PAFs), multi-animal and with unique bodyparts + identity; top-down ones
    single-animal and multi-animal with each detector."""
    configs = {kind: write_project(root / f"defaults-{kind}", kind) for kind in PROJECTS}
    projects = {kind: ProjectConfig.read(path) for kind, path in configs.items()}
    # in DeepLabCut's words, as our writer puts it: a single-animal project lists its default individual
    metas = {kind: _dlc_meta(project.meta(), project) for kind, project in projects.items()}
    cases = []
    for net_type in NET_TYPES:
        base, top_down = split_net_type(net_type)
        if top_down:
            settings = [("single", "ssdlite")] + [("multi", detector) for detector in DETECTORS]
        else:
            settings = [(kind, None) for kind in PROJECTS if not (kind == "single" and base.startswith("dlcrnet"))]
        for kind, detector in settings:
            pose_config_path = str(root / f"defaults-{kind}" / "pytorch_config.yaml")
            ours = pose_config_defaults(net_type, metas[kind], detector_type=detector,
                                        multianimal=projects[kind].meta().multianimal,
                                        project_path=str(configs[kind].parent), pose_config_path=pose_config_path)
            cases.append((f"{net_type}-{kind}-{detector}", {
                "project": str(configs[kind]), "pose_config_path": pose_config_path, "net_type": base,
                "top_down": top_down and base in BACKBONES, "detector_type": detector, "ours": ours}))
    return cases


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_our_file_is_deeplabcuts_for_the_net_type(peer_results, index):
    (kind, model, net_type, top_down, detector), config, project, run, built, dlc = peer_results["runs"][index]
    ours = built["config"]
    diff = differences(ours, dlc, TRAINED_WITH)
    assert diff == [], "\n".join(diff)
    # the training settings are the run's, in DeepLabCut's words
    assert ours["runner"]["optimizer"]["type"] == run["optimizer"]["_target_"].rsplit(".", 1)[1]
    assert ours["runner"]["optimizer"]["params"]["lr"] == pytest.approx(run["optimizer"]["lr"])
    assert ours["train_settings"]["epochs"] == run["trainer"]["max_epochs"]
    assert ours["train_settings"]["batch_size"] == run["data"]["batch_size"]
    assert built["lrs"][0] == pytest.approx(run["optimizer"]["lr"])
    assert built["test"]["all_joints_names"] == list(project.meta().bodyparts)
    assert built["test"]["net_type"] == net_type
    if top_down:
        assert ours["method"] == "td" and ours["detector"]["runner"]["optimizer"]["type"] == "AdamW"
        assert ours["detector"]["train_settings"]["epochs"] == run["detector"]["train"]["epochs"]
        assert built["detector"] in ("SSDLite", detector)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_deeplabcuts_file_read_and_written_back(peer_results, index, tmp_path):
    (kind, model, net_type, top_down, detector), config, project, run, built, dlc = peer_results["runs"][index]
    path = tmp_path / "pytorch_config.yaml"
    YAML().dump(dlc, path)
    translated = translate_pytorch_config(dlc, project.meta(), source=path)
    assert translated.choices["model"] == model
    cfg = compose_train_config(["experiment=dlc", f"data.project={config}", "output_dir=/tmp/unused"],
                               pytorch_config=path)
    from omegaconf import OmegaConf

    back = pytorch_config_from_run(OmegaConf.to_container(cfg, resolve=True), project.meta(), project=project)
    diff = differences(_clean(back), _clean(dlc), NOT_KEPT + VALIDATION_DEFAULTS)
    assert diff == [], "\n".join(diff)
    # fields DeepLabCut validates and trains with come back as they were
    for key in ("model", "net_type", "method", "runner.optimizer", "runner.scheduler", "runner.key_metric",
                "runner.eval_interval", "runner.snapshots.save_epochs", "runner.snapshots.max_snapshots",
                "train_settings.batch_size", "train_settings.epochs", "train_settings.seed",
                "data.train.affine", "data.train.crop_sampling", "data.train.gaussian_noise",
                "data.train.motion_blur", "data.train.top_down_crop", "data.bbox_margin"):
        assert _clean(_select(back, key)) == _clean(_select(dlc, key)), key
    if top_down:
        for key in ("detector.runner.optimizer", "detector.runner.scheduler", "detector.train_settings.epochs",
                    "detector.train_settings.batch_size", "detector.model.type", "detector.model.box_score_thresh"):
            assert _clean(_select(back, key)) == _clean(_select(dlc, key)), key


def test_our_defaults_are_deeplabcuts_for_every_net_type(peer_results):
    offered = {name for name in peer_results["net_types"] if not name.startswith("ctd_")}
    assert set(NET_TYPES) == offered and set(DETECTORS) == set(peer_results["detector_types"])
    compared = {name.split("-")[0] for name, _ in peer_results["defaults"]}
    assert compared == offered
    failures = []
    for name, pair in peer_results["defaults"]:
        if "error" in pair:
            failures.append(f"{name}: DeepLabCut refused: {pair['error']}")
            continue
        a, b = flat(pair["ours"]), flat(pair["dlc"])
        # the same value of the same type (17 is not 17.0), keys included
        failures += [f"{name}: {k}: ours {a.get(k, 'missing')!r}, DeepLabCut {b.get(k, 'missing')!r}"
                     for k in sorted(set(a) | set(b)) if k not in a or k not in b or not _same(a[k], b[k])]
    assert failures == [], f"{len(failures)} differences:\n" + "\n".join(failures[:60])
    assert len(peer_results["defaults"]) >= 80


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _select(node, dotted: str):
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _clean(node):
    """Without DeepLabCut's unset (None) fields, which its validation adds to every file it writes."""
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if v is not None}
    return [_clean(v) for v in node] if isinstance(node, list) else node
