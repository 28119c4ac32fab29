"""Snapshot files, the one home of their names, finding and reading.

Ours are Lightning checkpoints (``snapshot-050.ckpt``, ``snapshot-best-120.ckpt``; a top-down run's
detector ``snapshot-detector-020.ckpt``); DeepLabCut's are ``snapshot-050.pt``, ``snapshot-best-120.pt``,
``snapshot-detector-020.pt`` beside its ``pytorch_config.yaml`` (:mod:`.dlc_model_folder`). Both load
here into the same contents (``state_dict``, ``run_config``, ``project_meta``, ``epoch``), read with
``torch.load(weights_only=True)``. Scorer names are DeepLabCut's (``apis/utils.py: get_scorer_name``).

Here, below evaluation and inference, so both find and read snapshots without importing each other
or Lightning.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from lightning_dlc.models.dlc_model_folder import from_dlc_snapshot, is_dlc_snapshot
from lightning_dlc.project.errors import ProjectError

log = logging.getLogger(__name__)

POSE, DETECTOR = "snapshot", "snapshot-detector"  # file name prefixes
SUFFIXES = ("ckpt", "pt")  # ours (Lightning, resumable), DeepLabCut's
SNAPSHOT_CHOICES = ("best", "last", "all")

__all__ = ["BEST", "DETECTOR", "POSE", "SNAPSHOT_CHOICES", "detector_beside", "find_snapshots", "init_from_snapshot",
           "is_best", "load_snapshot", "net_name", "net_type", "scorer_name", "snapshot_epoch", "snapshot_header",
           "snapshot_patterns", "snapshot_weights"]


def snapshot_patterns(prefix: str = POSE, suffix: str = "ckpt") -> tuple[re.Pattern, re.Pattern]:
    """Regular and best snapshot names of one kind (``prefix``: :data:`POSE` or :data:`DETECTOR`;
    ``suffix``: ``ckpt``, ``pt`` or a regex such as ``(?:ckpt|pt)``)."""
    return (re.compile(rf"(?:^|/){prefix}-(\d+)\.{suffix}$"),
            re.compile(rf"(?:^|/){prefix}-best-(\d+)\.{suffix}$"))


SNAPSHOT, BEST = snapshot_patterns(POSE, "(?:ckpt|pt)")
DETECTOR_SNAPSHOT, DETECTOR_BEST = snapshot_patterns(DETECTOR, "(?:ckpt|pt)")


def snapshot_epoch(path: Path) -> int:
    """The epoch in a snapshot's name (``snapshot-050.ckpt``, ``snapshot-detector-best-120.pt``), else -1."""
    for pattern in (SNAPSHOT, BEST, DETECTOR_SNAPSHOT, DETECTOR_BEST):
        match = pattern.search(Path(path).name)
        if match:
            return int(match.group(1))
    return -1


def is_best(path: Path) -> bool:
    """A ``snapshot-best-*`` / ``snapshot-detector-best-*`` file."""
    return bool(BEST.search(Path(path).name) or DETECTOR_BEST.search(Path(path).name))


# --------------------------------------------------------------------------- finding
def _listed(run_dir: Path, prefix: str, suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """A folder's snapshots of one kind in DeepLabCut's order (by epoch, the best one last): our
    ``.ckpt`` files when there are any (they hold the run config), else DeepLabCut's ``.pt``."""
    for suffix in suffixes:
        regular, best = snapshot_patterns(prefix, suffix)
        found = [p for p in run_dir.glob(f"{prefix}-*.{suffix}") if regular.search(p.name) or best.search(p.name)]
        if found:
            return sorted(found, key=lambda p: (is_best(p), snapshot_epoch(p)))
    return []


def find_snapshots(run_dir: str | Path, which: str | int = "best", prefix: str = POSE,
                   suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """The snapshots of a run folder or a DeepLabCut model folder's ``train/``.

    ``best``: ``snapshot-best-<epoch>`` (the last one when no best was kept, e.g. a run without
    evaluation during training); ``last``: the regular snapshot of the highest epoch; ``all``: every
    snapshot, by epoch; an int: DeepLabCut's ``snapshotindex`` (index into the snapshots sorted by
    epoch with the best one last: -1 is the best when there is one). ``prefix``: ``snapshot`` (pose
    models) or ``snapshot-detector`` (a top-down run's detector). ``suffixes``: ``("pt",)`` lists
    DeepLabCut's files only, as DeepLabCut does.
    """
    if isinstance(which, str) and which.lstrip("-").isdigit():
        which = int(which)
    if not isinstance(which, int) and which not in SNAPSHOT_CHOICES:
        raise ValueError(f"snapshots must be one of {SNAPSHOT_CHOICES} or an index, got {which!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProjectError(run_dir, "no such run folder (expected outputs/YYYY-MM-DD/HH-MM-SS or a DeepLabCut "
                                    "model folder's train/ with snapshots)")
    listed = _listed(run_dir, prefix, suffixes)
    if not listed:
        raise ProjectError(run_dir, f"holds no snapshots ({prefix}-<epoch>.ckpt or .pt); train first, or name "
                                    "the folder that holds them")
    if isinstance(which, int):
        if not -len(listed) <= which < len(listed):
            raise ProjectError(run_dir, f"snapshot index {which} out of range: {len(listed)} snapshots "
                                        f"{[p.name for p in listed]}")
        return [listed[which]]
    best = [p for p in listed if is_best(p)]
    regular = [p for p in listed if not is_best(p)]
    if which == "all":
        return sorted(listed, key=lambda p: (snapshot_epoch(p), is_best(p)))
    if which == "best" and best:
        return best[-1:]
    if which == "best":
        log.warning("%s: no %s-best-* snapshot (no evaluation during training?); using the last snapshot",
                    run_dir, prefix)
    return (regular or best)[-1:]


def detector_beside(pose_snapshot: Path, which: str | int = "best") -> Path | None:
    """The ``snapshot-detector-*`` (``which``: best, else last, or DeepLabCut's ``detector_snapshotindex``)
    in a top-down pose snapshot's folder, or None when there is none; an index out of range is an error."""
    folder = Path(pose_snapshot).parent
    if not folder.is_dir() or not _listed(folder, DETECTOR):
        return None
    return find_snapshots(folder, which, prefix=DETECTOR)[0]


# --------------------------------------------------------------------------- reading
def load_snapshot(path: str | Path) -> dict:
    """A snapshot's contents without running code from it (tensors and plain containers only).

    A DeepLabCut ``.pt`` comes back as ours: ``state_dict`` (keys ``model.``/``detector.`` + DeepLabCut's),
    ``run_config`` and ``project_meta`` rebuilt from the ``pytorch_config.yaml`` beside it, ``epoch``.
    """
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refused, truncated file, not a torch file
        raise ProjectError(Path(path), f"cannot be read as a snapshot ({type(error).__name__}: "
                                       f"{str(error).splitlines()[0] if str(error) else ''})") from None
    return from_dlc_snapshot(path, contents) if is_dlc_snapshot(path) else contents


def snapshot_weights(path: str | Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The model's weights in a snapshot, ours (``state_dict`` keys under ``prefix``) or DeepLabCut's
    (``model``), keyed as the model's own state dict (the key map between the engines is the identity)."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(path, "no such snapshot file")
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ProjectError(path, f"cannot be read as a snapshot ({type(error).__name__})") from None
    if isinstance(contents, Mapping) and isinstance(contents.get("state_dict"), Mapping):
        state = {k[len(prefix):]: v for k, v in contents["state_dict"].items() if k.startswith(prefix)}
    elif isinstance(contents, Mapping) and isinstance(contents.get("model"), Mapping):
        state = dict(contents["model"])
    else:
        raise ProjectError(path, "is neither our snapshot (no 'state_dict') nor DeepLabCut's (no 'model')")
    bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if not state or bad is not None:
        what = f"key {bad!r} is not a tensor" if bad is not None else "empty"
        raise ProjectError(path, f"holds no model weights ({what})")
    return state


def init_from_snapshot(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Start ``model`` from a snapshot's weights (fine-tuning; epochs still count from 0).

    The whole model when every tensor fits; from another project (other bodyparts, individuals)
    the tensors that fit by name and shape (the backbone, ...) while the rest keep their fresh
    initialisation, named in a warning. Returns the keys initialised anew; an error names the file
    and a key when not even the backbone fits.
    """
    own = model.state_dict()
    state = snapshot_weights(path)
    fits = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    anew = sorted(own.keys() - fits.keys())
    backbone = [k for k in own if k.startswith("backbone.")]
    if backbone and not all(k in fits for k in backbone):
        key = next(k for k in backbone if k not in fits)
        found = tuple(state[key].shape) if key in state else "absent"
        raise ProjectError(Path(path), f"does not fit this model's backbone: {key} is {found} in the file, "
                                       f"{tuple(own[key].shape)} here (another net_type?)")
    model.load_state_dict(fits, strict=False)
    if anew:
        modules = sorted({k.rsplit(".", 1)[0] for k in anew})
        log.warning("%s: %d of %d tensors taken; initialised anew (shapes differ: another project's bodyparts "
                    "or individuals?): %s", path, len(fits), len(own), ", ".join(modules))
    else:
        log.info("%s: whole model initialised from it", path)
    return anew


def snapshot_header(path: Path) -> dict:
    """A snapshot's run config, metadata and epoch (our files memory-mapped: tensors are not read)."""
    if is_dlc_snapshot(path):
        snapshot = load_snapshot(path)
    else:
        try:
            snapshot = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # not a zip-format file: mmap is unsupported, read it whole
            snapshot = load_snapshot(path)
    if "run_config" not in snapshot or "project_meta" not in snapshot:
        raise ProjectError(path, "not a lightning_dlc snapshot (no run_config / project_meta)")
    epoch = snapshot_epoch(path)
    if epoch < 0:
        epoch = int(snapshot.get("epoch", -1)) + 1
    return {"run_config": snapshot["run_config"], "project_meta": snapshot["project_meta"], "epoch": epoch}


# --------------------------------------------------------------------------- names
def net_type(run_config: Mapping, run_dir: Path | None = None) -> str:
    """The model's name (``resnet_50``, ``top_down_hrnet_w32``): ``net_type`` when the run config has it
    (DeepLabCut's model folders, runs that record it), else the ``model`` choice Hydra recorded in
    ``<run>/.hydra/hydra.yaml``, else from the backbone (``HRNet`` ``w32`` -> ``hrnet_w32``)."""
    name = run_config.get("net_type")
    hydra_file = run_dir / ".hydra" / "hydra.yaml" if run_dir is not None else None
    if name is None and hydra_file is not None and hydra_file.is_file():
        from omegaconf import OmegaConf

        try:
            name = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.model")
        except Exception:  # a damaged file only costs the nicer name
            name = None
    if name is None:
        backbone = (run_config.get("model") or {}).get("backbone") or {}
        family = str(backbone.get("_target_", "model")).rsplit(".", 1)[-1].lower().replace("backbone", "")
        variant = str(backbone.get("name") or backbone.get("variant") or "")
        name = variant if variant.startswith(family) or (variant and family == "timm") else \
            "_".join(p for p in (family, variant) if p)
        if (run_config.get("model") or {}).get("top_down") is not None:
            name = f"top_down_{name}"
    return str(name)


def net_name(run_config: Mapping, run_dir: Path | None = None) -> str:
    """The model's name as DeepLabCut writes it in scorer names (``resnet_50`` -> ``Resnet50``; :func:`net_type`):
    from its pytorch_config's ``net_type``, which names a top-down model by its backbone (``top_down_resnet_50``
    -> ``Resnet50``, ``method: td``)."""
    name = net_type(run_config, run_dir).removeprefix("top_down_")
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _uid(snapshot: Path, epoch: int) -> str:
    return f"best-{epoch}" if is_best(snapshot) else str(epoch)


def scorer_name(net: str, task: str, shuffle: int | None, snapshot: Path, epoch: int,
                detector: Path | None = None) -> str:
    """DeepLabCut's scorer: ``DLC_<Net>_<Task><date>shuffle<n>_snapshot_<epochs>`` (``_snapshot_best-<epochs>``);
    with a top-down model's ``detector`` snapshot ``..._detector_<uid>_snapshot_<uid>`` (``get_scorer_uid``)."""
    uid = f"snapshot_{_uid(snapshot, epoch)}"
    if detector is not None:
        uid = f"detector_{_uid(detector, snapshot_epoch(detector))}_{uid}"
    shuffle_part = f"shuffle{shuffle}" if shuffle is not None else ""
    return f"DLC_{net}_{task}{shuffle_part}_{uid}"
