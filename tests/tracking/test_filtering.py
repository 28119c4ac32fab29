"""filterpredictions on the demo video's noisy ground truth: each filter brings the track closer to the truth,
gaps are handled as documented, the _filtered.h5 is named, written and kept as DeepLabCut does."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.tracking.analysis_tables import analysis_table, read_table
from lightning_dlc.tracking.filtering import filter_file, filter_table, median_filter, spline_fill
from noisy_analysis import noisy_analysis

N_FRAMES = 150


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A one-fish demo project (150 frames, 96 px)."""
    return make_demo_project(tmp_path_factory.mktemp("filtering") / "fishtank", multianimal=False, n_fish=1,
                             n_frames=N_FRAMES, n_labeled=5, size=96)


def _xy_error(df: pd.DataFrame, truth: pd.DataFrame) -> float:
    """RMSE (px) over the x, y columns, NaN points left out."""
    xy = df.columns.get_level_values("coords").isin(("x", "y"))
    d = df.loc[:, xy].to_numpy(np.float64) - truth.loc[:, xy].to_numpy(np.float64)
    return float(np.sqrt(np.nanmean(d ** 2)))


def test_median_filter_lowers_the_error_and_writes_dlc_file(project, tmp_path):
    prefix, truth = noisy_analysis(project, tmp_path, sigma=2.0)
    noisy = read_table(f"{prefix}.h5")
    out = filter_file(f"{prefix}.h5", "median", windowlength=5, save_as_csv=True)
    assert out == tmp_path / f"{prefix.name}_filtered.h5" and out.with_suffix(".csv").is_file()
    filtered = pd.read_hdf(out, "df_with_missing")
    assert filtered.columns.equals(noisy.columns) and filtered.index.equals(noisy.index)
    pd.testing.assert_frame_equal(filtered.xs("likelihood", level="coords", axis=1),
                                  noisy.xs("likelihood", level="coords", axis=1))
    inner = slice(2, N_FRAMES - 2)  # medfilt's zero-padded ends pull the first and last 2 frames
    before, after = _xy_error(noisy.iloc[inner], truth.iloc[inner]), _xy_error(filtered.iloc[inner], truth.iloc[inner])
    assert after < 0.8 * before, (before, after)
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_existing_filtered_file_is_kept(project, tmp_path):
    prefix, _ = noisy_analysis(project, tmp_path)
    out = filter_file(f"{prefix}.h5", "median", save_as_csv=False)
    first = pd.read_hdf(out)
    again = filter_file(f"{prefix}.h5", "spline", save_as_csv=False)  # another filter: still skipped
    assert again == out
    pd.testing.assert_frame_equal(pd.read_hdf(out), first)


def test_spline_fills_short_gaps_only(project, tmp_path):
    prefix, truth = noisy_analysis(project, tmp_path, sigma=0.5, gaps={1: slice(40, 44), 3: slice(80, 100)})
    filtered = read_table(filter_file(f"{prefix}.h5", "spline", windowlength=5, save_as_csv=False))
    head, tailbase = filtered.iloc[:, 3:6].to_numpy(), filtered.iloc[:, 9:12].to_numpy()
    assert np.isfinite(head[40:44, :2]).all() and np.allclose(head[40:44, 2], 0.01)
    truth_head = truth.iloc[40:44, 3:5].to_numpy()
    assert np.abs(head[40:44, :2] - truth_head).max() < 3.0  # the spline follows the fish through the gap
    assert np.isnan(tailbase[80:100, :2]).all() and (tailbase[80:100, 2] >= 0.7).all()  # 20 frames: kept missing


def test_median_leaves_gaps_missing_and_filters_around_them():
    column = np.arange(30, dtype=np.float64)[:, None] ** 1.5
    column[10:13] = np.nan
    out = median_filter(column, 5)
    assert np.isnan(out[10:13]).all() and np.isfinite(out[:10]).all() and np.isfinite(out[13:]).all()
    np.testing.assert_array_equal(out[13:28], column[13:28])  # a monotonic stretch: its median is itself
    with pytest.raises(ValueError, match="filtertype"):
        filter_table(pd.DataFrame(), "kalman")


def test_spline_fill_is_the_cubic_spline_through_the_points():
    t = np.arange(40, dtype=np.float64)
    column = (0.01 * t ** 3 - 0.2 * t ** 2 + t + 5)[:, None]  # a cubic: the spline reproduces it
    holed = column.copy()
    holed[[5, 6, 20]] = np.nan
    np.testing.assert_allclose(spline_fill(holed, 3), column, rtol=1e-6)
    assert np.isnan(spline_fill(holed, 1)[[5, 6]]).all()


@pytest.mark.slow  # statsmodels fits SARIMAX to 2 columns (~10 s on a busy CPU)
def test_arima_lowers_the_error(project, tmp_path):
    prefix, truth = noisy_analysis(project, tmp_path, sigma=2.0)
    snout = read_table(f"{prefix}.h5").iloc[:100, :3]  # one bodypart: DeepLabCut fits each column on its own
    filtered = filter_table(snout, "arima", ARdegree=3, MAdegree=1)
    assert np.isfinite(filtered.to_numpy()).all() and filtered.columns.equals(snout.columns)
    assert filtered.iloc[0].equals(snout.iloc[0])  # the first frame keeps its value
    rows = slice(10, None)  # after the model's start-up
    assert _xy_error(filtered.iloc[rows], truth.iloc[:100, :3].iloc[rows]) < _xy_error(
        snout.iloc[rows], truth.iloc[:100, :3].iloc[rows])


def test_unanalyzed_video_names_the_file(tmp_path):
    with pytest.raises(ProjectError, match="fishtankDLC_x.h5.*analyze it first"):
        analysis_table(tmp_path / "fishtankDLC_x")
    with pytest.raises(ProjectError, match="fishtankDLC_x_el.h5.*stitch_tracklets"):
        analysis_table(tmp_path / "fishtankDLC_x", "ellipse")
    with pytest.raises(ProjectError, match="fishtankDLC_x_filtered.h5.*filterpredictions"):
        analysis_table(tmp_path / "fishtankDLC_x", filtered=True)


def test_api_filters_a_multi_animal_projects_tracks(tmp_path, monkeypatch):
    config = make_demo_project(tmp_path / "fishtank", n_frames=40, n_labeled=5, size=96)
    video = config.parent / "videos" / "fishtank.mp4"
    prefix, _ = noisy_analysis(config, tracked=True)
    # the scorer comes from the shuffle's snapshot (tested with a trained model elsewhere); here: the file's
    monkeypatch.setattr(api, "_analysis_prefixes", lambda cfg, videos, *a: [(video, prefix)])
    out, = api.filterpredictions(config, video, filtertype="spline", save_as_csv=False)
    assert out.name == f"{prefix.name}_el_filtered.h5"
    data = api.filterpredictions(config, video, return_data=True)  # already filtered: read back, not redone
    pd.testing.assert_frame_equal(data[video], read_table(out))
    with pytest.raises(ProjectError, match="_bx.h5"):
        api.filterpredictions(config, video, track_method="box")
