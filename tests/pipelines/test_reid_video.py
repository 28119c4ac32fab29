"""Re-ID end to end with a trained pose model: demo project -> analyze_videos(features=True) ->
api.transformer_reID (triplets, transformer, stitching) -> _el_tr.h5; held-out triplet accuracy and identity
switches of fragmented tracklets. The full measurement: benchmarks/reid_accuracy.py (same functions)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_dlc import api
from lightning_dlc.project.errors import ProjectError

pytestmark = pytest.mark.slow  # trains a model for its fixture

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("reid_accuracy", REPO / "benchmarks" / "reid_accuracy.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

N_FRAMES, SIZE, POSE_EPOCHS, REID_EPOCHS = 150, 128, 60, 20
# Held-out triplets (last 20 % of the frames): measured 0.948 with 20 re-ID epochs (the benchmark's 40: 0.96;
# other re-ID seeds 0.92-0.98; backbone features without the image appearance: 0.84). An untrained re-ID model
# scores about 0.5. (60 frames leave ~12 test frames: 1.0 there says little.)
MIN_ACCURACY = 0.85  # with DeepLabCut's heads (this models) the pose model's features gave 0.896


@pytest.fixture(scope="module")
def reid(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared cores: more threads only contend (measured 17x slower)
    try:
        config, video = bench.analyzed_demo(tmp_path_factory.mktemp("reid"), N_FRAMES, SIZE, POSE_EPOCHS)
        result, = api.transformer_reID(config, [video], snapshot="last", train_epochs=REID_EPOCHS, n_triplets=1000)
    finally:
        torch.set_num_threads(threads)
    return config, video, result


def test_transformer_reid_learns_the_fish_and_writes_the_el_tr_tracks(reid):
    config, video, result = reid
    print(result.triplet_accuracy, result.n_train, result.n_test)
    assert result.n_test >= 20 and result.triplet_accuracy >= MIN_ACCURACY
    assert result.tracks.name.endswith("_el_tr.h5") and result.tracks.name.startswith("fishtankDLC_")
    df = pd.read_hdf(result.tracks, key="df_with_missing")
    assert list(df.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert len(df) == N_FRAMES and np.isfinite(df.to_numpy()).any()
    assert list(Path(result.tracks).parent.glob("reid/version_*/events.out.tfevents*"))
    kept, = api.transformer_reID(config, [video], snapshot="last")       # existing tracks are kept
    assert kept.tracks == result.tracks and kept.cost is None


@pytest.mark.xfail(strict=False, reason=(
    "since tracklets pass the close-encounter step (issue 23) re-ID no longer lowers switches on this demo: "
    "CI measured 7.33 switches with re-ID vs 6.67 without, IDF1 0.596 both; its gain here is within noise"))
def test_fragmented_tracklets_switch_identities_less_with_reid(reid):
    config, video, result = reid
    prefix = Path(str(result.tracks).removesuffix("_el_tr.h5"))
    scores = bench.switches_with_and_without_reid(prefix, video.parent / "fishtank_groundtruth.h5", result.cost,
                                                  N_FRAMES)
    print(scores)
    # measured (3 seeds, 20 re-ID epochs): 8.0 switches with re-ID, 8.3 without; IDF1 0.55 with, 0.50 without
    assert scores["reid"]["switches"] <= scores["motion"]["switches"]
    assert scores["reid"]["idf1"] > scores["motion"]["idf1"]


def test_without_features_the_error_says_what_to_run(reid, tmp_path):
    config, video, _ = reid
    features = next(video.parent.glob("fishtank*_features.h5"))
    features.rename(tmp_path / features.name)
    try:
        with pytest.raises(ProjectError, match=r"features=True"):
            api.transformer_reID(config, [video], snapshot="last", overwrite=True)
    finally:
        (tmp_path / features.name).rename(features)
