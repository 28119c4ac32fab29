"""Video readers on short demo clips: OpenCV (H.264), DALI CPU (VP9, MJPEG), auto choice, damage."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import torch

from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.data.video_writer import write_video
from lightning_dlc.data import video as video_mod
from lightning_dlc.data import video_reader
from lightning_dlc.data.opencv_reader import OpenCVReader
from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_reader import VideoError, probe_video
from video_frames import decode_rgb  # tests/video_frames.py

N_FRAMES = 30
SIZE = 128
CROP = (10, 100, 5, 90)  # x1, x2, y1, y2 as DeepLabCut's config.yaml




@pytest.fixture(scope="module")
def clips(tmp_path_factory, damage):
    root = tmp_path_factory.mktemp("video")
    scene = render_scene(n_frames=N_FRAMES, n_fish=2, width=SIZE, height=SIZE, fps=30.0, seed=3)
    paths = {"frames": scene.frames}
    for name, codec, suffix in (("h264", "libx264", ".mp4"), ("vp9", "libvpx-vp9", ".webm"),
                                ("mjpeg", "mjpeg", ".avi")):
        paths[name] = root / f"clip_{name}{suffix}"
        write_video(paths[name], scene.frames, 30.0, codec)
    for name in ("h264", "vp9"):
        paths[f"bad_{name}"] = root / f"damaged_{name}{paths[name].suffix}"
        damage(paths[name], paths[f"bad_{name}"])
    paths["black"] = root / "black.mp4"
    write_video(paths["black"], np.zeros((24, 64, 64, 3), np.uint8), 25.0, "libx264")
    paths["black_vp9"] = root / "black.webm"
    write_video(paths["black_vp9"], np.zeros((24, 64, 64, 3), np.uint8), 25.0, "libvpx-vp9")
    return paths


def _read(reader):
    """All batches of a reader: frames [n, H, W, 3] numpy, indices, valid, batch sizes."""
    frames, indices, valid, sizes = [], [], [], []
    for batch in reader:
        assert batch.frames.dtype == torch.uint8 and batch.frames.shape[1] == 3
        assert batch.indices.dtype == torch.int64 and batch.valid.dtype == torch.bool
        assert len(batch.frames) == len(batch.indices) == len(batch.valid)
        frames.append(batch.frames.cpu().permute(0, 2, 3, 1).numpy())
        indices.append(batch.indices.numpy())
        valid.append(batch.valid.cpu().numpy())
        sizes.append(len(batch))
    return np.concatenate(frames), np.concatenate(indices), np.concatenate(valid), sizes


def test_probe(clips):
    for name, codec in (("h264", "h264"), ("vp9", "vp9"), ("mjpeg", "mjpeg")):
        info = probe_video(clips[name])
        assert (info.n_frames, info.width, info.height, info.codec) == (N_FRAMES, SIZE, SIZE, codec)
        assert info.fps == pytest.approx(30.0)
        assert info.path == clips[name]


def test_opencv_reader_h264_matches_a_full_decode(clips):
    reader = open_video(clips["h264"], reader="opencv", device="cpu", batch_size=8)
    assert reader.backend == "opencv" and len(reader) == 4
    frames, indices, valid, sizes = _read(reader)
    assert sizes == [8, 8, 8, 6]
    np.testing.assert_array_equal(indices, np.arange(N_FRAMES))
    assert valid.all()
    np.testing.assert_array_equal(frames, decode_rgb(clips["h264"]))  # same decoder: same pixels
    assert np.abs(frames.astype(int) - clips["frames"]).mean() < 5  # and close to what was encoded
    again = _read(reader)  # a reader can be iterated again
    np.testing.assert_array_equal(again[0], frames)


@pytest.mark.parametrize("name", ["vp9", "mjpeg"])
def test_dali_cpu_reader_matches_a_full_decode(clips, name):
    with open_video(clips[name], reader="dali", device="cpu", batch_size=8) as reader:
        assert reader.backend == "dali-cpu" and len(reader) == 4
        frames, indices, valid, sizes = _read(reader)
    assert sizes == [8, 8, 8, 6]  # DALI's padding of the last sequence is dropped
    np.testing.assert_array_equal(indices, np.arange(N_FRAMES))
    assert valid.all()
    reference = decode_rgb(clips[name]).astype(int)
    # Another YUV->RGB conversion than OpenCV's: close, not equal.
    assert np.abs(frames.astype(int) - reference).mean(axis=(1, 2, 3)).max() < 3


@pytest.mark.parametrize("name,reader", [("h264", "opencv"), ("vp9", "dali")])
def test_crop_and_frame_range(clips, name, reader):
    x1, x2, y1, y2 = CROP
    reference = decode_rgb(clips[name]).astype(int)
    for crop in (CROP, "10, 100, 5, 90"):
        with open_video(clips[name], reader=reader, device="cpu", batch_size=7, crop=crop,
                        start=5, stop=23) as r:
            frames, indices, valid, sizes = _read(r)
        assert frames.shape == (18, y2 - y1, x2 - x1, 3) and sizes == [7, 7, 4]
        np.testing.assert_array_equal(indices, np.arange(5, 23))
        assert valid.all()
        diff = np.abs(frames.astype(int) - reference[5:23, y1:y2, x1:x2]).mean(axis=(1, 2, 3))
        assert diff.max() < 3  # right frames, right window (neighbours differ by more)
    with pytest.raises(VideoError, match="crop"):
        open_video(clips[name], reader=reader, device="cpu", crop=(0, SIZE + 1, 0, 10))


def test_auto_picks_dali_for_vp9_and_opencv_for_h264_and_logs_once(clips, caplog, monkeypatch):
    monkeypatch.setattr(video_reader, "_logged", set())
    caplog.set_level(logging.INFO, logger=video_mod.__name__)
    for _ in range(2):
        assert open_video(clips["vp9"], device="cpu").backend == "dali-cpu"
        assert open_video(clips["h264"], device="cpu").backend == "opencv"
    choices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("video reader:")]
    assert len(choices) == 2
    assert "dali-cpu" in choices[0] and "vp9" in choices[0]
    assert "opencv" in choices[1] and "h264" in choices[1]


def test_dali_that_cannot_open_a_file_says_so_and_auto_falls_back(clips, caplog, monkeypatch):
    with pytest.raises(VideoError, match="h264") as err:
        open_video(clips["h264"], reader="dali", device="cpu")
    assert str(clips["h264"]) in str(err.value) and "DALI" in str(err.value)
    # As if DALI claimed H.264 on the CPU: auto tries it, fails, and reads with OpenCV.
    monkeypatch.setattr(video_mod, "DALI_CPU_CODECS", video_mod.DALI_CPU_CODECS | {"h264"})
    caplog.set_level(logging.WARNING, logger=video_mod.__name__)
    reader = open_video(clips["h264"], device="cpu", batch_size=16)
    assert reader.backend == "opencv"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "OpenCV" in warnings[0].getMessage()
    assert _read(reader)[2].all()


def test_missing_and_non_video_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    for path in (missing, text):
        for reader in ("auto", "opencv", "dali"):
            with pytest.raises(VideoError) as err:
                open_video(path, reader=reader, device="cpu")
            assert str(path) in str(err.value) and err.value.path == path


@pytest.mark.parametrize("name,reader,kw", [
    ("bad_h264", "opencv", {}),
    ("bad_vp9", "auto", {}),        # DALI CPU
    ("bad_vp9", "opencv", {"seek_after": 4}),  # exercises the seeks past the damage
])
def test_damaged_clip_finishes_with_invalid_frames(clips, name, reader, kw, caplog):
    caplog.set_level(logging.WARNING, logger=video_mod.__name__)
    r = open_video(clips[name], reader=reader, device="cpu", batch_size=8)
    if kw:
        r = OpenCVReader(r.info, batch_size=8, **kw)
    frames, indices, valid, _ = _read(r)
    np.testing.assert_array_equal(indices, np.arange(N_FRAMES))  # every frame number once, in order
    assert valid[0] and not valid.all()
    assert not frames[~valid].any()  # invalid frames are zeros
    # Frames reported valid are the right ones (decoded with concealed errors at worst).
    diff = np.abs(frames[valid].astype(int) - clips["frames"][valid]).mean(axis=(1, 2, 3))
    assert diff.max() < 20
    assert any("could not be decoded" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("name,reader", [("black", "opencv"), ("black_vp9", "dali")])
def test_all_black_clip_decodes(clips, name, reader):
    frames, indices, valid, _ = _read(open_video(clips[name], reader=reader, device="cpu", batch_size=10))
    np.testing.assert_array_equal(indices, np.arange(24))
    assert valid.all() and frames.shape == (24, 64, 64, 3) and frames.max() <= 2


def test_breaking_off_stops_the_decoding_thread(clips):
    reader = open_video(clips["h264"], reader="opencv", device="cpu", batch_size=2, prefetch=1)
    batches = iter(reader)
    first = next(batches)
    assert first.indices.tolist() == [0, 1]
    batches.close()
    assert not any(t.name.startswith("opencv-video-") for t in threading.enumerate())


@pytest.mark.gpu
def test_dali_gpu_reader_h264(clips):
    x1, x2, y1, y2 = CROP
    reference = decode_rgb(clips["h264"]).astype(int)
    for reader in ("dali", "auto"):
        with open_video(clips["h264"], reader=reader, device="cuda", batch_size=8) as r:
            assert r.backend == "dali-gpu"
            batches = list(r)
        assert all(b.frames.is_cuda for b in batches)
        frames, indices, valid, sizes = _read(batches)
        assert sizes == [8, 8, 8, 6] and valid.all()
        np.testing.assert_array_equal(indices, np.arange(N_FRAMES))
        assert np.abs(frames.astype(int) - reference).mean(axis=(1, 2, 3)).max() < 3
    with open_video(clips["h264"], reader="dali", device="cuda", batch_size=7, crop=CROP, start=3) as r:
        frames, indices, valid, _ = _read(r)
    np.testing.assert_array_equal(indices, np.arange(3, N_FRAMES))
    assert np.abs(frames.astype(int) - reference[3:, y1:y2, x1:x2]).mean(axis=(1, 2, 3)).max() < 3
    # OpenCV frames wait in pinned memory for the copy to the GPU.
    batch = next(iter(open_video(clips["h264"], reader="opencv", device="cuda")))
    assert batch.frames.is_pinned()
