"""Smooth analyzed videos' predictions (median, arima, spline) into DeepLabCut's _filtered.h5:
lightning-dlc filter-predictions config=/data/project/config.yaml videos=[/data/a.mp4] [filtertype=median]
lightning-dlc filter-predictions run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4] filtertype=spline windowlength=10
A video already filtered is kept (delete its _filtered.h5 to filter again)."""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc import api
from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.pipelines.run_folder import video_command_args


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="filter_predictions")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    config, snapshot, videos = video_command_args(args)
    for path in api.filterpredictions(config, videos, snapshot=snapshot, **args):
        print(f"filtered: {path}")


if __name__ == "__main__":
    main()
