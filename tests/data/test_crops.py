"""Boxes around animals and crops: exact maps between image and crop pixels."""
import numpy as np
import pytest
import torch

from lightning_dlc.data.crops import (boxes_with_margin, crop_images, crop_regions, crop_transforms, expand_boxes,
                                      from_crop, to_crop)

CROP_SIZES = [(256, 256), (64, 48), (96, 160), (1, 7)]


def random_boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 1500 - 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) ** 3 * 800  # thin, flat and degenerate boxes
    wh[:3] = torch.tensor([[0.0, 0.0], [0.0, 40.0], [300.0, 0.0]])
    return torch.cat([xy, xy + wh], -1)


@pytest.mark.parametrize("crop_size", CROP_SIZES)
def test_keypoints_round_trip_through_any_crop(crop_size):
    boxes = random_boxes(200).float()
    g = torch.Generator().manual_seed(1)
    keypoints = torch.rand(200, 7, 3, generator=g) * 1600 - 150  # inside and outside the boxes
    keypoints[:, 0] = float("nan")
    transforms = crop_transforms(boxes, crop_size)
    back = from_crop(to_crop(keypoints, transforms), transforms)
    assert back.dtype == torch.float32
    assert torch.isnan(back[:, 0]).all()
    assert torch.equal(back[:, 1:, 2], keypoints[:, 1:, 2])  # extra columns ride along
    assert (back[:, 1:, :2] - keypoints[:, 1:, :2]).abs().max() < 0.01


@pytest.mark.parametrize("crop_size", CROP_SIZES)
def test_crop_shows_the_box_grown_to_its_aspect_ratio_on_whole_pixels(crop_size):
    boxes = random_boxes(100)[3:]  # not the 0 x 0 box: it has no aspect ratio
    h, w = crop_size
    expanded = expand_boxes(boxes, crop_size)
    ew, eh = expanded[:, 2] - expanded[:, 0], expanded[:, 3] - expanded[:, 1]
    assert torch.allclose(ew / eh, torch.full_like(ew, w / h))
    assert (expanded[:, :2] <= boxes[:, :2] + 1e-9).all() and (expanded[:, 2:] >= boxes[:, 2:] - 1e-9).all()
    assert torch.allclose(expanded[:, :2] + expanded[:, 2:], boxes[:, :2] + boxes[:, 2:])  # same centre
    # DeepLabCut's crop region: the expanded box's corners rounded to whole pixels
    region = crop_regions(boxes, crop_size)
    assert torch.equal(region, region.round()) and (region - expanded).abs().max() <= 0.5
    assert (region[:, 2:] > region[:, :2]).all()
    # the transform is DeepLabCut's: offset = the region's first pixel, scale = its size / the crop's
    t = crop_transforms(boxes, crop_size)
    assert torch.allclose(t[:, 2:], region[:, :2])
    assert torch.allclose(t[:, :2], (region[:, 2:] - region[:, :2]) / torch.tensor([w, h], dtype=t.dtype))


def test_the_whole_image_as_a_box_crops_to_itself():
    image = torch.rand(1, 3, 20, 30)
    box = torch.tensor([[[0.0, 0.0, 30.0, 20.0]]])
    assert torch.allclose(crop_images(image, box, (20, 30))[0, 0], image[0], atol=1e-6)
    assert torch.allclose(crop_transforms(box, (20, 30)), torch.tensor([[[1.0, 1.0, 0.0, 0.0]]]))


def test_a_dot_lands_where_to_crop_puts_it_in_pixel_edge_coordinates():
    """DeepLabCut's crop (cv2.resize) and its map (x * scale + offset) agree for coordinates whose
    pixel centres are at +0.5: a dot at pixel x lands at crop ``to_crop(x + 0.5) - 0.5``."""
    height, width, sigma = 200, 300, 3.0
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    g = torch.Generator().manual_seed(3)
    worst = 0.0
    for trial in range(12):
        x0, y0 = 60 + 180 * torch.rand(1, generator=g).item(), 60 + 80 * torch.rand(1, generator=g).item()
        image = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2)).float().expand(1, 3, -1, -1)
        # boxes from 30 to 230 px (crops magnify and shrink), the dot at least 4 sigma inside
        bw, bh = (30 + 200 * torch.rand(2, generator=g)).tolist()
        cx = x0 + (torch.rand(1, generator=g).item() - 0.5) * (bw / 2 - 4 * sigma)
        cy = y0 + (torch.rand(1, generator=g).item() - 0.5) * (bh / 2 - 4 * sigma)
        box = torch.tensor([[[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]]])
        crop_size = CROP_SIZES[trial % 3]
        crop = crop_images(image, box, crop_size)[0, 0, 1].double()
        t = crop_transforms(box, crop_size)[0, 0].double()
        expected = to_crop(torch.tensor([[x0 + 0.5, y0 + 0.5]], dtype=torch.float64), t)[0] - 0.5
        cy_, cx_ = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in crop_size), indexing="ij")
        found = torch.stack([(crop * cx_).sum(), (crop * cy_).sum()]) / crop.sum()
        worst = max(worst, (found - expected).abs().max().item())
    assert worst < 0.1


def test_batched_uint8_crops_match_float_ones_and_nan_boxes_are_black():
    g = torch.Generator().manual_seed(4)
    images = (torch.rand(2, 3, 40, 50, generator=g) * 255).to(torch.uint8)
    boxes = torch.tensor([[[5.0, 5.0, 25.0, 30.0], [-10.0, -10.0, 10.0, 10.0]],
                          [[20.0, 10.0, 60.0, 50.0], [float("nan")] * 4]])
    crops = crop_images(images, boxes, (16, 12))
    assert crops.shape == (2, 2, 3, 16, 12) and crops.dtype == torch.uint8
    floats = crop_images(images.float(), boxes, (16, 12))
    assert (crops.float() - floats).abs().max() <= 0.5 + 1e-3
    assert (crops[1, 1] == 0).all()
    # the flat form with image indices gives the same crops
    flat = crop_images(images, boxes.reshape(4, 4), (16, 12), image_index=torch.tensor([0, 0, 1, 1]))
    assert torch.equal(flat, crops.reshape(4, 3, 16, 12))
    # outside the image is black: the box reaching past the top-left corner
    assert (crops[0, 1, :, :2, :2] == 0).all()


def test_boxes_with_margin_follow_deeplabcut():
    keypoints = np.full((2, 3, 4, 3), np.nan, dtype=np.float32)
    keypoints[0, 0, :2] = [[30, 40, 2], [50, 45, 1]]
    keypoints[0, 0, 2] = [0, 0, 0]  # visibility 0: not a label
    keypoints[0, 1, :1] = [[5, 100, 2]]
    keypoints[1, 2, 1:3] = [[80, 10, 2], [90, 20, 2]]
    boxes = boxes_with_margin(keypoints, margin=20)
    assert isinstance(boxes, np.ndarray) and boxes.shape == (2, 3, 4)
    np.testing.assert_allclose(boxes[0, 0], [10, 20, 70, 65])
    np.testing.assert_allclose(boxes[0, 1], [-15, 80, 25, 120])
    assert np.isnan(boxes[0, 2]).all() and np.isnan(boxes[1, :2]).all()
    clipped = boxes_with_margin(torch.from_numpy(keypoints), margin=20, size=(110, 100))
    assert torch.allclose(clipped[0, 1], torch.tensor([0.0, 80, 25, 110]))
    assert torch.allclose(clipped[1, 2], torch.tensor([60.0, 0, 100, 40]))
    # per-image sizes and margins (a batch of resized images)
    per_image = boxes_with_margin(torch.from_numpy(keypoints), margin=torch.tensor([[20.0], [10.0]]),
                                  size=torch.tensor([[110, 100], [30, 95]])[:, None])
    assert torch.allclose(per_image[1, 2], torch.tensor([70.0, 0, 95, 30]))
    assert torch.allclose(per_image[0, 0], torch.tensor([10, 20, 70, 65], dtype=torch.float32))
