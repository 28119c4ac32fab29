"""Train a pose model: ``lightning-dlc train [data=dlc data.project=.../config.yaml] [model=hrnet_w32] ...``.

With no arguments it trains on the built-in demo project. ``-m`` sweeps; see lightning_dlc/conf/train.yaml.
``pytorch_config=/path/to/pytorch_config.yaml`` trains with a DeepLabCut file's settings (net_type,
optimizer, schedule, epochs, ...); the command line's overrides still win. The composed config is
saved in the run folder as ``run_config.yaml``.
"""
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.lit.compose import compose_train_config
from lightning_dlc.lit.train import train


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    if cfg.get("pytorch_config"):
        cfg = compose_train_config(list(hydra_cfg.overrides.task))
        with open_dict(cfg):
            cfg.output_dir = hydra_cfg.runtime.output_dir
    elif cfg.get("net_type") is None:
        with open_dict(cfg):
            cfg.net_type = hydra_cfg.runtime.choices.get("model")
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, Path(cfg.output_dir) / "run_config.yaml")
    return train(cfg)


if __name__ == "__main__":
    main()
