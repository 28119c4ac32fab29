import shutil

import numpy as np
import pandas as pd
import pytest

from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.dlc import load_dlc_project
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import NOT_LABELED, VISIBLE


def test_openfield_as_shipped(openfield):
    data = load_dlc_project(openfield)
    assert len(data) == 116
    assert data.meta.bodyparts == ("snout", "leftear", "rightear", "tailbase")
    assert not data.meta.multianimal
    first = data.records[0]
    assert first.key == "labeled-data/m4s1/img0000.png"
    assert first.size == (640, 480)
    assert first.keypoints.shape == (1, 4, 3)
    np.testing.assert_allclose(first.keypoints[0, 0], [21.521, 265.428, VISIBLE], rtol=1e-6)
    assert first.boxes.shape == (1, 4)


def test_nan_means_unlabeled(openfield):
    label_file = openfield.parent / "labeled-data/m4s1/CollectedData_Pranav.h5"
    df = pd.read_hdf(label_file)
    df.iloc[5, 2:4] = np.nan  # leftear of img0005 not labeled
    df.to_hdf(label_file, key="df_with_missing", mode="w")
    kpts = np.stack([r.keypoints for r in load_dlc_project(openfield).records])
    missing = np.isnan(kpts[..., 0])
    assert missing.sum() == 1 and missing[5, 0, 1]
    assert (kpts[..., 2][missing] == NOT_LABELED).all()
    assert (kpts[..., 2][~missing] == VISIBLE).all()


def test_csv_fallback_gives_the_same_records(openfield):
    from_h5 = load_dlc_project(openfield)
    (openfield.parent / "labeled-data/m4s1/CollectedData_Pranav.h5").unlink()
    from_csv = load_dlc_project(openfield)
    assert all(a.same_labels(b) for a, b in zip(from_h5.records, from_csv.records))


def test_missing_image(openfield):
    image = openfield.parent / "labeled-data/m4s1/img0007.png"
    image.unlink()
    with pytest.raises(ProjectError, match="labeled image is missing") as err:
        load_dlc_project(openfield)
    assert str(image) in str(err.value) and "CollectedData_Pranav.h5" in str(err.value)


def test_unreadable_image(openfield):
    image = openfield.parent / "labeled-data/m4s1/img0003.png"
    image.write_bytes(b"not a png at all")
    with pytest.raises(ProjectError, match=f"{image}: cannot read image"):
        load_dlc_project(openfield)


def test_bodypart_missing_from_config(openfield):
    cfg = ProjectConfig.read(openfield)
    cfg.data["bodyparts"].remove("tailbase")
    cfg.save(overwrite=True)
    with pytest.raises(ProjectError, match="bodypart 'tailbase' is labeled but not in the config") as err:
        load_dlc_project(openfield)
    assert "labeled-data/m4s1/CollectedData_Pranav.h5" in str(err.value)


def test_empty_labeled_data_folder(openfield):
    empty = openfield.parent / "labeled-data" / "m5s2"
    empty.mkdir()
    with pytest.raises(ProjectError, match=f"{empty}: labeled-data folder is empty"):
        load_dlc_project(openfield)


def test_folder_with_images_but_no_labels_is_skipped(openfield):
    unlabeled = openfield.parent / "labeled-data" / "m5s2"
    unlabeled.mkdir()
    shutil.copy(openfield.parent / "labeled-data/m4s1/img0000.png", unlabeled / "img0000.png")
    assert len(load_dlc_project(openfield)) == 116


def test_labels_of_another_scorer(openfield):
    cfg = ProjectConfig.read(openfield)
    cfg.data["scorer"] = "Someone"
    cfg.save(overwrite=True)
    with pytest.raises(ProjectError, match="has \\['CollectedData_Pranav.h5'\\] but config.yaml's scorer is 'Someone'"):
        load_dlc_project(openfield)


def test_corrupt_h5(openfield):
    label_file = openfield.parent / "labeled-data/m4s1/CollectedData_Pranav.h5"
    label_file.write_bytes(label_file.read_bytes()[:2000])
    with pytest.raises(ProjectError, match=f"{label_file}: cannot read HDF5 labels"):
        load_dlc_project(openfield)


def test_commented_out_video_excludes_its_folder(openfield):
    root = openfield.parent
    shutil.copytree(root / "labeled-data/m4s1", root / "labeled-data/m4s2")
    cfg = ProjectConfig.read(openfield)
    text = cfg.to_text().replace(
        "  WILL BE AUTOMATICALLY UPDATED BY DEMO CODE:\n    crop: 0, 640, 0, 480\n",
        "  /elsewhere/videos/m4s1.mp4:\n    crop: 0, 640, 0, 480\n"
        "#  /elsewhere/videos/m4s2.mp4:\n#    crop: 0, 640, 0, 480\n")
    openfield.write_text(text)
    assert len(load_dlc_project(openfield)) == 116
    openfield.write_text(text.replace("#  /elsewhere", "  /elsewhere").replace("#    crop", "    crop"))
    with pytest.raises(ProjectError, match="is labeled twice"):
        load_dlc_project(openfield)  # m4s2's copy still lists m4s1's image paths
