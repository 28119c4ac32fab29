"""DeepLabCut 3 itself reads the shuffles we write, and we read the ones it writes.

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI);
.ci/run runs it in DeepLabCut's own environment:

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/project/test_deeplabcut_interop.py

(only pytest has to be added to that environment). Uses the real openfield project from
../shared beside the checkout, copied to a temporary folder.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import loadmat
import pytest

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
deeplabcut = import_deeplabcut()

import deeplabcut.pose_estimation_pytorch.apis.training as dlc_training  # noqa: E402
from deeplabcut.core.config import ProjectConfig as DLCProjectConfig  # noqa: E402
from deeplabcut.generate_training_dataset.metadata import (  # noqa: E402
    TrainingDatasetMetadata,
    get_shuffle_engine,
)
from deeplabcut.generate_training_dataset.trainingsetmanipulation import (  # noqa: E402
    get_existing_shuffle_indices,
    merge_annotateddatasets,
)
from deeplabcut.pose_estimation_pytorch.data.dataset import PoseDatasetParameters  # noqa: E402
from deeplabcut.pose_estimation_pytorch.data.dlcloader import DLCLoader  # noqa: E402

from lightning_dlc.project.config import ProjectConfig  # noqa: E402
from lightning_dlc.project.shuffles import (  # noqa: E402
    create_training_dataset,
    load_shuffle,
    merged_labels_path,
    read_shuffle,
)

# tests/project/this_file -> parents[3] is the folder holding the checkout and shared/.
OPENFIELD = Path(__file__).resolve().parents[3] / "shared" / "data" / "openfield-Pranav-2018-10-30"
pytestmark = [pytest.mark.skipif(not OPENFIELD.is_dir(), reason=f"real data not here: {OPENFIELD}"),
              pytest.mark.slow]  # runs DeepLabCut 3.0.2 beside ours


@pytest.fixture
def config(openfield) -> str:
    """A writable copy of openfield, its placeholders filled in as DeepLabCut needs them."""
    root = openfield.parent
    cfg = ProjectConfig.read(openfield)
    cfg.data["project_path"] = str(root)
    cfg.data["video_sets"] = {str(root / "videos" / "m4s1.mp4"): {"crop": "0, 640, 0, 480"}}
    cfg.data["TrainingFraction"] = [0.95]
    cfg.save(overwrite=True)
    return str(root / "config.yaml")


@pytest.fixture
def backbones_from_scratch(monkeypatch):
    """No network here for ImageNet weights: build DeepLabCut's backbones untrained."""
    build = dlc_training.PoseModel.build
    monkeypatch.setattr(dlc_training.PoseModel, "build", staticmethod(
        lambda cfg, weight_init=None, pretrained_backbone=False: build(cfg, weight_init, False)))


def keys(frame: pd.DataFrame) -> list[str]:
    """DeepLabCut's row labels as our '/'-separated image keys."""
    return ["/".join(k) if isinstance(k, tuple) else str(k).replace("\\", "/") for k in frame.index]


def record_keys(data) -> list[str]:
    return [r.key for r in data.records]


def test_deeplabcut_trains_on_our_split(config, tmp_path, backbones_from_scratch):
    (ours,) = create_training_dataset(config)
    assert (ours.index, len(ours.train_indices), len(ours.test_indices)) == (1, 110, 6)
    our_train, our_test = load_shuffle(config, 1)
    merged = merged_labels_path(ProjectConfig.read(config))
    our_table = pd.read_hdf(merged)
    our_bytes = merged.read_bytes()

    # DeepLabCut copies our split into a shuffle of its own (rewriting the merged table and
    # writing its .mat training file while at it): both must equal ours.
    made = deeplabcut.create_training_dataset_from_existing_split(
        config, from_shuffle=1, shuffles=[2], net_type="resnet_50", userfeedback=False,
        engine=deeplabcut.Engine.PYTORCH)
    (fraction, index, (train, test)), = made
    assert (fraction, index) == (0.95, 2)
    assert sorted(train) == list(ours.train_indices) and sorted(test) == list(ours.test_indices)
    # Its merge of the labels is our table, row for row, so the indices mean the same images.
    pd.testing.assert_frame_equal(pd.read_hdf(merged), our_table)
    merged.write_bytes(our_bytes)  # and it trains from our file, not its rewrite
    ours_mat, theirs_mat = (loadmat(merged.parent / f"openfield_Pranav95shuffle{k}.mat")["dataset"][0]
                            for k in (1, 2))
    assert len(ours_mat) == len(theirs_mat) == 110
    for a, b in zip(ours_mat, theirs_mat):
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["size"], b["size"])
        assert np.array_equal(a["joints"][0, 0], b["joints"][0, 0])

    split = TrainingDatasetMetadata.load(config, load_splits=True).get(trainset_index=0, index=2).split
    assert (split.train_indices, split.test_indices) == (ours.train_indices, ours.test_indices)
    loader = DLCLoader(config, trainset_index=0, shuffle=2)
    assert sorted(loader.split["train"]) == list(ours.train_indices)
    assert sorted(loader.split["test"]) == list(ours.test_indices)
    assert sorted(keys(loader.df_train)) == sorted(record_keys(our_train))
    assert sorted(keys(loader.df_test)) == sorted(record_keys(our_test))
    coco = loader.load_data("train")
    assert sorted(Path(im["file_name"]) for im in coco["images"]) == sorted(r.image for r in our_train.records)
    # We read DeepLabCut's copy of the split as the same split.
    again = read_shuffle(config, 2)
    assert (again.train_indices, again.test_indices) == (ours.train_indices, ours.test_indices)

    # One short epoch on small crops (CPU); evaluation during training is off.
    deeplabcut.train_network(
        config, shuffle=2, epochs=1, save_epochs=1, batch_size=8, device="cpu",
        pytorch_cfg_updates={"runner.eval_interval": 2, "train_settings.dataloader_workers": 0,
                             "data.train.crop_sampling.width": 128,
                             "data.train.crop_sampling.height": 128})
    train_dir = Path(config).parent / loader.model_folder
    assert (train_dir / "snapshot-001.pt").stat().st_size > 0
    log = (train_dir / "train.txt").read_text()
    assert "Using 110 images and 6 for testing" in log


def test_we_read_deeplabcuts_split(config):
    made = deeplabcut.create_training_dataset(
        config, Shuffles=[5], userfeedback=False, net_type="resnet_50", engine=deeplabcut.Engine.PYTORCH)
    assert [(f, i) for f, i, _ in made] == [(0.95, 5)]
    loader = DLCLoader(config, trainset_index=0, shuffle=5)
    dlc_train, dlc_test = loader.df_train, loader.df_test
    assert (len(dlc_train), len(dlc_test)) == (110, 6)

    train, test = load_shuffle(config, 5)
    assert sorted(record_keys(train)) == sorted(keys(dlc_train))
    assert sorted(record_keys(test)) == sorted(keys(dlc_test))
    # Same labels too: DeepLabCut's rows, NaN where unlabeled, against our records' x, y.
    for data, frame in ((train, dlc_train), (test, dlc_test)):
        rows = dict(zip(keys(frame), frame.to_numpy(np.float64).reshape(len(frame), -1, 2)))
        for r in data.records:
            np.testing.assert_allclose(r.keypoints[0, :, :2], rows[r.key], rtol=0, atol=1e-4)
    shuffle = read_shuffle(config, 5)
    assert shuffle.train_indices == tuple(sorted(loader.split["train"]))
    assert shuffle.test_indices == tuple(sorted(loader.split["test"]))


def test_deeplabcut_reads_our_merged_labels_and_metadata(config, tmp_path, caplog):
    (ours,) = create_training_dataset(config)
    merged = merged_labels_path(ProjectConfig.read(config))
    # Parsed first: DeepLabCut warns that the project's own config leaves `multianimalproject`
    # empty (as shipped by DeepLabCut, and untouched by us); only our files are judged below.
    dlc_cfg = DLCProjectConfig.from_any(config)
    caplog.clear()
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = TrainingDatasetMetadata.load(dlc_cfg, load_splits=True)
        engine = get_shuffle_engine(dlc_cfg, 0, 1)
        existing = get_existing_shuffle_indices(dlc_cfg)
        table = pd.read_hdf(merged)
        frames = DLCLoader.split_data(table, DLCLoader.load_split(dlc_cfg, 0, 1))
        params = PoseDatasetParameters(bodyparts=list(dlc_cfg["bodyparts"]), unique_bpts=[],
                                       individuals=list(dlc_cfg["individuals"]))
        coco = {mode: DLCLoader.to_coco(str(dlc_cfg.project_path), frames[mode], params)
                for mode in ("train", "test")}
        dlc_merge = merge_annotateddatasets(dlc_cfg, tmp_path)
    assert [r.getMessage() for r in caplog.records] == []
    assert [str(w.message) for w in caught] == []

    (shuffle,) = meta.shuffles
    assert (shuffle.name, shuffle.index, shuffle.train_fraction) == ("openfieldOct30-trainset95shuffle1", 1, 0.95)
    assert (shuffle.split.train_indices, shuffle.split.test_indices) == (ours.train_indices, ours.test_indices)
    assert engine == deeplabcut.Engine.PYTORCH and existing == [1]
    assert [len(coco[m]["images"]) for m in ("train", "test")] == [110, 6]
    assert [len(coco[m]["annotations"]) for m in ("train", "test")] == [110, 6]
    # Our merged table is the one DeepLabCut's merge makes; the CSV beside it byte for byte.
    pd.testing.assert_frame_equal(table, dlc_merge)
    assert merged.with_suffix(".csv").read_bytes() == (tmp_path / "CollectedData_Pranav.csv").read_bytes()


def test_multi_animal_demo_both_ways(tmp_path):
    """The multi-animal demo (3 fish, a unique bodypart): DeepLabCut reads our files, we read its."""
    from lightning_dlc.data.demo import make_demo_project

    config = str(make_demo_project(tmp_path / "fishtank", n_frames=90, n_labeled=40, unique_bodyparts=True))
    (ours,) = create_training_dataset(config)
    merged = merged_labels_path(ProjectConfig.read(config))
    our_table = pd.read_hdf(merged)
    our_data = pd.read_pickle(merged.parent / "fishtank_synthetic90shuffle1.pickle")

    deeplabcut.create_training_dataset_from_existing_split(
        config, from_shuffle=1, shuffles=[2], net_type="dlcrnet_ms5", userfeedback=False,
        engine=deeplabcut.Engine.PYTORCH)
    split = TrainingDatasetMetadata.load(config, load_splits=True).get(trainset_index=0, index=2).split
    assert (split.train_indices, split.test_indices) == (ours.train_indices, ours.test_indices)
    train = split.train_indices
    pd.testing.assert_frame_equal(pd.read_hdf(merged), our_table)
    their_data = pd.read_pickle(merged.parent / "fishtank_synthetic90shuffle2.pickle")
    assert len(our_data) == len(their_data) == len(train)
    for a, b in zip(our_data, their_data):
        assert a["image"] == b["image"] and np.array_equal(a["size"], b["size"])
        assert a["joints"].keys() == b["joints"].keys()
        assert all(np.array_equal(a["joints"][k], b["joints"][k]) for k in a["joints"])

    deeplabcut.create_training_dataset(config, Shuffles=[5], userfeedback=False, net_type="dlcrnet_ms5",
                                       engine=deeplabcut.Engine.PYTORCH)
    loader = DLCLoader(config, trainset_index=0, shuffle=5)
    train, test = load_shuffle(config, 5)
    assert sorted(record_keys(train)) == sorted(keys(loader.df_train))
    assert sorted(record_keys(test)) == sorted(keys(loader.df_test))
    frame = loader.df_train
    rows = dict(zip(keys(frame), frame.to_numpy(np.float64)))
    for r in train.records:
        ours_xy = np.r_[r.keypoints[..., :2].ravel(), r.unique_keypoints[:, :2].ravel()]
        np.testing.assert_allclose(ours_xy, rows[r.key], rtol=0, atol=1e-4)
