"""DeepLabCut 3 itself reads our tracklet pickle and stitched _el.h5 (and stitches our tracklets).

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI);
.ci/run runs it in DeepLabCut's own environment (it imports only our numpy/pandas parts):

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/tracking/test_deeplabcut_reads_tracking_files.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
import_deeplabcut()

from deeplabcut.refine_training_dataset.stitch import TrackletStitcher  # noqa: E402
from deeplabcut.utils.auxiliaryfunctions import load_analyzed_data, load_detection_data  # noqa: E402

from lightning_dlc.tracking.metrics import tracking_metrics  # noqa: E402
from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file  # noqa: E402

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

N_FRAMES = 150


@pytest.fixture
def analysis(tmp_path, scene, write_analysis):
    """Our tracklets and tracks of noisy ground truth (with a unique bodypart), named for fishtank.mp4."""
    prefix = write_analysis(tmp_path, scene.truth[:N_FRAMES], unique=True)
    return prefix, convert_to_tracklets(prefix, "ellipse"), stitch_tracklet_file(prefix, "ellipse")


def test_deeplabcut_loads_and_stitches_our_tracklets(analysis, scene):
    prefix, pickle_path, _ = analysis
    scorer = prefix.name.removeprefix("fishtank")
    data = load_detection_data(prefix.parent / "fishtank.mp4", scorer, "ellipse")
    assert list(data["header"].get_level_values("bodyparts").unique()) == ["snout", "head", "dorsal", "tailbase",
                                                                           "tailtip", "feeder"]
    stitcher = TrackletStitcher.from_pickle(pickle_path, n_tracks=3, min_length=5)
    assert len(stitcher) > 3 and stitcher.single is not None and len(stitcher.single) == N_FRAMES
    assert all(t.data.shape[1:] == (5, 4) for t in stitcher)
    stitcher.build_graph()
    stitcher.stitch()
    df = stitcher.format_df(["fish1", "fish2", "fish3"]).reindex(range(N_FRAMES))
    tracks = df.drop(columns="single", level="individuals").to_numpy().reshape(N_FRAMES, 3, 5, 3)
    scores = tracking_metrics(scene.truth[:N_FRAMES], tracks, threshold=0.5 * scene.length)
    assert scores["idf1"] > 0.8, scores  # DeepLabCut's own stitching makes real tracks of our tracklets


def test_deeplabcut_finds_and_reads_our_tracks(analysis):
    prefix, _, h5 = analysis
    scorer = prefix.name.removeprefix("fishtank")
    df, path, found_scorer, _ = load_analyzed_data(str(prefix.parent), "fishtank", scorer, track_method="ellipse")
    assert path == str(h5) and found_scorer == scorer
    assert list(df.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(df.columns.get_level_values("individuals").unique()) == ["fish1", "fish2", "fish3", "single"]
    assert len(df) == N_FRAMES
    np.testing.assert_array_equal(df.to_numpy(), pd.read_hdf(h5, "df_with_missing").to_numpy())
