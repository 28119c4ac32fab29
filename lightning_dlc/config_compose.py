"""The one way the package composes a config of conf/ (the training run's, conf/train.yaml) outside a script.

Inside a running Hydra app (``lightning_dlc/cli/*.py``'s ``@hydra.main``) the config is composed with that app's own
Hydra when it reads conf/; any other app's Hydra is put aside and restored afterwards, never cleared: the
app still needs it (its run folder, its sweep). Hydra and OmegaConf are imported when a config is composed,
so modules that only need ``CONF_DIR`` import none of them.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"

__all__ = ["CONF_DIR", "compose_config", "compose_train"]


def _reads_conf(hydra) -> bool:
    """Whether a running Hydra app's search path holds conf/ (our scripts' apps do)."""
    for element in hydra.config_loader.get_sources():
        if element.scheme() == "file" and Path(element.path).resolve() == CONF_DIR:
            return True
    return False


def compose_config(config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False
                   ) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with Hydra ``overrides`` (not resolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def run() -> DictConfig:
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)

    running = GlobalHydra.instance().hydra
    if running is not None and _reads_conf(running):
        return run()
    GlobalHydra.instance().clear()  # initialize_config_dir refuses to start beside another Hydra
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return run()
    finally:
        GlobalHydra.instance().hydra = running  # the other app's Hydra, as it was


def compose_train(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/train.yaml composed, with ``net_type`` set to the ``model`` choice when the config leaves it None
    (DeepLabCut's name of the model, which a ``pytorch_config.yaml`` written beside our snapshots needs)."""
    from omegaconf import open_dict

    cfg = compose_config("train", overrides, return_hydra_config=True)
    choice = cfg.hydra.runtime.choices.get("model")
    with open_dict(cfg):
        del cfg["hydra"]
        if cfg.get("net_type") is None:
            cfg.net_type = choice
    return cfg
