import numpy as np
import pandas as pd
import pytest

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.labels import from_arrays, read_collected_data, to_arrays, write_collected_data
from lightning_dlc.project.records import ProjectMeta

META = ProjectMeta(bodyparts=("snout", "tail"), individuals=("fish1", "fish2"), unique_bodyparts=("landmark",))
KEYS = ["labeled-data/tank1/img001.png", "labeled-data/tank1/img007.png"]


def arrays():
    xy = np.arange(2 * 2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2, 2) + 0.123456789
    xy[1, 1] = np.nan  # fish2 unlabeled in the second image
    unique = np.array([[[5.5, 6.5]], [[np.nan, np.nan]]])
    return xy, unique


def test_multi_animal_layout_round_trips_through_h5_and_csv(tmp_path):
    xy, unique = arrays()
    df = from_arrays(KEYS, xy, unique, META, "Ana")
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert ("Ana", "single", "landmark", "x") in df.columns
    assert isinstance(df.index, pd.MultiIndex) and df.index[0] == ("labeled-data", "tank1", "img001.png")
    path = write_collected_data(df, tmp_path / "CollectedData_Ana.h5")
    for source in (path, path.with_suffix(".csv")):
        table = read_collected_data(source)
        assert list(table.index) == KEYS
        got_xy, got_unique = to_arrays(table, META)
        np.testing.assert_array_equal(got_xy, xy.astype(np.float32))
        np.testing.assert_array_equal(got_unique, unique.astype(np.float32))
    # Full float64 precision survives: labels are never degraded by a round trip.
    h5 = read_collected_data(path)
    assert h5.iloc[0, 0] == xy[0, 0, 0, 0]


def test_single_animal_layout_and_path_string_index(tmp_path):
    meta = ProjectMeta(bodyparts=("snout", "tail"), individuals=("animal",))
    xy = np.array([[[[1.0, 2.0], [np.nan, np.nan]]]])
    df = from_arrays(KEYS[:1], xy, None, meta, "Pranav")
    assert df.columns.nlevels == 3
    df.index = pd.Index(["labeled-data\\tank1\\img001.png"])  # labeled on Windows, path strings
    df.to_hdf(tmp_path / "CollectedData_Pranav.h5", key="df_with_missing", format="table")
    table = read_collected_data(tmp_path / "CollectedData_Pranav.h5")
    assert list(table.index) == KEYS[:1]
    got, _ = to_arrays(table, meta)
    np.testing.assert_array_equal(got, xy.astype(np.float32))


def test_csv_is_the_fallback_when_h5_is_absent(tmp_path):
    xy, unique = arrays()
    path = write_collected_data(from_arrays(KEYS, xy, unique, META, "Ana"), tmp_path / "CollectedData_Ana.h5")
    path.unlink()
    table = read_collected_data(path)
    np.testing.assert_array_equal(to_arrays(table, META)[0], xy.astype(np.float32))


def test_writer_never_overwrites_silently(tmp_path):
    df = from_arrays(KEYS, *arrays(), META, "Ana")
    path = write_collected_data(df, tmp_path / "CollectedData_Ana.h5")
    with pytest.raises(ProjectError, match="already exists"):
        write_collected_data(df, path)
    assert not list(tmp_path.glob(".*tmp")), "no temporary files are left behind"


def test_corrupt_h5_names_the_file(tmp_path):
    path = tmp_path / "CollectedData_Ana.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 50)
    with pytest.raises(ProjectError, match="cannot read HDF5 labels") as err:
        read_collected_data(path)
    assert str(path) in str(err.value)


def test_truncated_h5_names_the_file(tmp_path):
    df = from_arrays(KEYS, *arrays(), META, "Ana")
    path = write_collected_data(df, tmp_path / "CollectedData_Ana.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ProjectError, match=f"{path}: cannot read HDF5 labels"):
        read_collected_data(path)


def test_bad_csv_names_the_file(tmp_path):
    path = tmp_path / "CollectedData_Ana.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ProjectError, match="not a DeepLabCut label CSV"):
        read_collected_data(path)
    path.write_text("scorer,Ana\nbodyparts,snout\ncoords,x\nimg.png,abc\n")
    with pytest.raises(ProjectError, match="cannot parse DeepLabCut label CSV"):
        read_collected_data(path)


def test_empty_table_is_an_error(tmp_path):
    df = from_arrays(KEYS, *arrays(), META, "Ana").iloc[:0]
    df.to_hdf(tmp_path / "CollectedData_Ana.h5", key="df_with_missing")
    with pytest.raises(ProjectError, match="holds no labeled images"):
        read_collected_data(tmp_path / "CollectedData_Ana.h5")
