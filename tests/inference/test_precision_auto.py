"""precision="auto": the decision by device capabilities, and its predictions beside fp32's on a trained demo model."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_dlc.inference import devices
from lightning_dlc.inference.analyze import analyze_video
from lightning_dlc.inference.devices import autocast_dtype, resolve_precision
from lightning_dlc.project import ProjectConfig


@pytest.fixture
def capabilities(monkeypatch):
    """Pretend this machine's CPU and CUDA GPU do or do not compute bf16 natively."""
    def set_(cpu_bf16: bool, cuda_bf16: bool | None = None):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: cpu_bf16)
        monkeypatch.setattr(devices, "_cuda_has_native_bf16", lambda device: bool(cuda_bf16))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_bf16 is not None)
        monkeypatch.setattr(devices, "_LOGGED", set())
    return set_


@pytest.mark.parametrize("cpu_bf16, cuda_bf16, device, expected", [
    (True, None, "cpu", "bf16"),     # AVX512-BF16 / AMX
    (False, None, "cpu", "32"),      # emulated bf16 is slower than fp32 (AVX2-only CPUs)
    (False, True, "cuda", "bf16"),   # Ampere and later
    (True, False, "cuda:0", "16"),   # older GPUs: fp16 autocast, whatever the CPU does
    (False, True, "auto", "bf16"),   # auto device = the GPU
    (True, None, "auto", "bf16"),    # auto device = the CPU
    (True, None, "meta", "32"),      # anything else: fp32
])
def test_auto_precision_follows_the_device(capabilities, cpu_bf16, cuda_bf16, device, expected):
    capabilities(cpu_bf16, cuda_bf16)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision(None, device) == expected


@pytest.mark.parametrize("asked", ["32", "bf16", "16"])
def test_an_explicit_precision_is_kept(capabilities, asked):
    capabilities(True, True)
    assert resolve_precision(asked, "cuda") == asked


def test_the_choice_is_logged_once(capabilities, caplog):
    capabilities(True)
    with caplog.at_level(logging.INFO, logger=devices.__name__):
        for _ in range(3):
            resolve_precision("auto", "cpu")
        resolve_precision("32", "cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == devices.__name__]
    assert lines == ["precision auto: bf16 on cpu"]


def test_autocast_dtypes():
    assert autocast_dtype("32") is None and autocast_dtype("bf16-mixed") is torch.bfloat16
    assert autocast_dtype("16") is torch.float16
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype("auto")  # resolved first, never reaching the network


def test_cpu_probe_reads_torchs_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not devices.cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert devices.cpu_has_native_bf16()


@pytest.mark.slow  # trains a tiny model
def test_auto_bf16_keypoints_within_half_a_pixel_of_fp32(tmp_path, capabilities, trained_one_fish):
    """On a briefly trained demo model, the automatic precision (bf16, as on a CPU with native bf16) puts
    every confident keypoint (likelihood above pcutoff) within 0.5 px of fp32's, in files of the same name."""
    config, snapshot = trained_one_fish
    video = config.parent / "videos" / "fishtank.mp4"
    capabilities(True)
    fp32 = analyze_video(snapshot, video, tmp_path / "fp32", device="cpu", precision="32", progress=False)
    auto = analyze_video(snapshot, video, tmp_path / "auto", device="cpu", progress=False)
    assert Path(auto.h5).name == Path(fp32.h5).name and auto.scorer == fp32.scorer
    a, b = (pd.read_hdf(s.h5).to_numpy().reshape(len(pd.read_hdf(s.h5)), -1, 3) for s in (fp32, auto))
    pcutoff = ProjectConfig.read(config).pcutoff
    confident = (a[..., 2] > pcutoff) & (b[..., 2] > pcutoff)
    assert confident.sum() >= 20  # trained: enough confident keypoints to compare (measured 50 of 200)
    distance = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)[confident]
    assert distance.max() <= 0.5, f"bf16 moved a confident keypoint {distance.max():.2f} px"
    assert not np.array_equal(a, b)  # bf16 ran: the numbers are not fp32's
