"""Predict images (any size) with a trained snapshot: DeepLabCut's image_predictions_<scorer>.h5 and a .json:
lightning-dlc analyze-images run=outputs/YYYY-MM-DD/HH-MM-SS images=/data/frames [destfolder=DIR]"""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.inference.analyze import analyze_images
from lightning_dlc.inference.scorer import snapshot_from_args

VIDEO_ONLY = ("videos", "videotype", "reader", "compile", "crop", "chunk_frames", "blank_threshold", "features",
              "wait_for_lock", "auto_track", "track_method", "identity_only", "ctd_tracking")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    snapshot = snapshot_from_args(args.pop("run"), args.pop("snapshot"))
    images = args.pop("images")
    for key in VIDEO_ONLY:
        args.pop(key)
    if args.pop("conditions", None) is not None:
        sys.exit("conditions= (conditional top-down models) is for lightning-dlc analyze-videos and evaluate")
    if not images:
        sys.exit("no images given: images=/path/folder (or images=[a.png,b.jpg])")
    if analyze_images(snapshot, images, **args) is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
