"""The DeepLabCut 3.0.2 defaults that our ``conf/`` does not hold, as one table.

``conf/model/<net_type>.yaml`` and ``conf/detector/<name>.yaml`` already describe DeepLabCut's
architectures (backbone, heads, crop sizes); what DeepLabCut writes beside them in a new
``pytorch_config.yaml`` (training schedule per family, augmentation, detector training, fixed head
fields) is listed here. :mod:`lightning_dlc.project.dlc_defaults` puts the two together;
tests/project/test_pytorch_config_peer.py checks the result against DeepLabCut for every net_type.
Plain data: nothing here builds anything.
"""
from __future__ import annotations

# ------------------------------------------------------------------ names
BACKBONES = ("cspnext_m", "cspnext_s", "cspnext_x", "hrnet_w18", "hrnet_w32", "hrnet_w48", "resnet_101", "resnet_50")
# net_types that are a whole model (their own head): bottom-up ("bu") or top-down ("td", needs a detector)
MODEL_METHODS = {"animaltokenpose_base": "td", "dekr_w18": "bu", "dekr_w32": "bu", "dekr_w48": "bu",
                 "dlcrnet_stride16_ms5": "bu", "dlcrnet_stride32_ms5": "bu",
                 "rtmpose_m": "td", "rtmpose_s": "td", "rtmpose_x": "td"}
LEGACY_ALIASES = {"dlcrnet_ms5": "dlcrnet_stride16_ms5"}
# detector_type -> DeepLabCut's detector class (FasterRCNN's variant is the detector_type)
DETECTOR_CLASSES = {"fasterrcnn_mobilenet_v3_large_fpn": "FasterRCNN", "fasterrcnn_resnet50_fpn_v2": "FasterRCNN",
                    "ssdlite": "SSDLite"}
# a full PAF graph of this many edges or more (15+ bodyparts) is pruned at random by DeepLabCut
PAF_PRUNE_FROM_EDGES = 105

# ------------------------------------------------------------------ backbones
RESNET_MODEL_NAMES = {"resnet50": "resnet50_gn", "resnet101": "resnet101"}  # with DeepLabCut's norm choice
CSPNEXT_FACTORS = {"s": (0.33, 0.5), "m": (0.67, 0.75), "x": (1.33, 1.25)}  # (deepen_factor, widen_factor)
CSPNEXT_STAGE4_CHANNELS = 1024  # times widen_factor
RESNET_CHANNELS = 2048
DLCRNET_CHANNELS = 2304  # its multi-scale fusion of ResNet-50 stages
DLCRNET_POSE_STRIDE = 8
HRNET_ALL_BRANCHES = 15  # concatenated branches are 1 + 2 + 4 + 8 times the HRNet width
AUTO_PADDING = {"pad_width_divisor": 32, "pad_height_divisor": 32}  # HRNet images padded to 32
AUTO_PADDING_SECTIONS = {"hrnet": ("inference", "train"), "dekr": ("inference",)}  # by family; not animaltokenpose

# ------------------------------------------------------------------ heads (fields conf/heads leaves implicit)
LOCREF_STD = 7.2801
HEATMAP_PREDICTOR = {"apply_sigmoid": False, "clip_scores": True}
HEAD_DECONV_KERNEL, HEAD_DECONV_STRIDE = 3, 2
LOSS_TYPES = {"mse": "WeightedMSECriterion", "bce": "WeightedBCECriterion"}
TARGET_TYPES = {"gaussian": "HeatmapGaussianGenerator", "plateau": "HeatmapPlateauGenerator"}
# in the backbone + PAF head only: DeepLabCut's dlcrnet_* defaults leave these out
PAF_PREDICTOR_FLAGS = {"apply_sigmoid": True, "clip_scores": False}
DEKR_BLOCKS = {"heatmap": 1, "offset": 2}
RTMPOSE_SIGMA = {256: 5.66, 288: 6.0, 384: 6.93}  # SimCC label sigma (bins) by input side
RTMPOSE_STRIDE = 32
RTMPOSE_HEAD = {
    "smoothing_type": "gaussian", "label_smooth_weight": 0.0, "normalize": False,
    "loss": {"type": "KLDiscreteLoss", "use_target_weight": True, "beta": 10.0, "label_softmax": True},
    "predictor": {"decode_beta": 150.0, "apply_softmax": True, "normalize_outputs": False},
    "final_layer_kernel_size": 7,
    "gau_cfg": {"hidden_dims": 256, "s": 128, "expansion_factor": 2, "dropout_rate": 0, "drop_path": 0.0,
                "act_fn": "SiLU", "use_rel_bias": False, "pos_enc": False},
}
# conf/model/animaltokenpose_base.yaml does not freeze the HRNet's BatchNorm statistics; DeepLabCut's default does
TOKENPOSE_BACKBONE = {"freeze_bn_stats": True}

# ------------------------------------------------------------------ training
def adamw(lr: float) -> dict:
    return {"type": "AdamW", "params": {"lr": lr}}


def lr_steps(lrs: list[float], milestones: list[int]) -> dict:
    """DeepLabCut's LRListScheduler: the learning rate becomes lrs[i] at epoch milestones[i]."""
    return {"type": "LRListScheduler", "params": {"lr_list": [[lr] for lr in lrs], "milestones": milestones}}


RUNNER = {"type": "PoseTrainingRunner", "gpus": None, "key_metric": "test.mAP", "key_metric_asc": True,
          "eval_interval": 10, "optimizer": adamw(1e-4), "scheduler": lr_steps([1e-5, 1e-6], [160, 190]),
          "snapshots": {"max_snapshots": 5, "save_epochs": 25, "save_optimizer_state": False}}
TRAIN_SETTINGS = {"batch_size": 8, "dataloader_workers": 0, "dataloader_pin_memory": False, "display_iters": 500,
                  "epochs": 200, "seed": 42}
_FASTER = {"runner": {"optimizer": adamw(5e-4), "scheduler": lr_steps([1e-4, 1e-5], [90, 120])}}
_RTMPOSE_EPOCHS = 400
# what each family (net_type up to its first "_") changes in RUNNER / TRAIN_SETTINGS; hrnet and
# animaltokenpose keep them
FAMILY_TRAINING = {
    "resnet": _FASTER, "cspnext": _FASTER, "dekr": _FASTER,
    "dlcrnet": {"runner": {"eval_interval": 25}},
    "rtmpose": {  # 5 warm-up epochs, cosine to 5e-5 over the first half, then constant
        "runner": {"optimizer": adamw(1e-3), "scheduler": {"type": "SequentialLR", "params": {
            "schedulers": [
                {"type": "LinearLR", "params": {"start_factor": 0.001, "end_factor": 1.0, "total_iters": 5}},
                {"type": "CosineAnnealingLR", "params": {"T_max": _RTMPOSE_EPOCHS // 2, "eta_min": 5e-5}},
                {"type": "LRListScheduler", "params": {"milestones": [0], "lr_list": [[5e-5]]}}],
            "milestones": [_RTMPOSE_EPOCHS // 2, _RTMPOSE_EPOCHS]}}},
        "train_settings": {"batch_size": 32, "dataloader_workers": 4, "dataloader_pin_memory": False,
                           "epochs": _RTMPOSE_EPOCHS}},
}

# ------------------------------------------------------------------ augmentation (data section)
BBOX_MARGIN = 20
TOP_DOWN_CROP = 256  # every top-down net_type, rtmpose_x too (its own 384 is overwritten by DeepLabCut's merge)
AFFINE = {"p": 0.5, "rotation": 30, "translation": 0}
BOTTOM_UP_SCALING, TOP_DOWN_SCALING = [0.5, 1.25], [1.0, 1.0]
CROP_SAMPLING = {"width": 448, "height": 448, "max_shift": 0.1, "method": "hybrid"}
GAUSSIAN_NOISE = 12.75
# RTMPose's box jitter besides conf/model's jitter_shift (shift_factor) and jitter_scale (scale_factor 1 +- it)
BBOX_JITTER_PROBABILITIES = {"shift_prob": 0.3, "scale_prob": 1.0, "p": 1.0}

# ------------------------------------------------------------------ detectors
DETECTOR_DATA = {
    "colormode": "RGB", "inference": {"normalize_images": True},
    "train": {"affine": {"p": 0.5, "rotation": 30, "scaling": [1.0, 1.0], "translation": 40},
              "collate": {"type": "ResizeFromDataSizeCollate", "min_scale": 0.4, "max_scale": 1.0,
                          "min_short_side": 128, "max_short_side": 1152, "multiple_of": 32, "to_square": False},
              "hflip": True, "normalize_images": True},
}
DETECTOR_RUNNER = {"type": "DetectorTrainingRunner", "key_metric": "test.mAP@50:95", "key_metric_asc": True,
                   "eval_interval": 10, "optimizer": adamw(1e-4), "scheduler": lr_steps([1e-5], [160]),
                   "snapshots": {"max_snapshots": 5, "save_epochs": 25, "save_optimizer_state": False}}
DETECTOR_TRAIN_SETTINGS = {"batch_size": 1, "dataloader_workers": 0, "dataloader_pin_memory": False,
                           "display_iters": 500, "epochs": 250}
DETECTOR_BATCH_SIZES = {"ssdlite": 16}  # others: DETECTOR_TRAIN_SETTINGS's
# box score threshold and boxes per image DeepLabCut's detectors find boxes with: torchvision's builders' values
# where DeepLabCut passes none (its SSDLite's box_score_thresh reaches no argument of torchvision's SSD)
DETECTOR_BOX_SCORE_THRESH = {"ssdlite": 0.001}  # others: the file's detector.model.box_score_thresh
BOX_SCORE_THRESH_FIELD = 0.01  # detector.model.box_score_thresh as DeepLabCut writes it (its config's default)
DETECTOR_MAX_DETECTIONS = {"ssdlite": 300, "fasterrcnn_mobilenet_v3_large_fpn": 100, "fasterrcnn_resnet50_fpn_v2": 100}

# ------------------------------------------------------------------ conditional top-down (method: ctd)
# conf/model/<net_type>.yaml builds each; no detector: the crops come from a bottom-up model's poses
CTD_NET_TYPES = ("ctd_coam_w32", "ctd_coam_w48", "ctd_coam_w48_human", "ctd_prenet_hrnet_w32", "ctd_prenet_hrnet_w48",
                 "ctd_prenet_rtmpose_m", "ctd_prenet_rtmpose_s", "ctd_prenet_rtmpose_x", "ctd_prenet_rtmpose_x_human")
CTD_KEYPOINT_ENCODER = "StackedKeypointEncoder"
CTD_COAM_FIELDS = {"pretrained": True, "freeze_bn_weights": False}  # HRNetCoAM's fields besides conf/model's
# the *_human net_types are made for CrowdPose's 14 keypoints: their generative sampling and crops
CTD_HUMAN = ("ctd_coam_w48_human", "ctd_prenet_rtmpose_x_human")
CTD_HUMAN_GEN_SAMPLING = {
    "keypoint_sigmas": [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.025,
                        0.025],
    "keypoints_symmetry": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]}
CTD_GEN_SAMPLING = {"keypoint_sigmas": 0.1}
# its RTMCC head's predictor names fewer fields than rtmpose_*'s (DeepLabCut's validation fills the same values)
CTD_RTMPOSE_PREDICTOR_LEFT_OUT = ("apply_softmax", "normalize_outputs")
# training of ctd_prenet_rtmpose_*; the HRNet ones keep RUNNER / TRAIN_SETTINGS
CTD_RTMPOSE_TRAINING = {"runner": {"optimizer": adamw(1e-5), "scheduler": lr_steps([1e-3, 1e-4, 1e-5], [5, 300, 360])},
                        "train_settings": {"batch_size": 32, "dataloader_workers": 4, "dataloader_pin_memory": False,
                                           "epochs": 400}}
# DeepLabCut's message for a ctd net_type without ctd_conditions (make_pose_config.build_pose_config_defaults)
CTD_NO_CONDITIONS = "A CTD conditions is required for conditional-top-down models."
