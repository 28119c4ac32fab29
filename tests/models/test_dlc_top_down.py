"""DeepLabCut 3.0.2 as the peer for the top-down pipeline: boxes, crops, the map back, detectors.

One call of the peer runs DeepLabCut's own functions on the same arrays: its inference crop
(``TopDownCrop`` -> ``top_down_crop``), its map back (``RescaleAndOffset``), its boxes from
keypoints (``bbox_from_keypoints``) and its detectors (built from its detector configs, fed its
inference transform). Run with ``-s`` to see the largest differences.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dlc_peer import run_peer

from lightning_dlc.data.crops import boxes_with_margin, crop_images, crop_transforms, from_crop
from lightning_dlc.models.detectors import DLC_DETECTORS, build_detector

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

H, W = 67, 93  # an odd image size
CROP_SIZES = [(256, 256), (48, 64)]  # (h, w): DeepLabCut's, and one of another aspect ratio
BOXES = np.array([  # xywh, as DeepLabCut's detector postprocessor hands them on
    [10.3, 12.7, 30.2, 20.9],    # inside
    [-5.5, -3.25, 25.0, 40.0],   # past the top-left corner
    [70.5, 50.5, 40.25, 30.125],  # past the bottom-right corner
    [10.5, 10.0, 20.0, 5.0],     # corners that round half to even
    [2.0, 30.0, 80.0, 6.0],      # wide
    [40.0, 1.0, 5.0, 60.0],      # tall
    [30.25, 30.75, 2.5, 1.375],  # small: magnified (DeepLabCut fails on regions that round to 0 pixels)
    [0.0, 0.0, 93.0, 67.0],      # the whole image
])
DETECTOR_IMAGE_HW = (48, 64)


def images() -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(0)
    return g.random((H, W, 3), dtype=np.float32), g.integers(0, 256, (H, W, 3), dtype=np.uint8)


def crop_job(image: np.ndarray, crop_size) -> dict:
    h, w = crop_size
    return {"kind": "call", "function": "deeplabcut.pose_estimation_pytorch.data.preprocessor:TopDownCrop",
            "init_kwargs": {"output_size": (w, h), "margin": 0, "with_context": True}, "attribute": "__call__",
            "args": [image, {"bboxes": BOXES.copy()}]}


def crop_keypoints(crop_size, n: int = len(BOXES), k: int = 5) -> np.ndarray:
    g = np.random.default_rng(1)
    h, w = crop_size
    points = g.random((n, k, 3)) * np.array([w, h, 1.0])
    points[:, 0, :2] = 0.0  # a corner
    return points


def keypoints_for_boxes() -> np.ndarray:
    g = np.random.default_rng(2)
    points = np.concatenate([g.random((4, 6, 2)) * [W + 40, H + 40] - 20, g.integers(-1, 3, (4, 6, 1))], -1)
    points[3, :, 2] = 0  # an individual without labels
    return points


@pytest.fixture(scope="module")
def peer():
    float_image, uint8_image = images()
    jobs = []
    for size in CROP_SIZES:
        jobs += [crop_job(float_image, size), crop_job(uint8_image, size)]
    for size in CROP_SIZES:  # the map back of crop keypoints, with the offsets and scales of the crops above
        jobs.append({"kind": "call", "function": "deeplabcut.pose_estimation_pytorch.data.postprocessor:RescaleAndOffset",
                     "init_args": [["bodyparts"], "keypoint_td"], "attribute": "__call__",
                     "args": [{"bodyparts": crop_keypoints(size)}, None]})  # context filled in below
    jobs.append({"kind": "call", "function": "deeplabcut.pose_estimation_pytorch.data.utils:bbox_from_keypoints",
                 "args": [keypoints_for_boxes(), H, W, 20]})
    g = np.random.default_rng(3)
    detector_image = g.integers(0, 256, (*DETECTOR_IMAGE_HW, 3), dtype=np.uint8)
    for name in DLC_DETECTORS:  # forward only for the light ones (CPU time)
        jobs.append({"kind": "detector", "detector_type": name, "seed": 0,
                     "images": [] if name == "fasterrcnn_resnet50_fpn_v2" else [detector_image]})
    # the map back needs DeepLabCut's own offsets and scales: compute them the same way here first
    for i, size in enumerate(CROP_SIZES):
        t = crop_transforms(torch.from_numpy(np.concatenate([BOXES[:, :2], BOXES[:, :2] + BOXES[:, 2:]], -1)), size)
        jobs[4 + i]["args"][1] = {"scales": t[:, :2].double().numpy(), "offsets": t[:, 2:].double().numpy()}
    results = run_peer(jobs)
    return {"jobs": jobs, "results": results, "float_image": float_image, "uint8_image": uint8_image,
            "detector_image": detector_image}


def xyxy(boxes: np.ndarray) -> torch.Tensor:
    boxes = torch.from_numpy(boxes).double()
    return torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], -1)


@pytest.mark.parametrize("index", range(len(CROP_SIZES)))
def test_crops_and_their_transforms_are_deeplabcuts(peer, index):
    size = CROP_SIZES[index]
    boxes = xyxy(BOXES)
    for image, result, tol in ((peer["float_image"], peer["results"][2 * index], 1e-5),
                               (peer["uint8_image"], peer["results"][2 * index + 1], 1.0)):
        their_crops, context = result["value"]
        transforms = crop_transforms(boxes, size).double()
        torch.testing.assert_close(transforms[:, 2:], torch.from_numpy(context["offsets"]).double(), rtol=0, atol=0)
        torch.testing.assert_close(transforms[:, :2], torch.from_numpy(context["scales"]).double(),
                                   rtol=1e-12, atol=1e-12)
        ours = crop_images(torch.from_numpy(image).permute(2, 0, 1)[None], boxes[None].float(), size)[0]
        ours = ours.permute(0, 2, 3, 1)
        theirs = torch.from_numpy(their_crops)
        diff = (ours.double() - theirs.double()).abs().max().item()
        print(f"crop {size} {image.dtype}: largest pixel difference {diff:.3g}")
        if image.dtype == np.uint8:
            assert diff <= tol  # OpenCV's fixed-point bilinear weights: one grey level at most
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=tol)


@pytest.mark.parametrize("index", range(len(CROP_SIZES)))
def test_keypoints_map_back_as_deeplabcuts(peer, index):
    size = CROP_SIZES[index]
    crop_points = peer["jobs"][4 + index]["args"][0]["bodyparts"]
    theirs = torch.from_numpy(peer["results"][4 + index]["value"][0]["bodyparts"])
    transforms = crop_transforms(xyxy(BOXES).float(), size)  # float32, as in the pipeline
    ours = from_crop(torch.from_numpy(crop_points).float(), transforms)
    diff = (ours.double() - theirs).abs().max().item()
    print(f"map back {size}: largest keypoint difference {diff:.3g} px")
    assert diff < 1e-3


def test_boxes_from_keypoints_are_deeplabcuts(peer):
    theirs = torch.from_numpy(peer["results"][6]["value"])  # xywh, 0 for an individual without labels
    ours = boxes_with_margin(torch.from_numpy(keypoints_for_boxes()), 20, size=(H, W)).double()
    labeled = torch.isfinite(ours).all(-1)
    assert labeled.tolist() == [True, True, True, False]
    ours_xywh = torch.cat([ours[:, :2], ours[:, 2:] - ours[:, :2]], -1)
    torch.testing.assert_close(ours_xywh[labeled], theirs[labeled], rtol=0, atol=1e-9)
    assert (theirs[~labeled] == 0).all()


@pytest.mark.parametrize("name", list(DLC_DETECTORS))
def test_detectors_are_deeplabcuts_and_see_what_they_see(peer, name):
    result = peer["results"][7 + list(DLC_DETECTORS).index(name)]
    theirs = result["state_dict"]
    detector = build_detector(name, pretrained=False).eval()
    # the key map is the identity; DeepLabCut's MobileNet backbone starts from ImageNet weights even
    # untrained, so its BatchNorm layers are torchvision's frozen ones, without num_batches_tracked
    ours = {k: v for k, v in detector.state_dict().items() if k in theirs or not k.endswith("num_batches_tracked")}
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    missing = detector.load_state_dict(theirs, strict=False)
    assert not missing.unexpected_keys and all(k.endswith("num_batches_tracked") for k in missing.missing_keys)
    seen = []
    detector.model.transform.register_forward_hook(lambda module, args, output: seen.append(output[0].tensors))
    image = torch.from_numpy(peer["detector_image"]).permute(2, 0, 1).float() / 255
    for their_seen, their_found in zip(result["seen"], result["detections"]):
        with torch.no_grad():
            found = detector([image])[0]
        # doubly normalized pixels reach ~10 and are resized bilinearly: float32 round-off ~1e-5
        torch.testing.assert_close(seen[-1], their_seen, rtol=1e-4, atol=1e-4)
        their_found = their_found[0]
        n = min(len(found["boxes"]), len(their_found["boxes"]))
        diff = (found["boxes"][:n] - their_found["boxes"][:n]).abs().max().item() if n else 0.0
        print(f"{name}: input difference {(seen[-1] - their_seen).abs().max().item():.3g}, "
              f"{len(found['boxes'])} vs {len(their_found['boxes'])} boxes, box difference (all {n}) {diff:.3g} px")
        assert len(found["boxes"]) == len(their_found["boxes"])
        torch.testing.assert_close(found["scores"], their_found["scores"], rtol=1e-4, atol=1e-5)
        assert diff < 1e-3
