"""DeepLabCut's video-analysis files beside the ``.h5``: ``_full.pickle``, ``_meta.pickle``, ``_assemblies.pickle``.

Contents as DeepLabCut 3.0 writes them (``pose_estimation_pytorch/apis/videos.py``), checked against
its own output files:

- ``<video stem><scorer>_full.pickle``: ``{"metadata": {...}, "frame000": {...}, ...}``, one entry per
  frame, keys ``"frame" + str(i).zfill(ceil(log10(n_frames)))``. An entry holds ``"coordinates":
  ([xy per bodypart],)`` (a 1-tuple of a list of float32 ``[n_animals, 2]``, multi-animal bodyparts
  then unique ones), ``"confidence": [float32 [n_animals, 1] per bodypart]``, ``"costs": None`` and,
  with an identity head, ``"identity": [[n_animals, n_identities] per bodypart]`` (-1 for unique ones);
- ``<prefix>_meta.pickle``: ``{"data": {"start", "stop", "run_duration", "Scorer", "pytorch-config",
  "fps", "batch_size", "frame_dimensions" (width, height), "nframes", "iteration (active-learning)",
  "training set fraction", "cropping", "cropping_parameters" [x1, x2, y1, y2], "individuals",
  "bodyparts", "unique_bodyparts"}}`` (DeepLabCut's own file also pickles its enums and paths; here
  everything is builtins, so it loads without DeepLabCut);
- multi-animal ``<prefix>_assemblies.pickle``: ``{"single": {frame: [n_unique, 3]}, frame: [n_found,
  n_bodyparts, 4]}`` (x, y, score, identity or -1), only the animals found (an empty ``[0, K, 4]``
  when none), frames as ints.

A missing keypoint or frame is NaN (DeepLabCut 3 writes -1 for a missing keypoint of a found animal
and has no missing frames: it stops at an undecodable frame); its tools read both as missing.

:class:`StreamedPickleDict` writes such a dict a chunk of items at a time, so an hours-long video
never holds more than one chunk in memory. Never imports torch.
"""
from __future__ import annotations

import io
import math
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lightning_dlc.project.records import ProjectMeta

__all__ = ["StreamedPickleDict", "assembly_items", "frame_key_width", "full_items", "full_metadata",
           "output_prefix", "unique_items", "video_metadata"]


def output_prefix(video: str | Path, scorer: str) -> str:
    """DeepLabCut's name of a video's results: ``<video stem><scorer>`` (then ``.h5``, ``_full.pickle``...)."""
    return f"{Path(video).stem}{scorer}"


def frame_key_width(n_frames: int) -> int:
    """Digits of the full pickle's frame keys: DeepLabCut's ``ceil(log10(n_frames))``."""
    return int(math.ceil(math.log10(n_frames))) if n_frames > 0 else 0


def full_metadata(meta: ProjectMeta, n_frames: int, paf_graph: Sequence[Sequence[int]] | None = None) -> dict:
    """The full pickle's ``metadata`` entry."""
    names = [*meta.bodyparts, *meta.unique_bodyparts]
    graph = [list(map(int, edge)) for edge in paf_graph] if paf_graph else None
    return {
        "nms radius": None,
        "minimal confidence": None,
        "sigma": 1,
        "PAFgraph": graph,
        "PAFinds": np.arange(len(graph or ()), dtype=np.int64),
        "all_joints": [[i] for i in range(len(names))],
        "all_joints_names": names,
        "nframes": int(n_frames),
        "key_str_width": frame_key_width(n_frames),
    }


def full_items(first: int, bodypart: np.ndarray, unique: np.ndarray, width: int,
               identity: np.ndarray | None = None) -> Iterator[tuple[str, dict]]:
    """Full-pickle entries of consecutive frames from ``first``.

    bodypart ``[n, N, K, 3]``, unique ``[n, U, 3]``, identity ``[n, N, I]`` (per animal) or None.
    """
    bodypart = np.asarray(bodypart, np.float32)
    unique = np.asarray(unique, np.float32)
    for i in range(len(bodypart)):
        parts = bodypart[i].transpose(1, 0, 2)               # [K, N, 3]
        coordinates = [np.ascontiguousarray(p[:, :2]) for p in parts]
        confidence = [np.ascontiguousarray(p[:, 2:3]) for p in parts]
        for p in unique[i]:                                  # [3] each: one "animal"
            coordinates.append(p[None, :2].copy())
            confidence.append(p[None, 2:3].copy())
        entry = {"coordinates": (coordinates,), "confidence": confidence, "costs": None}
        if identity is not None:
            scores = np.asarray(identity[i], np.float32)     # [N, I]
            entry["identity"] = [scores.copy() for _ in range(parts.shape[0])]
            entry["identity"] += [-np.ones((1, scores.shape[1]), np.float32) for _ in range(len(unique[i]))]
        yield "frame" + str(first + i).zfill(width), entry


def assembly_items(first: int, bodypart: np.ndarray, identity: np.ndarray | None = None
                   ) -> Iterator[tuple[int, np.ndarray]]:
    """Assemblies-pickle entries: per frame the animals found, ``[n_found, K, 4]`` (x, y, score, id or -1)."""
    bodypart = np.asarray(bodypart, np.float64)
    n, n_animals, k = bodypart.shape[:3]
    ids = np.full((n, n_animals), -1.0)
    if identity is not None:
        ids = np.argmax(np.nan_to_num(np.asarray(identity, np.float64), nan=-np.inf), axis=-1).astype(np.float64)
    for i in range(n):
        found = np.isfinite(bodypart[i, :, :, :2]).all(-1).any(-1)
        rows = np.concatenate([bodypart[i], np.broadcast_to(ids[i][:, None, None], (n_animals, k, 1))], -1)
        yield first + i, np.ascontiguousarray(rows[found])


def unique_items(first: int, unique: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """The assemblies pickle's ``single`` entries ``[U, 3]``; frames with no unique bodypart found are left out."""
    unique = np.asarray(unique, np.float32)
    for i in range(len(unique)):
        if np.isfinite(unique[i, :, :2]).any():
            yield first + i, unique[i].copy()


def video_metadata(*, start: float, stop: float, scorer: str, run_config: Mapping, fps: float, batch_size: int,
                   frame_size: tuple[int, int], n_frames: int, iteration: int | None,
                   train_fraction: float | None, crop: Sequence[int] | None, meta: ProjectMeta,
                   extra: Mapping | None = None) -> dict:
    """The ``_meta.pickle`` contents. frame_size: (width, height) of the video (uncropped)."""
    width, height = frame_size
    data = {
        "start": float(start),
        "stop": float(stop),
        "run_duration": float(stop - start),
        "Scorer": scorer,
        "pytorch-config": dict(run_config),
        "fps": float(fps),
        "batch_size": int(batch_size),
        "frame_dimensions": (int(width), int(height)),
        "nframes": int(n_frames),
        "iteration (active-learning)": iteration,
        "training set fraction": train_fraction,
        "cropping": crop is not None,
        "cropping_parameters": [int(v) for v in crop] if crop is not None else [0, int(width), 0, int(height)],
        "individuals": list(meta.individuals),
        "bodyparts": list(meta.bodyparts),
        "unique_bodyparts": list(meta.unique_bodyparts),
    }
    if extra:
        data.update(extra)
    return {"data": data}


class StreamedPickleDict:
    """Write one pickled dict a batch of items at a time; ``pickle.load`` gives the dict whole.

    The stream is pickle protocol 3 opcodes: the empty dict, then for each :meth:`update` a MARK,
    the items and SETITEMS; :meth:`begin` / :meth:`end` put a nested dict (built the same way) under
    a key; :meth:`close` writes STOP. Items are pickled without the memo (each one standalone), so
    memory holds only the batch being written.
    """

    def __init__(self, file: BinaryIO):
        self._file = file
        self._buffer = io.BytesIO()
        self._pickler = pickle.Pickler(self._buffer, protocol=3)
        self._pickler.fast = True  # no memo: every item stands alone in the stream
        self._open = 0
        file.write(b"\x80\x03}")   # PROTO 3, EMPTY_DICT

    def _ops(self, obj) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._pickler.dump(obj)
        data = self._buffer.getvalue()
        return data[2:-1]  # without PROTO and STOP

    def update(self, items: Iterable[tuple[object, object]]) -> None:
        parts = [b"("]  # MARK
        for key, value in items:
            parts += [self._ops(key), self._ops(value)]
        parts.append(b"u")  # SETITEMS
        self._file.write(b"".join(parts))

    def begin(self, key) -> None:
        """Start a nested dict under ``key``: the next updates fill it until :meth:`end`."""
        self._file.write(self._ops(key) + b"}")
        self._open += 1

    def end(self) -> None:
        if not self._open:
            raise RuntimeError("end() without begin()")
        self._file.write(b"s")  # SETITEM: the nested dict into its parent
        self._open -= 1

    def close(self) -> None:
        if self._open:
            raise RuntimeError("a nested dict was not ended")
        self._file.write(b".")
