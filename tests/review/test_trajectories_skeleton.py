"""plot_trajectories' images (DeepLabCut's names) and analyzeskeleton's bones (hand-computed) on the demo video."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.review.skeleton_analysis import skeleton_file, skeleton_table
from lightning_dlc.review.trajectories import PLOTS, plot_trajectories
from lightning_dlc.tracking.filtering import filter_file
from noisy_analysis import noisy_analysis

SKELETON = [("snout", "head"), ("head", "dorsal"), ("dorsal", "tailbase"), ("tailbase", "tailtip")]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return make_demo_project(tmp_path_factory.mktemp("plots") / "one", multianimal=False, n_fish=1, n_frames=40,
                             n_labeled=5, size=96)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return make_demo_project(tmp_path_factory.mktemp("plots") / "three", n_frames=40, n_labeled=5, size=96)


@pytest.mark.slow  # matplotlib (~4 s)
def test_single_animal_plots_have_dlc_names(single, tmp_path):
    prefix, _ = noisy_analysis(single, tmp_path)
    written = plot_trajectories(f"{prefix}.h5", tmp_path / "plot-poses" / "fishtank", pcutoff=0.6, resolution=40)
    assert sorted(p.name for p in written) == sorted(f"{name}.png" for name in PLOTS)
    for path in written:
        with Image.open(path) as image:
            assert image.size[0] > 100 and np.asarray(image).std() > 0  # a drawn figure, not a blank
    assert not list((tmp_path / "plot-poses" / "fishtank").glob(".*"))


@pytest.mark.slow  # matplotlib draws 8 figures (~7 s on a busy CPU)
def test_api_plots_filtered_tracks_per_individual(multi, tmp_path, monkeypatch):
    video = multi.parent / "videos" / "fishtank.mp4"
    prefix, _ = noisy_analysis(multi, tmp_path, tracked=True)  # analyzed into destfolder tmp_path
    filter_file(f"{prefix}_el.h5", save_as_csv=False)
    monkeypatch.setattr(api, "_analysis_prefixes", lambda cfg, videos, *a: [(video, prefix)])
    written = api.plot_trajectories(multi, [video], filtered=True, displayedindividuals=["fish1", "fish3"],
                                    displayedbodyparts=["snout", "tailtip"], resolution=40)
    folder = tmp_path / "plot-poses" / "fishtank"
    assert {p.parent for p in written} == {folder}
    assert sorted(p.name for p in written) == sorted(f"{name}_filtered{fish}.png" for name in PLOTS
                                                     for fish in ("fish1", "fish3"))
    with pytest.raises(ProjectError, match="_bx_filtered.h5"):
        api.plot_trajectories(multi, [video], filtered=True, track_method="box")


def test_skeleton_lengths_and_orientations_are_the_hand_computed_ones(single, tmp_path):
    prefix, _ = noisy_analysis(single, tmp_path, gaps={0: slice(5, 7)})
    df = pd.read_hdf(f"{prefix}.h5")
    out = skeleton_file(f"{prefix}.h5", SKELETON, save_as_csv=True)
    assert out.name == f"{prefix.name}_skeleton.h5" and out.with_suffix(".csv").is_file()
    bones = pd.read_hdf(out, "df_with_missing")
    assert list(bones.columns) == [(f"{a}_{b}", c) for a, b in SKELETON for c in ("length", "orientation",
                                                                                   "likelihood")]
    scorer = df.columns.get_level_values("scorer")[0]
    for a, b in SKELETON:
        pa, pb = df[scorer][a].to_numpy(), df[scorer][b].to_numpy()
        for t in (0, 11, 39):
            dx, dy = pb[t, 0] - pa[t, 0], pb[t, 1] - pa[t, 1]
            assert bones[f"{a}_{b}", "length"][t] == pytest.approx((dx * dx + dy * dy) ** 0.5)
            assert bones[f"{a}_{b}", "orientation"][t] == pytest.approx(np.degrees(np.arctan2(dy, dx)) % 360)
            assert bones[f"{a}_{b}", "likelihood"][t] == min(pa[t, 2], pb[t, 2])
    gap = bones["snout_head"].iloc[5:7]  # the snout missing: no geometry, the likelihoods stay
    assert gap[["length", "orientation"]].isna().all().all() and gap["likelihood"].notna().all()
    assert (bones["head_dorsal", "orientation"].between(0, 360)).all()


def test_skeleton_of_tracks_names_bones_per_individual_and_skips_existing(multi, tmp_path, monkeypatch):
    video = multi.parent / "videos" / "fishtank.mp4"
    prefix, _ = noisy_analysis(multi, tmp_path, tracked=True)
    monkeypatch.setattr(api, "_analysis_prefixes", lambda cfg, videos, *a: [(video, prefix)])
    out, = api.analyzeskeleton(multi, [video])
    assert out.name == f"{prefix.name}_el_skeleton.h5"
    bones = pd.read_hdf(out)
    names = list(dict.fromkeys(bones.columns.get_level_values(0)))
    assert names == [f"{fish}_{a}_{b}" for fish in ("fish1", "fish2", "fish3") for a, b in SKELETON]
    assert len(bones) == 40
    before = out.stat().st_mtime_ns
    assert api.analyzeskeleton(multi, [video]) == [out] and out.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="skeleton"):
        skeleton_table(bones, [])


@pytest.mark.slow  # imports FiftyOne (~15 s)
def test_review_finds_the_raw_or_filtered_analysis_not_the_skeleton(single, tmp_path):
    from lightning_dlc.review.video_diagnostics import find_analysis

    video = single.parent / "videos" / "fishtank.mp4"
    prefix, _ = noisy_analysis(single, tmp_path)
    skeleton_file(f"{prefix}.h5", SKELETON)
    with pytest.raises(ProjectError, match="filterpredictions"):
        find_analysis(video, tmp_path, filtered=True)
    filtered = filter_file(f"{prefix}.h5", save_as_csv=False)
    assert find_analysis(video, tmp_path) == tmp_path / f"{prefix.name}.h5"  # not "analyzed by several models"
    assert find_analysis(video, tmp_path, filtered=True) == filtered
