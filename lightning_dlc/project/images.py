"""Image file checks that read headers only, so large projects load in seconds."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lightning_dlc.project.errors import ProjectError


def image_shape(path: str | Path, listed_in: str | Path | None = None) -> tuple[int, int, int]:
    """(channels, height, width) from the file header, as DeepLabCut records image sizes.

    A missing or unreadable image is an error naming it (and the label file that lists it).
    Pixel data is decoded later, by the data loader, which names the file if it is truncated.
    """
    path = Path(path)
    where = f" (listed in {listed_in})" if listed_in else ""
    if not path.is_file():
        raise ProjectError(path, f"labeled image is missing{where}")
    try:
        with Image.open(path) as img:
            width, height = img.size
            return len(img.getbands()), height, width
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ProjectError(path, f"cannot read image{where}: {e}") from e
