"""Two analyses of one video at once: one holds the outputs' lock, the other skips or waits; chunks carry
what made them and a foreign one is never mixed in; a killed analysis' lock is free at once and it resumes."""
from __future__ import annotations

import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.inference import chunks as chunks_mod
from lightning_dlc.inference.analyze import analyze_video, analyze_videos
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project import locks
from lightning_dlc.project.errors import ProjectError

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="kills its subprocesses with POSIX signals"),
              pytest.mark.slow]  # analyses in subprocesses, killed and rerun

REPO = Path(__file__).resolve().parents[2]
N_FRAMES = 12

# An analysis in its own process that stops after each chunk (saying so in <marker>) until <go> exists.
ANALYSIS = """
import sys, time
from pathlib import Path
from lightning_dlc.inference import analyze as A
from lightning_dlc.inference import chunks as C
snapshot, video, out, marker, go, wait = sys.argv[1:7]
write = C.PartialResults.write
def paused(self, first, arrays, count):
    write(self, first, arrays, count)
    Path(marker).write_text(str(first + count))
    deadline = time.time() + 120
    while not Path(go).exists() and time.time() < deadline:
        time.sleep(0.02)
C.PartialResults.write = paused
s = A.analyze_video(snapshot, video, out, device="cpu", progress=False, batch_size=4, chunk_frames=4,
                    wait_for_lock=wait == "wait")
print("STATUS", s.status, s.error, flush=True)
"""


def _snapshot(config: Path, path: Path, seed: int) -> Path:
    """An untrained single-animal model saved as a snapshot; two seeds, two snapshots with one scorer."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.project={config.parent}", "data.demo.multianimal=false",
                                          "model.backbone.name=regnetx_002", "model.backbone.pretrained=false",
                                          f"output_dir={path.parent}"])
    meta = ProjectConfig.read(config).meta()
    torch.manual_seed(seed)
    model = model_from_config(cfg.model, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0,
                "run_config": OmegaConf.to_container(cfg, resolve=True),
                "project_meta": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(meta).items()}}, path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("locking")
    config = make_demo_project(root / "fishtank", multianimal=False, n_frames=N_FRAMES, n_labeled=8, size=64)
    first = _snapshot(config, root / "run1" / "snapshot-001.ckpt", seed=0)
    second = _snapshot(config, root / "run2" / "snapshot-001.ckpt", seed=1)
    video = config.parent / "videos" / "fishtank.mp4"
    other = root / "other.mp4"
    shutil.copy(video, other)
    p1, p2 = Predictor.from_snapshot(first, device="cpu"), Predictor.from_snapshot(second, device="cpu")
    assert p1.scorer == p2.scorer  # the dangerous case: another model, the same file names
    return SimpleNamespace(first=first, second=second, video=video, other=other, p1=p1, p2=p2, root=root)


class Analysis:
    """An analysis subprocess (see ANALYSIS); paused after its first chunk once started."""

    def __init__(self, tmp: Path, snapshot: Path, video: Path, out: Path, wait: bool = False, name: str = "holder"):
        self.marker, self.go = tmp / f"{name}.chunk", tmp / f"{name}.go"
        self.stderr = tmp / f"{name}.stderr"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ANALYSIS, str(snapshot), str(video), str(out), str(self.marker), str(self.go),
             "wait" if wait else "skip"], stdout=subprocess.PIPE, stderr=open(self.stderr, "w"), text=True)

    def wait_for(self, condition, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the analysis ended before {what}: {self.stderr.read_text()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s"
            time.sleep(0.05)

    def paused(self) -> "Analysis":
        self.wait_for(self.marker.exists, "its first chunk")
        return self

    def finish(self) -> str:
        self.go.touch()
        out, _ = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, self.stderr.read_text()
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _meta_snapshot(h5: Path) -> str:
    with open(h5.with_name(h5.stem + "_meta.pickle"), "rb") as f:
        return pickle.load(f)["data"]["lightning_dlc"]["snapshot"]


def _in_thread(fn) -> SimpleNamespace:
    """``fn()`` in a thread (an analysis in this process, waiting for another process' lock)."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout: float = 120):
        thread.join(timeout)
        assert not thread.is_alive(), "the waiting analysis did not finish"
        if "error" in box:
            raise box["error"]
        return box["result"]

    return SimpleNamespace(thread=thread, result=result)


def test_a_second_analysis_skips_the_video_or_waits_and_the_outputs_are_one_snapshots(setup, tmp_path, capsys,
                                                                                        caplog):
    out = tmp_path / "out"
    holder = Analysis(tmp_path, setup.first, setup.video, out).paused()
    try:
        # another model with the same scorer, on the same video and another: this video is skipped, the other runs
        summaries = analyze_videos(setup.p2, [setup.video, setup.other], out, progress=False, batch_size=4,
                                   chunk_frames=4)
        assert [s.status for s in summaries] == ["locked", "analyzed"]
        locked = summaries[0]
        assert f"locked by pid {holder.proc.pid} on host {socket.gethostname()}" in locked.error
        assert str(out / f"fishtank{setup.p1.scorer}.lock") in locked.error and locked.h5 is None
        printed = capsys.readouterr().out
        assert f"{setup.video}: skipped, " in printed and "1 locked" in printed
        partial = out / f"fishtank{setup.p1.scorer}.partial"
        assert sorted(p.name for p in partial.glob("*.npz")) == ["frames-0000000000-0000000004.npz"]  # untouched

        # a third one waits for the holder, then finds its results and keeps them
        caplog.set_level(logging.INFO, logger=locks.__name__)
        waiter = _in_thread(lambda: analyze_video(setup.p2, setup.video, out, progress=False, batch_size=4,
                                                  chunk_frames=4, wait_for_lock=True))
        holder.wait_for(lambda: "waiting for it" in caplog.text, "the waiter's wait")
        assert f"pid {holder.proc.pid}" in caplog.text and waiter.thread.is_alive()
        assert "STATUS analyzed" in holder.finish()
        assert waiter.result().status == "skipped"
    finally:
        holder.kill()
    h5 = out / f"fishtank{setup.p1.scorer}.h5"
    df = pd.read_hdf(h5)
    assert list(df.index) == list(range(N_FRAMES)) and not partial.exists()
    assert _meta_snapshot(h5) == str(setup.first)  # whole, and the first model's alone
    reference = analyze_video(setup.p1, setup.video, tmp_path / "reference", progress=False, batch_size=4,
                              chunk_frames=4)
    pd.testing.assert_frame_equal(df, pd.read_hdf(reference.h5))
    assert not list(out.glob("*.lock"))  # released, and the file removed


def test_a_killed_analysis_frees_its_lock_at_once_and_its_rerun_resumes(setup, tmp_path, caplog):
    out = tmp_path / "out"
    holder = Analysis(tmp_path, setup.first, setup.video, out).paused()
    caplog.set_level(logging.INFO)
    waiter = _in_thread(lambda: analyze_video(setup.p1, setup.video, out, progress=False, batch_size=4,
                                              chunk_frames=4, wait_for_lock=True))
    holder.wait_for(lambda: "waiting for it" in caplog.text, "the waiter's wait")
    holder.kill()  # kill -9 after its first chunk: the waiter takes the lock and resumes
    resumed = waiter.result()
    assert resumed.status == "resumed" and resumed.analyzed_frames == N_FRAMES - 4
    assert "resuming from frame 4" in caplog.text and "lock taken after" in caplog.text
    reference = analyze_video(setup.p1, setup.video, tmp_path / "reference", progress=False, batch_size=4,
                              chunk_frames=4)
    pd.testing.assert_frame_equal(pd.read_hdf(resumed.h5), pd.read_hdf(reference.h5))


def _crash_after(monkeypatch, chunks: int) -> None:
    write = chunks_mod.PartialResults.write
    calls = []

    def crash(self, first, arrays, count):
        if len(calls) == chunks:
            raise RuntimeError("simulated crash")
        calls.append(first)
        write(self, first, arrays, count)

    monkeypatch.setattr(chunks_mod.PartialResults, "write", crash)


def _partial_after_crash(setup, predictor, out: Path, chunks: int) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _crash_after(mp, chunks)
        with pytest.raises(RuntimeError, match="simulated crash"):
            analyze_video(predictor, setup.video, out, progress=False, batch_size=4, chunk_frames=4)
    return out / f"fishtank{predictor.scorer}.partial"


def test_a_chunk_of_another_snapshot_is_refused(setup, tmp_path, caplog):
    ours = _partial_after_crash(setup, setup.p1, tmp_path / "ours", chunks=1)
    theirs = _partial_after_crash(setup, setup.p2, tmp_path / "theirs", chunks=2)
    planted = "frames-0000000004-0000000008.npz"
    shutil.copy(theirs / planted, ours / planted)  # another model's chunk, where ours would go next
    with pytest.raises(ProjectError) as caught:
        analyze_video(setup.p1, setup.video, tmp_path / "ours", progress=False, batch_size=4, chunk_frames=4)
    message = str(caught.value)
    assert message.startswith(str(ours)) and planted in message and "snapshot" in message
    assert "remove the folder" in message and "overwrite=True" in message
    assert not list((tmp_path / "ours").glob("*.h5"))

    caplog.set_level(logging.INFO)
    summaries = analyze_videos(setup.p1, [setup.video], tmp_path / "ours", progress=False, batch_size=4,
                               chunk_frames=4, verbose=False)
    assert summaries[0].status == "failed" and planted in summaries[0].error
    assert caplog.text.count(planted) == 1 and "not analyzed" not in caplog.text  # reported once


def test_overlapping_or_unrecorded_chunks_are_refused(setup, tmp_path):
    ours = _partial_after_crash(setup, setup.p1, tmp_path / "ours", chunks=2)
    overlap = ours / "frames-0000000002-0000000006.npz"
    shutil.copy(ours / "frames-0000000000-0000000004.npz", overlap)
    with pytest.raises(ProjectError, match="overlaps the chunk before it"):
        analyze_video(setup.p1, setup.video, tmp_path / "ours", progress=False, batch_size=4, chunk_frames=4)
    overlap.unlink()
    second = ours / "frames-0000000004-0000000008.npz"
    with np.load(second) as z:  # a chunk as earlier versions wrote it: no record of what made it
        arrays = {k: z[k] for k in z.files if not k.startswith("_")}
    np.savez(second, **arrays)
    with pytest.raises(ProjectError, match="carries no record of the run that made it"):
        analyze_video(setup.p1, setup.video, tmp_path / "ours", progress=False, batch_size=4, chunk_frames=4)


def test_a_missing_video_is_reported_once(setup, tmp_path, capsys, caplog):
    missing = tmp_path / "gone.mp4"
    caplog.set_level(logging.INFO)
    summaries = analyze_videos(setup.p1, [missing], tmp_path, progress=False)
    assert summaries[0].status == "failed"
    reported = caplog.text + capsys.readouterr().out
    lines = [line for line in reported.splitlines() if str(missing) in line]
    assert len(lines) == 1 and "FAILED" in lines[0] and lines[0].count(str(missing)) == 1


HOLD = """
import sys, time
from pathlib import Path
from lightning_dlc.project.locks import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_tracking_stitching_and_labeled_videos_take_the_same_lock(setup, tmp_path):
    from lightning_dlc.project.locks import OutputLocked, lock_path
    from lightning_dlc.review.labeled_video import analysis_lock, labeled_video, video_with_all_detections
    from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file, track_analysis

    prefix = tmp_path / f"fishtank{setup.p1.scorer}"
    assert analysis_lock(f"{prefix}.h5") == analysis_lock(f"{prefix}_el.h5") == analysis_lock(f"{prefix}_el_tr.h5") \
        == lock_path(prefix) == tmp_path / f"fishtank{setup.p1.scorer}.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path(prefix))], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        writers = [lambda: convert_to_tracklets(prefix), lambda: stitch_tracklet_file(prefix),
                   lambda: track_analysis(prefix),
                   lambda: labeled_video(setup.video, f"{prefix}_el.h5", tmp_path / "labeled.mp4"),
                   lambda: video_with_all_detections(setup.video, {}, tmp_path / "full.mp4", bodyparts=["a"],
                                                     lock=lock_path(prefix))]
        for write in writers:
            with pytest.raises(OutputLocked, match=f"locked by pid {proc.pid} on host"):
                write()
    finally:
        proc.kill()
        proc.wait()
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.pickle"))
