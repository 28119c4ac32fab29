"""A video's analysis written as DeepLabCut writes it: its saved chunks streamed into the final files.

Files, named ``<prefix>`` = ``<video stem><scorer>``, each written under a temporary name and renamed
into place together (the ``.h5`` last, so an ``.h5`` that exists is complete): ``.h5``, ``_full.pickle``,
``_meta.pickle``, multi-animal ``_assemblies.pickle``, with ``save_as_csv`` the ``.csv``, with
``features`` the ``_features.h5`` (formats: :mod:`lightning_dlc.project.analysis_files`,
:mod:`lightning_dlc.project.predictions`, :mod:`lightning_dlc.inference.features`). Memory holds one
chunk at a time.
"""
from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.inference.chunks import BLANK, INVALID, OK, PartialResults
from lightning_dlc.inference.features import APPEARANCE_CHANNELS, APPEARANCE_PATCH, FeaturesWriter, feature_layer
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.project import analysis_files as files
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.locks import lock_path
from lightning_dlc.project.predictions import PredictionsWriter, predictions_table

__all__ = ["output_paths", "write_outputs"]


class _Ranges:
    """Frame numbers as ``[first, last]`` stretches (for the meta pickle)."""

    def __init__(self):
        self.ranges: list[list[int]] = []
        self.total = 0

    def add(self, frames: Iterable[int]) -> None:
        for f in frames:
            f = int(f)
            if self.ranges and self.ranges[-1][1] == f - 1:
                self.ranges[-1][1] = f
            else:
                self.ranges.append([f, f])
            self.total += 1


def output_paths(out_dir: Path, prefix: str) -> dict[str, Path]:
    """Every file of a video's analysis named ``<prefix>`` in ``out_dir``: outputs, partial folder, lock."""
    return {"h5": out_dir / f"{prefix}.h5", "csv": out_dir / f"{prefix}.csv",
            "full": out_dir / f"{prefix}_full.pickle", "meta": out_dir / f"{prefix}_meta.pickle",
            "assemblies": out_dir / f"{prefix}_assemblies.pickle", "partial": out_dir / f"{prefix}.partial",
            "features": out_dir / f"{prefix}_features.h5", "lock": lock_path(out_dir / prefix)}


def _paf_graph(predictor: Predictor):
    """A multi-animal model's PAF edges, as the ``_full.pickle`` metadata lists them (None without)."""
    head = predictor.model.heads["bodypart"]
    edges = getattr(head, "edges", None)
    try:
        return [tuple(int(v) for v in edge) for edge in edges] if edges is not None else None
    except TypeError:
        return None


class _FrameKinds:
    """Frames not decoded, blank, or decoded without animals: ranges (meta pickle) and counts (summary)."""

    def __init__(self):
        self.invalid, self.blank, self.empty = _Ranges(), _Ranges(), _Ranges()

    def add(self, first: int, status: np.ndarray, bodypart: np.ndarray) -> None:
        frames = np.arange(first, first + len(status))
        self.invalid.add(frames[status == INVALID])
        self.blank.add(frames[status == BLANK])
        nothing = ~np.isfinite(bodypart[..., :2]).all(-1).any((1, 2))
        self.empty.add(frames[(status == OK) & nothing])

    def counts(self) -> dict[str, int]:
        return {"invalid": self.invalid.total, "blank": self.blank.total, "empty": self.empty.total}


def write_outputs(predictor: Predictor, partial: PartialResults, paths: dict[str, Path], info, box, batch_size: int,
                  save_as_csv: bool, started: float, extra: dict, features: bool = False) -> dict[str, int]:
    """Stream the chunks into the final files: temporary names, renamed together (the .h5 last).

    Returns the counts of invalid, blank and empty (no animal) frames.
    """
    meta = predictor.meta
    n = info.n_frames
    multi = meta.multianimal
    kinds = _FrameKinds()
    with contextlib.ExitStack() as stack:
        tmp = {"h5": stack.enter_context(atomic_path(paths["h5"], overwrite=True))}  # renamed last
        names = ["full", "meta", *(["assemblies"] if multi else []), *(["csv"] if save_as_csv else []),
                 *(["features"] if features else [])]
        for name in names:
            tmp[name] = stack.enter_context(atomic_path(paths[name], overwrite=True))
        writer = stack.enter_context(PredictionsWriter(tmp["h5"], tmp.get("csv")))
        full = files.StreamedPickleDict(stack.enter_context(open(tmp["full"], "wb")))
        full.update([("metadata", files.full_metadata(meta, n, _paf_graph(predictor) if multi else None))])
        assemblies = None
        if multi:
            assemblies = files.StreamedPickleDict(stack.enter_context(open(tmp["assemblies"], "wb")))
            _unique_assemblies(assemblies, partial, meta)
        feature_file = stack.enter_context(_features_writer(predictor, tmp["features"])) if features else None
        rows = _stream_chunks(predictor, partial, kinds, writer, full, assemblies, feature_file,
                              files.frame_key_width(n))
        if rows != n:
            raise RuntimeError(f"{info.path}: {rows} frames of results for {n} frames; the partial results in "
                               f"{paths['partial']} are incomplete (delete it to start over)")
        for stream in (full, assemblies, feature_file):
            if stream is not None:
                stream.close()
        _write_meta(tmp["meta"], predictor, partial, info, box, batch_size, started, extra, kinds)
    return kinds.counts()


def _unique_assemblies(assemblies: files.StreamedPickleDict, partial: PartialResults, meta) -> None:
    """The assemblies pickle's ``single`` entry (unique bodyparts), which comes before the frames."""
    assemblies.begin("single")
    if meta.unique_bodyparts:
        for first, arrays in partial:
            assemblies.update(files.unique_items(first, arrays["unique_bodypart"]))
    assemblies.end()


def _stream_chunks(predictor: Predictor, partial: PartialResults, kinds: _FrameKinds, writer: PredictionsWriter,
                   full: files.StreamedPickleDict, assemblies: files.StreamedPickleDict | None,
                   feature_file: FeaturesWriter | None, width: int) -> int:
    """Each saved chunk appended to every output, in frame order; returns the frames written."""
    meta = predictor.meta
    unique = len(meta.unique_bodyparts) > 0
    rows = 0
    for first, arrays in partial:
        bodypart, identity, status = arrays["bodypart"], arrays.get("identity"), arrays["status"]
        count = len(status)
        kinds.add(first, status, bodypart)
        table = predictions_table(bodypart, arrays["unique_bodypart"] if unique else None, meta,
                                  predictor.scorer, index=pd.Index(np.arange(first, first + count), dtype=np.int64))
        writer.append(table.astype(np.float32))
        full.update(files.full_items(first, bodypart, arrays["unique_bodypart"], width, identity))
        if assemblies is not None:
            assemblies.update(files.assembly_items(first, bodypart, identity))
        if feature_file is not None:
            feature_file.append(arrays["features"], bodypart)
        rows += count
    return rows


def _write_meta(path: Path, predictor: Predictor, partial: PartialResults, info, box, batch_size: int,
                started: float, extra: dict, kinds: _FrameKinds) -> None:
    """The ``_meta.pickle``: DeepLabCut's data, plus ours under ``lightning_dlc`` (frame kinds, settings)."""
    run_extra = {"lightning_dlc": {
        **extra, "snapshot": str(predictor.info.snapshot) if predictor.info.snapshot else None,
        "invalid_frames": kinds.invalid.ranges, "blank_frames": kinds.blank.ranges,
        "empty_frames": kinds.empty.ranges, "blank_threshold": partial.state.get("blank_threshold")}}
    metadata = files.video_metadata(
        start=started, stop=time.time(), scorer=predictor.scorer, run_config=predictor.info.run_config,
        fps=info.fps, batch_size=batch_size, frame_size=(info.width, info.height), n_frames=info.n_frames,
        iteration=predictor.info.iteration, train_fraction=predictor.info.train_fraction, crop=box,
        meta=predictor.meta, extra=run_extra)
    with open(path, "wb") as f:
        pickle.dump(metadata, f, pickle.HIGHEST_PROTOCOL)


def _features_writer(predictor: Predictor, path: Path) -> FeaturesWriter:
    meta = predictor.meta
    _, layer, channels, stride = feature_layer(predictor.model)
    attrs = {"layer": layer, "stride": stride, "channels": channels, "appearance": APPEARANCE_CHANNELS,
             "appearance_patch": APPEARANCE_PATCH, "sampling": "bilinear", "scorer": predictor.scorer,
             "bodyparts": list(meta.bodyparts)}
    return FeaturesWriter(path, (meta.max_individuals, len(meta.bodyparts), channels + APPEARANCE_CHANNELS), attrs)
