"""A training run folder as the scripts name it (``run=``) -> the project's config.yaml and the snapshot file,
the arguments the api functions take (lightning-dlc track, lightning-dlc create-labeled-video)."""
from __future__ import annotations

from pathlib import Path

from lightning_dlc.project.errors import ProjectError

__all__ = ["project_and_snapshot", "video_command_args"]


def project_and_snapshot(config=None, run=None, snapshot="best") -> tuple[Path, str | Path]:
    """What the tracking and labeled-video scripts take: config.yaml and the ``snapshot`` argument of the api
    functions. With ``run`` (a training run folder): its ``best`` / ``last`` snapshot file, and the project
    it trained on unless ``config`` names one (a project that moved)."""
    if run is None:
        if config is None:
            raise ValueError("name the project: config=/path/config.yaml (with shuffle=), or run=<run folder>")
        return Path(config), snapshot
    from lightning_dlc.inference.scorer import snapshot_from_args  # torch: only for a run folder
    from lightning_dlc.models.snapshot_files import load_snapshot

    path = snapshot_from_args(run, snapshot)
    if config is None:
        project = (load_snapshot(path).get("run_config") or {}).get("data", {}).get("project")
        if not project:
            raise ProjectError(path, "the run names no project; pass config=/path/config.yaml")
        config = Path(project)
        config = config if config.suffix == ".yaml" else config / "config.yaml"
    return Path(config), path


def video_command_args(args: dict) -> tuple[Path, str | Path, list]:
    """The project, snapshot and videos a per-video command names, taken out of its Hydra ``args`` (the rest
    stays there: the api function's own arguments). No videos: exits with what to pass."""
    config, snapshot = project_and_snapshot(args.pop("config"), args.pop("run"), args.pop("snapshot"))
    videos = args.pop("videos")
    if not videos:
        raise SystemExit("no videos given: videos=[/path/a.mp4,/path/folder]")
    return config, snapshot, videos
