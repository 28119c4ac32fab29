"""DeepLabCut's forms of a CTD model's inference.conditions: written from create_training_dataset's
ctd_conditions (its _add_ctd_conditions rules) and read back for evaluation and analysis."""
import pytest

from lightning_dlc.project.dlc_defaults import ctd_conditions_entry
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.shuffle_pytorch_config import ctd_conditions_of


def test_written_forms(tmp_path):
    (tmp_path / "bu.h5").write_bytes(b"")
    assert ctd_conditions_entry(1) == {"shuffle": 1}
    assert ctd_conditions_entry((1, -1)) == {"shuffle": 1, "snapshot_index": -1}
    assert ctd_conditions_entry((1, "snapshot-best-010.pt")) == {"shuffle": 1, "snapshot": "snapshot-best-010.pt"}
    assert ctd_conditions_entry(tmp_path / "bu.h5") == str((tmp_path / "bu.h5").absolute())
    with pytest.raises(ValueError, match="A CTD conditions is required"):
        ctd_conditions_entry(None)
    with pytest.raises(FileNotFoundError, match="Invalid path"):
        ctd_conditions_entry(tmp_path / "missing.h5")
    (tmp_path / "bu.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="extension"):
        ctd_conditions_entry(tmp_path / "bu.csv")
    for bad, error in (((1, 2, 3), ValueError), (("1", 2), TypeError), ((1, 2.5), TypeError), (True, TypeError),
                       (1.5, TypeError)):
        with pytest.raises(error):
            ctd_conditions_entry(bad)


def test_read_forms():
    ctd = {"method": "ctd"}
    assert ctd_conditions_of({"method": "td", "inference": {"conditions": {"shuffle": 1}}}, "f") is None
    assert ctd_conditions_of(ctd, "f") is None
    shuffle = ctd_conditions_of({**ctd, "inference": {"conditions": {"shuffle": 2, "snapshot_index": -1}}}, "f")
    assert shuffle == {"source": "shuffle", "shuffle": 2, "trainset_index": 0, "snapshot": None, "snapshot_index": -1,
                       "config": None, "modelprefix": ""}
    validated = {"source": "shuffle", "shuffle": 1, "config": None, "trainset_index": 0, "modelprefix": "",
                 "snapshot": "snapshot-best-010.pt", "snapshot_index": None}  # DeepLabCut's file, validated
    assert ctd_conditions_of({**ctd, "inference": {"conditions": validated}}, "f")["snapshot"] == "snapshot-best-010.pt"
    assert ctd_conditions_of({**ctd, "inference": {"conditions": "/a/b.h5"}}, "f")["source"] == "file"
    assert ctd_conditions_of({**ctd, "inference": {"conditions": {"source": "file", "filepath": "/a/b.json"}}},
                             "f")["filepath"].name == "b.json"
    with pytest.raises(ProjectError, match="not one of DeepLabCut's forms"):
        ctd_conditions_of({**ctd, "inference": {"conditions": {"shuffle": 1, "epoch": 3}}}, "f")
