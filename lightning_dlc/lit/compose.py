"""The training run's config: ``conf/train.yaml`` + a DeepLabCut ``pytorch_config.yaml`` + overrides.

Precedence, lowest first: conf/ defaults, the pytorch_config's settings
(:func:`lightning_dlc.project.pytorch_config_read.translate_pytorch_config`), the command line. A
group the command line chooses (``optimizer=sgd``) keeps its option's values where they differ from
the option the pytorch_config implies; the command line's values (``optimizer.lr=1e-3``) are applied
last. ``net_type`` records DeepLabCut's name of the model (the ``model`` choice), which its
``pytorch_config.yaml`` written beside our snapshots needs.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from lightning_dlc.config_compose import CONF_DIR, compose_train


def _groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def _plain(cfg: DictConfig, path: str):
    value = OmegaConf.select(cfg, path, default=None, throw_on_missing=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def project_meta(cfg: DictConfig):
    """The project's metadata when the run trains on a DeepLabCut project (else None: the file's own is used)."""
    from lightning_dlc.project.config import ProjectConfig

    if cfg.data.get("source") != "dlc" or not cfg.data.get("project") or cfg.data.project == "???":
        return None
    return ProjectConfig.read(cfg.data.project).meta()


def compose_train_config(overrides: list[str] | tuple[str, ...] = (), pytorch_config: str | Path | None = None,
                         cfg_updates: dict | None = None) -> DictConfig:
    """Compose a training run's config; with ``pytorch_config`` its settings sit under ``overrides``.

    ``pytorch_config`` (a DeepLabCut ``pytorch_config.yaml``) may also come as ``pytorch_config=PATH``
    among the overrides. ``cfg_updates``: DeepLabCut's dotted keys (``{"runner.optimizer.params.lr":
    1e-3}``) applied to the file before it is translated, as DeepLabCut's ``pytorch_cfg_updates``.
    Raises ProjectError naming the file and every field that cannot be honoured.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lightning_dlc.project.pytorch_config import read_pytorch_config
    from lightning_dlc.project.pytorch_config_read import apply_dotted_updates, translate_pytorch_config

    overrides = [o for o in overrides if not o.startswith("hydra.")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    pytorch_config = pytorch_config or next((o.value() for o in parsed if o.key_or_group == "pytorch_config"), None)
    if not pytorch_config:
        return compose_train(overrides)
    groups = _groups()
    chosen_options = [o.input_line for o in parsed if o.key_or_group in groups]
    chosen = {o.key_or_group for o in parsed if o.key_or_group in groups and not o.is_delete()}
    values = [o for o in parsed if o.key_or_group not in groups and not o.is_hydra_override()]
    # where the data come from (the project's bodyparts are checked against the file's)
    located = compose_train([*chosen_options, *(o.input_line for o in values if o.key_or_group.startswith("data."))])
    dlc = read_pytorch_config(pytorch_config)
    if cfg_updates:
        dlc = apply_dotted_updates(dlc, cfg_updates, source=pytorch_config)
    translated = translate_pytorch_config(dlc, project_meta(located), source=pytorch_config)
    choices = dict(translated.choices)
    if "scheduler" in translated.values:
        choices.setdefault("scheduler", "none")  # the node is replaced whole
    implied = [f"{group}={option}" for group, option in choices.items()]
    base = compose_train(implied)
    cfg = compose_train([*(c for c in implied if c.split("=", 1)[0] not in chosen), *chosen_options])
    with open_dict(cfg):
        for path, value in translated.values.items():
            if path.split(".", 1)[0] in chosen and _plain(cfg, path) != _plain(base, path):
                continue  # the command line chose another group option, whose value differs: it wins
            if path == "net_type" and "model" in chosen:
                continue
            OmegaConf.update(cfg, path, value, merge=False, force_add=True)
        cfg.pytorch_config = str(pytorch_config)
        # the command line's values win over the file's
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


# DeepLabCut's train_network keywords -> our config keys (deeplabcut/pose_estimation_pytorch/apis/training.py,
# deeplabcut/compat.py); net_type / detector_type choose conf/model and conf/detector options.
TRAIN_KEYWORDS = {"epochs": "trainer.max_epochs", "save_epochs": "snapshots.save_epochs",
                  "batch_size": "data.batch_size", "max_snapshots_to_keep": "snapshots.max_snapshots",
                  "display_iters": "trainer.log_every_n_steps", "net_type": "model", "seed": "seed",
                  "detector_type": "detector", "detector_epochs": "detector.train.epochs",
                  "detector_save_epochs": "detector.train.save_epochs",
                  "detector_batch_size": "detector.train.batch_size",
                  "snapshot_path": "model.weights", "detector_path": "detector.model.weights"}
# accepted with their DeepLabCut defaults only, and why anything else is refused
TRAIN_KEYWORDS_FIXED = {
    "load_head_weights": (True, "heads are taken from snapshot_path wherever their shapes fit (model.weights)"),
    "keepdeconvweights": (True, "heads are taken from snapshot_path wherever their shapes fit (model.weights)"),
    "pose_threshold": (0.1, "memory replay (SuperAnimal fine-tuning) is not built here"),
    "superanimal_name": ("", "SuperAnimal models are not built here"),
    "superanimal_transfer_learning": (False, "SuperAnimal models are not built here"),
    "engine": (None, "lightning_dlc is the PyTorch engine (engine=None or 'pytorch')"),
    "allow_growth": (True, "TensorFlow only"), "autotune": (False, "TensorFlow only"),
    "save_iters": (None, "TensorFlow only: save_epochs"), "max_iters": (None, "TensorFlow only: epochs"),
}


def train_keyword_overrides(**settings) -> list[str]:
    """DeepLabCut's train_network keywords as Hydra overrides; one TypeError naming every keyword refused."""
    refused, overrides = [], []
    for key, value in settings.items():
        if key in TRAIN_KEYWORDS_FIXED:
            default, why = TRAIN_KEYWORDS_FIXED[key]
            if value != default and not (key == "engine" and str(getattr(value, "value", value)).lower() == "pytorch"):
                refused.append(f"{key}={value!r}: {why}")
        elif key in ("device", "gputouse"):
            overrides += _device_overrides(value if key == "device" else f"cuda:{value}") if value is not None else []
        elif key == "detector_epochs" and value == 0:  # DeepLabCut: 0 = do not train the detector
            overrides.append("stages=[pose]")
        elif key in TRAIN_KEYWORDS:
            if value is not None:
                overrides.append(f"{TRAIN_KEYWORDS[key]}={value}")
        else:
            refused.append(f"{key}: not a train_network argument we know (anything else: overrides=['key=value'])")
    if refused:
        raise TypeError("train_network: " + "; ".join(refused))
    return overrides


def _device_overrides(device) -> list[str]:
    kind, _, index = str(device).partition(":")
    accelerator = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "auto": "auto", "mps": "mps"}.get(kind)
    if accelerator is None:
        raise TypeError(f"train_network: device={device!r}: cpu, cuda, cuda:<i>, mps or auto")
    return [f"trainer.accelerator={accelerator}", *([f"trainer.devices=[{int(index)}]"] if index else [])]
