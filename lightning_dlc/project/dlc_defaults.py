"""DeepLabCut 3.0.2's default ``pytorch_config.yaml`` for a net_type, as its ``PoseConfig.build`` writes it.

Built from two sources: the architecture as our ``conf/model/<net_type>.yaml`` (with its
``conf/heads`` set) and ``conf/detector/<name>.yaml`` describe it (they build DeepLabCut's models
layer for layer), and :mod:`lightning_dlc.project.dlc_defaults_table` for what DeepLabCut writes
beside the architecture (training schedule, augmentation, detector training, fixed head fields).
The result equals DeepLabCut's defaults field by field (tests/project/test_pytorch_config_peer.py),
so the files we write are DeepLabCut's and a DeepLabCut file can be compared with its net_type's
defaults key by key. Plain dicts and YAML: no torch, no Hydra.
"""
from __future__ import annotations

import copy
from pathlib import Path

from ruamel.yaml import YAML

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.project import dlc_defaults_table as table
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import ProjectMeta

BACKBONES = table.BACKBONES
DETECTORS = tuple(sorted(table.DETECTOR_CLASSES))
OTHER_NET_TYPES = tuple(sorted(table.MODEL_METHODS))
# every name DeepLabCut 3.0.2 accepts as net_type but the conditional top-down ones (CTD_NET_TYPES, method: ctd:
# pose_config_defaults builds them too; split_net_type and pytorch_config_from_run do not take them)
NET_TYPES = tuple(sorted({*BACKBONES, *(f"top_down_{b}" for b in BACKBONES), *OTHER_NET_TYPES}))
CTD_NET_TYPES = table.CTD_NET_TYPES
LEGACY_ALIASES = table.LEGACY_ALIASES
TOP_DOWN_PREFIX = "top_down_"
PAF_PRUNE_FROM_EDGES = table.PAF_PRUNE_FROM_EDGES


def to_plain(value):
    """Plain dicts and lists (ruamel's commented containers and tuples become dict / list)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def split_net_type(net_type: str, source: str | Path = "net_type") -> tuple[str, bool]:
    """DeepLabCut's canonical net_type and whether it names a top-down model (``top_down_`` prefix,
    or a top-down model such as ``rtmpose_s``); an unknown name is a ProjectError."""
    name = LEGACY_ALIASES.get(str(net_type), str(net_type))
    prefixed = name.startswith(TOP_DOWN_PREFIX)
    base = name.removeprefix(TOP_DOWN_PREFIX)
    if base not in BACKBONES and (prefixed or base not in OTHER_NET_TYPES):
        raise ProjectError(source, f"net_type {net_type!r} is not one of DeepLabCut 3.0.2's net_types we build: "
                                   f"{', '.join(NET_TYPES)}")
    return base, prefixed if base in BACKBONES else table.MODEL_METHODS[base] == "td"


def full_paf_graph(n_bodyparts: int) -> list[list[int]]:
    return [[i, j] for i in range(n_bodyparts) for j in range(i + 1, n_bodyparts)]


# --------------------------------------------------------------------------- our conf/
def _read_conf(relative: str) -> dict:
    """A conf/ file as Hydra composes it: the parts its ``defaults`` list names (another group's option,
    ``/heads@heads: top_down``, or a file beside it, ``common/train@train``) and its own values, in the
    list's order (its own last where the list does not say)."""
    path = CONF_DIR / relative
    if not path.is_file():
        raise ProjectError(path, "missing: DeepLabCut's defaults are built from this conf/ file")
    with open(path, encoding="utf-8") as stream:
        node = to_plain(YAML(typ="safe").load(stream) or {})
    entries = node.pop("defaults", None) or []
    out: dict = {}
    for entry in entries if "_self_" in entries else [*entries, "_self_"]:
        if entry == "_self_":
            out = _overlay(out, node)
            continue
        name, option = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
        name, _, key = name.partition("@")
        where = name[1:] if name.startswith("/") else f"{Path(relative).parent.as_posix()}/{name}"
        part = _read_conf(f"{where}/{option}.yaml" if option else f"{where}.yaml")
        out = _overlay(out, {key: part} if key and key != "_here_" else part)
    return out


def _overlay(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _overlay(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def model_conf(name: str) -> dict:
    """``conf/model/<name>.yaml`` with the parts it chooses (``/heads@heads``, ``/top_down@top_down``)."""
    return _read_conf(f"model/{name}.yaml")


# --------------------------------------------------------------------------- model section
def _whole(value):
    """17.0 -> 17: DeepLabCut writes whole numbers of its defaults as integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _backbone(backbone: dict) -> tuple[dict, int]:
    """DeepLabCut's backbone section for our conf/model backbone, and its output channels."""
    kind, variant = backbone["_target_"].rsplit(".", 1)[1], backbone.get("variant")
    freeze = {"freeze_bn_stats": bool(backbone.get("freeze_bn_stats", False)),
              "freeze_bn_weights": bool(backbone.get("freeze_bn_weights", False))}
    if kind == "ResNet":
        return ({"type": kind, "model_name": table.RESNET_MODEL_NAMES[variant],
                 "output_stride": backbone["output_stride"], **freeze}, table.RESNET_CHANNELS)
    if kind == "HRNet":
        interpolate = bool(backbone.get("interpolate_branches", False))
        width = int(variant.removeprefix("w"))
        return ({"type": kind, "model_name": f"hrnet_{variant}", **freeze, "interpolate_branches": interpolate,
                 "increased_channel_count": bool(backbone.get("increased_channel_count", False))},
                width * (table.HRNET_ALL_BRANCHES if interpolate else 1))
    if kind == "CSPNeXt":
        deepen, widen = table.CSPNEXT_FACTORS[variant]
        return ({"type": kind, "model_name": f"cspnext_{variant}", **freeze, "deepen_factor": deepen,
                 "widen_factor": widen}, int(table.CSPNEXT_STAGE4_CHANNELS * widen))
    if kind == "DLCRNet":  # DeepLabCut names its ImageNet start in the file
        return ({"type": kind, "model_name": "resnet50", "pretrained": True,
                 "output_stride": backbone["output_stride"]}, table.DLCRNET_CHANNELS)
    raise ValueError(f"backbone {backbone['_target_']} is not one of DeepLabCut's")


def _maps(channels: int, out: int, hidden: list | tuple = (), final_conv: bool = False) -> dict:
    """A head's map branch: 3x3 stride-2 deconvolutions through ``hidden`` widths, or one 1x1 conv."""
    if final_conv:
        return {"channels": [channels], "kernel_size": [], "strides": [],
                "final_conv": {"out_channels": out, "kernel_size": 1}}
    n = len(hidden) + 1
    return {"channels": [channels, *hidden, out], "kernel_size": [table.HEAD_DECONV_KERNEL] * n,
            "strides": [table.HEAD_DECONV_STRIDE] * n}


def _heatmap_head(head: dict, n_maps: int, channels: int) -> dict:
    """DeepLabCut's HeatmapHead for our conf/heads heatmap head (bottom-up, top-down, unique bodyparts)."""
    if head["n_upsample"] != (0 if head.get("final_conv") else 1):
        raise ValueError(f"heatmap head {head} is not one of DeepLabCut's (one deconvolution, or a final 1x1 conv)")
    locref, masking, final_conv = bool(head["locref"]), bool(head["gradient_masking"]), bool(head.get("final_conv"))
    target = {"type": table.TARGET_TYPES[head["target"]], "num_heatmaps": n_maps,
              "pos_dist_thresh": _whole(head["radius"]), "heatmap_mode": "KEYPOINT", "gradient_masking": masking}
    if masking:
        target["background_weight"] = head["background_weight"]
    target["generate_locref"] = locref
    predictor = {"type": "HeatmapPredictor", **table.HEATMAP_PREDICTOR, "location_refinement": locref}
    criterion = {"heatmap": {"type": table.LOSS_TYPES[head["loss"]], "weight": 1.0}}
    out = {"type": "HeatmapHead", "weight_init": "normal", "predictor": predictor, "target_generator": target,
           "criterion": criterion, "heatmap_config": _maps(channels, n_maps, final_conv=final_conv)}
    if locref:
        predictor["locref_std"] = target["locref_std"] = table.LOCREF_STD
        criterion["locref"] = {"type": "WeightedHuberCriterion", "weight": head["locref_weight"]}
        out["locref_config"] = _maps(channels, 2 * n_maps, final_conv=final_conv)
    return out


def _identity_head(head: dict, n_individuals: int, channels: int) -> dict:
    if head["n_upsample"] != 1:
        raise ValueError(f"identity head {head} is not DeepLabCut's (one deconvolution)")
    return {"type": "HeatmapHead", "predictor": {"type": "IdentityPredictor", "apply_sigmoid": True},
            "target_generator": {"type": "HeatmapPlateauGenerator", "num_heatmaps": n_individuals,
                                 "pos_dist_thresh": _whole(head["radius"]), "heatmap_mode": "INDIVIDUAL",
                                 "gradient_masking": False, "generate_locref": False},
            "criterion": {"heatmap": {"type": "WeightedBCECriterion", "weight": 1.0}},
            "heatmap_config": _maps(channels, n_individuals)}


def _paf_head(head: dict, n_bodyparts: int, n_individuals: int, channels: int, paf: dict, flags: bool) -> dict:
    """DeepLabCut's DLCRNetHead (heatmaps, locref, PAFs); ``flags``: the backbone + PAF head's
    explicit sigmoid / clipping / masking fields, which its dlcrnet_* defaults leave out."""
    kwargs, hidden, radius = head["predict_kwargs"], list(head["hidden_channels"]), _whole(head["radius"])
    predictor = {"type": "PartAffinityFieldPredictor", "num_animals": n_individuals,
                 "num_multibodyparts": n_bodyparts, "num_uniquebodyparts": 0, "nms_radius": kwargs["nms_radius"],
                 "sigma": kwargs["sigma"], "locref_stdev": table.LOCREF_STD, "min_affinity": kwargs["min_affinity"],
                 "graph": copy.deepcopy(paf["paf_graph"]), "edges_to_keep": list(paf["paf_edges_to_keep"])}
    plateau = {"type": "HeatmapPlateauGenerator", "num_heatmaps": n_bodyparts, "pos_dist_thresh": radius,
               "heatmap_mode": "KEYPOINT", "gradient_masking": False, "generate_locref": True,
               "locref_std": table.LOCREF_STD}
    if flags:
        predictor.update(table.PAF_PREDICTOR_FLAGS)
    else:
        del plateau["gradient_masking"]
    return {"type": "DLCRNetHead", "predictor": predictor,
            "target_generator": {"type": "SequentialGenerator", "generators": [
                plateau, {"type": "PartAffinityFieldGenerator", "graph": copy.deepcopy(paf["paf_graph"]),
                          "width": _whole(head["paf_width"])}]},
            "criterion": {"heatmap": {"type": "WeightedBCECriterion", "weight": 1.0},
                          "locref": {"type": "WeightedHuberCriterion", "weight": head["locref_weight"]},
                          "paf": {"type": "WeightedHuberCriterion", "weight": head["paf_weight"]}},
            "heatmap_config": _maps(channels, n_bodyparts, hidden),
            "locref_config": _maps(channels, 2 * n_bodyparts, hidden),
            "paf_config": _maps(channels, 2 * paf["num_limbs"], hidden), "num_stages": head["n_stages"]}


def _dekr_head(head: dict, n_bodyparts: int, n_individuals: int, channels: int) -> dict:
    per_keypoint = head["offset_channels"]
    return {"type": "DEKRHead", "weight_init": "dekr",
            "target_generator": {"type": "DEKRGenerator", "num_joints": n_bodyparts,
                                 "pos_dist_thresh": _whole(head["pos_dist_thresh"]), "bg_weight": head["bg_weight"]},
            "criterion": {"heatmap": {"type": "DEKRHeatmapLoss", "weight": _whole(head["heatmap_weight"])},
                          "offset": {"type": "DEKROffsetLoss", "weight": head["offset_weight"]}},
            "predictor": {"type": "DEKRPredictor", "apply_sigmoid": head["apply_sigmoid"],
                          "use_heatmap": head["use_heatmap"], "clip_scores": head["clip_scores"],
                          "num_animals": n_individuals, "keypoint_score_type": head["score_type"],
                          "max_absorb_distance": head["max_absorb_distance"], "nms_threshold": head["nms_threshold"],
                          "apply_pose_nms": head["apply_pose_nms"]},
            "heatmap_config": {"channels": [channels, head["heatmap_channels"], n_bodyparts + 1],  # + the centre
                               "num_blocks": table.DEKR_BLOCKS["heatmap"], "dilation_rate": 1, "final_conv_kernel": 1},
            "offset_config": {"channels": [channels, n_bodyparts * per_keypoint, n_bodyparts],
                              "num_offset_per_kpt": per_keypoint, "num_blocks": table.DEKR_BLOCKS["offset"],
                              "dilation_rate": 1, "final_conv_kernel": 1}}


def _rtmpose_head(head: dict, n_bodyparts: int, channels: int) -> dict:
    size = list(reversed(head["input_size"]))  # ours (height, width), DeepLabCut's (width, height)
    if head.get("sigma") is None and any(side not in table.RTMPOSE_SIGMA for side in size):
        raise ValueError(f"RTMPose input size {size}: DeepLabCut has default sigmas for sides "
                         f"{sorted(table.RTMPOSE_SIGMA)} only")
    sigma = [head["sigma"]] * 2 if head.get("sigma") is not None else [table.RTMPOSE_SIGMA[s] for s in size]
    split, fixed = head["split_ratio"], copy.deepcopy(table.RTMPOSE_HEAD)
    return {"type": "RTMCCHead", "weight_init": "RTMPose",
            "target_generator": {"type": "SimCCGenerator", "input_size": size,
                                 "smoothing_type": fixed["smoothing_type"], "sigma": sigma, "simcc_split_ratio": split,
                                 "label_smooth_weight": fixed["label_smooth_weight"], "normalize": fixed["normalize"]},
            "criterion": {"x": dict(fixed["loss"]), "y": dict(fixed["loss"])},
            "predictor": {"type": "SimCCPredictor", "simcc_split_ratio": split, "sigma": list(sigma),
                          **fixed["predictor"]},
            "input_size": list(size), "in_channels": channels, "out_channels": n_bodyparts,
            "in_featuremap_size": [side // table.RTMPOSE_STRIDE for side in size], "simcc_split_ratio": split,
            "final_layer_kernel_size": fixed["final_layer_kernel_size"], "gau_cfg": fixed["gau_cfg"]}


def _tokenpose(conf: dict, model: dict, n_bodyparts: int, channels: int) -> dict:
    """DeepLabCut's Transformer neck (set on ``model``) and TransformerHead (returned)."""
    neck, head = conf["neck"], conf["heads"]["single"]["bodypart"]
    model["backbone"].update(table.TOKENPOSE_BACKBONE)
    model["neck"] = {"type": "Transformer", "feature_size": neck["feature_size"], "patch_size": neck["patch_size"],
                     "num_keypoints": n_bodyparts, "channels": channels, "dim": neck["dim"], "heads": neck["heads"],
                     "depth": neck["depth"]}
    return {"type": "TransformerHead",
            "target_generator": {"type": "HeatmapPlateauGenerator", "num_heatmaps": n_bodyparts,
                                 "pos_dist_thresh": _whole(head["radius"]), "heatmap_mode": "KEYPOINT",
                                 "generate_locref": False},
            "criterion": {"type": "WeightedBCECriterion"},
            "predictor": {"type": "HeatmapPredictor", "location_refinement": False}, "dim": neck["dim"],
            **{key: head[key] for key in ("hidden_heatmap_dim", "heatmap_dim", "apply_multi", "heatmap_size",
                                          "apply_init", "head_stride")}}


def _model(base: str, top_down: bool, multianimal: bool, meta: ProjectMeta, paf: dict | None) -> tuple[dict, dict]:
    """DeepLabCut's ``model`` section and our conf/model node it was built from."""
    family, n_bodyparts, n_individuals = _family(base), len(meta.bodyparts), len(meta.individuals)
    conf = model_conf(f"{TOP_DOWN_PREFIX}{base}" if top_down and base in BACKBONES else base)
    backbone, channels = _backbone(conf["backbone"])
    model, heads = {"backbone": backbone, "backbone_output_channels": channels}, conf["heads"]
    if family == "dlcrnet":
        model["pose_model"] = {"stride": table.DLCRNET_POSE_STRIDE}
    if family == "dlcrnet" or (base in BACKBONES and multianimal and not top_down):
        head = _paf_head(heads["multi"]["bodypart"], n_bodyparts, n_individuals, channels, paf,
                         flags=family != "dlcrnet")
    elif base in BACKBONES:
        head = _heatmap_head(heads["single"]["bodypart"], n_bodyparts, channels)
    elif family == "dekr":
        head = _dekr_head(heads["multi" if multianimal else "single"]["bodypart"], n_bodyparts, n_individuals,
                          channels)
    elif family == "rtmpose":
        head = _rtmpose_head(heads["single"]["bodypart"], n_bodyparts, channels)
    else:
        head = _tokenpose(conf, model, n_bodyparts, channels)
    model["heads"] = {"bodypart": head}
    return model, conf


def _data(family: str, top_down: bool, conf: dict) -> dict:
    """DeepLabCut's augmentation defaults (``data`` section) for a net_type."""
    train = {"affine": {"p": table.AFFINE["p"], "rotation": table.AFFINE["rotation"],
                        "scaling": list(table.TOP_DOWN_SCALING if top_down else table.BOTTOM_UP_SCALING),
                        "translation": table.AFFINE["translation"]}}
    if not top_down:
        train["crop_sampling"] = dict(table.CROP_SAMPLING)
    train.update({"gaussian_noise": table.GAUSSIAN_NOISE, "motion_blur": True, "normalize_images": True})
    data = {"bbox_margin": table.BBOX_MARGIN, "colormode": "RGB", "inference": {"normalize_images": True},
            "train": train}
    for section in table.AUTO_PADDING_SECTIONS.get(family, ()):
        data[section]["auto_padding"] = dict(table.AUTO_PADDING)
    if top_down:
        for section in ("inference", "train"):
            data[section]["top_down_crop"] = {"width": table.TOP_DOWN_CROP, "height": table.TOP_DOWN_CROP}
        jitter = conf.get("top_down") or {}
        shift, scale = jitter.get("jitter_shift"), jitter.get("jitter_scale")
        if shift or scale:  # DeepLabCut's RTMPose trains on jittered boxes
            probabilities = table.BBOX_JITTER_PROBABILITIES
            train["random_bbox_transform"] = {"shift_factor": shift, "shift_prob": probabilities["shift_prob"],
                                              "scale_factor": [1 - scale, 1 + scale],
                                              "scale_prob": probabilities["scale_prob"], "p": probabilities["p"]}
    return data


def _training(family: str) -> tuple[dict, dict]:
    changes = table.FAMILY_TRAINING.get(family, {})
    return ({**table.RUNNER, **changes.get("runner", {})},
            {**table.TRAIN_SETTINGS, **changes.get("train_settings", {})})


def detector_defaults(detector_type: str, n_individuals: int) -> dict:
    """DeepLabCut's ``DetectorConfig.build`` as a dict (keys sorted as DeepLabCut sorts them), before its
    validation; ``n_individuals`` is part of DeepLabCut's signature, its defaults do not depend on it."""
    if detector_type not in DETECTORS:
        raise ValueError(f"detector {detector_type!r} is not a DeepLabCut 3.0.2 detector_type: {', '.join(DETECTORS)}")
    conf = _read_conf(f"detector/{detector_type}.yaml")["model"]
    model = {"type": table.DETECTOR_CLASSES[detector_type], "freeze_bn_stats": bool(conf["freeze_bn_stats"]),
             "freeze_bn_weights": False}
    if model["type"] == "FasterRCNN":
        model["variant"] = conf["name"]
    settings = dict(table.DETECTOR_TRAIN_SETTINGS)
    settings["batch_size"] = table.DETECTOR_BATCH_SIZES.get(detector_type, settings["batch_size"])
    return copy.deepcopy({"data": table.DETECTOR_DATA, "device": "auto", "model": model,
                          "runner": table.DETECTOR_RUNNER, "train_settings": settings})


def pose_config_defaults(net_type: str, meta: ProjectMeta, *, detector_type: str | None = "ssdlite",
                         paf_graph: list | None = None, paf_edges_to_keep: list | None = None,
                         project_path: str | Path | None = None, pose_config_path: str | Path | None = None,
                         multianimal: bool | None = None,
                         source: str | Path = "net_type") -> dict:
    """DeepLabCut's ``PoseConfig.build(...)`` for a project, as a dict (before its pydantic defaults).

    ``net_type`` may carry the ``top_down_`` prefix. ``paf_graph`` (multi-animal bottom-up) defaults
    to every pair of bodyparts, as DeepLabCut; from 15 bodyparts on DeepLabCut prunes it at random, so
    the graph the model learned must be given. ``paf_edges_to_keep``: config.yaml's ``paf_best``.
    ``multianimal``: config.yaml's ``multianimalproject`` (default ``meta.multianimal``). A conditional
    top-down net_type (``ctd_*``) gets its defaults without ``inference.conditions`` (:func:`with_ctd_conditions`).
    """
    if str(net_type) in CTD_NET_TYPES:
        return _ctd_defaults(str(net_type), meta, project_path, pose_config_path)
    base, top_down = split_net_type(net_type, source)
    family = _family(base)
    multianimal = meta.multianimal if multianimal is None else multianimal
    needs_paf = family == "dlcrnet" or (base in BACKBONES and multianimal and not top_down)
    paf = _paf_values(len(meta.bodyparts), paf_graph, paf_edges_to_keep, source) if needs_paf else None
    for what, present in (("unique bodypart", meta.unique_bodyparts), ("identity", meta.identity)):
        if present and top_down:
            raise ProjectError(source, f"net_type {net_type} is top-down: DeepLabCut builds no {what} head for "
                                       "top-down models; choose a bottom-up net_type"
                                       + (" or set identity: false" if what == "identity" else ""))
    if top_down and detector_type is None:
        raise ValueError(f"net_type {net_type}: a top-down model needs a detector_type ({', '.join(DETECTORS)})")
    model, conf = _model(base, top_down, multianimal, meta, paf)
    channels = model["backbone_output_channels"]
    if meta.unique_bodyparts:
        unique = _heatmap_head(conf["heads"]["unique_bodypart"], len(meta.unique_bodyparts), channels)
        unique["target_generator"]["label_keypoint_key"] = "keypoints_unique"
        model["heads"]["unique_bodypart"] = unique
    if meta.identity:
        model["heads"]["identity"] = _identity_head(conf["heads"]["identity"], len(meta.individuals), channels)
    runner, train_settings = _training(family)
    config = {"device": "auto", "method": "td" if top_down else "bu", "runner": runner,
              "train_settings": train_settings, "data": _data(family, top_down, conf), "model": model}
    if family == "dekr":
        config["with_center_keypoints"] = True  # DEKR regresses from each animal's centre
    config["net_type"] = base
    if top_down:
        config["detector"] = detector_defaults(detector_type, len(meta.individuals))
    config["inference"] = {}  # DeepLabCut's InferenceConfig() defaults, filled by its validation
    config["metadata"] = {
        "project_path": None if project_path is None else str(project_path),
        "pose_config_path": None if pose_config_path is None else str(pose_config_path),
        "bodyparts": list(meta.bodyparts), "unique_bodyparts": list(meta.unique_bodyparts),
        "individuals": list(meta.individuals), "with_identity": bool(meta.identity),
    }
    return copy.deepcopy(config)


# --------------------------------------------------------------------------- conditional top-down (method: ctd)
def _keypoint_encoder(backbone: dict, n_bodyparts: int) -> dict:
    return {"type": table.CTD_KEYPOINT_ENCODER, "num_joints": n_bodyparts,
            "kernel_size": [int(v) for v in backbone["kernel_size"]]}


def _ctd_backbone(backbone: dict, n_bodyparts: int, crop: list[int]) -> tuple[dict, int]:
    """DeepLabCut's CondPreNet (a backbone after the conditions' encoder) or HRNetCoAM section, and its channels."""
    kind = backbone["_target_"].rsplit(".", 1)[1]
    if kind == "CondPreNet":
        inner, channels = _backbone(backbone["backbone"])
        return ({"type": kind, "backbone": inner, "kpt_encoder": _keypoint_encoder(backbone, n_bodyparts),
                 "img_size": crop}, channels)
    if kind == "HRNetCoAM":
        return ({"type": kind, "base_model_name": f"hrnet_{backbone['variant']}",
                 "pretrained": table.CTD_COAM_FIELDS["pretrained"],
                 "freeze_bn_stats": bool(backbone.get("freeze_bn_stats", False)),
                 "freeze_bn_weights": table.CTD_COAM_FIELDS["freeze_bn_weights"],
                 "coam_modules": [int(v) for v in backbone["coam_modules"]],
                 "channel_att_only": bool(backbone["channel_att_only"]), "att_heads": int(backbone["att_heads"]),
                 "kpt_encoder": _keypoint_encoder(backbone, n_bodyparts), "img_size": crop},
                int(backbone["variant"].removeprefix("w")))
    raise ValueError(f"backbone {backbone['_target_']} is not one of DeepLabCut's conditional backbones")


def _ctd_defaults(net_type: str, meta: ProjectMeta, project_path, pose_config_path) -> dict:
    """DeepLabCut's defaults for a ``ctd_*`` net_type: its conditional backbone and head (conf/model), top-down
    augmentation on crops that keep no context beyond the box (but the *_human ones), generative sampling."""
    conf = model_conf(net_type)
    crop = [int(v) for v in conf["top_down"]["crop_size"]]  # (height, width)
    n_bodyparts = len(meta.bodyparts)
    backbone, channels = _ctd_backbone(conf["backbone"], n_bodyparts, crop)
    head_conf = conf["heads"]["single"]["bodypart"]
    if "SimCCHead" in head_conf["_target_"]:
        head = _rtmpose_head(head_conf, n_bodyparts, channels)
        for key in table.CTD_RTMPOSE_PREDICTOR_LEFT_OUT:
            head["predictor"].pop(key, None)
        training = table.CTD_RTMPOSE_TRAINING
    else:  # DeepLabCut's ctd heatmap heads leave gradient masking out (its generator's default: off)
        head = _heatmap_head(head_conf, n_bodyparts, channels)
        for key in ("gradient_masking", "background_weight"):
            head["target_generator"].pop(key, None)
        training = {}
    data = _data("ctd", True, {})
    human = net_type in table.CTD_HUMAN
    for section in ("inference", "train"):
        data[section]["top_down_crop"]["crop_with_context"] = human
    data["gen_sampling"] = copy.deepcopy(table.CTD_HUMAN_GEN_SAMPLING if human else table.CTD_GEN_SAMPLING)
    config = {"device": "auto", "method": "ctd",
              "runner": {**table.RUNNER, **training.get("runner", {})},
              "train_settings": {**table.TRAIN_SETTINGS, **training.get("train_settings", {})}, "data": data,
              "model": {"backbone": backbone, "backbone_output_channels": channels, "heads": {"bodypart": head}},
              "net_type": net_type, "inference": {},
              "metadata": {"project_path": None if project_path is None else str(project_path),
                           "pose_config_path": None if pose_config_path is None else str(pose_config_path),
                           "bodyparts": list(meta.bodyparts), "unique_bodyparts": list(meta.unique_bodyparts),
                           "individuals": list(meta.individuals), "with_identity": bool(meta.identity)}}
    return copy.deepcopy(config)


def with_ctd_conditions(config: dict, conditions) -> dict:
    """A ``ctd_*`` pytorch_config with ``inference.conditions`` in DeepLabCut's forms (:func:`ctd_conditions_entry`)."""
    out = copy.deepcopy(config)
    out.setdefault("inference", {})["conditions"] = ctd_conditions_entry(conditions)
    return out


def ctd_conditions_entry(conditions) -> dict | str:
    """create_training_dataset's ``ctd_conditions`` as DeepLabCut writes it to ``inference.conditions``: a
    shuffle (int) -> ``{shuffle}``; ``(shuffle, int)`` -> ``{shuffle, snapshot_index}``; ``(shuffle, str)`` ->
    ``{shuffle, snapshot}``; an existing ``.h5``/``.json`` predictions file -> its absolute path. DeepLabCut's
    errors (and types) for anything else."""
    if conditions is None:
        raise ValueError(table.CTD_NO_CONDITIONS + " Pass ctd_conditions= (a bottom-up shuffle, (shuffle, snapshot) "
                         "or a predictions .h5/.json file)")
    if isinstance(conditions, bool):
        raise TypeError("Conditions ctd_conditions is of invalid type.")
    if isinstance(conditions, int):
        return {"shuffle": conditions}
    if isinstance(conditions, (str, Path)):
        path = Path(conditions)
        if not path.exists():
            raise FileNotFoundError(f"Invalid path: {path}")
        if path.suffix not in (".h5", ".json"):
            raise ValueError(f"Invalid conditions file extension: {path} (a .h5 or .json predictions file)")
        return str(path.absolute())
    if isinstance(conditions, tuple):
        if len(conditions) != 2:
            raise ValueError(f"Invalid conditions tuple length: {conditions} (shuffle, snapshot)")
        shuffle, snapshot = conditions
        if not isinstance(shuffle, int) or isinstance(shuffle, bool):
            raise TypeError(f"Conditions shuffle number must be of type int: {conditions}")
        if isinstance(snapshot, int) and not isinstance(snapshot, bool):
            return {"shuffle": shuffle, "snapshot_index": snapshot}
        if isinstance(snapshot, str):
            return {"shuffle": shuffle, "snapshot": snapshot}
        raise TypeError("Conditions snapshot must be of type int (index) or string (snapshot name).")
    raise TypeError(f"Conditions ctd_conditions is of invalid type: {type(conditions).__name__}")


def _family(net_type: str) -> str:
    return net_type.split("_")[0]


def _paf_values(n_bodyparts: int, paf_graph, paf_edges_to_keep, source) -> dict:
    graph = full_paf_graph(n_bodyparts) if paf_graph is None else [[int(a), int(b)] for a, b in paf_graph]
    if paf_graph is None and len(graph) >= PAF_PRUNE_FROM_EDGES:
        raise ProjectError(source, f"{n_bodyparts} bodyparts: DeepLabCut prunes the PAF graph at random, so "
                                   "the graph the model learned must be given (paf_graph=...)")
    keep = list(range(len(graph))) if paf_edges_to_keep is None else [int(i) for i in paf_edges_to_keep]
    return {"paf_graph": graph, "num_limbs": len(graph), "paf_edges_to_keep": keep}


def pose_cfg_for_test(pose_config: dict) -> dict:
    """DeepLabCut's ``test/pose_cfg.yaml`` (``TestConfig.build``) for a pytorch_config dict."""
    meta = pose_config["metadata"]
    joints = list(meta["bodyparts"]) + list(meta.get("unique_bodyparts") or [])
    return {"dataset": str(meta.get("project_path") or "."), "num_joints": len(joints),
            "all_joints": [[i] for i in range(len(joints))], "all_joints_names": joints,
            "net_type": pose_config["net_type"], "dataset_type": "multi-animal-imgaug",
            "global_scale": 1.0, "scoremap_dir": "test"}
