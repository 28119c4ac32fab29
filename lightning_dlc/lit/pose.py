"""The LightningModule for pose models: loss on device-made targets, validation metrics, images."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict

import lightning as L
import numpy as np
import torch
from torch import nn

from lightning_dlc.data.dataset import to_original_pixels
from lightning_dlc.data.draw import heatmap_image, keypoint_image
from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.lit.gather import gather_per_image
from lightning_dlc.lit.loss_check import check_finite_loss
from lightning_dlc.lit.schedulers import build_scheduler
from lightning_dlc.lit.unlabeled import check_losses, fit_pca, unsupervised_losses
from lightning_dlc.data.ctd_conditions import GenerativeSampling
from lightning_dlc.models import ctd_crops
from lightning_dlc.models.ctd_crops import is_conditional
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.models.preprocess import MEAN, STD, normalize_images  # noqa: F401 (MEAN, STD re-exported)

log = logging.getLogger(__name__)


class PoseModule(L.LightningModule):
    """Trains a :class:`PoseModel`; evaluates it with :func:`compute_metrics` (the evaluation code path).

    Batches (from :class:`~lightning_dlc.data.datamodule.PoseDataModule`) hold ``image`` uint8
    ``[B, 3, H, W]``, ``keypoints`` ``[B, N, K, 3]``, ``unique_keypoints`` ``[B, U, 3]``,
    ``index``, ``scale``. Augmentation and targets run on the batch's device.

    Args:
        model: the pose model (already fitted to the project's metadata).
        optimizer: factory ``params -> Optimizer`` (a Hydra partial).
        scheduler: factory ``optimizer -> LRScheduler`` or None; stepped once per epoch.
        augment: module ``(images, keypoints, unique) -> same`` for training batches, or None.
        pcutoff: score threshold for ``rmse_pcutoff`` (config.yaml's ``pcutoff``).
        oks_sigma: keypoint sigma of the OKS behind mAP/mAR.
        image_log_interval: log input/target/prediction images every this many validations' epochs.
        channels_last: run the model in channels-last memory format (faster convs on CPU and GPU).
        load_scheduler_state: on resume, restore the scheduler from the checkpoint; False keeps
            the configured schedule (and learning rate) as if it had run from epoch 1.
        run_config: the composed run config, stored in every snapshot (to rebuild the model).
        unsupervised_losses: the ``losses`` group's modules by name, on unlabeled frames: a batch
            ``{"labeled": <batch>, "unlabeled": {"images", "frame_index", "video_index"}}`` adds
            each loss times its weight to the supervised loss (curves ``train.loss_<name>``).
        gen_sampling: conditional top-down (CTD) models: how conditions are synthesized from the labels
            (DeepLabCut's generative sampling; its defaults when None).
    """

    def __init__(self, model: PoseModel, optimizer: Callable, scheduler: Callable | None = None,
                 augment: nn.Module | None = None, pcutoff: float = 0.6, oks_sigma: float = 0.1,
                 image_log_interval: int = 10, channels_last: bool = False,
                 load_scheduler_state: bool = True, run_config: dict | None = None,
                 unsupervised_losses: Mapping[str, nn.Module] | None = None,
                 gen_sampling: GenerativeSampling | None = None):
        super().__init__()
        self.gen_sampling = gen_sampling or GenerativeSampling()  # CTD models: how training conditions are made
        self.model, self.augment = model, augment
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.pcutoff, self.oks_sigma = pcutoff, oks_sigma
        self.image_log_interval, self.channels_last = image_log_interval, channels_last
        self.load_scheduler_state, self.run_config = load_scheduler_state, run_config
        self._val: list[dict[str, torch.Tensor]] = []
        self._configured_lrs: list[float] = []
        self._replace_scheduler = False
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # no weights and no persistent buffers: a semi-supervised snapshot is an ordinary snapshot
        self.unsupervised_losses = nn.ModuleDict(dict(unsupervised_losses or {}))
        if self.unsupervised_losses:
            check_losses(model, self.unsupervised_losses)
        self._warned_no_unlabeled = False

    # ---- shared steps -------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> normalized float input (the one normalization inference uses too)."""
        return normalize_images(images, self.channels_last)

    def forward(self, images: torch.Tensor) -> dict:
        return self.model(self.prepare(images))

    # ---- training -----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        fit_pca(self.unsupervised_losses, self.trainer.datamodule)  # the training split's labels only

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        unlabeled = batch.get("unlabeled") if "labeled" in batch else None
        batch = batch["labeled"] if "labeled" in batch else batch
        top_down = self.model.top_down
        conditions = None
        if top_down is not None and is_conditional(self.model):  # CTD: crops around synthesized conditions
            crops, conditions = ctd_crops.training_crops(top_down, batch["image"], batch["keypoints"], batch["sizes"],
                                                         batch["scale"], self.gen_sampling)
        elif top_down is not None:  # one jittered crop per labeled animal, cropped from the raw images
            crops = top_down.training_crops(batch["image"], batch["keypoints"], batch["sizes"], batch["scale"])
        if top_down is not None:
            if not len(crops.images):
                return None  # no animal in this batch: nothing to learn, the step is skipped
            images, keypoints = crops.images.float() / 255, crops.keypoints
            unique = keypoints.new_zeros((len(images), 0, 3))
            identities = crops.individual  # identity: true: the crop's individual is the animal it shows
        else:
            images = batch["image"].float() / 255
            keypoints, unique = batch["keypoints"], batch["unique_keypoints"]
            identities = None
        if self.augment is not None and conditions is not None:  # conditions move with the image: a 2nd animal
            images, both, unique = self.augment(images, torch.cat([keypoints, conditions[:, None]], 1), unique)
            keypoints, conditions = both[:, :1], ctd_crops.missing_as_nan(both[:, 1])
        elif self.augment is not None:
            images, keypoints, unique = self.augment(images, keypoints, unique)
        outputs = (self.model(self.prepare(images)) if conditions is None else
                   self.model(self.prepare(images), conditions=conditions))
        losses = self.model.loss(outputs, keypoints, unique, identities)
        total = losses["total"] + self._unsupervised(unlabeled)
        check_finite_loss(self, total, "the training loss", "lower optimizer.lr, check the labels for wild "
                          "coordinates, or train in full precision (trainer.precision=32-true)")
        batch_size = images.shape[0]
        self.log("train.loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        for name, value in losses.items():
            if name != "total":
                self.log(f"train.{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
        return total

    def _unsupervised(self, unlabeled: dict | None) -> torch.Tensor | float:
        """The weighted sum of the unsupervised losses on the unlabeled frames, each logged on its own."""
        if not self.unsupervised_losses:
            return 0.0
        if unlabeled is None:
            if not self._warned_no_unlabeled:
                log.warning("losses=%s need unlabeled video (unlabeled.videos=[...]); training on labels only",
                            list(self.unsupervised_losses))
                self._warned_no_unlabeled = True
            return 0.0
        values, measures = unsupervised_losses(self.model, self.unsupervised_losses, unlabeled, self.channels_last)
        batch_size = unlabeled["images"].shape[0]
        for name, value in values.items():
            self.log(f"train.loss_{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
        for name, value in measures.items():  # what the keypoint losses judge, in pixels
            self.log(f"train.{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
        return sum(self.unsupervised_losses[name].weight_at(self.current_epoch) * value
                   for name, value in values.items())

    # ---- validation: predictions gathered, then the evaluation metrics ---------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        top_down = self.model.top_down
        if top_down is not None and is_conditional(self.model):
            # CTD: conditions synthesized from the labels, as DeepLabCut's validation set makes them; the same
            # draws every epoch (seeded by the batch), so the curves compare epochs
            with torch.random.fork_rng(devices=[batch["image"].device] if batch["image"].is_cuda else []):
                torch.manual_seed(batch_idx)
                conditions = ctd_crops.synthetic_conditions(top_down, batch["keypoints"], batch["sizes"],
                                                            batch["scale"], self.gen_sampling)
            predicted = ctd_crops.predict(self.model, batch["image"], conditions, self.channels_last,
                                          scale=batch["scale"])
            outputs = None
        elif top_down is not None:  # crops at the labeled animals' boxes, as DeepLabCut validates top-down models
            boxes = top_down.label_boxes(batch["keypoints"], batch["sizes"], batch["scale"])
            predicted = top_down.predict(self.model, batch["image"], boxes, batch["keypoints"].shape[1],
                                         self.channels_last)
            outputs = None
        else:
            outputs = self(batch["image"])
            predicted = self.model.predict(outputs)["bodypart"]  # [B, N, K, 3] input pixels
        scale = batch["scale"].to(predicted.dtype).view(-1, 1, 1, 1)

        def original(points: torch.Tensor) -> torch.Tensor:  # back to the original image's pixels
            return torch.cat([to_original_pixels(points[..., :2], scale), points[..., 2:]], -1).float()

        self._val.append({"index": batch["index"], "predicted": original(predicted),
                          "truth": original(batch["keypoints"])})
        if batch_idx == 0 and self._log_images_now():
            self._log_images(batch, outputs, predicted)

    def on_validation_epoch_end(self) -> None:
        gathered = gather_per_image(self, self._val)
        if gathered is None:
            return
        metrics = compute_metrics(gathered["predicted"], gathered["truth"], pcutoff=self.pcutoff,
                                  oks_sigma=self.oks_sigma, single_animal=not self.model.meta.multianimal)
        for name in ("rmse", "rmse_pcutoff", "mAP", "mAR"):
            if name in metrics:
                value = float(metrics[name])
                self.log(f"test.{name}", value if np.isfinite(value) else float("nan"), sync_dist=False,
                         rank_zero_only=False)

    # ---- images for TensorBoard ------------------------------------------------------------
    def _log_images_now(self) -> bool:
        experiment = getattr(self.logger, "experiment", None)
        interval = max(self.image_log_interval, 1)
        return (hasattr(experiment, "add_image") and not self.trainer.sanity_checking
                and (self.current_epoch + 1) % interval == 0)

    def _log_images(self, batch: dict, outputs: dict | None, predicted: torch.Tensor) -> None:
        """The first image of the batch: predictions (input pixels, as drawn) and heatmaps."""
        experiment, step = self.logger.experiment, self.current_epoch + 1
        image = batch["image"][0]
        experiment.add_image("val/predictions", keypoint_image(image, predicted[0], batch["keypoints"][0]), step)
        if outputs is None:  # top-down: heatmaps are per crop
            return
        head = self.model.heads["bodypart"]
        bodypart_outputs = outputs["bodypart"]
        if "heatmap" in bodypart_outputs:
            targets = head.targets(batch["keypoints"][:1].float(), {k: v[:1] for k, v in bodypart_outputs.items()})
            experiment.add_image("val/target_heatmaps", heatmap_image(image, targets["heatmap"][0]), step)
            probs = head.probabilities({k: v[:1] for k, v in bodypart_outputs.items()})
            experiment.add_image("val/predicted_heatmaps", heatmap_image(image, probs[0]), step)

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        self._configured_lrs = [group["lr"] for group in optimizer.param_groups]
        scheduler = build_scheduler(self.scheduler_factory, optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_train_start(self) -> None:
        if not self._replace_scheduler:
            return
        # resumed with load_scheduler_state=false: the configured schedule, advanced to this epoch
        for config in self.trainer.lr_scheduler_configs:
            optimizer = config.scheduler.optimizer
            for group, lr in zip(optimizer.param_groups, self._configured_lrs):
                group["lr"] = lr
                group.pop("initial_lr", None)
            config.scheduler = build_scheduler(self.scheduler_factory, optimizer)
            with warnings.catch_warnings():  # "step() before optimizer.step()": intended here
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(self.current_epoch):
                    config.scheduler.step()
        log.info("resumed at epoch %d with the configured schedule (resume.load_scheduler_state=false)",
                 self.current_epoch + 1)

    # ---- what a snapshot carries besides weights ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # plain containers only, so snapshots load with torch.load(weights_only=True)
        checkpoint["project_meta"] = {k: [list(e) for e in v] if k == "skeleton" else
                                      list(v) if isinstance(v, tuple) else v
                                      for k, v in asdict(self.model.meta).items()}
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if not self.load_scheduler_state and checkpoint.get("lr_schedulers"):
            checkpoint["lr_schedulers"] = []  # Lightning restores none; on_train_start rebuilds them
            self._replace_scheduler = True
