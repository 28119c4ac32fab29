"""Evaluate a run's snapshots on its train and test images:
lightning-dlc evaluate run=outputs/YYYY-MM-DD/HH-MM-SS [snapshots=best|last|all] [plotting=true]"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.evaluation.report import evaluate_snapshots


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    evaluate_snapshots(args.pop("run"), which=args.pop("snapshots"), **args)


if __name__ == "__main__":
    main()
