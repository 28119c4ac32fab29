"""Conditions read from a bottom-up model's prediction files (DeepLabCut's CondFromFile formats), checked against
the project's bodyparts and the video's frame count."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.ctd_conditions import load_conditions
from lightning_dlc.project.errors import ProjectError

BODYPARTS = ["snout", "head", "tail"]


def predictions_h5(path, n_frames=3, bodyparts=BODYPARTS, individuals=("fish1", "fish2"), index=None):
    columns = pd.MultiIndex.from_product([["DLC_scorer"], list(individuals), list(bodyparts), ["x", "y", "likelihood"]],
                                         names=["scorer", "individuals", "bodyparts", "coords"])
    values = np.arange(n_frames * len(columns), dtype=np.float64).reshape(n_frames, -1) % 50 + 1
    values[0, columns.get_loc(("DLC_scorer", "fish2", "snout", "x"))] = np.nan  # a missing keypoint
    values[1, len(columns) // 2:] = np.nan  # fish2 absent from frame 1
    pd.DataFrame(values, columns=columns, index=index).to_hdf(path, key="df_with_missing")
    return path


def test_h5_per_frame_with_missing_keypoints_and_animals(tmp_path):
    frames = load_conditions(predictions_h5(tmp_path / "v.h5"), BODYPARTS, n_frames=3)
    assert len(frames) == 3 and frames[0].shape == (2, 3, 3) and frames[1].shape == (1, 3, 3)
    assert np.isnan(frames[0][1, 0, :2]).all() and frames[0][1, 0, 2] == 0  # missing: NaN, score 0


def test_h5_of_labeled_images_by_path(tmp_path):
    index = pd.MultiIndex.from_tuples([("labeled-data", "v", f"img{i}.png") for i in range(3)])
    conds = load_conditions(predictions_h5(tmp_path / "e.h5", index=index), BODYPARTS,
                            images=["labeled-data/v/img2.png", "labeled-data/v/other.png"])
    assert conds["labeled-data/v/img2.png"].shape == (2, 3, 3) and len(conds["labeled-data/v/other.png"]) == 0


def test_other_bodyparts_or_frame_count_are_errors(tmp_path):
    path = predictions_h5(tmp_path / "v.h5")
    with pytest.raises(ValueError, match="bodyparts.*not the project's"):
        load_conditions(path, ["snout", "head", "fin"])
    with pytest.raises(ValueError, match="has 3 frames, the video 5"):
        load_conditions(path, BODYPARTS, n_frames=5)
    with pytest.raises(FileNotFoundError):
        load_conditions(tmp_path / "none.h5")
    (tmp_path / "c.txt").write_text("")
    with pytest.raises(ValueError, match="expected a DeepLabCut predictions"):
        load_conditions(tmp_path / "c.txt")


def test_json_and_assemblies_pickle(tmp_path):
    pose = [[[10, 10, 0.9], [20, 12, 0.8], [30, 14, 0.7]]]
    (tmp_path / "c.json").write_text(json.dumps([pose, []]))
    frames = load_conditions(tmp_path / "c.json", BODYPARTS, n_frames=2)
    assert frames[0].shape == (1, 3, 3) and frames[1].shape == (0, 3, 3)
    with pytest.raises(ValueError, match="frame 0 has 3 bodyparts, the project 2"):
        load_conditions(tmp_path / "c.json", BODYPARTS[:2])
    assemblies = {0: [np.array([[10, 10, 0.9, -1], [20, 12, 0.8, -1], [30, 14, 0.7, -1]])], 2: [],
                  "single": {}}
    with open(tmp_path / "v_assemblies.pickle", "wb") as f:
        pickle.dump(assemblies, f)
    frames = load_conditions(tmp_path / "v_assemblies.pickle", BODYPARTS, n_frames=4)
    assert [len(f) for f in frames] == [1, 0, 0, 0]


class _Payload:
    def __reduce__(self):
        return (print, ("a pickle ran code",))


def test_an_assemblies_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "v_assemblies.pickle"
    with open(path, "wb") as f:
        pickle.dump({0: [_Payload()]}, f)
    with pytest.raises(ProjectError, match="v_assemblies.pickle"):
        load_conditions(path, BODYPARTS, n_frames=1)
