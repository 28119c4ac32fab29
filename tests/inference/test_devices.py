"""The one device resolver: auto, explicit devices, and CUDA asked for where there is none."""
from __future__ import annotations

import pytest
import torch

from lightning_dlc.inference.devices import resolve_device
from lightning_dlc.data.video import choose_reader
from lightning_dlc.data.video_reader import VideoInfo


def test_auto_and_explicit_devices():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected and resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_naming_the_device():
    with pytest.raises(ValueError, match="cuda:1 asked for, but CUDA is not available"):
        resolve_device("cuda:1")


def test_video_readers_only_decode_to_cpu_or_cuda(tmp_path):
    info = VideoInfo(tmp_path / "clip.mp4", n_frames=10, fps=30.0, width=64, height=48, codec="h264")
    assert choose_reader(info, "cpu")[0] == "opencv"  # DALI decodes no H.264 on the CPU
    with pytest.raises(ValueError, match="device must be cpu or cuda, got meta"):
        choose_reader(info, "meta")
