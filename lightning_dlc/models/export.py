"""A run folder of ours -> a DeepLabCut project's model folder, which DeepLabCut 3.0.2 reads.

``export_run`` writes, into the shuffle's ``dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>
shuffle<n>/train/``, DeepLabCut's files for every snapshot of the run: ``snapshot-NNN.pt``,
``snapshot-best-NNN.pt`` (and a top-down run's ``snapshot-detector-*.pt``), ``pytorch_config.yaml``
and ``../test/pose_cfg.yaml``. DeepLabCut's ``evaluate_network``, ``analyze_videos``, DeepLabCut-Live
and Anipose then use the model, and so does every entry point here (they read ``.pt`` folders too).
Nothing of the folder is replaced without ``overwrite=True``; files are written atomically.

``export_model`` is DeepLabCut 3.0.2's (pose_estimation_pytorch/apis/export.py): a shuffle's model folder
(trained by either engine) -> ``exported-models-pytorch/DLC_<Task>_NetType.<NET_TYPE>_iteration-<i>_shuffle-<n>/
<that name>[_snapshot-detector<uid>]_snapshot-<uid>.pt`` holding ``{"config": pytorch_config, "pose":
state_dict[, "detector": state_dict]}`` for DeepLabCut-Live. As DeepLabCut, a file already exported is
kept unless ``overwrite``.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

from lightning_dlc.models.dlc_model_folder import to_dlc_snapshot
from lightning_dlc.models.snapshot_files import (DETECTOR, POSE, find_snapshots, is_best, load_snapshot,
                                                  snapshot_epoch)
from lightning_dlc.models.snapshot_files import net_type as model_net_type
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc import as_config
from lightning_dlc.project.dlc_defaults import LEGACY_ALIASES, TOP_DOWN_PREFIX
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.pytorch_config import (PYTORCH_CONFIG, pytorch_config_from_run, read_pytorch_config,
                                                  write_pytorch_config)
from lightning_dlc.project.shuffles import model_folder

log = logging.getLogger(__name__)

__all__ = ["EXPORTED_MODELS", "export_model", "export_run", "shuffle_train_dir"]

EXPORTED_MODELS = "exported-models-pytorch"  # DeepLabCut's folder of exported models, in the project


def shuffle_train_dir(config: str | Path | ProjectConfig, shuffle: int = 1, trainset_index: int = 0) -> Path:
    """DeepLabCut's ``train/`` folder of a shuffle (an error names config.yaml for a bad index)."""
    cfg = as_config(config)
    fractions = cfg.training_fractions
    if not 0 <= trainset_index < len(fractions):
        raise ProjectError(cfg.path, f"TrainingFraction {fractions} has no index {trainset_index}")
    return model_folder(cfg, fractions[trainset_index], shuffle) / "train"


def _dlc_contents(ckpt: Path, prefix: str) -> dict:
    """DeepLabCut's snapshot for one of our checkpoints (the metrics of a .pt written in training, if any)."""
    beside = ckpt.with_suffix(".pt")
    metrics = {}
    if beside.is_file():
        metrics = (torch.load(beside, map_location="cpu", weights_only=True).get("metadata") or {}).get("metrics")
    state = torch.load(ckpt, map_location="cpu", weights_only=True).get("state_dict")
    if not isinstance(state, dict):
        raise ProjectError(ckpt, "not one of our snapshots (no state_dict)")
    return to_dlc_snapshot(state, prefix, snapshot_epoch(ckpt), metrics)


def _check_project(meta: dict, cfg: ProjectConfig, where: Path) -> None:
    project_meta = cfg.meta()
    for key, ours in (("bodyparts", project_meta.bodyparts), ("unique_bodyparts", project_meta.unique_bodyparts),
                      ("individuals", project_meta.individuals)):
        if tuple(meta.get(key) or ()) != tuple(ours):
            raise ProjectError(where, f"was trained on {key} {list(meta.get(key) or ())}, but {cfg.path} has "
                                      f"{list(ours)}: export it to the project it trained on")


def export_run(run: str | Path, config: str | Path, shuffle: int = 1, trainset_index: int = 0,
               snapshots: str = "all", overwrite: bool = False, net_type: str | None = None) -> Path:
    """Export run folder ``run``'s snapshots (``all``, ``best`` or ``last``) into a shuffle's model folder.

    ``net_type``: DeepLabCut's name of the model, for runs that did not record it (the run config's
    ``net_type``, else the ``model=`` choice in ``<run>/.hydra``).

    Returns the ``train/`` folder written. Raises ProjectError naming the first DeepLabCut file of
    that folder that would be replaced, unless ``overwrite``.
    """
    run, cfg = Path(run), as_config(config)
    ckpts = [p for p in find_snapshots(run, snapshots) if p.suffix == ".ckpt"]
    if not ckpts:
        raise ProjectError(run, "holds no snapshot-*.ckpt of ours to export")
    try:
        detectors = [p for p in find_snapshots(run, "all", prefix=DETECTOR) if p.suffix == ".ckpt"]
    except ProjectError:  # a bottom-up run
        detectors = []
    header = load_snapshot(ckpts[-1])
    run_config, meta = header.get("run_config") or {}, header.get("project_meta") or {}
    _check_project(meta, cfg, ckpts[-1])
    train_dir = shuffle_train_dir(cfg, shuffle, trainset_index)
    targets = [(p, train_dir / f"{p.stem}.pt", "model." if p.name.startswith(f"{POSE}-") and DETECTOR not in p.name
                else "detector.") for p in [*ckpts, *detectors]]
    if not overwrite:  # a .pt beside its .ckpt is ours (training wrote it: api.train_network's folder)
        existing = [p for p in sorted(train_dir.glob("snapshot-*.pt")) if not p.with_suffix(".ckpt").is_file()]
        existing += [p for p in (train_dir / PYTORCH_CONFIG, train_dir.parent / "test" / "pose_cfg.yaml")
                     if p.exists()]
        if existing:
            raise ProjectError(existing[0], "DeepLabCut's model folder for this shuffle is taken; pass overwrite=True "
                                            "(lightning-dlc export: overwrite=true) to replace its files")
    # the config first: a model DeepLabCut cannot express stops the export before any file is written
    net_type = net_type or model_net_type(run_config, run)
    pytorch_config = pytorch_config_from_run(run_config, cfg.meta(), net_type=net_type, project=cfg)
    train_dir.mkdir(parents=True, exist_ok=True)
    for ckpt, target, prefix in targets:
        with atomic_path(target, overwrite=True) as tmp:
            torch.save(_dlc_contents(ckpt, prefix), tmp)
        log.info("%s -> %s", ckpt.name, target)
    write_pytorch_config(train_dir, pytorch_config, overwrite=True)
    print(f"Exported {len(targets)} snapshots of {run} to {train_dir}")
    return train_dir


# --------------------------------------------------------------------------- DeepLabCut's export_model
def _dlc_snapshots(train_dir: Path, index, prefix: str) -> list[Path]:
    """DeepLabCut's ``.pt`` snapshots of a model folder by its ``snapshotindex`` (an int, ``all`` or ``best``)."""
    found = find_snapshots(train_dir, index, prefix=prefix, suffixes=("pt",))
    if index == "best" and not is_best(found[0]):  # DeepLabCut has no fallback to the last one here
        raise ProjectError(train_dir, f"has no {prefix}-best-*.pt to export (snapshotindex='best')")
    return found


def _uid(snapshot: Path) -> str:
    """DeepLabCut's ``Snapshot.uid()``: the epoch, ``best-<epoch>`` for a best snapshot."""
    return f"best-{snapshot_epoch(snapshot)}" if is_best(snapshot) else str(snapshot_epoch(snapshot))


def _canonical_net_type(net_type: str) -> str:
    """The net_type as DeepLabCut's typed PoseConfig holds it (``top_down_resnet_50`` -> ``resnet_50``, legacy
    names mapped): its exported config carries that form."""
    return LEGACY_ALIASES.get(str(net_type), str(net_type)).removeprefix(TOP_DOWN_PREFIX)


def _export_name(cfg: ProjectConfig, net_type: str, shuffle: int) -> str:
    """DeepLabCut 3.0.2's ``get_export_folder_name``. It formats its NetType enum into the name, which Python
    3.11+ writes as ``NetType.RESNET_50``: kept, so both engines export a shuffle to the same paths."""
    return f"DLC_{cfg.task}_NetType.{net_type.upper()}_iteration-{cfg.iteration}_shuffle-{shuffle}"


def _wipe_paths(model_cfg: dict) -> None:
    """DeepLabCut's ``wipe_paths_from_model_config``: no path of this machine in the exported config."""
    model_cfg.setdefault("metadata", {}).update(project_path=None, pose_config_path=None)
    model_cfg.setdefault("train_settings", {})["weight_init"] = None
    model_cfg["resume_training_from"] = None
    if model_cfg.get("detector") is not None:
        model_cfg["detector"]["resume_training_from"] = None


def export_model(config: str | Path | ProjectConfig, shuffle: int = 1, trainset_index: int = 0,
                 snapshot_index=None, detector_snapshot_index=None, iteration: int | None = None,
                 overwrite: bool = False, wipe_paths: bool = False, without_detector: bool = False,
                 modelprefix: str = "") -> list[Path]:
    """DeepLabCut's export_model for one shuffle: every chosen snapshot (x detector snapshot) -> one file.

    ``snapshot_index`` / ``detector_snapshot_index``: DeepLabCut's index, ``all`` or ``best``; None takes
    config.yaml's ``snapshotindex`` (``all`` when unset) / ``detector_snapshotindex`` (-1). ``iteration``
    replaces config.yaml's; ``modelprefix`` is the folder holding ``dlc-models-pytorch``. Returns every
    export file of the call, those kept because they existed (no ``overwrite``) included.
    """
    cfg = as_config(config)
    if iteration is not None:  # DeepLabCut's cfg["iteration"] = iteration, for this call only
        data = copy.deepcopy(cfg.data)
        data["iteration"] = int(iteration)
        cfg = ProjectConfig(cfg.path, data)
    folder = shuffle_train_dir(cfg, shuffle, trainset_index)
    train_dir = cfg.root / modelprefix / folder.relative_to(cfg.root)
    config_path = train_dir / PYTORCH_CONFIG
    if not config_path.is_file():
        raise ProjectError(train_dir, f"no {PYTORCH_CONFIG}: shuffle {shuffle} (trainingsetindex {trainset_index}, "
                                      f"iteration {cfg.iteration}) has no trained model to export")
    model_cfg = read_pytorch_config(config_path)
    if snapshot_index is None:
        snapshot_index = cfg.data.get("snapshotindex", "all")
    poses = _dlc_snapshots(train_dir, snapshot_index, POSE)
    detectors: list[Path | None] = [None]
    if str(model_cfg.get("method", "bu")).lower() == "td" and not without_detector:
        if detector_snapshot_index is None:
            detector_snapshot_index = cfg.data.get("detector_snapshotindex", -1)
        try:
            detectors = _dlc_snapshots(train_dir, detector_snapshot_index, DETECTOR)
        except ProjectError as error:
            raise ProjectError(train_dir, f"top-down model: no detector snapshot to export with it ({error.problem}); "
                                          "without_detector=True exports the pose model alone") from None
    if wipe_paths:
        _wipe_paths(model_cfg)
    model_cfg["net_type"] = _canonical_net_type(model_cfg["net_type"])
    name = _export_name(cfg, model_cfg["net_type"], shuffle)
    export_dir = cfg.root / EXPORTED_MODELS / name
    export_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for detector in detectors:
        detector_weights = None if detector is None else _dlc_weights(detector)
        for pose in poses:
            detector_part = "" if detector is None else f"_snapshot-detector{_uid(detector)}"
            target = export_dir / f"{name}{detector_part}_snapshot-{_uid(pose)}.pt"
            written.append(target)
            if target.exists() and not overwrite:
                log.info("%s: exported before, kept (overwrite=True replaces it)", target)
                continue
            contents = {"config": copy.deepcopy(model_cfg), "pose": _dlc_weights(pose)}
            if detector_weights is not None:
                contents["detector"] = detector_weights
            with atomic_path(target, overwrite=True) as tmp:
                torch.save(contents, tmp)
    return written


def _dlc_weights(snapshot: Path) -> dict:
    contents = torch.load(snapshot, map_location="cpu", weights_only=True)
    if not isinstance(contents, dict) or not isinstance(contents.get("model"), dict):
        raise ProjectError(snapshot, "not a DeepLabCut snapshot (no 'model' state dict)")
    return contents["model"]
