import logging

import pytest

from lightning_dlc.project.config import ProjectConfig, parse_crop, path_name
from lightning_dlc.project.errors import ProjectError

MULTI_ANIMAL = """\
# Project definitions (do not edit)
Task: cichlids
scorer: Ana
date: Mar3
multianimalproject: true
identity: true

project_path: C:\\Users\\ana\\cichlids-Ana-2024-03-03

video_sets:
  C:\\Users\\ana\\videos\\tank1.mp4:
    crop: 0, 1280, 0, 720
  # C:\\Users\\ana\\videos\\tank2_corrupted.mp4:
  #   crop: 0, 1280, 0, 720
  /data/tank3.avi:
    crop: 10, 1000, 20, 700
bodyparts: MULTI!
individuals:
- fish1
- fish2
uniquebodyparts:
- landmark
multianimalbodyparts:
- snout
- tail
skeleton:
- - snout
  - tail
TrainingFraction:
- 0.8
- 0.95
iteration: 2
pcutoff: 0.5
"""


def write(tmp_path, text=MULTI_ANIMAL):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_multi_animal_fields(tmp_path):
    cfg = ProjectConfig.read(write(tmp_path))
    meta = cfg.meta()
    assert meta.bodyparts == ("snout", "tail")
    assert meta.individuals == ("fish1", "fish2")
    assert meta.unique_bodyparts == ("landmark",)
    assert meta.skeleton == (("snout", "tail"),)
    assert meta.identity and meta.multianimal
    assert cfg.training_fractions == [0.8, 0.95]
    assert cfg.iteration == 2 and cfg.pcutoff == 0.5
    assert cfg.root == tmp_path.resolve()
    assert cfg.training_datasets_dir == tmp_path.resolve() / "training-datasets/iteration-2/UnaugmentedDataSet_cichlidsMar3"


def test_commented_out_video_is_not_listed_and_moved_paths_resolve_locally(tmp_path, caplog):
    cfg = ProjectConfig.read(write(tmp_path))
    with caplog.at_level(logging.WARNING):
        sets = cfg.video_sets()
        cfg.video_sets()
    assert [s.stem for s in sets] == ["tank1", "tank3"]
    assert sets[0].path == tmp_path.resolve() / "videos" / "tank1.mp4"
    assert sets[0].crop == (0, 1280, 0, 720) and sets[1].crop == (10, 1000, 20, 700)
    moved = [r for r in caplog.records if "do not exist on this machine" in r.getMessage()]
    assert len(moved) == 1, "a moved project is reported once, not per call"


def test_only_listed_folders_are_used(tmp_path):
    cfg = ProjectConfig.read(write(tmp_path))
    for name in ("tank1", "tank2_corrupted", "tank3", "tank1_labeled"):
        (tmp_path / "labeled-data" / name).mkdir(parents=True)
    assert [p.name for p in cfg.labeled_data_folders()] == ["tank1", "tank3"]


def test_round_trip_keeps_comments_and_order(tmp_path):
    cfg = ProjectConfig.read(write(tmp_path))
    cfg.data["pcutoff"] = 0.7
    out = cfg.save(tmp_path / "copy.yaml")
    text = out.read_text()
    assert text == MULTI_ANIMAL.replace("pcutoff: 0.5", "pcutoff: 0.7")


def test_openfield_round_trip_is_byte_identical(openfield):
    original = openfield.read_text()
    cfg = ProjectConfig.read(openfield)
    assert cfg.to_text() == original


def test_save_refuses_to_overwrite(tmp_path):
    path = write(tmp_path)
    cfg = ProjectConfig.read(path)
    with pytest.raises(ProjectError, match="already exists; pass overwrite=True"):
        cfg.save()
    cfg.save(overwrite=True)
    assert path.read_text() == MULTI_ANIMAL


@pytest.mark.parametrize("text, message", [
    ("Task: x\n", "missing required key 'scorer'"),
    ("Task: [x\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("Task: x\nscorer: y\nbodyparts: []\n", "bodyparts is empty"),
    ("Task: x\nscorer: y\nbodyparts: [a]\nskeleton: [[a, b]]\n", "skeleton names 'b'"),
    ("Task: x\nscorer: y\nbodyparts: [a]\nTrainingFraction: [1.5]\n", "TrainingFraction 1.5"),
])
def test_bad_config_names_file_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ProjectError, match=message) as err:
        cfg = ProjectConfig.read(path)
        cfg.meta()
        cfg.training_fractions
    assert str(path.resolve()) in str(err.value) or str(path) in str(err.value)


def test_missing_config(tmp_path):
    with pytest.raises(ProjectError, match="no such DeepLabCut config file"):
        ProjectConfig.read(tmp_path / "nope.yaml")


def test_crop_and_windows_names(tmp_path):
    assert parse_crop("0, 640, 0, 480", tmp_path, "v") == (0, 640, 0, 480)
    assert parse_crop(None, tmp_path, "v") is None
    with pytest.raises(ProjectError, match="crop must be 'x1, x2, y1, y2'"):
        parse_crop("0, 640", tmp_path, "v")
    with pytest.raises(ProjectError, match="is empty"):
        parse_crop("10, 5, 0, 480", tmp_path, "v")
    assert path_name("C:\\data\\run 1\\mouse.avi") == "mouse.avi"
    assert path_name("/data/mouse.avi") == "mouse.avi"
