"""The video FiftyOne dataset from analyze_videos' files, the frames it marks, and their export into the project."""
from __future__ import annotations

import shutil
import uuid

import cv2
import fiftyone as fo
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.video import open_video
from lightning_dlc.project import ProjectConfig
from lightning_dlc.project.predictions import read_predictions, write_predictions
from lightning_dlc.review.relabel import extract_marked_frames
from lightning_dlc.review.video_diagnostics import JUMP, LOW_CONFIDENCE, frames_to_relabel, video_dataset

pytestmark = pytest.mark.slow  # trains a model for its fixture

N_LOW, N_JUMPS = 4, 3


@pytest.fixture
def names():
    made = []
    yield lambda: made.append(f"test-video-{uuid.uuid4().hex[:8]}") or made[-1]
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def build(video, name, edges=(), **kw):
    return video_dataset([video], name=name, skeleton_edges=edges, n_low_confidence=N_LOW, n_jumps=N_JUMPS, **kw)


def test_frames_hold_the_analysis_and_the_relabel_marks(review_project, names):
    meta = ProjectConfig.read(review_project.config).meta()
    dataset = build(review_project.video, names(), meta.skeleton)
    table = read_predictions(review_project.h5).droplevel("scorer", axis=1)
    sample = dataset.first()
    assert sample.filepath == str(review_project.video.resolve()) and not sample.tracked
    assert len(sample.frames) == len(table) == 30
    size = np.array([sample.metadata.frame_width, sample.metadata.frame_height])
    nan_points = 0
    for number, frame in sample.frames.items():
        row = table.iloc[number - 1]
        by_index = {kp.index: kp for kp in frame["predictions"].keypoints}
        for i, individual in enumerate(meta.individuals):
            xyl = row[individual].to_numpy().reshape(-1, 3)
            if np.isnan(xyl[:, :2]).all():
                assert i not in by_index
                continue
            kp = by_index[i]
            assert kp.label == individual
            np.testing.assert_allclose(np.array(kp.points, float), (xyl[:, :2] + 0.5) / size, atol=1e-7)
            np.testing.assert_allclose(np.array(kp.confidence, float), np.where(np.isnan(xyl[:, 0]), np.nan,
                                                                                   xyl[:, 2]), atol=1e-7)
            nan_points += int(np.isnan(xyl[:, 0]).sum())
        assert frame["unique"].keypoints[0].label == "single"
    assert dataset.skeletons["frames.predictions"].labels == list(meta.bodyparts)
    assert len(dataset.skeletons["frames.predictions"].edges) == len(meta.skeleton)

    confidence = np.array(dataset.values("frames.mean_confidence")[0])
    jumps = np.array([np.nan if j is None else j for j in dataset.values("frames.max_jump")[0]])
    marks = dataset.values("frames.relabel")[0]
    low = [i for i, m in enumerate(marks) if LOW_CONFIDENCE in m]
    big = [i for i, m in enumerate(marks) if JUMP in m]
    assert len(low) == N_LOW and len(big) == N_JUMPS
    assert confidence[low].max() <= np.delete(confidence, low).min()
    assert np.nanmin(jumps[big]) >= np.nanmax(np.delete(jumps, big))
    assert np.isnan(jumps[0])  # nothing to jump from
    marked = dataset.match_frames(fo.ViewField("relabel").length() > 0)
    assert marked.count("frames") == len(set(low) | set(big))


def test_relabel_choice_on_known_tracks():
    t = np.arange(6, dtype=float)
    points = np.zeros((6, 2, 3))
    points[:, 0, 0], points[:, 1, 0] = t, 10 + t  # both move 1 px per frame
    points[..., 2] = 0.9
    points[3, 1, 0] += 20  # a jump into frame 3 (and back in frame 4)
    points[2, :, 2] = 0.1  # an unsure frame
    points[5] = np.nan  # nothing found: least confident of all
    picks = frames_to_relabel(points, n_low_confidence=2, n_jumps=1)
    assert picks == {2: [LOW_CONFIDENCE], 3: [JUMP], 5: [LOW_CONFIDENCE]}


def test_the_tracked_file_is_preferred(review_project, tmp_path, names):
    folder = tmp_path / "analysis"
    folder.mkdir()
    shutil.copy(review_project.h5, folder)
    table = read_predictions(review_project.h5)
    scorer = table.columns.get_level_values("scorer")[0]
    order = ["fish3", "fish1", "fish2", "single"]  # tracks, as a tracker might number them
    tracked = pd.concat({ind: table[scorer][ind] for ind in order}, axis=1, names=["individuals"])
    tracked = pd.concat({scorer: tracked}, axis=1, names=["scorer"])
    write_predictions(tracked, folder / f"{review_project.h5.stem}_el.h5")
    dataset = build(review_project.video, names(), destfolder=folder)
    sample = dataset.first()
    assert sample.tracked and sample.analysis.endswith("_el.h5")
    first = {kp.index: kp.label for kp in sample.frames[1]["predictions"].keypoints}
    assert first == {0: "fish3", 1: "fish1", 2: "fish2"}


def test_marked_frames_are_extracted_without_overwriting(review_project, tmp_path, names):
    root = tmp_path / "project"
    shutil.copytree(review_project.config.parent, root, ignore=shutil.ignore_patterns("dlc-models-pytorch"))
    config = root / "config.yaml"
    other = root / "videos" / "second.mp4"  # a video the project does not list yet
    shutil.copy(review_project.video, other)
    shutil.copy(review_project.h5, other.parent / review_project.h5.name.replace("fishtank", "second"))
    dataset = video_dataset([root / "videos" / "fishtank.mp4", other], name=names(), n_low_confidence=N_LOW,
                            n_jumps=N_JUMPS)
    numbers = [[n - 1 for n, m in zip(ns, ms) if m]  # per video, in the order they were given
               for ns, ms in zip(*dataset.values(["frames.frame_number", "frames.relabel"]))]
    labeled = root / "labeled-data" / "fishtank"
    labels_before = {p.name: p.read_bytes() for p in labeled.glob("CollectedData_*")}
    images_before = {p.name: p.read_bytes() for p in labeled.glob("*.png")}
    config_before = config.read_text()

    done = {d.video.stem: d for d in extract_marked_frames(config, dataset)}
    first, second = done["fishtank"], done["second"]
    expected = {f"img{n:02d}.png" for n in numbers[0]}  # 30 frames: DeepLabCut pads to 2 digits
    assert {p.name for p in first.written + first.kept} == expected
    assert {p.name for p in first.kept} == expected & set(images_before) and first.written
    assert {p.name: p.read_bytes() for p in labeled.glob("CollectedData_*")} == labels_before
    assert all(images_before[p.name] == p.read_bytes() for p in first.kept)  # labeled images untouched
    with open_video(review_project.video, reader="opencv", device="cpu", batch_size=30) as reader:
        frames = next(iter(reader)).frames.permute(0, 2, 3, 1).numpy()
    for path in first.written:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image, frames[int(path.stem[3:])])
    assert not first.added_to_config and second.added_to_config
    assert {p.name for p in second.written} == {f"img{n:02d}.png" for n in numbers[1]}
    cfg = ProjectConfig.read(config)
    assert [s.stem for s in cfg.video_sets()] == ["fishtank", "second"]
    assert config.read_text().startswith(config_before.split("video_sets:")[0])  # comments and order kept

    again = extract_marked_frames(config, dataset)  # nothing is written twice, the config is not touched
    assert all(not d.written and not d.added_to_config for d in again)
