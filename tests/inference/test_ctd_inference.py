"""Conditional top-down inference on a tiny demo: a bottom-up run's poses as conditions, DeepLabCut's files from
the ordinary video analysis, CTD tracking (``_ctd.h5``), and the errors for missing or mismatched conditions."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from ctd_standin import STANDIN  # tests/ is on sys.path
from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.inference.analyze import analyze_video
from lightning_dlc.inference.ctd import ConditionalPredictor, conditional_predictor
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.lit.train import train
from lightning_dlc.tracking.ctd import analyze_videos_tracking

pytestmark = pytest.mark.slow  # trains two tiny models


def _overrides(project: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.project={project}", "data.demo.n_frames=12", "data.demo.n_labeled=8", "data.demo.size=128",
            "data.num_workers=0", "data.batch_size=4", "trainer.max_epochs=1", "eval_interval=0",
            "snapshots.save_epochs=1", f"output_dir={out}", "trainer.enable_progress_bar=false", "~logger",
            "model.backbone.pretrained=false", *extra]


def _train(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=overrides))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctd")
    project = root / "demo_project"
    _train(_overrides(project, root / "bu", "model=resnet_18"))
    _train(_overrides(project, root / "ctd", "model=top_down_resnet_18", "model.backbone.name=regnetx_002",
                      "model.top_down.crop_size=[64,64]", *STANDIN, f"conditions={root / 'bu'}"))
    return root / "bu", root / "ctd", project


def test_bottom_up_poses_are_refined_row_by_row(runs):
    bu, ctd, project = runs
    predictor = conditional_predictor(ctd, bu, device="cpu", precision="32")
    frames = np.random.default_rng(0).integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    proposed = predictor.bottom_up(frames)["bodypart"]
    out = predictor(frames)
    assert out["bodypart"].shape == proposed.shape
    empty = np.isnan(proposed[..., 0]).all(-1)  # a row without a proposal has no refined pose
    assert np.isnan(out["bodypart"][empty]).all()
    # given conditions: one condition, one refined animal in row 0
    cond = np.full((2, 1, proposed.shape[2], 3), np.nan, np.float32)
    cond[:, 0, :, :2], cond[:, 0, :, 2] = [[40, 40], [50, 45], [60, 50], [70, 55], [80, 60]], 1.0
    given = predictor(frames, conditions=cond)
    assert given["bodypart"].shape == (2, 1, proposed.shape[2], 3) and np.isfinite(given["bodypart"][..., 2]).all()


def test_video_analysis_writes_deeplabcuts_files(runs, tmp_path):
    bu, ctd, project = runs
    predictor = conditional_predictor(ctd, bu, device="cpu", precision="32")
    video = project / "videos" / "fishtank.mp4"
    summary = analyze_video(predictor, video, tmp_path, device="cpu", batch_size=4, progress=False, verbose=False)
    assert summary.status == "analyzed"
    h5 = Path(summary.h5)
    assert h5.with_name(h5.stem + "_full.pickle").is_file() and h5.with_name(h5.stem + "_assemblies.pickle").is_file()
    table = pd.read_hdf(h5)
    assert len(table) == summary.frames and "individuals" in table.columns.names


def test_ctd_tracking_writes_ctd_h5_and_runs_the_bottom_up_model_only_when_needed(runs, tmp_path):
    bu, ctd, project = runs
    predictor = conditional_predictor(ctd, bu, device="cpu", precision="32")
    calls = []
    original = predictor.proposals
    predictor.proposals = lambda images: (calls.append(len(images)), original(images))[1]
    video = project / "videos" / "fishtank.mp4"
    summaries = analyze_videos_tracking(predictor, [video], tmp_path, {"bu_max_frequency": 1000},
                                        device="cpu", batch_size=4, progress=False, verbose=False)
    h5 = Path(summaries[0].h5)
    ctd_h5 = h5.with_name(h5.stem + "_ctd.h5")
    assert ctd_h5.is_file()
    pd.testing.assert_frame_equal(pd.read_hdf(ctd_h5), pd.read_hdf(h5))
    assert 1 <= len(calls) < summaries[0].frames  # the previous poses were the conditions
    again = analyze_videos_tracking(predictor, [video], tmp_path, {"bu_max_frequency": 1000}, device="cpu",
                                    batch_size=4, progress=False, verbose=False, overwrite=True)
    assert again[0].status == "analyzed" and ctd_h5.is_file()  # overwrite=True replaces _ctd.h5 too


def test_conditions_of_another_project_or_a_missing_model_are_errors(runs):
    bu, ctd, _ = runs
    ctd_predictor = Predictor.from_snapshot(ctd, "cpu", "32", detector=None)
    bu_predictor = Predictor.from_snapshot(bu, "cpu", "32")
    with pytest.raises(ValueError, match="top-down"):
        ConditionalPredictor(ctd_predictor.model, bottom_up=ctd_predictor, device="cpu")
    bu_predictor.meta = type(bu_predictor.meta)(**{**bu_predictor.meta.__dict__, "bodyparts": ("a", "b")})
    with pytest.raises(ValueError, match="bodyparts"):
        ConditionalPredictor(ctd_predictor.model, bottom_up=bu_predictor, device="cpu")
    with pytest.raises(ValueError, match="needs conditions"):
        ConditionalPredictor(ctd_predictor.model, device="cpu")(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="conditional top-down"):
        ConditionalPredictor(bu_predictor.model)
    with pytest.raises(ValueError, match="predictions file serves evaluation"):
        conditional_predictor(ctd, "/x/bu.h5", device="cpu")


def test_evaluation_refines_the_bottom_up_poses_or_its_predictions_file(runs, tmp_path):
    from lightning_dlc.evaluation.report import evaluate_snapshots

    bu, ctd, _ = runs
    bu_rows = evaluate_snapshots(bu, out_dir=tmp_path / "bu", device="cpu", precision="32", verbose=False)
    rows = evaluate_snapshots(ctd, out_dir=tmp_path / "ctd", device="cpu", precision="32", verbose=False)
    assert len(rows) == len(bu_rows) and rows["rmse"].notna().any()  # the conditions it was trained with: bu
    predictions = next((tmp_path / "bu").glob("*.h5"))
    from_file = evaluate_snapshots(ctd, out_dir=tmp_path / "file", device="cpu", precision="32", verbose=False,
                                   conditions=predictions)
    # the file holds the same bottom-up poses: the same refined poses
    np.testing.assert_allclose(from_file["rmse"], rows["rmse"], rtol=1e-3)
    renamed = pd.read_hdf(predictions)
    renamed.index = [f"elsewhere/{i}" for i in range(len(renamed))]  # rows that name no image of the project
    renamed.to_hdf(tmp_path / "renamed.h5", key="df_with_missing")
    with pytest.raises(ValueError, match="no conditions for any"):
        evaluate_snapshots(ctd, out_dir=tmp_path / "renamed", device="cpu", precision="32", verbose=False,
                           conditions=tmp_path / "renamed.h5")


def test_cli_analyzes_and_tracks_with_a_ctd_run(runs, tmp_path):
    import os
    import subprocess
    import sys

    bu, ctd, project = runs
    video = project / "videos" / "fishtank.mp4"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}  # the stand-in model's module
    result = subprocess.run([str(Path(sys.executable).parent / "lightning-dlc"), "analyze-videos", f"run={ctd}",
                             f"conditions={bu}", "ctd_tracking={bu_max_frequency:5}", f"videos=[{video}]",
                             f"destfolder={tmp_path}", "device=cpu", "precision=32", "progress=false"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(tmp_path.glob("*_ctd.h5"))) == 1 and len(list(tmp_path.glob("*_full.pickle"))) == 1
