"""Video and image analysis with a tiny model trained once: readers, DeepLabCut's files, faults, resume, CLI."""
from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.data.video_writer import write_video
from lightning_dlc.inference import chunks as chunks_mod
from lightning_dlc.inference.analyze import analyze_images, analyze_video, analyze_videos
from lightning_dlc.data.dali_reader import dali_available
from lightning_dlc.data.discovery import find_videos
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig

pytestmark = pytest.mark.slow  # trains a model for its fixture

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "dlc_video_analysis"
N_FRAMES, SIZE, EPOCHS = 40, 96, 15
BODYPARTS = ["snout", "head", "dorsal", "tailbase", "tailtip"]
# Median error (px) to the true tracks: the trained tiny model measured 4.8, an untrained one 14.6.
MAX_MEDIAN_ERROR = 10.0




@pytest.fixture(scope="module")
def trained(trained_one_fish, tmp_path_factory):
    """The session's one-fish demo project (40 frames, 96 px) and its 15-epoch model, with a VP9 copy of its video."""
    config, snapshot = trained_one_fish
    root = tmp_path_factory.mktemp("analyze")
    train_dir = snapshot.parent
    videos = config.parent / "videos"
    vp9 = root / "fishtank_vp9.webm"  # the same scene, encoded as VP9 for DALI's CPU reader
    scene = render_scene(n_frames=N_FRAMES, n_fish=1, width=SIZE, height=SIZE, fps=30.0, seed=0)
    write_video(vp9, scene.frames, 30.0, "libvpx-vp9")
    return SimpleNamespace(config=config, train_dir=train_dir, snapshot=snapshot, video=videos / "fishtank.mp4",
                           truth=videos / "fishtank_groundtruth.h5", vp9=vp9, root=root,
                           predictor=Predictor.from_snapshot(snapshot, device="cpu"))


def _table(h5) -> np.ndarray:
    """[n, K, 3] of a single-animal video .h5."""
    df = pd.read_hdf(h5, key="df_with_missing")
    return df.to_numpy().reshape(len(df), len(BODYPARTS), 3)


def _median_error(h5, truth_h5) -> float:
    predicted = _table(h5)
    truth = pd.read_hdf(truth_h5).to_numpy().reshape(len(predicted), -1, len(BODYPARTS), 3)[:, 0]
    visible = truth[..., 2] > 0
    return float(np.median(np.linalg.norm(predicted[..., :2] - truth[..., :2], axis=-1)[visible]))


def _untrained(snapshot: Path, out: Path) -> Path:
    """The trained snapshot's model with fresh random weights, as snapshot-000.ckpt in ``out``."""
    contents = torch.load(snapshot, weights_only=True)
    torch.manual_seed(0)
    model = model_from_config(OmegaConf.create(contents["run_config"]["model"]),
                              ProjectConfig.read(contents["run_config"]["data"]["project"]).meta())
    out.mkdir(parents=True, exist_ok=True)
    path = out / "snapshot-000.ckpt"
    torch.save({**contents, "epoch": -1, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               path)
    return path


def _pickle(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _assert_same(a, b, path="") -> None:
    """Equal nested containers; arrays equal with NaN == NaN, same dtype."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


def test_both_readers_track_the_fish_and_write_deeplabcuts_table(trained, tmp_path):
    h264 = analyze_video(trained.predictor, trained.video, tmp_path / "opencv", reader="opencv", progress=False)
    vp9 = analyze_video(trained.predictor, trained.vp9, tmp_path / "dali", reader="auto", progress=False)
    scorer = f"DLC_Resnet18_fishtankJan1shuffle1_snapshot_{EPOCHS}"  # DeepLabCut's scorer: from the run's net_type (model=resnet_18), as DeepLabCut names by net_type
    assert h264.scorer == scorer and Path(h264.h5).name == f"fishtank{scorer}.h5"
    assert (h264.reader, h264.status, h264.frames, h264.invalid_frames) == ("opencv", "analyzed", N_FRAMES, 0)
    if dali_available():
        assert vp9.reader == "dali-cpu"  # auto: DALI decodes VP9 on the CPU
    df = pd.read_hdf(h264.h5, key="df_with_missing")
    assert df.shape == (N_FRAMES, 15) and list(df.index) == list(range(N_FRAMES))
    assert df.columns.names == ["scorer", "bodyparts", "coords"]  # one animal: DeepLabCut's 3 levels
    assert df.columns.get_level_values("scorer").unique().tolist() == [scorer]
    assert df.columns.get_level_values("bodyparts").unique().tolist() == BODYPARTS
    assert df.columns.get_level_values("coords")[:3].tolist() == ["x", "y", "likelihood"]
    assert (df.dtypes == np.float32).all() and np.isfinite(df.to_numpy()).all()

    a, b = _table(h264.h5), _table(vp9.h5)
    assert len(b) == N_FRAMES
    # two encodings (H.264, VP9) and decoders of the same scene: close predictions (measured 1.9 px)
    assert np.median(np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)) < 3.0
    trained_error = _median_error(h264.h5, trained.truth)
    assert trained_error < MAX_MEDIAN_ERROR
    assert _median_error(vp9.h5, trained.truth) < MAX_MEDIAN_ERROR

    untrained = analyze_video(_untrained(trained.snapshot, tmp_path / "untrained"), trained.video,
                              tmp_path / "untrained_out", device="cpu", progress=False)
    assert _median_error(untrained.h5, trained.truth) > MAX_MEDIAN_ERROR  # the bound means something


def test_files_have_deeplabcuts_layout(trained, tmp_path):
    """Our files against DeepLabCut 3.0.2's own video analysis of openfield (tests/fixtures/dlc_video_analysis)."""
    summary = analyze_video(trained.predictor, trained.video, tmp_path, progress=False, save_as_csv=True)
    h5 = Path(summary.h5)
    theirs = pd.read_hdf(FIXTURE / "clip300DLC_Resnet50_openfieldOct30shuffle1_snapshot_2.h5")
    ours = pd.read_hdf(h5)
    assert ours.columns.names == theirs.columns.names
    coords = ours.columns.get_level_values("coords")[:3].tolist()
    assert coords == theirs.columns.get_level_values("coords")[:3].tolist() == ["x", "y", "likelihood"]
    assert ours.index.dtype == theirs.index.dtype and (ours.dtypes == theirs.dtypes.iloc[0]).all()
    with pd.HDFStore(h5, "r") as ours_store, \
            pd.HDFStore(FIXTURE / "clip300DLC_Resnet50_openfieldOct30shuffle1_snapshot_2.h5", "r") as theirs_store:
        assert ours_store.keys() == theirs_store.keys() == ["/df_with_missing"]
        assert ours_store.get_storer("df_with_missing").format_type == "table"
        assert ours_store.get_storer("df_with_missing").table.colindexed == \
            theirs_store.get_storer("df_with_missing").table.colindexed
    csv = pd.read_csv(h5.with_suffix(".csv"), header=[0, 1, 2], index_col=0)
    np.testing.assert_allclose(csv.to_numpy(), ours.to_numpy(), rtol=1e-6)

    full_theirs = _pickle(FIXTURE / "clip300DLC_Resnet50_openfieldOct30shuffle1_snapshot_2_full-first10.pickle")
    full = _pickle(h5.with_name(h5.stem + "_full.pickle"))
    assert list(full) == ["metadata"] + [f"frame{i:02d}" for i in range(N_FRAMES)]  # ceil(log10(40)) digits
    assert list(full["metadata"]) == list(full_theirs["metadata"])
    assert full["metadata"]["all_joints_names"] == BODYPARTS and full["metadata"]["nframes"] == N_FRAMES
    mine, ref = full["frame00"], full_theirs["frame000"]
    assert list(mine) == list(ref) and isinstance(mine["coordinates"], tuple) and mine["costs"] is None
    for got, want in ((mine["coordinates"][0][0], ref["coordinates"][0][0]),
                      (mine["confidence"][0], ref["confidence"][0])):
        assert got.shape == want.shape and got.dtype == want.dtype
    row = ours.iloc[0].to_numpy().reshape(-1, 3)
    np.testing.assert_array_equal(np.concatenate(mine["coordinates"][0]), row[:, :2])
    np.testing.assert_array_equal(np.concatenate(mine["confidence"]).ravel(), row[:, 2])

    meta = _pickle(h5.with_name(h5.stem + "_meta.pickle"))
    dlc_meta = json.loads((FIXTURE / "meta_pickle_keys.json").read_text())
    assert list(meta) == dlc_meta["top_level_keys"]
    assert list(meta["data"])[: len(dlc_meta["data"])] == list(dlc_meta["data"])
    for key, kind in dlc_meta["data"].items():
        assert type(meta["data"][key]).__name__ == kind, key
    d = meta["data"]
    assert (d["nframes"], d["frame_dimensions"], d["cropping"], d["cropping_parameters"]) == \
        (N_FRAMES, (SIZE, SIZE), False, [0, SIZE, 0, SIZE])
    assert d["Scorer"] == summary.scorer and d["training set fraction"] == 0.9 and d["fps"] == 30.0
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.tmp"))


def test_multi_animal_assemblies_blank_frames_and_crop(trained, tmp_path):
    """An untrained 3-fish model with a unique bodypart: 4-level table, assemblies, empty ones for blank frames."""
    config = make_demo_project(tmp_path / "multi", n_frames=12, n_labeled=6, size=64, unique_bodyparts=True)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.project={config.parent}", "model.backbone.name=regnetx_002",
                                          f"output_dir={tmp_path / 'run'}"])
    meta = ProjectConfig.read(config).meta()
    torch.manual_seed(0)
    model = model_from_config(cfg.model, meta)
    snapshot = tmp_path / "run" / "snapshot-001.ckpt"
    snapshot.parent.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0,
                "run_config": OmegaConf.to_container(cfg, resolve=True),
                "project_meta": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(meta).items()}}, snapshot)
    frames = render_scene(n_frames=12, n_fish=3, width=64, height=64, seed=0).frames.copy()
    frames[4:7] = 0  # a camera dropout: blank frames
    clip = tmp_path / "dropout.mp4"
    write_video(clip, frames, 30.0)

    summary = analyze_video(snapshot, clip, tmp_path / "out", device="cpu", crop=(0, 64, 0, 48), progress=False,
                            batch_size=5, chunk_frames=4)
    assert (summary.frames, summary.blank_frames, summary.invalid_frames) == (12, 3, 0)
    h5 = Path(summary.h5)
    df = pd.read_hdf(h5)
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert df.columns.get_level_values("individuals").unique().tolist() == ["fish1", "fish2", "fish3", "single"]
    assert df.iloc[4:7].isna().all().all() and len(df) == 12
    assemblies = _pickle(h5.with_name(h5.stem + "_assemblies.pickle"))
    assert list(assemblies)[0] == "single" and sorted(k for k in assemblies if k != "single") == list(range(12))
    for i in range(12):
        assert assemblies[i].ndim == 3 and assemblies[i].shape[1:] == (5, 4)
        x = df.iloc[i].xs("x", level="coords").droplevel("scorer").drop("single", level="individuals")
        assert assemblies[i].shape[0] == int(x.notna().groupby(level="individuals").any().sum())
    assert all(len(assemblies[i]) == 0 for i in (4, 5, 6)) and not {4, 5, 6} & set(assemblies["single"])
    full = _pickle(h5.with_name(h5.stem + "_full.pickle"))
    assert full["metadata"]["all_joints_names"] == [*BODYPARTS, "feeder"] and full["metadata"]["PAFgraph"]
    assert [c.shape for c in full["frame05"]["coordinates"][0]] == [(3, 2)] * 5 + [(1, 2)]
    assert np.isnan(np.concatenate(full["frame05"]["coordinates"][0])).all()
    d = _pickle(h5.with_name(h5.stem + "_meta.pickle"))["data"]
    assert d["cropping"] and d["cropping_parameters"] == [0, 64, 0, 48] and d["frame_dimensions"] == (64, 64)
    assert d["lightning_dlc"]["blank_frames"] == [[4, 6]]


def test_all_black_and_corrupted_clips_finish_with_nan_rows(trained, tmp_path, caplog, damage):
    black = tmp_path / "black.mp4"
    write_video(black, np.zeros((20, SIZE, SIZE, 3), np.uint8), 30.0)
    summary = analyze_video(trained.predictor, black, tmp_path, progress=False)
    assert (summary.frames, summary.blank_frames) == (20, 20)
    assert pd.read_hdf(summary.h5).isna().all().all()

    damaged = tmp_path / "damaged.mp4"
    damage(trained.video, damaged)
    caplog.set_level(logging.WARNING)
    summary = analyze_video(trained.predictor, damaged, tmp_path, progress=False)
    df = pd.read_hdf(summary.h5)
    assert len(df) == summary.frames == N_FRAMES and 0 < summary.invalid_frames < N_FRAMES
    nan_rows = df.isna().all(axis=1).to_numpy()
    assert nan_rows.sum() == summary.invalid_frames + summary.blank_frames
    assert "could not be decoded" in caplog.text
    ranges = _pickle(Path(summary.h5).with_name(Path(summary.h5).stem + "_meta.pickle"))["data"]["lightning_dlc"]
    assert sum(b - a + 1 for a, b in ranges["invalid_frames"]) == summary.invalid_frames


def test_existing_output_is_kept_unless_overwrite(trained, tmp_path, capsys):
    first = analyze_video(trained.predictor, trained.video, tmp_path, progress=False)
    h5 = Path(first.h5)
    written = h5.stat().st_mtime_ns
    again = analyze_video(trained.predictor, trained.video, tmp_path, progress=False)
    assert again.status == "skipped" and h5.stat().st_mtime_ns == written
    assert "already analyzed" in capsys.readouterr().out
    replaced = analyze_video(trained.predictor, trained.video, tmp_path, progress=False, overwrite=True)
    assert replaced.status == "analyzed" and h5.stat().st_mtime_ns != written


def test_crash_then_rerun_resumes_and_equals_an_uninterrupted_run(trained, tmp_path, monkeypatch, caplog):
    reference = analyze_video(trained.predictor, trained.video, tmp_path / "reference", progress=False,
                              batch_size=4, chunk_frames=8)
    out = tmp_path / "crash"
    write = chunks_mod.PartialResults.write
    calls = []

    def crash_after_two_chunks(self, first, arrays, count):
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        calls.append(first)
        write(self, first, arrays, count)

    monkeypatch.setattr(chunks_mod.PartialResults, "write", crash_after_two_chunks)
    with pytest.raises(RuntimeError, match="simulated crash"):
        analyze_video(trained.predictor, trained.video, out, progress=False, batch_size=4, chunk_frames=8)
    monkeypatch.undo()
    partial = next(out.glob("*.partial"))
    assert sorted(p.name for p in partial.glob("frames-*.npz")) == ["frames-0000000000-0000000008.npz",
                                                                    "frames-0000000008-0000000016.npz"]
    assert not list(out.glob("*.h5")) and not list(out.glob("*.pickle"))

    caplog.set_level(logging.INFO, logger=chunks_mod.__name__)
    resumed = analyze_video(trained.predictor, trained.video, out, progress=False, batch_size=4, chunk_frames=8)
    assert "resuming from frame 16" in caplog.text
    assert (resumed.status, resumed.analyzed_frames, resumed.frames) == ("resumed", N_FRAMES - 16, N_FRAMES)
    assert not partial.exists()
    pd.testing.assert_frame_equal(pd.read_hdf(resumed.h5), pd.read_hdf(reference.h5))
    ours, ref = Path(resumed.h5), Path(reference.h5)
    _assert_same(_pickle(ours.with_name(ours.stem + "_full.pickle")), _pickle(ref.with_name(ref.stem + "_full.pickle")))


def test_a_missing_video_does_not_stop_the_others(trained, tmp_path, caplog):
    missing = tmp_path / "gone.mp4"
    caplog.set_level(logging.ERROR)
    summaries = analyze_videos(trained.predictor, [missing, trained.video], tmp_path, progress=False)
    assert [s.status for s in summaries] == ["failed", "analyzed"]
    assert str(missing) in summaries[0].error and str(missing) in caplog.text
    assert Path(summaries[1].h5).is_file()


def test_analyze_images_of_mixed_sizes(trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cap = cv2.VideoCapture(str(trained.video))
    decoded = [cap.read()[1] for _ in range(21)]
    cap.release()
    cv2.imwrite(str(folder / "a_full.png"), decoded[0])                      # 96 x 96, the largest
    cv2.imwrite(str(folder / "b_crop.png"), decoded[10][8:88, 16:80])        # 64 wide, 80 high
    cv2.imwrite(str(folder / "c_small.jpg"), cv2.resize(decoded[20], (72, 56)))
    (folder / "d_broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")

    h5 = analyze_images(trained.predictor, folder, progress=False)
    assert h5.name == f"image_predictions_{trained.predictor.scorer}.h5" and h5.parent == folder
    df = pd.read_hdf(h5, key="predictions")
    assert list(df.index) == [str(folder / n) for n in ("a_full.png", "b_crop.png", "c_small.jpg", "d_broken.png")]
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert df.iloc[:3].notna().all().all() and df.iloc[3].isna().all()
    video = analyze_video(trained.predictor, trained.video, tmp_path / "video", progress=False)
    np.testing.assert_allclose(df.iloc[0].to_numpy(), pd.read_hdf(video.h5).iloc[0].to_numpy(), atol=1e-3)
    record = json.loads(h5.with_suffix(".json").read_text())
    assert record["bodyparts"] == BODYPARTS
    assert record["images"][str(folder / "b_crop.png")]["size"] == [64, 80]
    assert record["images"][str(folder / "d_broken.png")]["size"] is None
    assert record["images"][str(folder / "d_broken.png")]["bodyparts"][0][0] == [None, None, None]


def test_api_finds_the_shuffles_model(trained, tmp_path):
    summaries = api.analyze_videos(trained.config, [trained.video], destfolder=tmp_path, snapshot="last",
                                   device="cpu", save_as_csv=True, progress=False)
    assert [s.status for s in summaries] == ["analyzed"]
    h5 = Path(summaries[0].h5)
    assert h5.name == f"fishtankDLC_Resnet18_fishtankJan1shuffle1_snapshot_{EPOCHS}.h5"
    assert h5.with_suffix(".csv").is_file()
    assert api.analyze_videos(trained.config, [trained.video], destfolder=tmp_path, snapshot="last",
                              progress=False)[0].status == "skipped"
    images = api.analyze_images(trained.config, trained.config.parent / "labeled-data" / "fishtank",
                                destfolder=tmp_path, snapshot="last", progress=False)
    assert len(pd.read_hdf(images)) == 32


def test_scripts(trained, tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts/analyze_videos.py"), f"run={trained.train_dir}", "snapshot=last",
         f"videos=[{trained.video},{tmp_path / 'missing.mp4'}]", f"destfolder={tmp_path}", "precision=bf16",
         "progress=false"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]  # one video failed; the other was analyzed
    assert "missing.mp4" in run.stdout + run.stderr and "FAILED" in run.stdout
    assert len(pd.read_hdf(next(tmp_path.glob("fishtankDLC_*.h5")))) == N_FRAMES
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()


def test_analyze_images_command(trained, tmp_path):
    """`lightning-dlc analyze-images` takes analyze.yaml's options and leaves the video-only ones out."""
    images = trained.config.parent / "labeled-data" / "fishtank"
    run = subprocess.run([sys.executable, "-m", "lightning_dlc", "analyze-images", f"run={trained.train_dir}",
                          "snapshot=last", f"images={images}", f"destfolder={tmp_path}", "progress=false"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (h5,) = tmp_path.glob("image_predictions_DLC_*.h5")
    assert len(pd.read_hdf(h5)) == len(list(images.glob("*.png")))


@pytest.mark.gpu
def test_gpu_dali_reader_bf16_matches_the_cpu(trained, tmp_path):
    cpu = analyze_video(trained.predictor, trained.video, tmp_path / "cpu", progress=False)
    gpu = analyze_video(trained.snapshot, trained.video, tmp_path / "gpu", device="cuda", precision="bf16",
                        progress=False)
    assert (gpu.reader, gpu.frames, gpu.invalid_frames) == ("dali-gpu", N_FRAMES, 0)  # NVDEC decodes H.264
    assert np.median(np.linalg.norm(_table(cpu.h5)[..., :2] - _table(gpu.h5)[..., :2], axis=-1)) < 2.0


def test_folders_give_their_videos_not_the_labeled_videos_made_from_them(tmp_path):
    for name in ("a.mp4", "b.avi", "aDLC_Resnet50_tankJan1shuffle1_snapshot_200_el_id_p60_labeled.mp4",
                 "aDLC_Resnet50_tankJan1shuffle1_snapshot_200_full.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_videos(tmp_path)] == ["a.mp4", "b.avi"]
    assert [p.name for p in find_videos(tmp_path, "avi")] == ["b.avi"]
