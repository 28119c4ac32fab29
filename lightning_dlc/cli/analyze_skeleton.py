"""Measure skeleton edges' lengths and orientations into DeepLabCut's _skeleton.h5:
lightning-dlc analyze-skeleton config=/data/project/config.yaml videos=[/data/a.mp4] [filtered=true]
lightning-dlc analyze-skeleton run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4] save_as_csv=true"""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc import api
from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.pipelines.run_folder import video_command_args


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze_skeleton")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    config, snapshot, videos = video_command_args(args)
    for path in api.analyzeskeleton(config, videos, snapshot=snapshot, **args):
        print(f"skeleton: {path}")


if __name__ == "__main__":
    main()
