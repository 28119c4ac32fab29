"""Draw an analyzed video's keypoints (its stitched tracks when there are) on its frames, as an H.264 mp4:
lightning-dlc create-labeled-video config=/data/project/config.yaml videos=[/data/a.mp4] [shuffle=1]
lightning-dlc create-labeled-video run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4] color_by=individual
all_detections=true also writes <video><scorer>_full.mp4 with every detection before tracking."""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.pipelines.run_folder import video_command_args


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="create_labeled_video")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    all_detections = args.pop("all_detections")
    config, snapshot, videos = video_command_args(args)
    for path in api.create_labeled_video(config, videos, snapshot=snapshot, **args):
        print(f"labeled video: {path}")
    if all_detections:
        common = ("videotype", "shuffle", "trainingsetindex", "destfolder", "dotsize", "overwrite")
        for path in api.create_video_with_all_detections(config, videos, snapshot=snapshot,
                                                         **{k: args[k] for k in common}):
            print(f"all detections: {path}")


if __name__ == "__main__":
    main()
