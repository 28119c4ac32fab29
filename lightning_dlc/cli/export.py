"""Export a run folder's snapshots into a DeepLabCut project's model folder (DeepLabCut 3.0.2 reads it):
lightning-dlc export run=outputs/YYYY-MM-DD/HH-MM-SS config=/path/to/config.yaml [shuffle=1] [overwrite=true]"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.models.export import export_run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    export_run(args.pop("run"), args.pop("config"), **args)


if __name__ == "__main__":
    main()
