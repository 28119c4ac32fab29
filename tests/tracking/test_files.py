"""DeepLabCut's tracking files from a video's analysis files: tracklet pickle layout, _el.h5, errors, overwrite."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from lightning_dlc.project import analysis_files
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.tracking.files import read_tracklets
from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file, track_analysis

def test_tracklet_pickle_has_deeplabcuts_layout(scene, tmp_path, write_analysis):
    prefix = write_analysis(tmp_path, scene.truth[:120], unique=True)
    scorer = prefix.name.removeprefix("fishtank")
    path = convert_to_tracklets(prefix, "ellipse")
    assert path.name == f"fishtank{scorer}_el.pickle"
    with open(path, "rb") as f:
        data = pickle.load(f)
    header = data["header"]
    assert list(header.names) == ["scorer", "bodyparts", "coords"]
    assert list(dict.fromkeys(header.get_level_values("bodyparts"))) == ["snout", "head", "dorsal", "tailbase",
                                                                       "tailtip", "feeder"]
    assert set(header.get_level_values("scorer")) == {scorer}
    assert len(data["single"]) == 120 and data["single"][0].shape == (1, 3)
    ids = [k for k in data if k not in ("header", "single")]
    assert ids == list(range(len(ids))) and all(isinstance(k, int) for k in ids)
    frames = data[0]
    key = next(iter(frames))
    assert key.startswith("frame") and len(key) == len("frame") + analysis_files.frame_key_width(120)
    assert frames[key].shape == (5, 4)
    stored = read_tracklets(path)
    assert stored.scorer == scorer and len(stored.tracklets) == len(ids)


def test_stitched_tracks_table_and_overwrite(scene, tmp_path, write_analysis):
    prefix = write_analysis(tmp_path, scene.truth[:150], unique=True)
    scorer = prefix.name.removeprefix("fishtank")
    h5 = track_analysis(prefix, "ellipse")
    assert h5.name == f"fishtank{scorer}_el.h5"
    df = pd.read_hdf(h5, key="df_with_missing")
    assert list(df.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(dict.fromkeys(df.columns.get_level_values("individuals"))) == ["fish1", "fish2", "fish3", "single"]
    assert len(df) == 150 and (df.index == np.arange(150)).all()
    with pd.HDFStore(h5, "r") as store:
        assert store.get_storer("df_with_missing").is_table
    assert np.isfinite(df.xs("fish1", level="individuals", axis=1).to_numpy()).mean() > 0.8
    before = h5.stat().st_mtime_ns
    stitch_tracklet_file(prefix, "ellipse")               # kept without overwrite
    assert h5.stat().st_mtime_ns == before
    stitch_tracklet_file(prefix, "ellipse", n_tracks=4, overwrite=True)
    names = dict.fromkeys(pd.read_hdf(h5).columns.get_level_values("individuals"))
    assert list(names) == ["fish1", "fish2", "fish3", "ind4", "single"]


def test_missing_or_bad_input_names_the_file(tmp_path):
    with pytest.raises(ProjectError, match="fishtankDLC_x_assemblies.pickle: no such assemblies pickle"):
        convert_to_tracklets(tmp_path / "fishtankDLC_x")
    bad = tmp_path / "badDLC_x_assemblies.pickle"
    bad.write_bytes(pickle.dumps({"single": {}, 0: pd.Timestamp("2024-01-01")}))
    with pytest.raises(ProjectError, match="badDLC_x_assemblies.pickle: not a readable assemblies pickle"):
        convert_to_tracklets(tmp_path / "badDLC_x")
