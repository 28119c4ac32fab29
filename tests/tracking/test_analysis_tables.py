"""Names and crop of a video's analysis files (tracking/analysis_tables)."""
from __future__ import annotations

import enum
import pickle
import sys
import types

import pytest

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.tracking.analysis_tables import analysis_prefix, crop_offset

PREFIX = "fishtankDLC_Resnet50_fishtankJan1shuffle1_snapshot_010"


def _meta(tmp_path, data) -> str:
    prefix = tmp_path / PREFIX
    with open(f"{prefix}_meta.pickle", "wb") as f:
        pickle.dump({"data": data}, f)
    return str(prefix)


def test_crop_offset_reads_the_crop_and_is_zero_without_a_meta_pickle(tmp_path):
    assert crop_offset(tmp_path / PREFIX) == (0.0, 0.0)
    assert crop_offset(_meta(tmp_path, {"cropping": True, "cropping_parameters": [10, 90, 20, 80]})) == (10.0, 20.0)
    assert crop_offset(_meta(tmp_path, {"cropping": False, "cropping_parameters": [0, 96, 0, 96]})) == (0.0, 0.0)


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({"data": {"cropping": True}}),
                                     pickle.dumps({"data": {"cropping": True, "cropping_parameters": [1, 2]}})])
def test_crop_offset_of_an_unreadable_meta_pickle_names_the_file(tmp_path, content):
    (tmp_path / f"{PREFIX}_meta.pickle").write_bytes(content)
    with pytest.raises(ProjectError, match=f"{PREFIX}_meta.pickle"):
        crop_offset(tmp_path / PREFIX)


def test_crop_offset_reads_deeplabcuts_meta_pickle_without_importing_its_classes(tmp_path, monkeypatch):
    names = ["deeplabcut", "deeplabcut.pose_estimation_pytorch", "deeplabcut.pose_estimation_pytorch.task"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    Task = enum.Enum("Task", {"BOTTOM_UP": "BU"}, module=names[-1])  # noqa: N806 (DeepLabCut's enum)
    sys.modules[names[-1]].Task = Task
    prefix = _meta(tmp_path, {"pytorch-config": {"method": Task.BOTTOM_UP}, "cropping": True,
                              "cropping_parameters": [5, 50, 7, 70]})
    for name in names:  # reading must not need DeepLabCut
        monkeypatch.delitem(sys.modules, name)
    assert crop_offset(prefix) == (5.0, 7.0)


@pytest.mark.parametrize("table", ["", "_el", "_bx_filtered", "_filtered", "_sk"])
def test_analysis_prefix_strips_the_track_and_filter_suffixes(tmp_path, table):
    assert analysis_prefix(tmp_path / f"{PREFIX}{table}.h5") == tmp_path / PREFIX
