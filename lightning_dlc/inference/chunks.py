"""Resumable partial results of a video's analysis: chunks of frames saved in ``<prefix>.partial/`` as they fill.

Rows collect in a :class:`ChunkBuffer` of ``chunk_frames`` frames that is saved as one ``.npz`` when
full. A crash or Ctrl-C loses at most the chunk in progress: the next run with the same snapshot,
video and settings resumes after the last saved chunk (and logs it). Every chunk carries the state of
the run that made it (snapshot, video file, settings, frame range) and is checked against the run's
own state when resumed from and when read back: a chunk of another run, snapshot or video, or
overlapping frames, stops the run with the folder's name and the fix.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["BLANK", "INVALID", "OK", "STATE_VERSION", "ChunkBuffer", "PartialResults", "file_id", "frame_status"]

OK, INVALID, BLANK = 0, 1, 2  # frame status in the partial chunks
STATE_VERSION = 2  # 2: every chunk carries the state it was made with


def file_id(path: Path) -> dict:
    """What identifies a file's contents in a run's state: resolved path, size, modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def frame_status(frames, valid, blank_threshold: int | None) -> np.ndarray:
    """Per frame of a batch: OK, INVALID (not decoded) or BLANK (pixel values span at most ``blank_threshold``)."""
    status = np.where(valid.numpy(), OK, INVALID).astype(np.uint8)
    if blank_threshold is not None and (status == OK).any():
        flat = frames.flatten(1)
        spread = (flat.amax(1).int() - flat.amin(1).int()).cpu().numpy()
        status[(status == OK) & (spread <= int(blank_threshold))] = BLANK
    return status


class PartialResults:
    """``<prefix>.partial/``: ``state.json`` (what the results depend on) and ``frames-<a>-<b>.npz`` chunks.

    Each chunk also carries what made it: ``_state`` (the run's state as JSON: snapshot, video file,
    settings) and ``_frames`` (its first and end frame). Chunks must run from frame 0 without gaps or
    overlaps and carry this run's state; anything else (a chunk of another run, snapshot or video)
    stops the run with the folder's name and the fix: it is never mixed in.
    """

    def __init__(self, folder: Path, state: dict):
        self.folder = folder
        self.state = state

    def _foreign(self, path: Path, problem: str) -> ProjectError:
        return ProjectError(self.folder, f"{path.name}: {problem}; these partial results are not this run's "
                                         "alone: remove the folder (or run again with overwrite=True) to start over")

    def _check(self, path: Path, a: int, b: int, z) -> None:
        """The chunk at ``path`` (open npz ``z``) was made by this run's state for frames ``[a, b)``."""
        if "_state" not in z.files or "_frames" not in z.files:
            raise self._foreign(path, "carries no record of the run that made it")
        try:
            made_by = json.loads(str(z["_state"]))
        except ValueError:
            raise self._foreign(path, "its record of the run that made it is unreadable") from None
        differ = sorted(k for k in set(made_by) | set(self.state)
                        if k != "chunk_frames" and made_by.get(k) != self.state.get(k))
        if differ:
            raise self._foreign(path, f"made by another run ({', '.join(differ)} differ)")
        frames = [int(v) for v in np.asarray(z["_frames"]).reshape(-1)]
        if frames != [a, b]:
            raise self._foreign(path, f"holds frames {frames[0]}-{frames[-1] - 1}, its name says {a}-{b - 1}")

    def _chunks(self, check: bool = True) -> list[tuple[int, int, Path]]:
        """The chunks, in order: a complete run from frame 0 made by this run (else ProjectError)."""
        found = []
        for path in self.folder.glob("frames-*-*.npz"):
            parts = path.stem.split("-")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                found.append((int(parts[1]), int(parts[2]), path))
        found.sort()
        chunks, end = [], 0
        for a, b, path in found:
            if a != end or b <= a:
                what = "overlaps the chunk before it" if a < end else "leaves a gap after the chunk before it"
                raise self._foreign(path, f"frames {a}-{b - 1} {what} (frames 0-{end - 1} are covered)")
            if check:
                with np.load(path) as z:
                    self._check(path, a, b, z)
            chunks.append((a, b, path))
            end = b
        return chunks

    def resume(self) -> tuple[int, int]:
        """(frames already done, chunk size to use): 0 and the state's chunk size for a fresh start."""
        state_file = self.folder / "state.json"
        if self.folder.is_dir():
            try:
                old = json.loads(state_file.read_text())
            except (OSError, ValueError):
                old = None
            same = old is not None and all(old.get(k) == v for k, v in self.state.items() if k != "chunk_frames")
            if same:
                self.state["chunk_frames"] = int(old.get("chunk_frames") or self.state["chunk_frames"])
                chunks = self._chunks()
                done = chunks[-1][1] if chunks else 0
                if done:
                    log.info("%s: resuming from frame %d (resumed: %d frames in %d chunks of %s)",
                             self.state["video"], done, done, len(chunks), self.folder)
                return done, self.state["chunk_frames"]
            changed = sorted(k for k, v in self.state.items() if k != "chunk_frames" and (old or {}).get(k) != v)
            log.warning("%s: partial results made with other settings or inputs (%s differ); starting over",
                        self.folder, ", ".join(changed) or "state.json unreadable")
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        with atomic_path(state_file, overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.state, indent=1))
        return 0, self.state["chunk_frames"]

    def write(self, first: int, arrays: Mapping[str, np.ndarray], count: int) -> None:
        path = self.folder / f"frames-{first:010d}-{first + count:010d}.npz"
        with atomic_path(path, overwrite=True) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v[:count] for k, v in arrays.items()},
                         _state=np.array(json.dumps(self.state, sort_keys=True)),
                         _frames=np.array([first, first + count], np.int64))

    def __iter__(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for a, b, path in self._chunks(check=False):
            with np.load(path) as z:
                self._check(path, a, b, z)  # checked as read: nothing unchecked reaches the files
                arrays = {k: z[k] for k in z.files if not k.startswith("_")}
            if len(arrays["status"]) != b - a:
                raise ProjectError(path, f"holds {len(arrays['status'])} frames, its name says {b - a}")
            yield a, arrays

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class ChunkBuffer:
    """Rows of ``chunk`` frames collected from batches; each full chunk is written to ``partial`` at once."""

    def __init__(self, partial: PartialResults, shapes: Mapping[str, tuple[int, ...]], chunk: int, first: int):
        self.partial, self.shapes, self.chunk = partial, dict(shapes), chunk
        self.arrays = {name: np.full((chunk, *shape), np.nan, np.float16 if name == "features" else np.float32)
                       for name, shape in self.shapes.items()}
        self.arrays["status"] = np.zeros(chunk, np.uint8)
        self.first = first  # frames before it are saved
        self.fill = 0

    def add(self, out: Mapping[str, np.ndarray], status: np.ndarray) -> None:
        """One batch's outputs (per name, rows of its frames) and frame status."""
        b, pos = len(status), 0
        while pos < b:
            take = min(b - pos, self.chunk - self.fill)
            for name in self.shapes:
                self.arrays[name][self.fill: self.fill + take] = out[name][pos: pos + take]
            self.arrays["status"][self.fill: self.fill + take] = status[pos: pos + take]
            self.fill, pos = self.fill + take, pos + take
            if self.fill == self.chunk:
                self.flush()

    def flush(self) -> None:
        """Save the rows collected so far as a chunk."""
        if self.fill:
            self.partial.write(self.first, self.arrays, self.fill)
            self.first, self.fill = self.first + self.fill, 0
