"""FiftyOne review of labeled frames and analyzed videos:
lightning-dlc diagnostics runs=[outputs/A,outputs/B] [videos=[/data/a.mp4]] [launch=false]"""
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc import api
from lightning_dlc.review.fiftyone_session import launch_app


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="diagnostics")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    if not args["runs"] and not args["videos"]:
        raise SystemExit("nothing to review: give runs=[outputs/...] and/or videos=[/data/a.mp4]")
    datasets, project = [], args["project"]
    if args["runs"]:
        datasets.append(api.diagnostics(project, runs=args["runs"], snapshot=args["snapshot"], names=args["names"],
                                        name=args["name"], overwrite=args["overwrite"], device=args["device"]))
        project = project or Path(datasets[0].info["project"]) / "config.yaml"
    if args["videos"]:
        videos = api.video_diagnostics(project, args["videos"], destfolder=args["destfolder"], scorer=args["scorer"],
                                       name=args["video_name"], overwrite=args["overwrite"],
                                       n_low_confidence=args["n_low_confidence"], n_jumps=args["n_jumps"])
        datasets.append(videos)
        if args["export_relabel"]:
            if project is None:
                raise SystemExit("export_relabel=true needs project=<config.yaml> (or runs=) to know where to write")
            for done in api.extract_frames_to_relabel(project, videos):
                print(f"{done.video}: {len(done.written)} frames to label in {done.folder} "
                      f"({len(done.kept)} existed, kept)")
    if args["launch"]:  # the App shows the first; the others are in its dataset menu
        launch_app(datasets[0], args["address"], args["port"], wait=True)


if __name__ == "__main__":
    main()
