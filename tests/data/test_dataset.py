import math

import cv2
import numpy as np
import pytest
import torch

from lightning_dlc.data.dataset import PoseDataset, collate_pose, resize_points, to_original_pixels
from lightning_dlc.project import LabeledData, PoseRecord, ProjectError, ProjectMeta, load_dlc_project
from lightning_dlc.project.records import NOT_LABELED, VISIBLE

META = ProjectMeta(bodyparts=("a", "b"), individuals=("animal",))


def _record(tmp_path, name, image, keypoints) -> PoseRecord:
    """A record of an RGB uint8 image written as PNG."""
    path = tmp_path / name
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return PoseRecord(image=path, key=name, size=(image.shape[1], image.shape[0]),
                      keypoints=np.asarray(keypoints, np.float32), unique_keypoints=np.zeros((0, 3)),
                      individuals=META.individuals)


def _synthetic(tmp_path, sizes=((40, 50), (33, 70))) -> LabeledData:
    rng = np.random.default_rng(0)
    records = []
    for i, (h, w) in enumerate(sizes):
        kpts = [[[w / 3, h / 4, VISIBLE], [np.nan, np.nan, NOT_LABELED]]]
        records.append(_record(tmp_path, f"img{i}.png", rng.integers(1, 256, (h, w, 3), dtype=np.uint8), kpts))
    return LabeledData(META, records, tmp_path)


def test_item_shapes_dtypes_and_pixels(demo):
    data = load_dlc_project(demo)
    item = PoseDataset(data)[3]
    record = data.records[3]
    assert set(item) == {"image", "keypoints", "unique_keypoints", "boxes", "index", "scale"}
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 256, 256)
    rgb = cv2.cvtColor(cv2.imread(str(record.image)), cv2.COLOR_BGR2RGB)
    assert torch.equal(item["image"], torch.from_numpy(rgb).permute(2, 0, 1)), "RGB, channels first"
    assert item["keypoints"].dtype == torch.float32 and item["keypoints"].shape == (3, 5, 3)
    assert item["unique_keypoints"].dtype == torch.float32 and item["unique_keypoints"].shape == (1, 3)
    assert item["boxes"].shape == (3, 4)
    np.testing.assert_array_equal(item["keypoints"].numpy(), record.keypoints)
    np.testing.assert_array_equal(item["unique_keypoints"].numpy(), record.unique_keypoints)
    assert item["index"] == 3 and item["scale"] == 1.0


def test_pads_individuals_with_nan_rows_and_keeps_records_intact(demo):
    data = load_dlc_project(demo)
    before = data.records[0].keypoints.copy()
    item = PoseDataset(data, max_individuals=5, resize=0.5)[0]
    assert item["keypoints"].shape == (5, 5, 3) and item["boxes"].shape == (5, 4)
    assert torch.isnan(item["keypoints"][3:]).all() and torch.isnan(item["boxes"][3:]).all()
    assert torch.isfinite(item["keypoints"][:3, :, 2]).all(), "real rows keep their visibility flags"
    np.testing.assert_array_equal(data.records[0].keypoints, before)


def test_fewer_individuals_than_labeled_is_an_error(demo):
    data = load_dlc_project(demo)
    with pytest.raises(ValueError, match="max_individuals is 2"):
        PoseDataset(data, max_individuals=2)[0]


def test_single_animal_openfield(openfield):
    data = load_dlc_project(openfield)
    item = PoseDataset(data, resize=0.5)[0]
    assert item["image"].shape == (3, 240, 320)
    assert item["keypoints"].shape == (1, len(data.meta.bodyparts), 3)
    assert item["unique_keypoints"].shape == (0, 3) and item["scale"] == 0.5


def test_resize_maps_labels_with_the_image(tmp_path):
    """A blob centred at a labeled sub-pixel point stays centred on the label after resizing."""
    h, w, x0, y0 = 90, 120, 47.3, 38.6
    yy, xx = np.mgrid[:h, :w]
    blob = 255 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 6.0 ** 2))
    image = np.repeat(blob.round().astype(np.uint8)[..., None], 3, axis=-1)
    data = LabeledData(META, [_record(tmp_path, "blob.png", image, [[[x0, y0, VISIBLE], [np.nan] * 2 + [0]]])],
                       tmp_path)
    for scale in (0.37, 0.5, 1.6):
        item = PoseDataset(data, resize=scale)[0]
        assert item["image"].shape[1:] == (round(h * scale), round(w * scale))
        x, y = item["keypoints"][0, 0, :2].tolist()
        assert (x, y) == pytest.approx(((x0 + 0.5) * scale - 0.5, (y0 + 0.5) * scale - 0.5), abs=1e-4)
        assert math.isnan(item["keypoints"][0, 1, 0]) and item["keypoints"][0, 0, 2] == VISIBLE
        img = item["image"][0].double()
        gy, gx = torch.meshgrid(torch.arange(img.shape[0]), torch.arange(img.shape[1]), indexing="ij")
        centroid = ((img * gx).sum() / img.sum(), (img * gy).sum() / img.sum())
        assert [float(c) for c in centroid] == pytest.approx([x, y], abs=0.05)
        back = to_original_pixels(item["keypoints"][0, 0, :2], item["scale"])
        assert back.tolist() == pytest.approx([x0, y0], abs=1e-4)
    np.testing.assert_allclose(resize_points(np.array([0.0, -0.5]), 2.0), [0.5, -0.5])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_unreadable_image_is_a_project_error_naming_it(demo, damage):
    data = load_dlc_project(demo)
    path = data.records[1].image
    if damage == "garbage":
        path.write_bytes(b"not an image at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()
    dataset = PoseDataset(data)
    dataset[0]
    with pytest.raises(ProjectError, match="cannot read image") as err:
        dataset[1]
    assert err.value.path == path and str(path) in str(err.value)


def test_image_of_another_size_than_labeled_is_an_error(tmp_path):
    data = _synthetic(tmp_path)
    cv2.imwrite(str(data.records[0].image), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ProjectError, match="20x20 pixels but its labels were read for 50x40"):
        PoseDataset(data)[0]


def test_collate_pads_bottom_right_and_keeps_labels(tmp_path):
    dataset = PoseDataset(_synthetic(tmp_path))
    items = [dataset[0], dataset[1]]
    batch = collate_pose(items)
    assert batch["image"].shape == (2, 3, 64, 96) and batch["image"].dtype == torch.uint8
    assert batch["sizes"].tolist() == [[40, 50], [33, 70]]
    for image, item in zip(batch["image"], items):
        h, w = item["image"].shape[1:]
        assert torch.equal(image[:, :h, :w], item["image"])
        assert not image[:, h:].any() and not image[:, :, w:].any()
    for key in ("keypoints", "unique_keypoints", "boxes"):
        assert torch.equal(batch[key].nan_to_num(-1), torch.stack([i[key] for i in items]).nan_to_num(-1))
    assert batch["keypoints"].shape == (2, 1, 2, 3) and batch["unique_keypoints"].shape == (2, 0, 3)
    assert batch["index"].tolist() == [0, 1] and batch["scale"].tolist() == [1.0, 1.0]
    assert collate_pose(items, pad_multiple=1)["image"].shape == (2, 3, 40, 70)
    assert collate_pose(items[:1], pad_multiple=8)["image"].shape == (1, 3, 40, 56)
