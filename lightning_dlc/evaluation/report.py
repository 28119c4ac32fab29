"""Evaluation reports: snapshots -> predictions on the train and test images -> metrics, tables, labeled images.

:func:`evaluate_snapshots` is what ``lightning-dlc evaluate`` and ``api.evaluate_network`` run.
For each snapshot it predicts the train and test images of the split the run trained on
(:mod:`lightning_dlc.inference.predict`), scores them with
:func:`~lightning_dlc.evaluation.metrics.compute_metrics` (DeepLabCut's numbers) and writes,
in ``out_dir`` (``<run>/evaluation`` by default):

- ``results.csv``: one row per snapshot and split (``snapshot, epoch, split, rmse,
  rmse_pcutoff, mAP, mAR, pcutoff, n_images, scorer``); rows of snapshots evaluated
  earlier are kept;
- ``CombinedEvaluation-results.csv``: DeepLabCut's table, one row per snapshot (in
  DeepLabCut's project layout it sits one folder up, beside the shuffles' folders);
- per snapshot, named by DeepLabCut's scorer ``DLC_<Net>_<Task><date>shuffle<n>_snapshot_<epochs>``:
  ``<scorer>.h5`` (predictions for every train and test image, DeepLabCut's layout, rows
  in image-path order), ``<scorer>-results.csv`` (DeepLabCut's one-row results) and
  ``<scorer>-keypoint-results.csv`` (RMSE per bodypart: rows ``Train error (px)``,
  ``Test error (px)`` as DeepLabCut, then the same with p-cutoff);
- with ``plotting``: ``labeled-images/<snapshot>/<train|test>/<video>-<image>.png``
  (DeepLabCut's names, ``LabeledImages_<scorer>/Training-<video>-<image>.png``, with
  ``dlc_image_names``): ground truth as ``+``, predictions as dots coloured by bodypart,
  hollow below pcutoff.

Nothing is replaced silently: if any file of a snapshot's evaluation exists, the call
raises :class:`~lightning_dlc.project.errors.ProjectError` before predicting anything,
unless ``overwrite=True``, which replaces that snapshot's files (with ``plotting``, its labeled
images too; without, earlier images are left as they are).
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from lightning_dlc.data.dataset import read_rgb
from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.inference.devices import autocast_dtype, resolve_device, resolve_precision
from lightning_dlc.inference.ctd import dataset_conditions
from lightning_dlc.inference.malloc import tune_malloc
from lightning_dlc.inference.predict import load_detector, load_model, predict_dataset, snapshot_meta
from lightning_dlc.models.ctd_crops import is_conditional
from lightning_dlc.models.snapshot_files import (SNAPSHOT_CHOICES, detector_beside, find_snapshots, net_name,
                                                 scorer_name, snapshot_header)
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.predictions import image_index, predictions_table, write_predictions
from lightning_dlc.project.records import LabeledData, ProjectMeta
from lightning_dlc.data.draw import draw_keypoints

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
METRICS = ("rmse", "rmse_pcutoff", "mAP", "mAR")
RESULTS_CSV = "results.csv"
COMBINED_CSV = "CombinedEvaluation-results.csv"  # DeepLabCut's name
DLC_INDEX = ["%Training dataset", "Shuffle number", "Training epochs", "Detector epochs (TD only)", "pcutoff"]
RESULT_COLUMNS = ["snapshot", "epoch", "split", *METRICS, "pcutoff", "n_images", "scorer"]

__all__ = ["COMBINED_CSV", "RESULTS_CSV", "RunData", "evaluate_snapshots", "ground_truth", "load_run_data",
           "run_detector"]


# --------------------------------------------------------------------------- which snapshots
def _snapshot_paths(snapshots, which: str | int) -> list[Path]:
    if isinstance(snapshots, (str, Path)):
        path = Path(snapshots)
        if path.is_dir():
            return find_snapshots(path, which)
        snapshots = [path]
    paths = [Path(p) for p in snapshots]
    for path in paths:
        if not path.is_file():
            raise ProjectError(path, "no such snapshot file")
    if not paths:
        raise ValueError("no snapshots given")
    return paths


# --------------------------------------------------------------------------- the data a run trained on
@dataclass
class RunData:
    """The labeled data a run trained on, split as it was, with what evaluation needs to score it."""

    splits: dict[str, LabeledData]
    datasets: dict
    meta: ProjectMeta
    pcutoff: float
    task: str  # <Task><date>, or the dataset folder's name
    shuffle: int | None
    train_fraction: float
    pad_multiple: int
    batch_size: int
    num_workers: int


def load_run_data(data_cfg: Mapping, project, pcutoff, num_workers, batch_size) -> RunData:
    """A run's ``run_config["data"]`` -> its splits and datasets (``project``: where the data moved)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    data_cfg = dict(data_cfg)
    source = data_cfg.get("source", "dlc")
    if project is not None:
        data_cfg["project"] = str(Path(project).expanduser().resolve())
    where = Path(str(data_cfg.get("project") or "outputs/demo_project")).expanduser()
    root = where.parent if where.suffix in (".yaml", ".yml") else where
    if source == "demo":
        data_cfg["project"] = str(root)  # the demo source takes the project's folder
    if not where.exists() or (source == "demo" and not (root / "config.yaml").is_file()):
        raise ProjectError(where, "the run's data is not there (moved since training, or a relative path "
                                  "read from another folder?); pass project=<its config.yaml or folder>")
    if num_workers is not None:
        data_cfg["num_workers"] = int(num_workers)
    dm = instantiate(OmegaConf.create(data_cfg))
    dm.setup()
    if pcutoff is None:
        pcutoff = dm.pcutoff if source != "coco" else None
    n_train, n_test = len(dm.splits["train"]), len(dm.splits["test"])
    task, shuffle = dm.project.name, None
    fraction = n_train / max(n_train + n_test, 1)
    if source != "coco":
        cfg = ProjectConfig.read(dm.project)
        task, shuffle = f"{cfg.task}{cfg.date}", dm.shuffle
        fraction = cfg.training_fractions[dm.trainset_index]
    return RunData(splits=dm.splits, datasets={"train": dm.train_set, "test": dm.test_set}, meta=dm.meta,
                 pcutoff=0.6 if pcutoff is None else float(pcutoff), task=task, shuffle=shuffle,
                 train_fraction=float(fraction), pad_multiple=dm.pad_multiple,
                 batch_size=int(batch_size or dm.batch_size), num_workers=dm.num_workers)


def ground_truth(records, meta: ProjectMeta) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth in original pixels: ``[n, N, K, 3]`` (NaN-padded individuals) and ``[n, U, 3]``."""
    n_ind, k, u = meta.max_individuals, len(meta.bodyparts), len(meta.unique_bodyparts)
    truth = np.full((len(records), n_ind, k, 3), np.nan, np.float32)
    unique = np.full((len(records), u, 3), np.nan, np.float32)
    for i, record in enumerate(records):
        rows = record.keypoints[:n_ind]
        truth[i, : len(rows)] = rows
        if u:
            unique[i] = record.unique_keypoints.reshape(-1, 3)[:u]
    return truth, unique


# --------------------------------------------------------------------------- outputs
@dataclass
class _Target:
    path: Path
    header: dict
    scorer: str
    name: str  # the snapshot's file stem
    h5: Path
    results_csv: Path
    keypoint_csv: Path
    images: Path  # this snapshot's labeled-images folder
    detector: str | int = "best"  # which snapshot-detector-* finds the animals (top-down)


def _targets(path: Path, header: dict, data: RunData, out_dir: Path, dlc_image_names: bool,
             detector: str | int = "best") -> _Target:
    top_down = (header["run_config"].get("model") or {}).get("top_down") is not None
    scorer = scorer_name(net_name(header["run_config"], path.parent), data.task, data.shuffle, path,
                         header["epoch"], detector=detector_beside(path, detector) if top_down else None)
    images = out_dir / f"LabeledImages_{scorer}" if dlc_image_names else out_dir / "labeled-images" / path.stem
    return _Target(path, header, scorer, path.stem, out_dir / f"{scorer}.h5", out_dir / f"{scorer}-results.csv",
                   out_dir / f"{scorer}-keypoint-results.csv", images, detector)


def _image_file(target: _Target, split: str, key: str, dlc_image_names: bool) -> Path:
    parts = key.split("/")
    video = parts[-2] if len(parts) > 1 else ""
    stem = Path(parts[-1]).stem
    if dlc_image_names:
        return target.images / ("-".join(p for p in ("Training" if split == "train" else "Test", video, stem) if p)
                                + ".png")
    return target.images / split / ("-".join(p for p in (video, stem) if p) + ".png")


def _write_csv(df: pd.DataFrame, path: Path, **kwargs) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        df.to_csv(tmp, **kwargs)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_bytes(encoded.tobytes())


def _plot(target: _Target, split: str, records, predicted: dict, truth: np.ndarray, unique_truth: np.ndarray,
          pcutoff: float, dlc_image_names: bool) -> None:
    for i, record in enumerate(records):
        image = read_rgb(record.image)
        pred, gt = predicted["bodypart"][i], truth[i]
        u = predicted["unique_bodypart"].shape[1]
        if u:  # unique bodyparts drawn as extra columns of the first row, coloured after the bodyparts
            pad = np.full((pred.shape[0], u, 3), np.nan, np.float32)
            pred = np.concatenate([pred, pad], 1)
            gt = np.concatenate([gt, pad], 1)
            pred[0, -u:], gt[0, -u:] = predicted["unique_bodypart"][i], unique_truth[i]
        radius = max(2, round(max(image.shape[:2]) / 150))
        _write_png(_image_file(target, split, record.key, dlc_image_names),
                   draw_keypoints(image, pred, gt, pcutoff=pcutoff, radius=radius))


def _merge_results(path: Path, rows: pd.DataFrame, snapshots: Iterable[str]) -> None:
    """results.csv keeps other snapshots' rows; this evaluation's rows replace the same snapshots'."""
    if path.is_file():
        old = pd.read_csv(path)
        if "snapshot" in old.columns:
            rows = pd.concat([old[~old["snapshot"].isin(list(snapshots))], rows], ignore_index=True)
    rows = rows.sort_values(["epoch", "snapshot", "split"], key=lambda c: c.map(SPLITS.index)
                            if c.name == "split" else c, kind="stable")
    _write_csv(rows[[c for c in RESULT_COLUMNS if c in rows.columns]], path, index=False)


def _merge_combined(path: Path, row: pd.DataFrame) -> None:
    """DeepLabCut's combined results: new rows win, existing rows stay, sorted (as DeepLabCut updates it)."""
    if path.is_file():
        old = pd.read_csv(path, index_col=list(range(len(DLC_INDEX))))
        row = row.combine_first(old)
    _write_csv(row.sort_index(), path)


def _dlc_row(data: RunData, target: _Target, scores: dict[str, dict]) -> pd.DataFrame:
    row = {"%Training dataset": data.train_fraction, "Shuffle number": data.shuffle if data.shuffle is not None
           else -1, "Training epochs": target.header["epoch"], "Detector epochs (TD only)": -1,
           "pcutoff": data.pcutoff}
    for split in SPLITS:
        for name in METRICS:
            value = scores.get(split, {}).get(name, math.nan)
            row[f"{split} {name}"] = round(value, 2) if math.isfinite(value) else math.nan
    return pd.DataFrame([row]).set_index(DLC_INDEX)


def _keypoint_table(tables: dict[str, dict]) -> pd.DataFrame:
    rows = {}
    for suffix, column in (("error (px)", "rmse"), ("error with p-cutoff (px)", "rmse_pcutoff")):
        for split, table in tables.items():
            rows[f"{split.capitalize()} {suffix}"] = dict(zip(table["bodypart"], table[column]))
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- the report
def evaluate_snapshots(snapshots: str | Path | Sequence[str | Path], which: str | int = "best", plotting: bool = False,
                       out_dir: str | Path | None = None, overwrite: bool = False, *,
                       project: str | Path | None = None, pcutoff: float | None = None,
                       device: str | torch.device | None = "auto", batch_size: int | None = None,
                       num_workers: int | None = None, combined_csv: str | Path | None = None,
                       dlc_image_names: bool = False, verbose: bool = True,
                       detector: str | int = "best", precision: str = "auto",
                       channels_last: bool = True, conditions=None, backend: str = "torch") -> pd.DataFrame:
    """Evaluate snapshots on the train and test images of the split they trained on.

    Args:
        snapshots: a run folder (``outputs/YYYY-MM-DD/HH-MM-SS``), one snapshot file or a list of them.
        which: for a run folder (ours, or a DeepLabCut model folder's ``train/``), ``best``, ``last``,
            ``all`` or DeepLabCut's snapshot index (:func:`~lightning_dlc.models.snapshot_files.find_snapshots`).
        plotting: write labeled images of every train and test image.
        out_dir: where the files go (module docstring); default ``<run>/evaluation``.
        overwrite: replace the files of a snapshot evaluated before; without it such a
            snapshot stops the call with a ProjectError naming the file, before any work.
        project: the data's DeepLabCut config.yaml (or COCO root) when it moved since training.
        pcutoff: score cutoff for ``rmse_pcutoff`` and hollow dots; default config.yaml's (else 0.6).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda:1``...
        batch_size, num_workers: of the prediction loader; default the run's data settings.
        combined_csv: where DeepLabCut's combined results go (default ``out_dir``).
        dlc_image_names: name labeled images as DeepLabCut does (``LabeledImages_<scorer>/...``).
        verbose: print the results table.
        detector: a top-down model's detector snapshot beside it: ``best`` (else the last), ``last`` or
            DeepLabCut's ``detector_snapshotindex``.
        precision: ``auto`` (bf16 where the device computes it natively, fp16 on other CUDA GPUs, else fp32;
            :func:`~lightning_dlc.inference.devices.auto_precision`), ``32`` (as DeepLabCut), ``bf16`` or ``16``.
        channels_last: the model and images in channels-last memory format (faster convolutions).
        conditions: conditional top-down (CTD) models: the bottom-up snapshot (or run folder, or its evaluation
            predictions ``.h5``) whose poses they refine; default the ``conditions`` they were trained with.
        backend: ``torch``, or ``onnxruntime``: the network runs from the snapshot's ONNX export, written first
            if missing (:func:`~lightning_dlc.inference.onnx_runner.load_onnx`, as analysis does); float32 only
            (``precision`` auto or 32), the same files and numbers; not for CTD models.

    Returns the rows written to ``results.csv`` by this call (one per snapshot and split).
    """
    if which not in SNAPSHOT_CHOICES and not isinstance(which, int):
        raise ValueError(f"snapshots must be one of {SNAPSHOT_CHOICES} or an index, got {which!r}")
    paths = _snapshot_paths(snapshots, which)
    if out_dir is None:
        parents = {p.resolve().parent for p in paths}
        if len(parents) > 1:
            raise ValueError("snapshots from several folders: give out_dir")
        out_dir = parents.pop() / "evaluation"
    out_dir = Path(out_dir)
    combined_csv = Path(combined_csv) if combined_csv is not None else out_dir / COMBINED_CSV
    device = resolve_device(device)
    if backend == "onnxruntime":
        from lightning_dlc.inference.onnx_runner import float32_only

        precision, channels_last = float32_only(precision), False  # the graph's own layout
    elif backend != "torch":
        raise ValueError(f"backend must be torch or onnxruntime, got {backend!r}")
    precision = resolve_precision(precision, device)
    if device.type == "cpu":
        tune_malloc()  # with predict_dataset's micro-batches: activations reused, not faulted in

    cache: dict[str, RunData] = {}
    targets = []
    for path in paths:
        header = snapshot_header(path)
        data_cfg = header["run_config"].get("data")
        if not data_cfg:
            raise ProjectError(path, "its run_config has no data section: cannot tell which images it trained on")
        key = json.dumps(data_cfg, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = load_run_data(data_cfg, project, pcutoff, num_workers, batch_size)
        data = cache[key]
        if snapshot_meta(header) != data.meta:
            raise ProjectError(path, f"was trained on bodyparts/individuals {snapshot_meta(header)}, but the data "
                                     f"now has {data.meta}")
        targets.append((_targets(path, header, data, out_dir, dlc_image_names, detector), data))

    names = [t.scorer for t, _ in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"two snapshots would write the same files ({names}); evaluate them separately")
    if not overwrite:
        for target, _ in targets:
            for existing in (target.h5, target.results_csv, target.keypoint_csv, target.images):
                if existing.exists():
                    raise ProjectError(existing, f"{target.path.name} was evaluated before; pass overwrite=True "
                                                 "(lightning-dlc evaluate: overwrite=true) to replace its results")

    all_rows = []
    for target, data in targets:
        rows = _evaluate_one(target, data, out_dir, combined_csv, device, plotting, dlc_image_names, precision,
                             channels_last, conditions, backend, project)
        _merge_results(out_dir / RESULTS_CSV, rows, [target.name])
        all_rows.append(rows)
    results = pd.concat(all_rows, ignore_index=True)
    if verbose:
        shown = results[["snapshot", "epoch", "split", *METRICS]]
        print(f"Evaluation ({out_dir}, pcutoff {targets[0][1].pcutoff}):")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="nan"))
    return results


def _detector_path(pose_snapshot: Path, which: str | int = "best") -> Path | None:
    path = detector_beside(pose_snapshot, which)
    if path is None:
        log.warning("%s: no snapshot-detector-*.ckpt beside this top-down model: evaluating on crops of the "
                    "labeled animals (ground-truth boxes)", pose_snapshot)
    else:
        log.info("%s: animals found by %s", pose_snapshot.name, path.name)
    return path


def run_detector(pose_snapshot: Path, device, which: str | int = "best"):
    """A top-down run's detector (``which``: best, last or DeepLabCut's ``detector_snapshotindex``; its boxes
    are what inference uses), or None: labeled boxes."""
    path = _detector_path(pose_snapshot, which)
    return load_detector(path, device) if path is not None else None


def _networks(target: _Target, device, channels_last: bool, backend: str, project):
    """``(model, net, detector)``: the snapshot's model (with ``onnxruntime`` it only decodes what ``net``, its
    ONNX export, computes; ``net`` None: the model runs) and a top-down model's detector (None: labeled boxes)."""
    model_cfg = target.header["run_config"].get("model") or {}
    wants_detector = model_cfg.get("top_down") is not None and not model_cfg.get("conditional")  # CTD: conditions
    if backend == "onnxruntime":
        from lightning_dlc.inference.onnx_runner import load_onnx

        detector = _detector_path(target.path, target.detector) if wants_detector else None
        loaded = load_onnx(target.path, device, project=project, detector=detector)
        return loaded.model, loaded.network, loaded.detector
    model = load_model(target.path, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    detector = (run_detector(target.path, device, target.detector)
                if model.top_down is not None and not is_conditional(model) else None)  # CTD: crops at conditions
    return model, None, detector


def _evaluate_one(target: _Target, data: RunData, out_dir: Path, combined_csv: Path, device, plotting: bool,
                  dlc_image_names: bool, precision: str = "32", channels_last: bool = True,
                  conditions=None, backend: str = "torch", project=None) -> pd.DataFrame:
    model, net, detector = _networks(target, device, channels_last, backend, project)
    oks_sigma = target.header["run_config"].get("oks_sigma", 0.1)
    meta = data.meta
    rows, scores, tables, predicted_tables = [], {}, {}, []
    if plotting and target.images.exists():
        shutil.rmtree(target.images)  # overwrite=True: no stale images of an earlier evaluation
    for split in SPLITS:
        records = data.splits[split].records
        if not records:
            log.warning("%s: the %s split is empty; no %s results", target.path.name, split, split)
            continue
        conditioned = None
        if is_conditional(model):  # CTD: a bottom-up model's poses on the same images
            conditioned = dataset_conditions(conditions or target.header["run_config"].get("conditions"),
                                             [r.key for r in records], meta, device)
        predicted = predict_dataset(model, data.datasets[split], batch_size=data.batch_size,
                                    num_workers=data.num_workers, pad_multiple=data.pad_multiple,
                                    channels_last=channels_last, detector=detector, micro_batch="auto",
                                    autocast_dtype=autocast_dtype(precision),
                                    box_threshold=0.0,  # as DeepLabCut's evaluate_network: no min_bbox_score
                                    conditions=conditioned, net=net)
        truth, unique_truth = ground_truth(records, meta)
        kwargs = {}
        if meta.unique_bodyparts:
            kwargs = {"unique_predictions": predicted["unique_bodypart"], "unique_ground_truth": unique_truth}
        split_scores, table = compute_metrics(
            predicted["bodypart"], truth, pcutoff=data.pcutoff, oks_sigma=oks_sigma,
            single_animal=not meta.multianimal, bodyparts=meta.bodyparts, unique_bodyparts=meta.unique_bodyparts,
            return_per_bodypart=True, **kwargs)
        scores[split], tables[split] = split_scores, table
        rows.append({"snapshot": target.name, "epoch": target.header["epoch"], "split": split,
                     **{m: float(split_scores[m]) for m in METRICS}, "pcutoff": data.pcutoff,
                     "n_images": len(records), "scorer": target.scorer})
        keys = [r.key for r in records]
        predicted_tables.append(predictions_table(predicted["bodypart"], predicted["unique_bodypart"], meta,
                                                  target.scorer, index=pd.Index(keys, dtype=object)))
        if plotting:
            _plot(target, split, records, predicted, truth, unique_truth, data.pcutoff, dlc_image_names)
    if not rows:
        raise ProjectError(target.path, "the run's train and test splits are both empty: nothing to evaluate")

    table = pd.concat(predicted_tables)
    order = sorted(range(len(table)), key=lambda i: tuple(table.index[i].split("/")))
    table = table.iloc[order]
    table.index = image_index(list(table.index))
    write_predictions(table, target.h5, overwrite=True)
    _write_csv(_dlc_row(data, target, scores), target.results_csv)
    _write_csv(_keypoint_table(tables), target.keypoint_csv)
    _merge_combined(combined_csv, _dlc_row(data, target, scores))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)
