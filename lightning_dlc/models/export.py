"""A run folder of ours -> a DeepLabCut project's model folder, which DeepLabCut 3.0.2 reads.

``export_run`` writes, into the shuffle's ``dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>
shuffle<n>/train/``, DeepLabCut's files for every snapshot of the run: ``snapshot-NNN.pt``,
``snapshot-best-NNN.pt`` (and a top-down run's ``snapshot-detector-*.pt``), ``pytorch_config.yaml``
and ``../test/pose_cfg.yaml``. DeepLabCut's ``evaluate_network``, ``analyze_videos``, DeepLabCut-Live
and Anipose then use the model, and so does every entry point here (they read ``.pt`` folders too).
Nothing of the folder is replaced without ``overwrite=True``; files are written atomically.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from lightning_dlc.models.dlc_model_folder import to_dlc_snapshot
from lightning_dlc.models.snapshot_files import DETECTOR, POSE, find_snapshots, load_snapshot, snapshot_epoch
from lightning_dlc.models.snapshot_files import net_type as model_net_type
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc import as_config
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, pytorch_config_from_run, write_pytorch_config
from lightning_dlc.project.shuffles import model_folder

log = logging.getLogger(__name__)

__all__ = ["export_run", "shuffle_train_dir"]


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
