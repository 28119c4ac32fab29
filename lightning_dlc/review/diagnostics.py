"""A FiftyOne dataset of a project's labeled frames: ground truth beside each run's predictions, errors to sort by.

Each run (a training run folder, or its snapshot file) predicts the train and test images of the
split it trained on, exactly as :mod:`lightning_dlc.evaluation.report` does. One sample per labeled
image holds:

- ``ground_truth`` (and ``ground_truth_unique`` with unique bodyparts): ``fo.Keypoints``, one
  ``fo.Keypoint`` per individual (its name as label, its row as index);
- per run ``<run>``: the predictions (per-point ``confidence``; each individual's ``errors`` per
  bodypart in pixels, their mean ``error`` and ``matched_to``, the ground-truth individual it was
  matched to), ``<run>_error`` (the image's mean pixel error), ``<run>_error_<bodypart>``,
  ``<run>_split`` and FiftyOne's keypoint evaluation ``eval_<run>`` (OKS matching; ``_tp``,
  ``_fp``, ``_fn`` counts per sample);
- tags ``train`` / ``test`` (both when runs split differently) and ``video`` (the labeled-data folder).

Errors are the evaluation's: individuals are matched as :func:`~lightning_dlc.evaluation.rmse.rmse`
matches them (:func:`~lightning_dlc.evaluation.matching.match_individuals`; single-animal projects
pair directly), so averaging ``errors`` over a split gives its reported RMSE. The project's skeleton
is set on the dataset (``dataset.skeletons``, ``default_skeleton``) with bodypart names as labels.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

# The evaluation's own loading, so the images and splits are the ones it scores.
from lightning_dlc.evaluation.report import SPLITS, RunData, ground_truth, load_run_data, run_detector
from lightning_dlc.evaluation.matching import match_individuals
from lightning_dlc.inference.predict import load_model, predict_dataset, snapshot_meta
from lightning_dlc.models.snapshot_files import detector_beside, find_snapshots, net_name, scorer_name, snapshot_header
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import UNIQUE_INDIVIDUAL, PoseRecord, ProjectMeta
from lightning_dlc.review.fiftyone_labels import keypoints_label, project_skeletons, skeleton
from lightning_dlc.review.fiftyone_session import field_name, new_dataset

log = logging.getLogger(__name__)

GROUND_TRUTH = "ground_truth"
UNIQUE_SUFFIX = "_unique"

__all__ = ["GROUND_TRUTH", "RunPredictions", "keypoint_errors", "labeled_frames_dataset", "open_run",
           "unique_errors"]


# --------------------------------------------------------------------------- errors as the evaluation counts them
def _cleaned(points: np.ndarray, truth: bool) -> np.ndarray:
    """The evaluation's cleaning: ground truth with visibility <= 0 and predictions with score < 0 are missing."""
    points = np.array(points, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        points[(points[..., 2] <= 0) if truth else (points[..., 2] < 0)] = np.nan
    return points


def keypoint_errors(predicted: np.ndarray, truth: np.ndarray, single_animal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pixel error of every predicted keypoint against the ground-truth individual it is matched to.

    ``predicted`` ``[P, K, 3]`` (x, y, score), ``truth`` ``[G, K, 3]`` (x, y, visibility) of one image.
    Returns ``errors`` ``[P, K]`` (NaN where the evaluation does not count the keypoint) and the matched
    ground-truth row per prediction ``[P]`` (-1: unmatched).
    """
    pred, gt = _cleaned(predicted, truth=False), _cleaned(truth, truth=True)
    if single_animal:  # the evaluation pairs the one prediction with the one ground truth directly
        gt_index = np.zeros(len(pred), dtype=np.int64) if len(gt) else np.full(len(pred), -1)
    else:
        gt_index, _ = match_individuals(predicted, truth)
    errors = np.full(pred.shape[:2], np.nan)
    matched = np.flatnonzero(gt_index >= 0)
    errors[matched] = np.linalg.norm(pred[matched, :, :2] - gt[gt_index[matched], :, :2], axis=-1)
    gt_index = np.where(np.isnan(errors).all(-1), -1, gt_index)  # no keypoint in common: not a pair
    return errors, gt_index


def unique_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``[U]`` pixel errors of unique bodyparts (paired directly, as the evaluation does)."""
    pred, gt = _cleaned(predicted, truth=False), _cleaned(truth, truth=True)
    return np.linalg.norm(pred[:, :2] - gt[:, :2], axis=-1)


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


# --------------------------------------------------------------------------- runs
@dataclass
class RunPredictions:
    """A run's snapshot, the data it trained on and, once :meth:`predict` ran, its predictions per split."""

    name: str  # the run's field name in the dataset
    snapshot: Path
    scorer: str
    header: dict
    data: RunData
    bodypart: dict[str, np.ndarray] = field(default_factory=dict)  # split -> [n, N, K, 3]
    unique_bodypart: dict[str, np.ndarray] = field(default_factory=dict)  # split -> [n, U, 3]

    @property
    def meta(self) -> ProjectMeta:
        return self.data.meta

    @property
    def root(self) -> Path:
        return Path(next(iter(self.data.splits.values())).root).resolve()

    def records(self, split: str) -> list[PoseRecord]:
        return self.data.splits[split].records

    def predict(self, device="auto") -> RunPredictions:
        model = load_model(self.snapshot, device)
        detector = run_detector(self.snapshot, device) if model.top_down is not None else None
        channels_last = bool(self.header["run_config"].get("channels_last", False))
        for split in SPLITS:
            if self.records(split):
                out = predict_dataset(model, self.data.datasets[split], batch_size=self.data.batch_size,
                                      num_workers=self.data.num_workers, pad_multiple=self.data.pad_multiple,
                                      channels_last=channels_last, detector=detector)
                self.bodypart[split], self.unique_bodypart[split] = out["bodypart"], out["unique_bodypart"]
        return self


def open_run(run: str | Path, snapshot: str | int = "best", *, name: str | None = None, project=None,
             num_workers: int | None = None) -> RunPredictions:
    """A run folder (ours or a DeepLabCut model folder's ``train/``: its ``best``/``last`` snapshot or DeepLabCut's
    snapshot index) or a snapshot file, with the data it trained on; no prediction yet."""
    if snapshot not in ("best", "last") and not str(snapshot).lstrip("-").isdigit():
        raise ValueError(f"snapshot must be best, last or an index (or give a snapshot file as the run), "
                         f"got {snapshot!r}")
    run = Path(run)
    path = run if run.is_file() else find_snapshots(run, snapshot)[0]
    header = snapshot_header(path)
    data_cfg = header["run_config"].get("data")
    if not data_cfg:
        raise ProjectError(path, "its run_config has no data section: cannot tell which images it trained on")
    data = load_run_data(data_cfg, project, None, num_workers, None)
    if snapshot_meta(header) != data.meta:
        raise ProjectError(path, f"was trained on bodyparts/individuals {snapshot_meta(header)}, but the data "
                                 f"now has {data.meta}")
    net = net_name(header["run_config"], path.parent)
    top_down = (header["run_config"].get("model") or {}).get("top_down") is not None
    scorer = scorer_name(net, data.task, data.shuffle, path, header["epoch"],
                         detector=detector_beside(path) if top_down else None)
    shuffle = f"_shuffle{data.shuffle}" if data.shuffle is not None else ""
    return RunPredictions(field_name(name or f"{net}{shuffle}_{path.stem}"), path, scorer, header, data)


def _unique_names(runs: Sequence[RunPredictions]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}_{seen[run.name]}"


# --------------------------------------------------------------------------- the dataset
def _prediction_fields(run: RunPredictions, split: str, i: int, truth: np.ndarray, unique_truth: np.ndarray,
                       size: tuple[int, int]) -> dict:
    """One image's fields of one run: its keypoints with errors, and the errors as numbers to sort by."""
    meta = run.meta
    predicted = run.bodypart[split][i]
    errors, gt_index = keypoint_errors(predicted, truth, single_animal=not meta.multianimal)
    attributes = [{"error": _mean(errors[p]), "errors": errors[p].tolist(),
                   "matched_to": meta.individuals[gt_index[p]] if gt_index[p] >= 0 else None}
                  for p in range(len(predicted))]
    fields = {run.name: keypoints_label(predicted, *size, meta.individuals, confidence=True, attributes=attributes),
              f"{run.name}_split": split}
    matched = errors[gt_index >= 0]
    per_part = [_mean(matched[:, k]) for k in range(len(meta.bodyparts))]
    everything = [matched.ravel()]
    if meta.unique_bodyparts:
        u_pred = run.unique_bodypart[split][i]
        u_err = unique_errors(u_pred, unique_truth)
        fields[run.name + UNIQUE_SUFFIX] = keypoints_label(
            u_pred[None], *size, [UNIQUE_INDIVIDUAL], confidence=True,
            attributes=[{"error": _mean(u_err), "errors": u_err.tolist()}])
        per_part += [_mean(e) for e in u_err]
        everything.append(u_err)
    fields[f"{run.name}_error"] = _mean(np.concatenate(everything))
    for part, value in zip((*meta.bodyparts, *meta.unique_bodyparts), per_part):
        fields[f"{run.name}_error_{field_name(part)}"] = value
    return fields


def _samples(runs: Sequence[RunPredictions]) -> list[fo.Sample]:
    meta = runs[0].meta
    samples: dict[str, fo.Sample] = {}
    for run in runs:
        for split in SPLITS:
            records = run.records(split)
            if not records:
                continue
            truth, unique_truth = ground_truth(records, meta)
            for i, record in enumerate(records):
                sample = samples.get(record.key)
                if sample is None:
                    sample = samples[record.key] = _ground_truth_sample(record, truth[i], unique_truth[i], meta)
                if split not in sample.tags:
                    sample.tags.append(split)
                for key, value in _prediction_fields(run, split, i, truth[i], unique_truth[i], record.size).items():
                    sample[key] = value
    return [samples[key] for key in sorted(samples)]


def _ground_truth_sample(record: PoseRecord, truth: np.ndarray, unique_truth: np.ndarray,
                         meta: ProjectMeta) -> fo.Sample:
    width, height = record.size
    parts = record.key.split("/")
    sample = fo.Sample(filepath=str(record.image), metadata=fo.ImageMetadata(width=width, height=height),
                       video=parts[-2] if len(parts) > 1 else None)
    sample[GROUND_TRUTH] = keypoints_label(truth, width, height, meta.individuals, confidence=False)
    if meta.unique_bodyparts:
        sample[GROUND_TRUTH + UNIQUE_SUFFIX] = keypoints_label(unique_truth[None], width, height,
                                                               [UNIQUE_INDIVIDUAL], confidence=False)
    return sample


def _evaluate(dataset: fo.Dataset, run: RunPredictions) -> float:
    """FiftyOne's COCO-style keypoint evaluation (OKS); returns its mAP (0-1).

    Individuals are matched regardless of their names (``classwise=False``): a bottom-up model's
    individuals are not identities. FiftyOne's OKS is ``exp(-d^2 / (2 (s sigma)^2))`` with s the
    ground truth's extent; sigma = 2 x the run's ``oks_sigma`` is DeepLabCut's OKS in that form.
    """
    sigma = np.broadcast_to(np.asarray(run.header["run_config"].get("oks_sigma", 0.1), dtype=np.float64),
                            (len(run.meta.bodyparts),))
    results = dataset.evaluate_detections(run.name, gt_field=GROUND_TRUTH, eval_key=f"eval_{run.name}",
                                          classwise=False, compute_mAP=True, keypoint_sigmas=(2 * sigma).tolist(),
                                          progress=False)
    return float(results.mAP())


def default_name(runs: Sequence[RunPredictions]) -> str:
    """``<Task><date>-diagnostics-<run>+<run>``."""
    return f"{runs[0].data.task}-diagnostics-" + "+".join(run.name for run in runs)


def labeled_frames_dataset(runs: Sequence[str | Path], *, snapshot: str = "best", names: Sequence[str] | None = None,
                           name: str | None = None, overwrite: bool = False, project=None, device="auto",
                           num_workers: int | None = None, evaluate: bool = True) -> fo.Dataset:
    """Build the persistent FiftyOne dataset of the labeled frames the runs trained on (module docstring).

    Args:
        runs: training run folders (``outputs/YYYY-MM-DD/HH-MM-SS``) or snapshot files, of one project.
        snapshot: ``best`` or ``last`` snapshot of each run folder.
        names: the runs' field names (default ``<Net>_shuffle<n>_<snapshot>``, made unique).
        name: the dataset's name (default :func:`default_name`); an existing one needs ``overwrite``.
        project: the project's config.yaml when it moved since training.
        device: where the runs predict (``auto``: CUDA when available).
        evaluate: run FiftyOne's keypoint evaluation per run (``eval_<run>``).
    """
    if not runs:
        raise ValueError("no runs given: runs=[outputs/YYYY-MM-DD/HH-MM-SS, ...]")
    if names is not None and len(names) != len(runs):
        raise ValueError(f"{len(names)} names for {len(runs)} runs")
    opened = [open_run(run, snapshot, name=names[i] if names else None, project=project, num_workers=num_workers)
              for i, run in enumerate(runs)]
    _unique_names(opened)
    first = opened[0]
    for run in opened[1:]:
        if run.root != first.root or run.meta != first.meta:
            raise ProjectError(run.snapshot, f"is of another project ({run.root}, {run.meta.bodyparts}) than "
                                             f"{first.snapshot} ({first.root}): one dataset holds one project")
    name = name or default_name(opened)
    if fo.dataset_exists(name) and not overwrite:  # before any prediction: fail early
        new_dataset(name, overwrite=False)
    for run in opened:
        run.predict(device)
    samples = _samples(opened)

    dataset = new_dataset(name, overwrite=overwrite)
    dataset.add_samples(samples, progress=False)
    meta = first.meta
    fields = [GROUND_TRUTH, *(run.name for run in opened)]
    unique = [f + UNIQUE_SUFFIX for f in fields] if meta.unique_bodyparts else []
    dataset.skeletons = project_skeletons(meta, fields, unique)
    dataset.default_skeleton = skeleton(meta.bodyparts, meta.skeleton)
    info = {"project": str(first.root), "runs": {}}
    for run in opened:
        info["runs"][run.name] = {"snapshot": str(run.snapshot), "scorer": run.scorer, "pcutoff": run.data.pcutoff}
        if evaluate:
            info["runs"][run.name]["fiftyone_mAP"] = _evaluate(dataset, run)
    dataset.info = json.loads(json.dumps(info))
    dataset.save()
    _print_summary(dataset, opened)
    return dataset


def _print_summary(dataset: fo.Dataset, runs: Sequence[RunPredictions]) -> None:
    print(f"FiftyOne dataset {dataset.name}: {len(dataset)} labeled images")
    for run in runs:
        line = [f"  {run.name} ({run.scorer})"]
        for split in SPLITS:
            view = dataset.match(F(f"{run.name}_split") == split).exists(f"{run.name}_error")
            if len(view):
                line.append(f"{split} mean image error {view.mean(f'{run.name}_error'):.2f} px")
        mAP = dataset.info["runs"][run.name].get("fiftyone_mAP")
        if mAP is not None:
            line.append(f"FiftyOne OKS mAP {100 * mAP:.1f}")
        print(", ".join(line))
    if runs:
        print(f"  worst images first: dataset.sort_by('{runs[0].name}_error', reverse=True)")
