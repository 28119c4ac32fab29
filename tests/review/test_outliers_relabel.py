"""Frames marked in the FiftyOne review come out with machine labels, as extract_outlier_frames writes them."""
from __future__ import annotations

import pickle
import uuid

import fiftyone as fo
import numpy as np
import pandas as pd
import pytest

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.project.machine_labels import machine_labels_path
from lightning_dlc.review.relabel import extract_marked_frames
from lightning_dlc.review.video_diagnostics import video_dataset

pytestmark = pytest.mark.slow  # starts FiftyOne's database

SCORER = "DLC_Resnet50_fishtankJan1shuffle1_snapshot_010"


@pytest.mark.parametrize("crop", [None, (10, 90, 6, 80)])
def test_marked_frames_get_machine_labels_beside_them(tmp_path, crop):
    """With a cropped analysis (coordinates in the crop, DeepLabCut's ``_meta.pickle`` saying where it is) the
    machine labels are put back in whole-frame coordinates, as the extracted images are."""
    config = make_demo_project(tmp_path / "fishtank", n_frames=30, n_labeled=10, size=96, unique_bodyparts=True)
    videos = config.parent / "videos"
    analysis = pd.read_hdf(videos / "fishtank_groundtruth.h5")
    analysis.columns = analysis.columns.set_levels([SCORER], level="scorer")
    analyzed = analysis.copy()
    if crop is not None:
        coords = analysis.columns.get_level_values("coords")
        analyzed.loc[:, coords == "x"] -= crop[0]
        analyzed.loc[:, coords == "y"] -= crop[2]
        with open(videos / f"fishtank{SCORER}_meta.pickle", "wb") as f:
            pickle.dump({"data": {"cropping": True, "cropping_parameters": list(crop)}}, f)
    analyzed.to_hdf(videos / f"fishtank{SCORER}.h5", key="df_with_missing", mode="w")
    name = f"test-relabel-{uuid.uuid4().hex[:8]}"
    try:
        dataset = video_dataset([videos / "fishtank.mp4"], name=name, n_low_confidence=3, n_jumps=3)
        done, = extract_marked_frames(config, dataset)
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
    assert done.written
    machine = pd.read_hdf(machine_labels_path(done.folder, 0), "df_with_missing")
    assert sorted(k[2] for k in machine.index) == sorted(p.name for p in done.written)  # kept images: no labels
    assert machine.columns.equals(analysis.columns)
    for (_, _, image), row in machine.iterrows():
        np.testing.assert_allclose(row.to_numpy(), analysis.loc[int(image[3:-4])].to_numpy(), atol=1e-4)
