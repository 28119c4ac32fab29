"""Link a multi-animal video analysis into tracklets, then stitch them into one track per animal:
lightning-dlc track config=/data/project/config.yaml videos=[/data/a.mp4] [shuffle=1] [track_method=ellipse]
lightning-dlc track run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4] [n_tracks=3] [fill_gaps=5]
Writes <video><scorer>_el.pickle (tracklets) and <video><scorer>_el.h5 (tracks) beside the analysis."""
import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.pipelines.run_folder import video_command_args

CONVERT = ("pcutoff", "max_age", "min_similarity", "box_slack", "ignore_bodyparts", "identity_only")
STITCH = ("n_tracks", "min_length", "split_tracklets", "max_gap", "fill_gaps", "save_as_csv", "animal_names",
          "use_identity")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="track")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    config, snapshot, videos = video_command_args(args)
    common = {k: args.pop(k) for k in ("videotype", "shuffle", "trainingsetindex", "destfolder", "track_method",
                                       "overwrite")}
    for path in api.convert_detections2tracklets(config, videos, snapshot=snapshot, **common,
                                                 **{k: args.pop(k) for k in CONVERT}):
        print(f"tracklets: {path}")
    for path in api.stitch_tracklets(config, videos, snapshot=snapshot, **common, **{k: args.pop(k) for k in STITCH}):
        print(f"tracks: {path}")


if __name__ == "__main__":
    main()
