"""DeepLabCut's config.yaml: read it, tolerate moved projects, write it back with comments."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.records import SINGLE_ANIMAL, ProjectMeta

log = logging.getLogger(__name__)

# Configs already warned about, so a moved project is reported once per process.
_warned: set[tuple[Path, str]] = set()


def _warn_once(config: Path, what: str, message: str) -> None:
    if (config, what) not in _warned:
        _warned.add((config, what))
        log.warning("%s: %s", config, message)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long paths
    yaml.indent(mapping=2, sequence=2, offset=0)  # DeepLabCut's "key:\n- item" style
    return yaml


def parse_yaml(text: str) -> CommentedMap:
    """YAML text -> a mapping that keeps its comments (templates for new projects)."""
    return _yaml().load(text)


def path_name(listed: str) -> str:
    """File name of a path written on any OS (video_sets often hold Windows paths)."""
    pure = PureWindowsPath(listed) if "\\" in listed else PurePosixPath(listed)
    return pure.name


def parse_crop(value, config: Path, video: str) -> tuple[int, int, int, int] | None:
    """'x1, x2, y1, y2' as DeepLabCut writes it -> ints, or None when absent."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        x1, x2, y1, y2 = (int(round(float(p))) for p in parts)
    except (TypeError, ValueError):
        raise ProjectError(config, f"video_sets[{video!r}].crop must be 'x1, x2, y1, y2', got {value!r}")
    if x2 <= x1 or y2 <= y1:
        raise ProjectError(config, f"video_sets[{video!r}].crop {value!r} is empty (need x1 < x2 and y1 < y2)")
    return x1, x2, y1, y2


@dataclass(frozen=True)
class VideoSet:
    """One entry of video_sets: the path as written, where it resolves, and its crop."""

    listed: str
    path: Path
    crop: tuple[int, int, int, int] | None

    @property
    def stem(self) -> str:
        """The labeled-data folder name DeepLabCut derives from this video."""
        return PurePosixPath(path_name(self.listed)).stem


class ProjectConfig:
    """A DeepLabCut project's config.yaml, with comments and key order kept for writing back.

    ``root`` is always the folder holding config.yaml: a ``project_path`` that points
    elsewhere (a moved project, DeepLabCut's example placeholders) is reported and ignored.
    """

    def __init__(self, path: str | Path, data: CommentedMap):
        self.path = Path(path).resolve()
        self.data = data
        self.root = self.path.parent
        for key in ("Task", "scorer"):
            if not data.get(key):
                raise ProjectError(self.path, f"missing required key {key!r}")
        listed_root = data.get("project_path")
        if listed_root is None or Path(str(listed_root)).resolve() != self.root:
            _warn_once(self.path, "project_path",
                       f"project_path {listed_root!r} is not this config's folder; using {self.root}")

    @classmethod
    def read(cls, path: str | Path) -> ProjectConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.yaml"
        if not path.is_file():
            raise ProjectError(path, "no such DeepLabCut config file")
        try:
            with open(path, encoding="utf-8") as f:
                data = _yaml().load(f)
        except Exception as e:  # ruamel raises many types; all mean the same to a user
            raise ProjectError(path, f"not valid YAML: {e}") from e
        if not isinstance(data, CommentedMap):
            raise ProjectError(path, "expected a mapping of DeepLabCut settings at the top level")
        return cls(path, data)


    def to_text(self) -> str:
        buf = io.StringIO()
        _yaml().dump(self.data, buf)
        return buf.getvalue()

    def save(self, path: str | Path | None = None, overwrite: bool = False) -> Path:
        """Write atomically, keeping comments and key order; never replaces a file silently."""
        path = Path(path) if path is not None else self.path
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(self.to_text(), encoding="utf-8")
        return path

    # --- what the rest of the project reads -------------------------------------------
    @property
    def task(self) -> str:
        return str(self.data["Task"])

    @property
    def scorer(self) -> str:
        return str(self.data["scorer"])

    @property
    def date(self) -> str:
        return str(self.data.get("date", ""))

    @property
    def iteration(self) -> int:
        return int(self.data.get("iteration") or 0)

    @property
    def multianimal(self) -> bool:
        return bool(self.data.get("multianimalproject"))

    @property
    def identity(self) -> bool:
        return bool(self.data.get("identity"))

    @property
    def training_fractions(self) -> list[float]:
        fractions = self.data.get("TrainingFraction") or [0.95]
        if not isinstance(fractions, list):
            fractions = [fractions]
        for f in fractions:
            if not 0 < float(f) <= 1:
                raise ProjectError(self.path, f"TrainingFraction {f!r} must be in (0, 1]")
        return [float(f) for f in fractions]

    @property
    def pcutoff(self) -> float:
        return float(self.data.get("pcutoff", 0.6))

    def _names(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if isinstance(value, str):  # 'MULTI!' marks bodyparts of multi-animal projects
            return ()
        return tuple(str(v) for v in value)

    @property
    def bodyparts(self) -> tuple[str, ...]:
        """Per-individual bodyparts (multianimalbodyparts in a multi-animal project)."""
        if self.multianimal:
            return self._names("multianimalbodyparts")
        return self._names("bodyparts")

    @property
    def unique_bodyparts(self) -> tuple[str, ...]:
        return self._names("uniquebodyparts") if self.multianimal else ()

    @property
    def individuals(self) -> tuple[str, ...]:
        return self._names("individuals") if self.multianimal else (SINGLE_ANIMAL,)

    @property
    def skeleton(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for edge in self.data.get("skeleton") or []:
            if not isinstance(edge, list) or len(edge) != 2:
                raise ProjectError(self.path, f"skeleton entries must be pairs of bodyparts, got {edge!r}")
            pairs.append((str(edge[0]), str(edge[1])))
        return tuple(pairs)

    def meta(self) -> ProjectMeta:
        if not self.bodyparts:
            key = "multianimalbodyparts" if self.multianimal else "bodyparts"
            raise ProjectError(self.path, f"{key} is empty: list the bodyparts to label")
        if self.multianimal and not self.individuals:
            raise ProjectError(self.path, "individuals is empty in a multi-animal project")
        known = set(self.bodyparts) | set(self.unique_bodyparts)
        for a, b in self.skeleton:
            for part in (a, b):
                if part not in known:
                    raise ProjectError(self.path, f"skeleton names {part!r}, which is not a bodypart")
        return ProjectMeta(
            bodyparts=self.bodyparts,
            individuals=self.individuals,
            unique_bodyparts=self.unique_bodyparts,
            skeleton=self.skeleton,
            identity=self.identity,
        )

    def video_sets(self) -> list[VideoSet]:
        """Listed videos (commented-out ones are not listed), resolved on this machine.

        A listed path that does not exist here is looked up by name in the project's
        ``videos/`` folder; entries without a file suffix are DeepLabCut's example
        placeholders and are skipped. Each kind of fix is reported once.
        """
        sets, moved, placeholders = [], [], []
        for listed, settings in (self.data.get("video_sets") or {}).items():
            listed = str(listed)
            if not PurePosixPath(path_name(listed)).suffix:
                placeholders.append(listed)
                continue
            path = Path(listed)
            if not path.exists():
                local = self.root / "videos" / path_name(listed)
                if local != path:
                    moved.append(listed)
                path = local
            crop = parse_crop((settings or {}).get("crop"), self.path, listed)
            sets.append(VideoSet(listed, path, crop))
        if placeholders:
            _warn_once(self.path, "placeholders",
                       f"video_sets entries {placeholders} are not video paths (placeholders?); ignoring them")
        if moved:
            _warn_once(self.path, "moved",
                       f"{len(moved)} video_sets path(s) do not exist on this machine (moved project?); "
                       f"looking for them by name in {self.root / 'videos'}")
        return sets

    def labeled_data_folders(self) -> list[Path]:
        """labeled-data folders of the videos listed in video_sets, in video_sets order.

        Listing a video is how users include its labels: a folder whose video is
        commented out is excluded. Only when video_sets lists no real video at all
        (DeepLabCut's shipped examples) are all folders used, with a warning.
        """
        labeled = self.root / "labeled-data"
        folders = sorted(p for p in labeled.iterdir() if p.is_dir()) if labeled.is_dir() else []
        # DeepLabCut writes *_labeled folders of plotted images beside the labels.
        folders = [p for p in folders if not p.name.endswith("_labeled")]
        sets = self.video_sets()
        if not sets:
            if folders:
                _warn_once(self.path, "all-folders",
                           "video_sets lists no video; using every folder in labeled-data/")
            return folders
        by_name = {p.name: p for p in folders}
        chosen = [by_name[s.stem] for s in sets if s.stem in by_name]
        skipped = sorted(set(by_name) - {p.name for p in chosen})
        if skipped:
            log.info("%s: labeled-data folders not in video_sets are excluded: %s", self.path, skipped)
        return chosen

    @property
    def training_datasets_dir(self) -> Path:
        return (self.root / "training-datasets" / f"iteration-{self.iteration}"
                / f"UnaugmentedDataSet_{self.task}{self.date}")
