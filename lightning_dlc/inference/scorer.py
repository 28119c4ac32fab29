"""Which snapshot a run names, and what DeepLabCut calls its predictions (scorer, iteration, training fraction)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lightning_dlc.models.snapshot_files import (detector_beside, find_snapshots, net_name, scorer_name,
                                                 snapshot_epoch)
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SCORER", "ModelInfo", "describe_snapshot", "detector_snapshot", "snapshot_from_args"]

DEFAULT_SCORER = "DLC_lightning_dlc"


@dataclass(frozen=True)
class ModelInfo:
    """Where a predictor's model came from, for file names and the meta pickle."""

    scorer: str = DEFAULT_SCORER
    snapshot: Path | None = None
    run_config: dict = field(default_factory=dict)
    iteration: int | None = None
    train_fraction: float | None = None
    detector_snapshot: Path | None = None  # top-down models: the detector that finds the animals


def _project_config(where, source) -> ProjectConfig | None:
    if not where or source == "coco":
        return None
    path = Path(str(where)).expanduser()
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        return None
    try:
        return ProjectConfig.read(path)
    except Exception as e:  # a damaged config only costs the task name in the scorer
        log.warning("%s: cannot read it for the scorer name (%s)", path, e)
        return None


def describe_snapshot(path: Path, snapshot: Mapping, project=None, detector: Path | None = None) -> ModelInfo:
    """Scorer (DeepLabCut's name), iteration and training fraction of a snapshot's run.

    The task and date come from the project the run trained on (``project`` when it moved since); a
    top-down model's ``detector`` snapshot is named in the scorer as DeepLabCut does.
    """
    run_config = dict(snapshot.get("run_config") or {})
    data = run_config.get("data") or {}
    epoch = snapshot_epoch(path)
    if epoch < 0:
        epoch = int(snapshot.get("epoch", -1)) + 1
    source = data.get("source", "dlc")
    cfg = _project_config(project if project is not None else data.get("project"), source)
    shuffle = data.get("shuffle") if source != "coco" else None
    iteration = fraction = None
    if cfg is not None:
        task = f"{cfg.task}{cfg.date}"
        iteration = cfg.iteration
        index = int(data.get("trainset_index") or 0)
        fractions = cfg.training_fractions
        fraction = fractions[index] if 0 <= index < len(fractions) else None
    else:
        where = Path(str(project if project is not None else data.get("project") or path.parent.name))
        task = where.parent.name if where.suffix in (".yaml", ".yml") else where.name
        if source != "coco":
            log.warning("%s: the project it trained on (%s) is not there; scorer names use %r as the task "
                        "(pass project= to name it as DeepLabCut does)", path, where, task)
    scorer = scorer_name(net_name(run_config, path.parent), task, shuffle, path, epoch, detector)
    return ModelInfo(scorer=scorer, snapshot=path, run_config=run_config, iteration=iteration,
                     train_fraction=fraction)


def detector_snapshot(pose_snapshot: Path, detector) -> Path | None:
    """The detector snapshot a top-down predictor uses (see :meth:`Predictor.from_snapshot`)."""
    if detector is None:
        return None
    if str(detector) != "auto":
        path = Path(detector)
        if not path.is_file():
            raise ProjectError(path, "no such detector snapshot file")
        return path
    path = detector_beside(pose_snapshot)
    if path is None:
        log.warning("%s: a top-down model with no snapshot-detector-*.ckpt beside it: give boxes, or "
                    "detector=<a detector snapshot>", pose_snapshot)
    return path


def snapshot_from_args(run=None, snapshot="best") -> Path:
    """The snapshot a script names: ``snapshot`` as a file, else run folder ``run``'s ``best``, ``last`` or
    DeepLabCut's snapshot index (``-1``); ``run`` may be a DeepLabCut model folder's ``train/``."""
    if snapshot not in (None, "best", "last") and not str(snapshot).lstrip("-").isdigit():
        path = Path(snapshot)
        if not path.is_file():
            raise ProjectError(path, "no such snapshot file (or snapshot=best / last with run=<run folder>)")
        return path
    if run is None:
        raise ValueError("name the model: run=outputs/YYYY-MM-DD/HH-MM-SS (a run folder) or snapshot=<file>")
    return find_snapshots(run, "best" if snapshot is None else snapshot)[0]
