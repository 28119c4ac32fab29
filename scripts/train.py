"""Train a pose model: ``python scripts/train.py [data=dlc data.project=.../config.yaml] [model=hrnet_w32] ...``.

With no arguments it trains on the built-in demo project. ``-m`` sweeps; see conf/train.yaml.
"""
import hydra
from omegaconf import DictConfig

from lightning_dlc.lit.train import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
