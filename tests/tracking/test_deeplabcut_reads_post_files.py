"""DeepLabCut 3 itself filters, plots and measures the skeleton of the same analysis as we do: same numbers for
the median and spline filters and the skeleton, same file names, and its readers find our files.

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI); .ci/run runs it in
DeepLabCut's own environment:

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/tracking/test_deeplabcut_reads_post_files.py
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
deeplabcut = import_deeplabcut()

from deeplabcut.utils import auxiliaryfunctions  # noqa: E402

from lightning_dlc.data.demo import make_demo_project  # noqa: E402
from lightning_dlc.review.skeleton_analysis import skeleton_file  # noqa: E402
from lightning_dlc.review.trajectories import plot_trajectories  # noqa: E402
from lightning_dlc.tracking.filtering import filter_file  # noqa: E402
from noisy_analysis import SCORER, noisy_analysis  # noqa: E402

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

SKELETON = [("snout", "head"), ("head", "dorsal"), ("dorsal", "tailbase"), ("tailbase", "tailtip")]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_demo_project(tmp_path_factory.mktemp("peer-post") / "fishtank", multianimal=False, n_fish=1,
                             n_frames=120, n_labeled=5, size=96)


def _pair(project, tmp_path, gaps):
    """The same noisy analysis in ``ours/`` and ``dlc/``: (config, video, our prefix, DeepLabCut's folder)."""
    ours, dlc = tmp_path / "ours", tmp_path / "dlc"
    ours.mkdir(), dlc.mkdir()
    prefix, _ = noisy_analysis(project, ours, gaps=gaps)
    shutil.copy(f"{prefix}.h5", dlc)
    return project, project.parent / "videos" / "fishtank.mp4", prefix, dlc


@pytest.fixture(autouse=True)
def scorer(monkeypatch):
    """DeepLabCut's scorer lookup answers our file's scorer (no trained model needed)."""
    monkeypatch.setattr(auxiliaryfunctions, "get_scorer_name", lambda *a, **k: (SCORER, SCORER))


@pytest.fixture
def both(project, tmp_path):
    """An analysis with a 4-frame and a 20-frame gap, for each side."""
    return _pair(project, tmp_path, {1: slice(40, 44), 3: slice(70, 90)})


def _dlc_filter(config, video, dlc, filtertype):
    deeplabcut.filterpredictions(str(config), str(video), filtertype=filtertype, windowlength=5,
                                 save_as_csv=False, destfolder=str(dlc))
    return pd.read_hdf(dlc / f"fishtank{SCORER}_filtered.h5", "df_with_missing")


def test_spline_filter_matches_deeplabcuts(both):
    config, video, prefix, dlc = both
    ours = pd.read_hdf(filter_file(f"{prefix}.h5", "spline", windowlength=5, save_as_csv=False), "df_with_missing")
    theirs = _dlc_filter(config, video, dlc, "spline")
    assert ours.columns.equals(theirs.columns) and ours.index.equals(theirs.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=1e-9)
    assert np.isnan(ours.to_numpy()).any()  # the long gap stays missing in both


def test_median_filter_matches_deeplabcuts_where_there_is_no_gap(both):
    config, video, prefix, dlc = both
    ours = pd.read_hdf(filter_file(f"{prefix}.h5", "median", save_as_csv=False), "df_with_missing")
    theirs = _dlc_filter(config, video, dlc, "median")
    complete = np.isfinite(pd.read_hdf(f"{prefix}.h5").to_numpy()).all(0)  # columns without NaN (module doc)
    assert complete.sum() >= 11
    np.testing.assert_array_equal(ours.to_numpy()[:, complete], theirs.to_numpy()[:, complete])
    # DeepLabCut's reader finds our filtered file by its name
    df, path, scorer, suffix = auxiliaryfunctions.load_analyzed_data(str(prefix.parent), "fishtank", SCORER, True)
    assert path == str(prefix.parent / f"fishtank{SCORER}_filtered.h5") and suffix == "_filtered"
    pd.testing.assert_frame_equal(df, ours)


def test_skeleton_and_plots_match_deeplabcuts(project, tmp_path):
    # no gaps: DeepLabCut's analyzeskeleton stops at a missing point (scipy's euclidean refuses NaN); ours gives NaN
    config, video, prefix, dlc = _pair(project, tmp_path, None)
    ours = pd.read_hdf(skeleton_file(f"{prefix}.h5", SKELETON), "df_with_missing")
    deeplabcut.analyzeskeleton(str(config), [str(video)], destfolder=str(dlc))
    theirs = pd.read_hdf(dlc / f"fishtank{SCORER}_skeleton.h5", "df_with_missing")
    assert list(ours.columns) == list(theirs.columns) and ours.index.equals(theirs.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=1e-9)
    deeplabcut.plot_trajectories(str(config), [str(video)], destfolder=str(dlc), resolution=30)
    names = {p.name for p in plot_trajectories(f"{prefix}.h5", prefix.parent / "plot-poses" / "fishtank",
                                               resolution=30)}
    assert names == {p.name for p in (dlc / "plot-poses" / "fishtank").iterdir()}
