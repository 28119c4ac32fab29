"""glibc tuning: idempotent, and done by the analysis entry points, never by building a Predictor."""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.data.demo import demo_meta
from lightning_dlc.inference import analyze, malloc
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models.pose_model import model_from_config



class _FakeLibc:
    """Records mallopt calls instead of changing this test process's allocator."""

    def __init__(self, calls: list):
        self.calls = calls

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 1


def _fake_glibc(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(malloc, "_malloc_tuned", None)  # as in a fresh process
    monkeypatch.setattr(ctypes, "CDLL", lambda name: _FakeLibc(calls))
    return calls


def test_tune_malloc_sets_both_thresholds_once(monkeypatch):
    calls = _fake_glibc(monkeypatch)
    assert malloc.tune_malloc() is True and malloc.tune_malloc() is True
    assert calls == [(-3, 32 * 1024 * 1024), (-1, 512 * 1024 * 1024)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def test_a_predictor_leaves_the_allocator_alone_and_the_analysis_tunes_it(monkeypatch):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.name=regnetx_002",
                                          "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, demo_meta(multianimal=False)).eval()
    calls = _fake_glibc(monkeypatch)
    predictor = Predictor(model, device="cpu")
    assert calls == []
    assert analyze._analysis_predictor(predictor, None, "32", True, False, None, "auto", 0.5) is predictor
    assert len(calls) == 2
