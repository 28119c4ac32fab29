"""Analyze videos with several models and combine them with an Ensemble Kalman smoother:
lightning-dlc analyze-ensemble config=/data/project/config.yaml videos=[/data/a.mp4] shuffles=[1,2,3]
lightning-dlc analyze-ensemble config=/data/project/config.yaml videos=[/data/a.mp4] snapshots=[-2,-1]
Writes <video>DLC_ensemble<M>_<first member's scorer>.h5 (and _meta.pickle) beside the members' analyses;
pass that scorer as snapshot= to the other commands (create-labeled-video, filter-predictions, ...)."""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc import api
from lightning_dlc.config_compose import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze_ensemble")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    config, videos = args.pop("config"), args.pop("videos")
    if not config:
        raise SystemExit("no project given: config=/path/to/config.yaml")
    if not videos:
        raise SystemExit("no videos given: videos=[/path/a.mp4,/path/folder]")
    for result in api.analyze_videos_ensemble(config, videos, **args):
        print(f"ensemble ({result.status}): {result.h5}  (snapshot={result.scorer} in the other commands)")


if __name__ == "__main__":
    main()
