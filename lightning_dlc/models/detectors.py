"""Animal detectors for top-down pose: torchvision's Faster R-CNN and SSDLite, as DeepLabCut wraps them.

:func:`build_detector` makes one of :data:`DETECTORS` with COCO weights by default and its class
head cut down to the project's classes (``n_classes`` animal kinds + background), initialised
from COCO's background and first classes ("person" first; DeepLabCut does so for SSDLite and
starts Faster R-CNN's 2-class predictor afresh).

DeepLabCut's detector names (``detector_type``, :data:`DLC_DETECTORS`) build DeepLabCut's models:
the torchvision model sits at ``Detector.model`` exactly as in DeepLabCut's detector module, so
the state dicts' keys are the same (the key map is the identity), and it sees what DeepLabCut's
detectors see: images normalized with ImageNet's mean and std (DeepLabCut's inference transform),
which torchvision then normalizes again itself. Boxes are xyxy as torchvision gives them; the
top-down crops (:mod:`lightning_dlc.data.crops`) take them as DeepLabCut does.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from lightning_dlc.models.backbones.base import check_state_fits, read_state_dict

log = logging.getLogger(__name__)

# DeepLabCut's detector_type names -> the torchvision builder each wraps
DLC_DETECTORS = {"fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn_mobilenet_v3_large_fpn",
                 "fasterrcnn_resnet50_fpn_v2": "fasterrcnn_resnet50_fpn_v2",
                 "ssdlite": "ssdlite320_mobilenet_v3_large"}
# ours, not a DeepLabCut detector_type: torchvision's v1 Faster R-CNN, fed [0, 1] images once
OUR_DETECTORS = {"fasterrcnn_resnet50_fpn": "fasterrcnn_resnet50_fpn"}
BUILDERS = {**DLC_DETECTORS, **OUR_DETECTORS}
DETECTORS = tuple(BUILDERS)
FASTER_RCNN = tuple(n for n, b in BUILDERS.items() if b.startswith("fasterrcnn"))
SSD = tuple(n for n, b in BUILDERS.items() if b.startswith("ssdlite"))
LEGACY_NAMES = {"ssdlite320_mobilenet_v3_large": "ssdlite"}  # our earlier name, still read from old run configs
COCO_CLASSES = 91  # torchvision's COCO heads: background + 90 category ids
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # DeepLabCut's Normalize

HINT = ("set detector.model.pretrained=false to train the detector from scratch, or detector.model.weights=PATH to "
        "load a local checkpoint (e.g. torchvision's COCO file for this detector, downloaded elsewhere)")

# Keys of the class-scoring layers in torchvision's state dicts.
_FRCNN_CLS = "roi_heads.box_predictor.cls_score"
_FRCNN_BOX = "roi_heads.box_predictor.bbox_pred"
_SSD_CLS = "head.classification_head.module_list."
_SSD_REG = "head.regression_head.module_list."


def detector_pretrained_unavailable(name: str, cause: BaseException | None = None) -> RuntimeError:
    """The error for COCO weights that cannot be fetched; says what to do instead."""
    why = f" ({type(cause).__name__}: {str(cause)[:300]})" if cause is not None else ""
    return RuntimeError(f"Could not get the COCO weights of detector '{name}'{why}. To go on, {HINT}. "
                        f"torchvision caches them under $TORCH_HOME/hub/checkpoints ({torch.hub.get_dir()}).")


class Detector(nn.Module):
    """A torchvision detector with this project's box convention.

    ``forward(images, targets=None)``: ``images`` float ``[B, 3, H, W]`` in [0, 1] or a list of
    ``[3, H_i, W_i]`` (sizes may differ); with ``imagenet_input`` (DeepLabCut's detectors) they are
    normalized with ImageNet's mean and std before torchvision's own normalization, as DeepLabCut
    does. In training mode ``targets`` is a list of
    ``{"boxes": float[n, 4] xyxy, "labels": int64[n] in 1..n_classes}`` (n may be 0) and the
    result is torchvision's dict of losses. In eval mode the result is one
    ``{"boxes": [m, 4], "scores": [m], "labels": [m]}`` per image, m <= ``max_detections``,
    boxes in the input images' pixels.

    ``freeze_bn_stats``: keep BatchNorm layers in eval mode while training (their running
    statistics stay as loaded), as DeepLabCut's detector configs do.
    """

    def __init__(self, model: nn.Module, name: str, n_classes: int, max_detections: int,
                 freeze_bn_stats: bool = False, imagenet_input: bool = False):
        super().__init__()
        self.model, self.name, self.n_classes = model, name, int(n_classes)
        self.max_detections = int(max_detections)
        self.freeze_bn_stats = bool(freeze_bn_stats)
        self.imagenet_input = bool(imagenet_input)
        # frozen from the start: Lightning restores the modes it found before validating (its sanity check comes
        # before any train()), which would leave BatchNorm layers updating their statistics
        self.train()

    def train(self, mode: bool = True) -> Detector:
        super().train(mode)
        if mode and self.freeze_bn_stats:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images, targets: list[dict[str, torch.Tensor]] | None = None):
        images = list(images)
        for image in images:
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise ValueError(f"detector images must be float [3, H, W] in [0, 1], got {image.dtype} "
                                 f"{tuple(image.shape)}")
        if self.imagenet_input:
            mean = torch.tensor(IMAGENET_MEAN, device=images[0].device)[:, None, None]
            std = torch.tensor(IMAGENET_STD, device=images[0].device)[:, None, None]
            images = [(image - mean.to(image.dtype)) / std.to(image.dtype) for image in images]
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ValueError("training a detector needs one target dict (boxes, labels) per image")
            targets = [{"boxes": t["boxes"].float().reshape(-1, 4), "labels": t["labels"].long()} for t in targets]
            return self.model(images, targets)
        return self.model(images)


def _coco_weights(name: str):
    return torchvision.models.get_model_weights(BUILDERS[name]).COCO_V1


def _fetch_coco(name: str) -> None:
    """Make sure torchvision's COCO file for ``name`` is in the hub cache; a clear error if it cannot be."""
    url = _coco_weights(name).url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return
    try:  # downloads into the cache (hash checked), where torchvision's builder then finds it
        torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, map_location="cpu",
                                           weights_only=True)
    except Exception as error:  # network, proxy, hash and cache errors come in many types
        raise detector_pretrained_unavailable(name, error) from error


def _n_anchors(state: dict[str, torch.Tensor], level: str) -> int:
    return state[f"{_SSD_REG}{level}.1.weight"].shape[0] // 4


def _ssd_levels(state: dict[str, torch.Tensor]) -> list[str]:
    return sorted({k[len(_SSD_CLS):].split(".")[0] for k in state if k.startswith(_SSD_CLS)}, key=int)


def head_classes(state: dict[str, torch.Tensor]) -> int:
    """Number of classes (background included) a torchvision detector state dict scores."""
    if f"{_FRCNN_CLS}.weight" in state:
        return state[f"{_FRCNN_CLS}.weight"].shape[0]
    level = _ssd_levels(state)[0]
    return state[f"{_SSD_CLS}{level}.1.weight"].shape[0] // _n_anchors(state, level)


def keep_classes(state: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """A state dict whose class head keeps only its first ``n`` classes (background first).

    Faster R-CNN's rows are class-major (4 box rows per class); SSDLite's conv channels are
    anchor-major (``anchor * n_classes + class``), so each anchor keeps its first n classes.
    """
    state = dict(state)
    if f"{_FRCNN_CLS}.weight" in state:
        for key, rows in ((_FRCNN_CLS, 1), (_FRCNN_BOX, 4)):
            for part in ("weight", "bias"):
                state[f"{key}.{part}"] = state[f"{key}.{part}"][: n * rows].clone()
        return state
    for level in _ssd_levels(state):
        anchors = _n_anchors(state, level)
        for part in ("weight", "bias"):
            key = f"{_SSD_CLS}{level}.1.{part}"
            value = state[key]
            value = value.reshape(anchors, -1, *value.shape[1:])[:, :n]
            state[key] = value.reshape(-1, *value.shape[2:]).clone()
    return state


def _set_head_classes(model: nn.Module, name: str, n: int) -> None:
    """Replace the class head of a torchvision detector with a fresh one scoring ``n`` classes."""
    if name in FASTER_RCNN:
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, n)
        return
    head = model.head.classification_head
    anchors = model.anchor_generator.num_anchors_per_location()
    for block, a in zip(head.module_list, anchors):
        old = block[1]
        new = nn.Conv2d(old.in_channels, a * n, kernel_size=1)
        nn.init.normal_(new.weight, mean=0.0, std=0.03)  # torchvision's SSDLite head init
        nn.init.zeros_(new.bias)
        block[1] = new
    head.num_columns = n


def load_detector_weights(detector: Detector, path: str | Path) -> None:
    """Load a local checkpoint into ``detector``, strictly (read with ``weights_only=True``).

    Accepted: a :class:`Detector`'s or its torchvision model's state_dict, a Lightning checkpoint
    of :class:`~lightning_dlc.lit.detector.DetectorModule`, a DeepLabCut detector snapshot, and
    torchvision's COCO file for the same architecture (its 91-class head is cut down to the
    detector's classes, as ``pretrained=True`` does). Frozen and trainable BatchNorm layers hold
    the same statistics, so files from either load into both.
    """
    state = read_state_dict(path)
    own = detector.model.state_dict()
    candidates = [{k[len(p):]: v for k, v in state.items() if k.startswith(p)}
                  for p in ("", "model.", "detector.model.")]
    state = max(candidates, key=lambda s: len(s.keys() & own.keys()))
    wanted = detector.n_classes + 1
    try:
        file_classes = head_classes(state)
    except (KeyError, IndexError):
        file_classes = wanted  # no recognizable head: the key check below reports it
    if file_classes != wanted:
        if file_classes != COCO_CLASSES or wanted > COCO_CLASSES:
            raise RuntimeError(f"Weights in {path} score {file_classes - 1} classes but detector "
                               f"'{detector.name}' has n_classes={detector.n_classes}")
        state = keep_classes(state, wanted)
    for key, value in own.items():  # BatchNorm counters that frozen layers do not keep
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    check_state_fits(own, state, path, f"detector '{detector.name}'")
    detector.model.load_state_dict({k: state[k] for k in own})


def build_detector(
    name: str,
    n_classes: int = 1,
    pretrained: bool = True,
    weights: str | Path | None = None,
    box_score_threshold: float = 0.01,
    max_detections: int | None = None,
    nms_threshold: float | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    trainable_backbone_layers: int | None = None,
    freeze_bn_stats: bool | None = None,
    torchvision_kwargs: dict | None = None,
    imagenet_input: bool | None = None,
) -> Detector:
    """One of :data:`DETECTORS`, scoring ``n_classes`` kinds of animal (label 1..n_classes).

    Args:
        name: DeepLabCut's detector name (``fasterrcnn_mobilenet_v3_large_fpn``,
            ``fasterrcnn_resnet50_fpn_v2``, ``ssdlite``) or ours (``fasterrcnn_resnet50_fpn``).
        n_classes: object classes besides background (1: "animal").
        pretrained: start from torchvision's COCO weights (downloaded once into the torch hub
            cache); the class head keeps COCO's background and first ``n_classes`` classes.
            When they cannot be fetched: a RuntimeError saying to set ``detector.model.pretrained=false``
            or ``detector.model.weights=PATH``.
        weights: a local checkpoint (see :func:`load_detector_weights`); replaces the download.
        box_score_threshold: detections scoring less are dropped at inference (DeepLabCut: 0.01).
        max_detections: at most this many boxes per image at inference (None: torchvision's,
            as DeepLabCut: 100 for Faster R-CNN, 200 for SSDLite; the pose model then reads
            the best ``max_individuals`` of them).
        nms_threshold: IoU of non-maximum suppression between boxes (None: torchvision's).
        min_size, max_size: Faster R-CNN resizes each image so its short side is ``min_size``
            unless the long side would pass ``max_size`` (None: torchvision's, 800/1333, or
            320/640 for mobilenet). SSDLite resizes to a ``min_size`` square (default 320) and
            takes no ``max_size``.
        trainable_backbone_layers: backbone stages left trainable (None: torchvision's default).
        freeze_bn_stats: keep BatchNorm statistics fixed while training; None freezes them
            when starting from weights (COCO or a file) and not when training from scratch.
        torchvision_kwargs: further keyword arguments of the torchvision builder, e.g. Faster
            R-CNN's ``rpn_post_nms_top_n_test`` (fewer proposals: faster on a CPU).
        imagenet_input: normalize images with ImageNet's mean and std before torchvision does
            (None: as DeepLabCut for its names, not for ours).
    """
    name = LEGACY_NAMES.get(name, name)
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if int(n_classes) < 1 or int(n_classes) >= COCO_CLASSES:
        raise ValueError(f"detector n_classes must be in [1, {COCO_CLASSES - 1}], got {n_classes}")
    if max_detections is None:
        max_detections = 200 if name in SSD else 100  # torchvision's defaults
    if max_detections < 1:
        raise ValueError(f"detector max_detections must be >= 1, got {max_detections}")
    n_classes = int(n_classes)
    ssd = name in SSD
    if ssd and max_size is not None:
        raise ValueError("ssdlite (ssdlite320_mobilenet_v3_large) resizes every image to a min_size x min_size square; "
                         "leave detector max_size unset")
    kwargs: dict = {"trainable_backbone_layers": trainable_backbone_layers, **(torchvision_kwargs or {})}
    if ssd:
        kwargs.update(score_thresh=box_score_threshold, detections_per_img=max_detections)
        if nms_threshold is not None:
            kwargs["nms_thresh"] = nms_threshold
    else:
        kwargs.update(box_score_thresh=box_score_threshold, box_detections_per_img=max_detections)
        if nms_threshold is not None:
            kwargs["box_nms_thresh"] = nms_threshold
        kwargs.update({k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None})
    builder = getattr(torchvision.models.detection, BUILDERS[name])

    coco = pretrained and weights is None
    if coco:
        _fetch_coco(name)
        try:
            model = builder(weights=_coco_weights(name), weights_backbone=None, progress=False, **kwargs)
        except (TypeError, ValueError):
            raise
        except Exception as error:  # a cache file that cannot be read, a hash mismatch
            raise detector_pretrained_unavailable(name, error) from error
        state = keep_classes(model.state_dict(), n_classes + 1)
        _set_head_classes(model, name, n_classes + 1)
        model.load_state_dict(state)
    else:
        model = builder(weights=None, weights_backbone=None, num_classes=n_classes + 1, **kwargs)
    if ssd and min_size is not None:
        model.transform.fixed_size = (int(min_size), int(min_size))
        model.transform.min_size, model.transform.max_size = (int(min_size),), int(min_size)
    if freeze_bn_stats is None:
        freeze_bn_stats = pretrained or weights is not None
    if imagenet_input is None:
        imagenet_input = name in DLC_DETECTORS
    detector = Detector(model, name, n_classes, max_detections, freeze_bn_stats=freeze_bn_stats,
                        imagenet_input=imagenet_input)
    if weights is not None:
        load_detector_weights(detector, weights)
        log.info("detector %s: weights from %s", name, weights)
    return detector
