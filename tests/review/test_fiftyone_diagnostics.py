"""The labeled-frames FiftyOne dataset, in FiftyOne's real database: labels, splits, skeleton, and errors equal
to the evaluation's."""
from __future__ import annotations

import uuid

import fiftyone as fo
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.evaluation.report import evaluate_snapshots
from lightning_dlc.project import ProjectConfig, load_shuffle
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.review.diagnostics import GROUND_TRUTH, keypoint_errors, labeled_frames_dataset

pytestmark = pytest.mark.slow  # trains a model for its fixture

NAMES = ["early", "late"]


@pytest.fixture(scope="module")
def built(review_project, tmp_path_factory):
    """The dataset of both snapshots as two runs, and the evaluation's own predictions of them."""
    name = f"test-diagnostics-{uuid.uuid4().hex[:8]}"
    dataset = labeled_frames_dataset(review_project.snapshots, names=NAMES, name=name, device="cpu")
    out = tmp_path_factory.mktemp("evaluation")
    results = evaluate_snapshots(review_project.snapshots, out_dir=out, device="cpu", verbose=False,
                                 precision="32")  # as the review predicts (auto is bf16 on CPUs with AVX512-BF16)
    tables = {run: pd.read_hdf(out / f"{scorer}.h5") for run, scorer in zip(NAMES, results["scorer"].unique())}
    yield dataset, results, tables
    fo.delete_dataset(name)


def predicted_arrays(table: pd.DataFrame, meta, key: str):
    """One image's rows of the evaluation's prediction table -> ([N, K, 3], [U, 3])."""
    row = table.loc[[tuple(key.split("/"))]].droplevel("scorer", axis=1)
    return (row[list(meta.individuals)].to_numpy().reshape(len(meta.individuals), -1, 3),
            row["single"].to_numpy().reshape(-1, 3))


def test_samples_hold_normalized_ground_truth_and_split_tags(built, review_project):
    dataset, _, _ = built
    train, test = load_shuffle(review_project.config, 1)
    meta = ProjectConfig.read(review_project.config).meta()
    assert len(dataset) == len(train) + len(test) == 20
    for split, data in (("train", train), ("test", test)):
        view = dataset.match_tags(split)
        assert sorted(view.values("filepath")) == sorted(str(r.image) for r in data.records)
        assert set(view.values("early_split")) == {split}
    missing = 0
    for record in train.records + test.records:
        sample = dataset[str(record.image)]
        width, height = record.size
        assert (sample.metadata.width, sample.metadata.height) == (width, height)
        truth = {kp.label: kp for kp in sample[GROUND_TRUTH].keypoints}
        for i, individual in enumerate(meta.individuals):
            labeled = record.keypoints[i]
            if np.isnan(labeled[:, :2]).all():
                assert individual not in truth  # nobody to show
                continue
            expected = (labeled[:, :2].astype(np.float64) + 0.5) / [width, height]  # pixel centres
            stored = np.array(truth[individual].points, dtype=np.float64)
            np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-7)  # NaN where unlabeled
            assert truth[individual].index == i
            assert np.all((stored[~np.isnan(stored)] > 0) & (stored[~np.isnan(stored)] < 1))
            missing += int(np.isnan(stored).any(-1).sum())
        assert sample["ground_truth_unique"].keypoints[0].label == "single"
    assert missing > 0, "the demo hides some keypoints: NaN handling must have been exercised"


def test_errors_equal_the_evaluations(built, review_project):
    dataset, results, tables = built
    meta = ProjectConfig.read(review_project.config).meta()
    train, test = load_shuffle(review_project.config, 1)
    for run in NAMES:
        row = results[results["scorer"] == results["scorer"].unique()[NAMES.index(run)]]
        for split, data in (("train", train), ("test", test)):
            pooled, counted = 0.0, 0
            for record in data.records:
                sample = dataset[str(record.image)]
                pred, unique_pred = predicted_arrays(tables[run], meta, record.key)
                image = compute_metrics(pred[None], record.keypoints[None], single_animal=False,
                                        unique_predictions=unique_pred[None],
                                        unique_ground_truth=record.unique_keypoints[None])
                assert sample[f"{run}_error"] == pytest.approx(image["rmse"], nan_ok=True, rel=1e-6) \
                    if not np.isnan(image["rmse"]) else sample[f"{run}_error"] is None
                errors = [e for kp in sample[run].keypoints for e in kp["errors"]]
                errors += sample[f"{run}_unique"].keypoints[0]["errors"]
                pooled += np.nansum(errors)
                counted += int(np.sum(~np.isnan(errors)))
            expected = float(row.loc[row["split"] == split, "rmse"].iloc[0])
            assert counted > 0 and pooled / counted == pytest.approx(expected, rel=1e-6)


def test_keypoint_errors_follow_the_evaluations_matching():
    truth = np.array([[[0, 0, 2], [10, 5, 2], [10, 10, 0]], [[50, 50, 2], [60, 50, 2], [60, 60, 2]]], float)
    pred = np.array([[[51, 50, .9], [60, 53, .9], [np.nan, np.nan, np.nan]],   # matches individual 1
                     [[1, 0, .8], [10, 5, -1], [10, 10, .8]]], float)          # individual 0; score < 0 dropped
    errors, gt_index = keypoint_errors(pred, truth, single_animal=False)
    assert gt_index.tolist() == [1, 0]
    np.testing.assert_allclose(errors, [[1, 3, np.nan], [1, np.nan, np.nan]])
    assert compute_metrics(pred[None], truth[None], single_animal=False)["rmse"] == pytest.approx(
        np.nanmean(errors))


def test_skeleton_and_fiftyone_evaluation(built, review_project):
    dataset, _, _ = built
    meta = ProjectConfig.read(review_project.config).meta()
    for field in (GROUND_TRUTH, *NAMES):
        skeleton = dataset.skeletons[field]
        assert skeleton.labels == list(meta.bodyparts)
        assert [tuple(meta.bodyparts[i] for i in edge) for edge in skeleton.edges] == list(meta.skeleton)
    assert dataset.skeletons["ground_truth_unique"].labels == list(meta.unique_bodyparts)
    assert dataset.default_skeleton.edges == dataset.skeletons[GROUND_TRUTH].edges
    assert sorted(dataset.list_evaluations()) == sorted(f"eval_{run}" for run in NAMES)
    n_truth = dataset.count(f"{GROUND_TRUTH}.keypoints")
    for run in NAMES:
        assert dataset.sum(f"eval_{run}_tp") + dataset.sum(f"eval_{run}_fn") == n_truth
        assert dataset.sum(f"eval_{run}_tp") + dataset.sum(f"eval_{run}_fp") == dataset.count(f"{run}.keypoints")
        assert 0 <= dataset.info["runs"][run]["fiftyone_mAP"] <= 1
    worst = dataset.sort_by("late_error", reverse=True).first()["late_error"]
    assert worst == max(v for v in dataset.values("late_error") if v is not None)


def test_an_existing_dataset_is_rebuilt_only_with_overwrite(review_project):
    name = f"test-overwrite-{uuid.uuid4().hex[:8]}"
    try:
        first = labeled_frames_dataset(review_project.snapshots[-1:], name=name, device="cpu", evaluate=False)
        assert first.persistent and "fishtank" in first.info["project"]
        first.tag_samples("marked")
        with pytest.raises(ProjectError, match="overwrite=true"):
            labeled_frames_dataset(review_project.snapshots[-1:], name=name, device="cpu")
        assert fo.load_dataset(name).count_sample_tags()["marked"] == 20  # untouched
        rebuilt = labeled_frames_dataset(review_project.snapshots[-1:], name=name, device="cpu", evaluate=False,
                                         overwrite=True)
        assert "marked" not in rebuilt.count_sample_tags()
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
