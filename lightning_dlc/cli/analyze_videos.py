"""Analyze videos with a trained snapshot, writing DeepLabCut's files beside them (or in destfolder):
lightning-dlc analyze-videos run=outputs/YYYY-MM-DD/HH-MM-SS videos=[/data/a.mp4,/data/b.mp4]
Exits with status 1 if any video failed (the others are still analyzed). A video another process is
analyzing (same video and model) is skipped, naming its pid and host (status 0: that process writes it),
or waited for with wait_for_lock=true."""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.inference.scorer import snapshot_from_args
from lightning_dlc.pipelines.analyze import analyze_and_track
from lightning_dlc.pipelines.ctd import analyze_videos_ctd, is_ctd_snapshot


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    snapshot = snapshot_from_args(args.pop("run"), args.pop("snapshot"))
    videos, images = args.pop("videos"), args.pop("images")
    if images:
        sys.exit("images= is for lightning-dlc analyze-images")
    auto_track, track_method = args.pop("auto_track", False), args.pop("track_method", "ellipse")
    identity_only = args.pop("identity_only", False)
    conditions, ctd_tracking = args.pop("conditions", None), args.pop("ctd_tracking", False)
    if conditions is not None or ctd_tracking or is_ctd_snapshot(snapshot):  # conditional top-down
        for unused in ("detector", "box_threshold", "features", "backend"):
            args.pop(unused, None)
        summaries, tracks = analyze_videos_ctd(snapshot, videos or [], conditions=conditions,
                                               ctd_tracking=ctd_tracking, **args), []
    else:
        summaries, tracks = analyze_and_track(snapshot, videos or [], auto_track=auto_track,
                                              track_method=track_method, identity_only=identity_only, **args)
    if not summaries:
        sys.exit("no videos given: videos=[/path/a.mp4,/path/folder]")
    for path in tracks:
        print(f"tracks: {path}")
    if any(s.status == "failed" for s in summaries):
        sys.exit(1)


if __name__ == "__main__":
    main()
