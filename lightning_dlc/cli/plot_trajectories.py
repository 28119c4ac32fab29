"""Plot analyzed videos' trajectories and likelihoods into DeepLabCut's plot-poses/ images:
lightning-dlc plot-trajectories config=/data/project/config.yaml videos=[/data/a.mp4] [filtered=true]
lightning-dlc plot-trajectories run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4] displayedbodyparts=[snout]"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc import api
from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.pipelines.run_folder import video_command_args


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="plot_trajectories")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    config, snapshot, videos = video_command_args(args)
    for path in api.plot_trajectories(config, videos, snapshot=snapshot, **args):
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
