"""Write the built-in demo project: lightning-dlc make-demo out=DIR"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.data.demo import make_demo_project


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="make_demo_project")
def main(cfg: DictConfig) -> None:
    config = make_demo_project(**OmegaConf.to_container(cfg, resolve=True))
    print(f"demo project: {config}")


if __name__ == "__main__":
    main()
