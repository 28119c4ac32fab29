"""Batched prediction with a trained snapshot: model from the snapshot, images in, keypoints in original pixels out.

Evaluation uses it on labeled images; the :class:`~lightning_dlc.inference.predictor.Predictor`
of video and image analysis calls :func:`predict_batch`. The model is
rebuilt from what every snapshot carries (``run_config["model"]`` and ``project_meta``),
so no Hydra config files or project are needed (a DeepLabCut ``.pt`` gets them from the
``pytorch_config.yaml`` beside it: :mod:`lightning_dlc.models.dlc_model_folder`), and snapshots are read with
``torch.load(weights_only=True)`` (tensors and plain containers only: no code runs).

Images are normalized by :func:`lightning_dlc.models.preprocess.normalize_images`, the
function training uses.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dlc.data.dataset import collate_pose, to_original_pixels
from lightning_dlc.inference.devices import resolve_device
from lightning_dlc.inference.malloc import cpu_micro_batch
from lightning_dlc.models.backbones.base import check_state_fits
from lightning_dlc.models.ctd_crops import is_conditional, require_conditions
from lightning_dlc.models.ctd_crops import predict as ctd_predict
from lightning_dlc.models.detectors import Detector
from lightning_dlc.models.snapshot_files import load_snapshot
from lightning_dlc.models.pose_model import PoseModel, model_from_config
from lightning_dlc.models.preprocess import normalize_images, run_network
from lightning_dlc.project.records import ProjectMeta

__all__ = ["detect_boxes", "load_detector", "load_model", "predict_batch", "predict_dataset", "snapshot_meta"]


def snapshot_meta(snapshot: Mapping) -> ProjectMeta:
    """The project metadata a snapshot was trained with."""
    meta = snapshot["project_meta"]
    return ProjectMeta(
        bodyparts=tuple(meta["bodyparts"]),
        individuals=tuple(meta["individuals"]),
        unique_bodyparts=tuple(meta.get("unique_bodyparts") or ()),
        skeleton=tuple(tuple(edge) for edge in meta.get("skeleton") or ()),
        identity=bool(meta.get("identity", False)),
    )


def _no_downloads(node):
    """A copy of a model config whose backbones start empty: the snapshot's weights replace them anyway."""
    if isinstance(node, Mapping):
        out = {k: _no_downloads(v) for k, v in node.items()}
        if "pretrained" in out:
            out["pretrained"] = False
            if "weights" in out:
                out["weights"] = None
        return out
    if isinstance(node, list):
        return [_no_downloads(v) for v in node]
    return node


def load_model(snapshot: str | Path | Mapping, device: str | torch.device | None = "cpu") -> PoseModel:
    """The :class:`PoseModel` of a snapshot (a path, or what :func:`load_snapshot` returned), in eval mode.

    Ours (``.ckpt``) or DeepLabCut's (``.pt`` beside its ``pytorch_config.yaml``). Raises ValueError
    naming what is missing for a file that is not a snapshot, RuntimeError naming the keys whose
    shapes do not fit the model its config describes.
    """
    where = str(snapshot) if not isinstance(snapshot, Mapping) else "snapshot"
    if not isinstance(snapshot, Mapping):
        snapshot = load_snapshot(snapshot)
    missing = [k for k in ("state_dict", "run_config", "project_meta") if k not in snapshot]
    if missing or "model" not in (snapshot.get("run_config") or {}):
        raise ValueError(f"{where}: not a lightning_dlc snapshot (missing {missing or ['run_config.model']}); "
                         "snapshots written by lightning-dlc train or api.train_network carry them")
    from omegaconf import OmegaConf

    # the snapshot's weights replace any a fine-tuned run started from
    cfg_model = OmegaConf.create({**_no_downloads(snapshot["run_config"]["model"]), "weights": None})
    model = model_from_config(cfg_model, snapshot_meta(snapshot))
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in snapshot["state_dict"].items() if k.startswith(prefix)}
    check_state_fits(model.state_dict(), state, where, f"the {snapshot['run_config'].get('net_type') or 'model'} "
                                                      "its config describes")
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


def load_detector(snapshot: str | Path, device: str | torch.device | None = "cpu") -> Detector:
    """The detector of a top-down run's ``snapshot-detector-NNN.ckpt`` (or DeepLabCut's ``.pt``), in eval mode."""
    header = load_snapshot(snapshot)
    detector_cfg = ((header.get("run_config") or {}).get("detector") or {}).get("model")
    if "state_dict" not in header or not detector_cfg:
        raise ValueError(f"{snapshot}: not a lightning_dlc detector snapshot (no run_config.detector.model); "
                         "detector snapshots are the snapshot-detector-NNN.ckpt (.pt) files of a top-down run")
    from hydra.utils import instantiate

    # built empty, then the snapshot's weights (build_detector's loader matches BatchNorm layouts)
    detector = instantiate({**_no_downloads(detector_cfg), "weights": str(snapshot)})
    return detector.to(resolve_device(device)).eval()


@torch.no_grad()
def detect_boxes(detector: Detector, images: torch.Tensor, max_boxes: int, min_score: float = 0.0) -> torch.Tensor:
    """The ``max_boxes`` highest-scoring boxes per image scoring at least ``min_score``: ``[B, max_boxes, 5]``
    (xyxy in the images' pixels, score), NaN rows where fewer were found. ``images``: uint8 ``[B, 3, H, W]``."""
    x = images.float() / 255 if not images.is_floating_point() else images.float()
    weights = next(detector.parameters(), None) if isinstance(detector, torch.nn.Module) else None
    found = detector(list(x.to(weights.device if weights is not None else x.device)))  # else: an ONNX runner
    out = torch.full((len(found), max_boxes, 5), float("nan"), device=images.device)
    for i, image_found in enumerate(found):
        keep = image_found["scores"] >= min_score
        scores, order = image_found["scores"][keep].sort(descending=True)
        chosen = order[:max_boxes]
        out[i, : len(chosen), :4] = image_found["boxes"][keep][chosen].to(out)
        out[i, : len(chosen), 4] = scores[: len(chosen)].to(out)
    return out


@torch.no_grad()
def predict_batch(model: PoseModel, images: torch.Tensor, scale: torch.Tensor | float = 1.0,
                  channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                  boxes: torch.Tensor | None = None, micro_batch: int | None = None,
                  crop_features=None, net=None, conditions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One batch of uint8 ``[B, 3, H, W]`` images -> predictions in the original images' pixels.

    ``scale`` is the factor the images were resized by (per image or one number; 1 = as read).
    ``autocast_dtype`` (``torch.bfloat16``, ``torch.float16``): run the network under autocast in
    that precision; its outputs are decoded (peaks, assembly) in float32.
    A top-down model (``model.top_down``) reads one crop per box of ``boxes [B, N, 4]`` (xyxy in
    the pixels of ``images``, NaN rows = no animal; from a detector or the user); ``micro_batch``: images
    (top-down: crops) per network call (None: all); row n of the output is box n, or with an identity head identity n; ``crop_features``:
    see :meth:`~lightning_dlc.models.top_down.TopDown.predict_all` (``features`` then in the output).
    ``net`` (default ``model``): what maps normalized images to head outputs (``model``'s ``torch.compile``
    wrapper, an :class:`~lightning_dlc.inference.onnx_runner.OnnxNetwork`); ``model`` decodes them.
    A conditional top-down (CTD) model refines ``conditions [B, N, K, 3]`` (proposed poses in the pixels of
    ``images``; :func:`lightning_dlc.models.ctd_crops.predict`) instead of reading boxes.
    Returns ``bodypart`` ``[B, N, K, 3]`` (x, y, score), ``unique_bodypart`` ``[B, U, 3]`` (U = 0
    without unique bodyparts; NaN where the model has no head for them) and, with an identity head, ``identity`` ``[B, N, n_identities]``;
    float32 tensors on the model's device. Missing keypoints are NaN.
    """
    device = next(model.parameters()).device
    images = images.to(device, non_blocking=True)
    top_down = getattr(model, "top_down", None)
    if is_conditional(model):
        if conditions is None:
            require_conditions(model, None)
        predicted = {"bodypart": ctd_predict(model, images, conditions, channels_last, autocast_dtype, micro_batch,
                                             net, scale=scale)}
    elif top_down is not None:
        if boxes is None:
            raise ValueError("a top-down model needs boxes: a detector's (Predictor with detector=) or the user's")
        predicted = top_down.predict_all(model, images, boxes, model.meta.max_individuals, channels_last,
                                         autocast_dtype, micro_batch, net, crop_features=crop_features)
    else:
        net = net if net is not None else model
        step = micro_batch if micro_batch and micro_batch < len(images) else max(len(images), 1)
        parts = [model.predict(run_network(net, normalize_images(images[i: i + step], channels_last), autocast_dtype))
                 for i in range(0, max(len(images), 1), step)]
        predicted = parts[0] if len(parts) == 1 else {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    scale = torch.as_tensor(scale, dtype=torch.float32, device=device).reshape(-1, 1, 1)

    def original(points: torch.Tensor) -> torch.Tensor:  # [B, M, K, 3]
        points = points.float()
        s = scale.view(-1, 1, 1, 1)
        return torch.cat([to_original_pixels(points[..., :2], s), points[..., 2:3]], -1)

    out = {"bodypart": original(predicted["bodypart"])}
    b = out["bodypart"].shape[0]
    if "unique_bodypart" in predicted:
        out["unique_bodypart"] = original(predicted["unique_bodypart"])[:, 0]
    else:
        # none learned (top-down models read crops of one animal): NaN, in the project's shape
        out["unique_bodypart"] = out["bodypart"].new_full((b, len(model.meta.unique_bodyparts), 3), float("nan"))
    if "identity" in predicted:
        out["identity"] = predicted["identity"].float()
    if "features" in predicted:
        out["features"] = predicted["features"]
    return out


def predict_dataset(model: PoseModel, dataset: Dataset, batch_size: int = 8,
                    device: str | torch.device | None = None, num_workers: int = 0, pad_multiple: int = 32,
                    channels_last: bool = False, detector: Detector | None = None,
                    box_threshold: float = 0.5, autocast_dtype: torch.dtype | None = None,
                    micro_batch: int | str | None = None, conditions=None, net=None) -> dict[str, np.ndarray]:
    """Predict every item of a :class:`~lightning_dlc.data.dataset.PoseDataset` (or any dataset of its items).

    ``device``: where to run (None: where the model is; ``auto``: CUDA if available). Returns numpy
    float32 arrays in the dataset's order, in original image pixels: ``bodypart``
    ``[n_images, N, K, 3]``, ``unique_bodypart`` ``[n_images, U, 3]`` and, with an identity head,
    ``identity`` ``[n_images, N, n_identities]``. A top-down model reads the crops of the
    ``detector``'s boxes (scoring at least ``box_threshold``), or without a detector those of the
    labeled animals (keypoints + the model's margin), as its validation during training does.
    ``autocast_dtype``: as :func:`predict_batch`. ``micro_batch``: images (top-down: crops) per network call;
    ``auto``: on the CPU :func:`~lightning_dlc.inference.malloc.cpu_micro_batch` (call
    :func:`~lightning_dlc.inference.malloc.tune_malloc` first), elsewhere the whole batch. ``conditions``
    (CTD models): ``batch -> [B, N, K, 3]`` proposed poses in the batch's pixels
    (:func:`lightning_dlc.inference.ctd.dataset_conditions`). ``net``: as :func:`predict_batch` (an
    :class:`~lightning_dlc.inference.onnx_runner.OnnxNetwork` runs the network, ``model`` decodes).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if device is not None:
        model = model.to(resolve_device(device))
    was_training = model.training
    model.eval()
    meta = model.meta
    n = len(dataset)
    out = {"bodypart": np.full((n, meta.max_individuals, len(meta.bodyparts), 3), np.nan, np.float32),
           "unique_bodypart": np.full((n, len(meta.unique_bodyparts), 3), np.nan, np.float32)}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=functools.partial(collate_pose, pad_multiple=pad_multiple))
    try:
        for batch in loader:
            boxes = None
            if is_conditional(model):
                pass  # crops around the conditions
            elif model.top_down is not None and detector is not None:
                boxes = detect_boxes(detector, batch["image"], meta.max_individuals, box_threshold)[..., :4]
            elif model.top_down is not None:
                boxes = model.top_down.label_boxes(batch["keypoints"], batch["sizes"], batch["scale"])
            images, micro = batch["image"], micro_batch
            if micro == "auto":
                micro = cpu_micro_batch(*images.shape[-2:], autocast_dtype is not None) \
                    if next(model.parameters()).device.type == "cpu" else None
            predicted = predict_batch(model, images, batch["scale"], channels_last, autocast_dtype, boxes=boxes,
                                      micro_batch=micro, conditions=conditions(batch) if conditions else None,
                                      net=net)
            index = batch["index"].numpy()
            for key, value in predicted.items():
                value = value.cpu().numpy()
                if key not in out:
                    out[key] = np.full((n, *value.shape[1:]), np.nan, np.float32)
                out[key][index] = value
    finally:
        model.train(was_training)
    return out
