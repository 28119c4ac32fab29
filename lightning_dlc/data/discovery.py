"""Which files to analyze: the videos and images named by files, folders or lists of them."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "find_images", "find_videos"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _made_from_analysis(path: Path) -> bool:
    """A labeled video or all-detections video made from an analysis (``<video>DLC_..._labeled.mp4``)."""
    return "DLC_" in path.stem and path.stem.endswith(("_labeled", "_full"))


def find_videos(videos, videotype: str | Sequence[str] | None = None) -> list[Path]:
    """Video files from files and folders (a folder: its videos with ``videotype`` or the usual suffixes,
    not the labeled videos made from earlier analyses).

    Paths that do not exist are kept, so that their analysis fails with their name.
    """
    if isinstance(videos, (str, Path)):
        videos = [videos]
    suffixes = VIDEO_EXTENSIONS if not videotype else tuple(
        ("." + s.lstrip(".")).lower() for s in ([videotype] if isinstance(videotype, str) else videotype))
    out: list[Path] = []
    for item in videos:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                           and not _made_from_analysis(p))
            if not found:
                log.warning("%s: no videos (%s) in this folder", path, ", ".join(suffixes))
            out += found
        else:
            out.append(path)
    return out


def find_images(images_or_folder, suffixes: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files from an image, a folder (its images, sorted) or a list of either."""
    items = [images_or_folder] if isinstance(images_or_folder, (str, Path)) else list(images_or_folder)
    out: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        else:
            out.append(path)
    return out
