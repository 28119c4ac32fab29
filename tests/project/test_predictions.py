"""DeepLabCut prediction tables: column layouts, row labels, atomic .h5/.csv, no silent overwrite."""
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.project import ProjectError, ProjectMeta
from lightning_dlc.project.predictions import image_index, predictions_table, read_predictions, write_predictions

MULTI = ProjectMeta(bodyparts=("nose", "tail"), individuals=("m1", "m2"), unique_bodyparts=("led",))
SINGLE = ProjectMeta(bodyparts=("nose", "tail"), individuals=("animal",))
KEYS = ["labeled-data/v1/img001.png", "labeled-data/v1/img002.png"]


def test_multi_animal_layout_with_unique_bodyparts_under_single():
    values = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    unique = np.full((2, 1, 3), 7.0)
    df = predictions_table(values, unique, MULTI, "DLC_x", index=image_index(KEYS))
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert df.columns[:3].tolist() == [("DLC_x", "m1", "nose", c) for c in ("x", "y", "likelihood")]
    assert df.columns[-1] == ("DLC_x", "single", "led", "likelihood")
    assert df.index[0] == ("labeled-data", "v1", "img001.png")
    assert df.loc[("labeled-data", "v1", "img002.png"), ("DLC_x", "m2", "tail", "y")] == values[1, 1, 1, 1]


def test_single_animal_layout_has_three_levels_and_frame_rows():
    df = predictions_table(np.zeros((3, 2, 3)), None, SINGLE, "DLC_x")
    assert df.columns.names == ["scorer", "bodyparts", "coords"] and df.shape == (3, 6)
    assert list(df.index) == [0, 1, 2]
    assert predictions_table(np.zeros((3, 1, 2, 3)), None, SINGLE, "s", individuals_level=True).columns.nlevels == 4
    assert list(image_index(["images/a.png"])) == ["images/a.png"]  # not DeepLabCut's rows: kept as they are


def test_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="individuals"):
        predictions_table(np.zeros((2, 3, 2, 3)), None, MULTI, "s")


def test_write_h5_and_csv_atomically_never_silently_replaced(tmp_path):
    df = predictions_table(np.random.rand(2, 2, 2, 3), np.random.rand(2, 1, 3), MULTI, "DLC_x",
                           index=image_index(KEYS))
    path = write_predictions(df, tmp_path / "DLC_x.h5", csv=True)
    with pd.HDFStore(path, mode="r") as store:
        assert store.keys() == ["/df_with_missing"]
    pd.testing.assert_frame_equal(read_predictions(path), df, check_index_type=False, check_column_type=False)
    assert (tmp_path / "DLC_x.csv").read_text().startswith("scorer,")
    with pytest.raises(ProjectError, match="overwrite=True"):
        write_predictions(df, path, csv=True)
    write_predictions(df * 2, path, csv=True, overwrite=True)
    assert np.allclose(read_predictions(path).to_numpy(), df.to_numpy() * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DLC_x.csv", "DLC_x.h5"], "no temporary files left"
