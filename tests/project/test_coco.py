import json

import numpy as np
import pytest

from lightning_dlc import api
from lightning_dlc.project.coco import load_coco
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import OCCLUDED, VISIBLE


def _write(root, split, data):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(data))


def _image(root, name, size=(40, 30)):
    from PIL import Image

    path = root / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)
    return path


def _dataset(root):
    """A third-party COCO file: no individual names, visibility flags, one absolute file_name."""
    absolute = _image(root.parent, "elsewhere.png")
    _image(root, "a.png")
    category = {"id": 3, "name": "mouse", "keypoints": ["nose", "tail"], "skeleton": [[1, 2]]}
    train = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": str(absolute)}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "keypoints": [1, 2, 2, 3, 4, 1], "bbox": [0, 0, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 3, "keypoints": [5, 6, 2, 0, 0, 0]},
            {"id": 3, "image_id": 2, "category_id": 3, "keypoints": [7, 8, 2, 9, 9, 2]},
        ],
        "categories": [category],
    }
    _write(root, "train", train)
    _write(root, "test", {"images": [], "annotations": [], "categories": [category]})


def test_third_party_coco(tmp_path):
    root = tmp_path / "coco"
    _dataset(root)
    splits = load_coco(root)
    meta = splits["train"].meta
    assert meta.bodyparts == ("nose", "tail") and meta.skeleton == (("nose", "tail"),)
    assert meta.individuals == ("individual0", "individual1"), "derived from the busiest image"
    a, b = splits["train"].records
    assert a.key == "a.png" and a.size == (40, 30) and b.image.name == "elsewhere.png"
    assert a.keypoints.shape == (2, 2, 3)
    np.testing.assert_array_equal(a.keypoints[0], [[1, 2, VISIBLE], [3, 4, OCCLUDED]])
    assert np.isnan(a.keypoints[1, 1, :2]).all() and a.keypoints[1, 1, 2] == 0
    np.testing.assert_array_equal(a.boxes[0], [0, 0, 10, 10])  # the file's box is kept
    np.testing.assert_array_equal(a.boxes[1], [5, 6, 5, 6])  # derived from keypoints
    assert np.isnan(b.keypoints[1, :, :2]).all() and np.isnan(b.boxes[1]).all()
    assert len(splits["test"]) == 0


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("annotations"), "missing the COCO list 'annotations'"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "annotation 1 has 2 keypoint values, expected 6"),
    (lambda d: d["images"][0].update(width=99), "image 'a.png' is 40x30 but listed as 99x30"),
    (lambda d: d["images"][0].update(file_name="gone.png"), "labeled image is missing"),
    (lambda d: d["categories"].append(dict(d["categories"][0], id=4, name="rat")), "expected one keypoint category"),
])
def test_bad_coco_names_file_and_problem(tmp_path, mutate, message):
    root = tmp_path / "coco"
    _dataset(root)
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match=message):
        load_coco(root)


def test_not_json(tmp_path):
    root = tmp_path / "coco"
    _dataset(root)
    (root / "annotations" / "test.json").write_text("{oops")
    with pytest.raises(ProjectError, match="test.json: not valid JSON"):
        load_coco(root)


def test_openfield_export_reads_back_equal(openfield, tmp_path, coco_round_trip):
    out = coco_round_trip(openfield)
    assert (out / "images/labeled-data/m4s1/img0000.png").exists()
    with pytest.raises(ProjectError, match="already exists"):
        api.export_coco(openfield, tmp_path / "coco")
