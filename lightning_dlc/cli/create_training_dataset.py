"""Create training shuffles: lightning-dlc create-training-dataset config=PATH/config.yaml"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.api import create_training_dataset


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="create_training_dataset")
def main(cfg: DictConfig) -> None:
    for shuffle in create_training_dataset(**OmegaConf.to_container(cfg, resolve=True)):
        print(f"shuffle {shuffle.index} (TrainingFraction {shuffle.train_fraction}): "
              f"{len(shuffle.train_indices)} train, {len(shuffle.test_indices)} test images")


if __name__ == "__main__":
    main()
