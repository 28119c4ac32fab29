"""The LightningModule for detectors: boxes from keypoints (or the labels), losses, box mAP/mAR."""
from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from lightning_dlc.data.crops import DEFAULT_MARGIN, label_boxes
from lightning_dlc.data.dataset import to_original_pixels
from lightning_dlc.evaluation.boxes import box_metrics
from lightning_dlc.lit.gather import gather_per_image
from lightning_dlc.lit.loss_check import check_finite_loss
from lightning_dlc.lit.schedulers import build_scheduler
from lightning_dlc.models.detectors import Detector

BOX_SOURCES = ("keypoints", "labels")


class DetectorModule(L.LightningModule):
    """Trains a :class:`~lightning_dlc.models.detectors.Detector` on PoseDataModule batches.

    Ground-truth boxes are each individual's labeled keypoints grown by ``margin`` pixels of the
    original image (DeepLabCut's ``bbox_margin``) and clipped to the image, or with
    ``boxes="labels"`` the batch's own ``boxes`` (e.g. COCO's). Every box is class 1 ("animal");
    images without any box train the background. Images reach the detector as float [0, 1]
    without their batch padding (torchvision normalizes and resizes them itself).

    Validation predicts boxes, maps them to original pixels, gathers them across processes and
    logs :func:`~lightning_dlc.evaluation.boxes.box_metrics` as ``test.bbox_mAP``,
    ``test.bbox_mAR`` (IoU 0.50:0.95, percent), ``test.bbox_mAP50`` and ``test.bbox_mAP75``.

    Args:
        detector: the detector.
        optimizer: factory ``params -> Optimizer`` (a Hydra partial); None: AdamW(lr=1e-4), as
            DeepLabCut's detector runner.
        scheduler: factory ``optimizer -> LRScheduler`` or None; stepped once per epoch.
        augment: ``(images, keypoints, unique) -> same`` for training batches (e.g.
            :class:`~lightning_dlc.data.augment.BatchAugment`); boxes are made from the moved
            keypoints, so it needs ``boxes="keypoints"``.
        margin: pixels around the keypoints (DeepLabCut's bbox_margin, 20).
        boxes: ``keypoints`` (keypoints + margin) or ``labels`` (the batch's ``boxes``).
        min_box_size: boxes narrower or lower than this many pixels are left out of training.
        run_config: the composed run config, stored in every checkpoint.
    """

    def __init__(self, detector: Detector, optimizer: Callable | None = None, scheduler: Callable | None = None,
                 augment: nn.Module | None = None, margin: float = DEFAULT_MARGIN, boxes: str = "keypoints",
                 min_box_size: float = 1.0, run_config: dict | None = None):
        super().__init__()
        if boxes not in BOX_SOURCES:
            raise ValueError(f"detector boxes must be one of {BOX_SOURCES}, got {boxes!r}")
        if augment is not None and boxes != "keypoints":
            raise ValueError("augmentation moves keypoints, not boxes: use boxes='keypoints' with augment")
        self.detector, self.augment = detector, augment
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.margin, self.box_source, self.min_box_size = float(margin), boxes, float(min_box_size)
        self.run_config = run_config
        self._val: list[dict[str, torch.Tensor]] = []

    # ---- boxes ---------------------------------------------------------------------------
    def target_boxes(self, batch: dict, keypoints: torch.Tensor | None = None,
                     sizes: torch.Tensor | None = None) -> torch.Tensor:
        """Ground-truth boxes ``[B, N, 4]`` in the batch's (resized) pixels, NaN where none."""
        if self.box_source == "labels":
            return batch["boxes"].float()
        keypoints = batch["keypoints"] if keypoints is None else keypoints
        sizes = batch["sizes"] if sizes is None else sizes
        return label_boxes(keypoints, sizes, batch["scale"], self.margin)

    def _targets(self, boxes: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        targets = []
        for image_boxes in boxes:
            keep = torch.isfinite(image_boxes).all(-1)
            keep &= ((image_boxes[:, 2:] - image_boxes[:, :2]) >= self.min_box_size).all(-1)
            kept = image_boxes[keep]
            targets.append({"boxes": kept, "labels": torch.ones(len(kept), dtype=torch.int64, device=kept.device)})
        return targets

    @staticmethod
    def _unpadded(images: torch.Tensor, sizes: torch.Tensor) -> list[torch.Tensor]:
        return [image[:, : int(h), : int(w)] for image, (h, w) in zip(images, sizes.tolist())]

    def forward(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
        """Detections for uint8 (or [0, 1] float) images ``[B, 3, H, W]``, each cut to ``sizes`` (h, w)."""
        if not images.is_floating_point():
            images = images.float() / 255
        return self.detector(self._unpadded(images, sizes) if sizes is not None else images)

    # ---- training ------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images = batch["image"].float() / 255
        if self.augment is not None:
            images, keypoints, _ = self.augment(images, batch["keypoints"], batch["unique_keypoints"])
            sizes = torch.tensor(images.shape[-2:], device=images.device).expand(images.shape[0], 2)
            boxes = self.target_boxes(batch, keypoints, sizes)
            inputs = list(images)
        else:
            boxes = self.target_boxes(batch)
            inputs = self._unpadded(images, batch["sizes"])
        losses = self.detector(inputs, self._targets(boxes))
        total = sum(losses.values())
        check_finite_loss(self, total, "the detector's training loss",
                          "lower the learning rate or check the labels for wild coordinates")
        batch_size = images.shape[0]
        self.log("train.loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        for name, value in losses.items():
            self.log(f"train.{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
        return total

    # ---- validation: box mAP / mAR ----------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        detections = self(batch["image"], batch["sizes"])
        scale = batch["scale"].to(torch.float32)
        n = self.detector.max_detections
        predicted = torch.full((len(detections), n, 5), float("nan"), device=scale.device)
        for i, found in enumerate(detections):
            m = min(len(found["boxes"]), n)
            predicted[i, :m, :4] = to_original_pixels(found["boxes"][:m].float(), scale[i])
            predicted[i, :m, 4] = found["scores"][:m].float()
        truth = to_original_pixels(self.target_boxes(batch), scale.view(-1, 1, 1).to(scale.device))
        self._val.append({"index": batch["index"], "predicted": predicted, "truth": truth.float()})

    def on_validation_epoch_end(self) -> None:
        gathered = gather_per_image(self, self._val)
        if gathered is None:
            return
        metrics = box_metrics(list(gathered["predicted"]), list(gathered["truth"]),
                              max_detections=self.detector.max_detections)
        for name in ("mAP", "mAR", "mAP50", "mAP75"):
            self.log(f"test.bbox_{name}", float(metrics[name]), sync_dist=False, rank_zero_only=False)

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            optimizer = torch.optim.AdamW(params, lr=1e-4)
        else:
            optimizer = self.optimizer_factory(params)
        scheduler = build_scheduler(self.scheduler_factory, optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ---- what a checkpoint carries besides weights ---------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # plain containers only, so checkpoints load with torch.load(weights_only=True)
        checkpoint["detector"] = {"name": self.detector.name, "n_classes": self.detector.n_classes}
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config
