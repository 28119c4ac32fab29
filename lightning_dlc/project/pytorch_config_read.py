"""A DeepLabCut 3.0.2 ``pytorch_config.yaml`` as our run config: group choices plus values.

Every field of DeepLabCut's file is either translated (net_type, model settings we can build,
optimizer, schedule with nested SequentialLR / ChainedScheduler, batch size, epochs, snapshots,
evaluation, key metric, augmentation, device, resume_training_from, the detector section) or
refused by name with the reason: :func:`translate_pytorch_config` collects every refusal and
raises one :class:`ProjectError` listing them, so nothing is dropped silently. The ``model``
section is compared with DeepLabCut's defaults for the net_type; a difference we cannot build
is refused. Plain data, no torch or Hydra: ``lightning_dlc.lit.compose`` turns the result into a
composed config (command-line overrides still win).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_dlc.project.dlc_defaults import (CTD_NET_TYPES, OTHER_NET_TYPES, detector_defaults, full_paf_graph,
                                                pose_config_defaults, split_net_type)
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.pytorch_config import (DETECTOR_KEY_METRICS, OUR_SCHEDULERS, TORCH_OPTIMIZERS,
                                                  TORCH_SCHEDULERS)
from lightning_dlc.project.pytorch_config_data import translate_data
from lightning_dlc.project.records import ProjectMeta

log = logging.getLogger(__name__)

KNOWN_TOP_LEVEL = {"model", "net_type", "method", "device", "metadata", "data", "runner", "train_settings", "inference",
                   "logger", "with_center_keypoints", "detector", "resume_training_from", "config_version"}
# DeepLabCut head settings we build -> our head's argument (paths inside one head's section)
HEAD_KEYS = {
    "HeatmapHead": {("target_generator", "pos_dist_thresh"): "radius",
                    ("target_generator", "gradient_masking"): "gradient_masking",
                    ("target_generator", "background_weight"): "background_weight",
                    ("criterion", "locref", "weight"): "locref_weight"},
    "DLCRNetHead": {("target_generator", "generators", 0, "pos_dist_thresh"): "radius",
                    ("target_generator", "generators", 1, "width"): "paf_width",
                    ("criterion", "locref", "weight"): "locref_weight",
                    ("criterion", "paf", "weight"): "paf_weight",
                    ("predictor", "nms_radius"): "predict_kwargs.nms_radius",
                    ("predictor", "sigma"): "predict_kwargs.sigma",
                    ("predictor", "min_affinity"): "predict_kwargs.min_affinity"},
}
RUNNER_KEYS = {"type", "gpus", "device", "key_metric", "key_metric_asc", "eval_interval", "optimizer", "scheduler",
               "snapshots", "snapshot_prefix", "load_weights_only"}  # device: unused by DeepLabCut too
DETECTOR_METRICS = {dlc: ours for ours, dlc in DETECTOR_KEY_METRICS.items()}
# DeepLabCut's PAF predictor settings (model.heads.bodypart.predictor.<key>) -> our bodypart head's keys
PAF_PREDICTOR_KEYS = {path[1]: ours for path, ours in HEAD_KEYS["DLCRNetHead"].items() if path[0] == "predictor"}


# --------------------------------------------------------------------------- the model section, shared
# by training (translate_pytorch_config) and loading a DeepLabCut model folder (models/dlc_model_folder.py)
def detector_name(model: Mapping) -> str | None:
    """Our conf/detector option for DeepLabCut's ``detector.model``: SSDLite by its ``type``, Faster R-CNN
    by its ``variant``; None for any other."""
    kind = model.get("type")
    return "ssdlite" if kind == "SSDLite" else model.get("variant") if kind == "FasterRCNN" else None


def detector_box_threshold(model: Mapping) -> float | None:
    """The ``box_score_thresh`` DeepLabCut's detector applies (our ``detector.model.box_score_threshold``);
    None where it is unset or DeepLabCut's SSDLite, which never passes it to torchvision."""
    if model.get("type") == "SSDLite" or model.get("box_score_thresh") is None:
        return None
    return float(model["box_score_thresh"])


def paf_predictor_values(bodypart_head: Mapping, n_bodyparts: int) -> dict[str, Any]:
    """A DLCRNet bodypart head's assembly as the file has it, as our bodypart head's keys: ``edges`` (a graph
    other than the full one: pruned at 15+ bodyparts, or the user's), ``edges_to_keep`` (evaluate_network's
    benchmark_paf_graphs writes the best edges back) and ``predict_kwargs.<key>``; empty for other heads."""
    if bodypart_head.get("type") != "DLCRNetHead":
        return {}
    predictor = bodypart_head.get("predictor") or {}
    out: dict[str, Any] = {}
    graph = predictor.get("graph")
    if graph is not None and [[int(a), int(b)] for a, b in graph] != full_paf_graph(n_bodyparts):
        out["edges"] = [[int(a), int(b)] for a, b in graph]
    if predictor.get("edges_to_keep") is not None:
        out["edges_to_keep"] = [int(i) for i in predictor["edges_to_keep"]]
    for key, ours in PAF_PREDICTOR_KEYS.items():
        if predictor.get(key) is not None:
            out[ours] = predictor[key]
    return out


@dataclass
class TrainConfig:
    """The translation: Hydra group choices (``model=...``) and values by dotted path (a whole node
    for ``optimizer`` / ``scheduler``: it replaces the group's node, leftover keys included)."""

    choices: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Translator:
    def __init__(self, dlc: Mapping, meta: ProjectMeta | None, source: str | Path):
        self.dlc, self.meta, self.source = copy.deepcopy(dict(dlc)), meta, source
        self.out, self.refused = TrainConfig(), []

    def refuse(self, key: str, why: str) -> None:
        self.refused.append(f"{key}: {why}")

    def set(self, path: str, value) -> None:
        self.out.values[path] = value

    # ------------------------------------------------------------------ whole file
    def run(self) -> TrainConfig:
        for key in sorted(set(self.dlc) - KNOWN_TOP_LEVEL):
            self.refuse(key, "not a key of DeepLabCut 3.0.2's pytorch_config.yaml")
        method = str(self.dlc.get("method", "bu")).lower()
        self.conditional = str(self.dlc.get("net_type", "")) in CTD_NET_TYPES
        if self.conditional:  # conditional top-down: conf/model/<net_type>.yaml, no detector
            base = prefixed = str(self.dlc["net_type"])
            if method != "ctd":
                self.refuse("method", f"{method!r}: net_type {base} is conditional top-down (ctd)")
        else:
            base, prefixed = split_net_type(self.dlc.get("net_type", ""), self.source)
            if method not in ("bu", "td"):
                self.refuse("method", f"{method!r}: bottom-up (bu), top-down (td) and, with a ctd_* net_type, "
                                      "conditional top-down (ctd) models are built here")
        self.top_down = bool(prefixed) or method in ("td", "ctd")
        self.net_type = base if self.conditional or not self.top_down or base in OTHER_NET_TYPES else f"top_down_{base}"
        self.out.choices["model"] = self.out.values["net_type"] = self.net_type
        meta = self._meta()
        self._model(meta)
        self._runner(self.dlc.get("runner") or {}, "", pose=True)
        self._settings(self.dlc.get("train_settings") or {}, pose=True)
        self._device(self.dlc.get("device", "auto"))
        translate_data(self, self.dlc.get("data") or {})
        if self.conditional:
            self._conditional(self.dlc)
        self._resume(self.dlc.get("resume_training_from"), "resume_training_from", "ckpt_path", "model.weights")
        self._logger(self.dlc.get("logger"))
        self._detector(self.dlc.get("detector"), meta)
        if self.dlc.get("inference"):
            self.out.notes.append("inference: not used for training (evaluation and analysis take their own options; "
                                  "a CTD model's inference.conditions are read by api.evaluate_network / "
                                  "analyze_videos)")
        if self.refused:
            raise ProjectError(self.source, "cannot train with these settings:\n  " + "\n  ".join(self.refused))
        return self.out

    def _conditional(self, dlc: Mapping) -> None:
        """A CTD model trains on conditions synthesized from the labels (DeepLabCut's generative sampling, its
        ``data.gen_sampling``), on crops of the size its model is made for (``model.backbone.img_size``:
        DeepLabCut's ``data.*.top_down_crop`` says 256 x 256 beside its 384 x 384 ctd_prenet_rtmpose_x)."""
        self.set("conditions", "gt")
        size = ((dlc.get("model") or {}).get("backbone") or {}).get("img_size")
        if size:
            self.set("model.top_down.crop_size", [int(v) for v in size])
        sampling = dict(((dlc.get("data") or {}).get("gen_sampling")) or {})
        sigma = sampling.pop("keypoint_sigmas", None)
        if isinstance(sigma, (list, tuple)):
            if len(set(sigma)) > 1:
                self.refuse("data.gen_sampling.keypoint_sigmas", f"{list(sigma)}: one sigma for every keypoint here")
            sigma = sigma[0] if sigma else None
        if sigma is not None:
            self.set("gen_sampling.keypoint_sigmas", float(sigma))
        pairs = sampling.pop("keypoints_symmetry", None)
        if pairs:
            n = len(self._meta().bodyparts)
            bad = [p for p in pairs if not all(isinstance(i, int) and 0 <= i < n for i in p)]
            if bad:
                self.refuse("data.gen_sampling.keypoints_symmetry", f"{bad}: not pairs of this project's {n} bodyparts")
            else:
                self.set("gen_sampling.keypoints_symmetry", [list(p) for p in pairs])
        for key in ("jitter_prob", "swap_prob", "inv_prob", "miss_prob"):
            if sampling.get(key) is not None:
                self.set(f"gen_sampling.{key}", float(sampling.pop(key)))
        for key in sorted(k for k, v in sampling.items() if v is not None):
            self.refuse(f"data.gen_sampling.{key}", "not a generative sampling setting DeepLabCut has")
        head = ((dlc.get("model") or {}).get("heads") or {}).get("bodypart") or {}
        if head.get("type") == "HeatmapHead" and (head.get("target_generator") or {}).get("gradient_masking") is None:
            self.set("model.heads.single.bodypart.gradient_masking", False)  # DeepLabCut's generator default

    def _meta(self) -> ProjectMeta:
        listed = self.dlc.get("metadata") or {}
        bodyparts = tuple(listed.get("bodyparts") or ())
        unique = tuple(listed.get("unique_bodyparts") or ())
        if self.meta is None:  # the file's own: one listed individual means a single-animal project
            individuals = tuple(listed.get("individuals") or ())
            return ProjectMeta(bodyparts=bodyparts, individuals=individuals if len(individuals) > 1 else ("animal",),
                               unique_bodyparts=unique, identity=bool(listed.get("with_identity")))
        if bodyparts and bodyparts != tuple(self.meta.bodyparts):
            raise ProjectError(self.source, f"metadata.bodyparts {list(bodyparts)} differ from the project's "
                                            f"{list(self.meta.bodyparts)}")
        if "unique_bodyparts" in listed and unique != tuple(self.meta.unique_bodyparts):
            raise ProjectError(self.source, f"metadata.unique_bodyparts {list(unique)} differ from the project's "
                                            f"{list(self.meta.unique_bodyparts)}")
        return self.meta

    # ------------------------------------------------------------------ model
    def _model(self, meta: ProjectMeta) -> None:
        heads = (self.dlc.get("model") or {}).get("heads") or {}
        graph = ((heads.get("bodypart") or {}).get("predictor") or {}).get("graph")
        keep = ((heads.get("bodypart") or {}).get("predictor") or {}).get("edges_to_keep")
        try:
            default = pose_config_defaults(self.net_type, meta, paf_graph=graph, paf_edges_to_keep=keep,
                                           detector_type=None if not self.top_down else "ssdlite", source=self.source)
        except (ProjectError, ValueError) as error:
            self.refuse("net_type", str(error))
            return
        group = f"model.heads.{'single' if self.top_down or not meta.multianimal else 'multi'}.bodypart"
        paf = paf_predictor_values(heads.get("bodypart") or {}, len(meta.bodyparts))
        if "edges" in paf:
            self.set(f"{group}.edges", paf["edges"])
        if graph is not None and "edges_to_keep" in paf and paf["edges_to_keep"] != list(range(len(graph))):
            self.set(f"{group}.edges_to_keep", paf["edges_to_keep"])  # all edges kept: the default
        for key in ("with_center_keypoints",):
            if key in self.dlc and bool(self.dlc[key]) != bool(default.get(key, False)):
                self.refuse(key, f"{self.dlc[key]} (net_type {self.net_type} builds {default.get(key, False)})")
        model = self.dlc.get("model") or {}
        backbone, default_backbone = dict(model.get("backbone") or {}), dict(default["model"]["backbone"])
        if backbone.get("pretrained") is not None:  # ImageNet weights or not: ours too
            self.set("model.backbone.pretrained", bool(backbone["pretrained"]))
        backbone.pop("pretrained", None), default_backbone.pop("pretrained", None)
        self._same(backbone, default_backbone, "model.backbone")
        for key in sorted(set(model) - {"backbone", "heads"}):
            self._same(model[key], default["model"].get(key), f"model.{key}")
        for role in sorted(set(heads) | set(default["model"]["heads"])):
            self._head(role, heads.get(role), default["model"]["heads"].get(role), meta)

    def _head(self, role: str, head, default, meta: ProjectMeta) -> None:
        if head is None or default is None:
            self.refuse(f"model.heads.{role}", "missing" if head is None else
                        f"net_type {self.net_type} for this project builds no {role} head")
            return
        group = role if role in ("unique_bodypart", "identity") else \
            f"{'single' if self.top_down or not meta.multianimal else 'multi'}.{role}"
        mapped = HEAD_KEYS.get(str(head.get("type")), {}) if head.get("type") == default.get("type") else {}
        for path, ours in mapped.items():
            value = _get(head, path)
            if value is not None and value != _get(default, path):
                self.set(f"model.heads.{group}.{ours}", value)
            _put(head, path, _get(default, path))
        self._same(head, default, f"model.heads.{role}")

    def _same(self, value, default, key: str) -> None:
        """Refuse every leaf of ``value`` that differs from DeepLabCut's default for the net_type."""
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            for k in sorted(set(value) | set(default), key=str):
                self._same(value.get(k), default.get(k), f"{key}.{k}")
        elif isinstance(value, list) and isinstance(default, list) and len(value) == len(default):
            for i, (v, d) in enumerate(zip(value, default)):
                self._same(v, d, f"{key}.{i}")
        elif value != default and not (value is None and default is None):
            self.refuse(key, f"{value!r} differs from net_type {self.net_type}'s {default!r}, which is what we build")

    # ------------------------------------------------------------------ runner and settings
    def _runner(self, runner: Mapping, prefix: str, pose: bool) -> None:
        where = "detector.runner" if not pose else "runner"
        expected = "PoseTrainingRunner" if pose else "DetectorTrainingRunner"
        if runner.get("type", expected) != expected:
            self.refuse(f"{where}.type", f"{runner.get('type')!r}: only {expected} is built here")
        train = "detector.train." if not pose else ""
        if runner.get("optimizer"):
            self.set(f"{train}optimizer", self._optimizer(runner["optimizer"], f"{where}.optimizer"))
        if "scheduler" in runner:
            self.set(f"{train}scheduler", self._scheduler(runner["scheduler"], f"{where}.scheduler"))
        snapshots = runner.get("snapshots") or {}
        for key in ("save_epochs", "max_snapshots"):
            if key in snapshots:
                self.set(f"{train if not pose else 'snapshots.'}{key}", int(snapshots[key]))
        if pose and "save_optimizer_state" in snapshots:
            self.set("snapshots.save_optimizer_state", bool(snapshots["save_optimizer_state"]))
        if "key_metric" in runner:
            metric = str(runner["key_metric"])
            if pose:
                self.set("snapshots.key_metric", metric)
            elif metric in DETECTOR_METRICS:
                self.set("detector.train.key_metric", DETECTOR_METRICS[metric])
            else:
                self.refuse(f"{where}.key_metric", f"{metric!r}: ours are {sorted(DETECTOR_METRICS)}")
        if "key_metric_asc" in runner:
            if pose:
                self.set("snapshots.key_metric_asc", bool(runner["key_metric_asc"]))
            elif not runner["key_metric_asc"]:
                self.refuse(f"{where}.key_metric_asc", "box metrics are kept highest-best here")
        if "eval_interval" in runner:
            self.set(f"{train}eval_interval", int(runner["eval_interval"]))
        gpus = runner.get("gpus")
        if gpus not in (None, [], [0], 0) and pose:
            self.set("trainer.devices", list(gpus) if isinstance(gpus, list) else gpus)
            self.set("trainer.accelerator", "gpu")
        if runner.get("snapshot_prefix"):
            self.refuse(f"{where}.snapshot_prefix", "snapshot names are DeepLabCut's defaults here")
        if runner.get("load_weights_only") is False:
            self.out.notes.append(f"{where}.load_weights_only: snapshots load with weights_only=True here")
        for key in sorted(set(runner) - RUNNER_KEYS):
            self.refuse(f"{where}.{key}", "not a key of DeepLabCut's runner section")
        for key in sorted(set(snapshots) - {"save_epochs", "max_snapshots", "save_optimizer_state"}):
            self.refuse(f"{where}.snapshots.{key}", "not a snapshot setting DeepLabCut has")

    def _optimizer(self, node: Mapping, key: str) -> dict | None:
        kind = str(node.get("type", ""))
        if not kind.isidentifier():
            self.refuse(f"{key}.type", f"{kind!r} is not a torch.optim optimizer name")
            return None
        return {"_target_": f"{TORCH_OPTIMIZERS}{kind}", "_partial_": True, **dict(node.get("params") or {})}

    def _scheduler(self, node, key: str) -> dict | None:
        if not node:
            return None
        kind = str(node.get("type", ""))
        if not kind.isidentifier():
            self.refuse(f"{key}.type", f"{kind!r} is not LRListScheduler or a torch.optim.lr_scheduler name")
            return None
        params = copy.deepcopy(dict(node.get("params") or {}))
        if "schedulers" in params:
            params["schedulers"] = [self._scheduler(s, f"{key}.params.schedulers.{i}")
                                    for i, s in enumerate(params["schedulers"])]
        target = OUR_SCHEDULERS.get(kind, f"{TORCH_SCHEDULERS}{kind}")
        return {"_target_": target, "_partial_": True, **params}

    def _settings(self, settings: Mapping, pose: bool) -> None:
        names = ({"batch_size": "data.batch_size", "epochs": "trainer.max_epochs", "seed": "seed",
                  "dataloader_workers": "data.num_workers", "dataloader_pin_memory": "data.pin_memory"} if pose else
                 {"batch_size": "detector.train.batch_size", "epochs": "detector.train.epochs"})
        where = "train_settings" if pose else "detector.train_settings"
        for key, value in settings.items():
            if key in names:
                self.set(names[key], value)
            elif key == "display_iters":  # a console print interval; not a training setting
                self.out.notes.append(f"{where}.display_iters: the progress bar shows the loss every step here")
            elif key == "weight_init" and value is None:
                continue
            elif key == "weight_init":
                self.refuse(f"{where}.weight_init", "SuperAnimal weight initialisation is not built here; fine-tune "
                                                    "from a snapshot with model.weights=<file>")
            elif pose or key not in ("seed", "dataloader_workers", "dataloader_pin_memory", "display_iters"):
                self.refuse(f"{where}.{key}", "not a DeepLabCut training setting we know")

    def _device(self, device) -> None:
        device = str(device or "auto")
        kind, _, index = device.partition(":")
        accelerators = {"auto": "auto", "cpu": "cpu", "cuda": "gpu", "mps": "mps"}
        if kind not in accelerators:
            self.refuse("device", f"{device!r}: auto, cpu, cuda, cuda:<i> or mps")
            return
        self.set("trainer.accelerator", accelerators[kind])
        if index:
            self.set("trainer.devices", [int(index)])

    def _resume(self, path, key: str, ours: str, weights: str) -> None:
        if not path:
            return
        if str(path).endswith(".ckpt"):  # ours: epochs, optimizer and schedule continue
            self.set(ours, str(path))
        else:
            self.set(weights, str(path))
            self.out.notes.append(f"{key}: {path} initialises the whole model ({weights}); epochs count from 0 "
                                  "(DeepLabCut adds them to the snapshot's)")

    def _logger(self, logger) -> None:
        if not logger:
            return
        kind = str(logger.get("type", ""))
        if kind == "CSVLogger" and set(logger) <= {"type"}:
            self.out.choices["logger"] = "csv"
        else:
            self.refuse("logger", f"{kind or logger!r}: choose logger=csv / tensorboard / wandb on the command line")

    # ------------------------------------------------------------------ data and augmentation
    # ------------------------------------------------------------------ detector
    def _detector(self, detector, meta: ProjectMeta) -> None:
        if not detector:
            if self.top_down:
                self.out.choices["detector"] = "none"
            return
        if not self.top_down:
            self.refuse("detector", f"net_type {self.net_type} is bottom-up: it has no detector")
            return
        model = dict(detector.get("model") or {})
        name, threshold = detector_name(model), detector_box_threshold(model)
        kind, variant = str(model.pop("type", "")), model.pop("variant", None)
        try:
            default = detector_defaults(str(name), len(meta.individuals))
        except ValueError as error:
            self.refuse("detector.model.type", f"{kind} {variant or ''}: {error}")
            return
        self.out.choices["detector"] = name
        if "box_score_thresh" in model and kind == "SSDLite":  # never reaches torchvision's SSD in DeepLabCut
            model.pop("box_score_thresh")
            self.out.notes.append("detector.model.box_score_thresh: unused by DeepLabCut's SSDLite (torchvision's "
                                  "0.001 holds, as conf/detector/ssdlite.yaml)")
        elif "box_score_thresh" in model:
            model.pop("box_score_thresh")
            if threshold is not None:
                self.set("detector.model.box_score_threshold", threshold)
        if "freeze_bn_stats" in model:
            self.set("detector.model.freeze_bn_stats", bool(model.pop("freeze_bn_stats")))
        if model.pop("freeze_bn_weights", False):
            self.refuse("detector.model.freeze_bn_weights", "BatchNorm weights are trained here")
        for key in model:
            self.refuse(f"detector.model.{key}", "not a detector setting we know")
        self._runner(detector.get("runner") or {}, "detector.", pose=False)
        self._settings(detector.get("train_settings") or {}, pose=False)
        self._resume(detector.get("resume_training_from"), "detector.resume_training_from", "detector.train.ckpt_path",
                     "detector.model.weights")
        if detector.get("data") and detector["data"] != default.get("data"):
            self.out.notes.append("detector.data: the detector trains with the augment group here, not with its "
                                  "own data.train (DeepLabCut's detector augmentation is not copied)")
        else:
            self.out.notes.append("detector.data: DeepLabCut's detector augmentation (flip, affine, resize collate) "
                                  "is replaced by the augment group")


def _get(node, path):
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _put(node, path, value) -> None:
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict) or (isinstance(node, list) and path[-1] < len(node)):
        node[path[-1]] = value


def translate_pytorch_config(dlc: Mapping, meta: ProjectMeta | None = None,
                             source: str | Path = "pytorch_config.yaml") -> TrainConfig:
    """DeepLabCut's pytorch_config (a dict) -> our group choices and values.

    ``meta``: the project's metadata (bodyparts that differ from the file's are an error naming
    both); None takes the file's own. Raises ProjectError naming ``source`` and every field we
    cannot honour with the reason.
    """
    result = _Translator(dlc, meta, source).run()
    for note in result.notes:
        log.info("%s: %s", source, note)
    return result


def apply_dotted_updates(dlc: Mapping, updates: Mapping, source: str | Path = "pytorch_config.yaml") -> dict:
    """DeepLabCut's ``pytorch_cfg_updates``: ``{"runner.optimizer.params.lr": 1e-3, "train_settings.epochs": 5}``
    set in a copy of the file's data (numbers index lists); a path through a value is a ProjectError."""
    dlc = copy.deepcopy(dict(dlc))
    for dotted, value in updates.items():
        node, parts = dlc, str(dotted).split(".")
        for i, part in enumerate(parts):
            key = int(part) if isinstance(node, list) and part.isdigit() else part
            last = i == len(parts) - 1
            if isinstance(node, dict):
                if last:
                    node[key] = copy.deepcopy(value)
                else:
                    if node.get(key) is None:  # DeepLabCut's set_nested makes missing sections too
                        node[key] = {}
                    node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                if last:
                    node[key] = copy.deepcopy(value)
                else:
                    node = node[key]
            else:
                raise ProjectError(source, f"pytorch_cfg_updates key {dotted!r}: {'.'.join(parts[:i])} is not a "
                                           "section")
    return dlc
