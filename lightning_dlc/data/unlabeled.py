"""Unlabeled video for training: batches of sequences of consecutive frames, one share per DDP process.

A sequence is ``seq_len`` frames ``start, start + stride, ...`` of one video; the candidate starts tile each
video without overlap (every ``seq_len * stride`` frames). Each epoch shuffles the candidates with the
epoch's seed and gives process ``rank`` of ``world_size`` the candidates ``rank::world_size`` of that order
(DistributedSampler's semantics: disjoint shares that together cover the set); a DataLoader worker takes every
``num_workers``-th of its process's share. Frames are decoded through the reader contract of
:func:`~lightning_dlc.data.video.open_video` (DALI GPU -> DALI CPU -> OpenCV, the choice logged once), a
worker's whole pass through one reader per decoder (``ranges``: one DALI pipeline for all its videos, OpenCV
captures kept open) rather than a reader per sequence,
resized by the labeled images' rule (:func:`~lightning_dlc.data.dataset.resize_image`) and padded as their
batches are (:func:`~lightning_dlc.data.dataset.pad_images`); normalization happens on the batch's device
(:meth:`PoseDataModule.on_after_batch_transfer`), as for labeled images.

Videos that cannot be opened or are shorter than one sequence are skipped with a warning; a sequence
with an undecodable frame is skipped, its bad frames counted (:attr:`UnlabeledSequences.counts`), and the
next candidate takes its place. Training never stops for a bad video.

A batch (what the loader yields, already collated): ``images`` uint8 ``[B, T, 3, H, W]``, ``frame_index``
int64 ``[B, T]``, ``video_index`` int64 ``[B]`` (into :attr:`UnlabeledSequences.videos`), ``scale`` float32
``[B]`` (the resize factor, 1 without one).
"""
from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from lightning_dlc.data.dataset import pad_images, resize_image
from lightning_dlc.data.devices import resolve_device
from lightning_dlc.data.discovery import find_videos
from lightning_dlc.data.video import choose_reader, open_video
from lightning_dlc.data.video_reader import FrameBatch, VideoError, VideoInfo, log_once, probe_video

__all__ = ["READERS", "UnlabeledSequences", "resize_frames", "unlabeled_video_paths"]

log = logging.getLogger(__name__)

READERS = ("auto", "dali", "opencv")


def unlabeled_video_paths(videos, project: Path | None = None) -> list[Path]:
    """Video files from a path, a list of files and folders, or ``"project"`` (``<project>/videos``)."""
    if isinstance(videos, (str, Path)) and str(videos) == "project":
        if project is None:
            raise ValueError("unlabeled.videos=project needs a DeepLabCut project (data.source dlc or demo)")
        videos = [Path(project) / "videos"]
    elif isinstance(videos, (str, Path)):
        videos = [videos]
    return find_videos(list(videos))


def resize_frames(frames: torch.Tensor, scale: float | None) -> torch.Tensor:
    """uint8 frames ``[T, 3, H, W]`` resized by ``scale`` (None or 1: as they are).

    CPU frames go through :func:`resize_image`, the labeled images' exact rule; frames DALI decoded on a GPU
    stay there and are resized by torch to the same size (bilinear, antialiased when shrinking: the same
    sampling within interpolation differences).
    """
    if scale is None or scale == 1:
        return frames
    if frames.device.type == "cpu":
        return torch.stack([torch.from_numpy(np.ascontiguousarray(
            resize_image(np.ascontiguousarray(f.permute(1, 2, 0).numpy()), scale).transpose(2, 0, 1)))
            for f in frames])
    h, w = frames.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))  # cv2's size for fx=fy=scale
    out = F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class UnlabeledSequences(IterableDataset):
    """Batches of ``batch_size`` sequences of ``seq_len`` consecutive frames from unlabeled videos (module doc).

    n_batches: batches one pass yields (None: enough for this process's share once). device: where DALI
    decodes (``cpu`` or a CUDA device; OpenCV always decodes on the CPU). resize, pad_multiple: as the
    labeled data's (``data.resize``, ``data.pad_multiple``). rank, world_size: this process among the DDP
    processes. Each pass over the dataset is a new epoch (a new order); keep DataLoader workers persistent
    so that they count epochs too.
    """

    def __init__(self, videos, seq_len: int = 5, batch_size: int = 2, frame_stride: int = 1, reader: str = "auto",
                 device="cpu", resize: float | None = None, pad_multiple: int = 32, n_batches: int | None = None,
                 rank: int = 0, world_size: int = 1, seed: int = 0, project: Path | None = None):
        super().__init__()
        if reader not in READERS:
            raise ValueError(f"unlabeled.reader must be one of {READERS}, got {reader!r}")
        if int(seq_len) < 1 or int(batch_size) < 1 or int(frame_stride) < 1:
            raise ValueError(f"unlabeled.seq_len, batch_size and frame_stride must be >= 1, got "
                             f"{seq_len}, {batch_size}, {frame_stride}")
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank {rank} is not one of world_size={world_size} processes")
        self.seq_len, self.batch_size, self.stride = int(seq_len), int(batch_size), int(frame_stride)
        self.span = (self.seq_len - 1) * self.stride + 1  # frames one sequence covers
        self.reader, self.device = reader, resolve_device(device)
        self.resize = None if resize is None or resize == 1 else float(resize)
        self.pad_multiple = int(pad_multiple)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.counts: Counter = Counter()  # videos_skipped, sequences_skipped, bad_frames (this process / worker)
        self.videos: list[VideoInfo] = self._probe(unlabeled_video_paths(videos, project))
        step = self.seq_len * self.stride  # candidate starts tile a video without overlap
        self.sequences: list[tuple[int, int]] = [(v, s) for v, info in enumerate(self.videos)
                                                 for s in range(0, info.n_frames - self.span + 1, step)]
        share = math.ceil(len(self.sequences) / self.world_size)
        self.n_batches = max(1, math.ceil(share / self.batch_size)) if n_batches is None else int(n_batches)
        if self.n_batches < 1:
            raise ValueError(f"n_batches must be >= 1, got {n_batches}")
        self._epoch = 0
        self._backends: dict[int, str] = {}  # video -> what reader="auto" reads it with
        backend, why = choose_reader(self.videos[0], self.device) if reader == "auto" else (reader, "asked for")
        log.info("unlabeled video: %d videos, %d sequences of %d frames (stride %d); this process (rank %d of %d) "
                 "takes %d batches of %d per pass; reader %s (%s)", len(self.videos), len(self.sequences),
                 self.seq_len, self.stride, self.rank, self.world_size, self.n_batches, self.batch_size, backend, why)

    def _probe(self, paths: Sequence[Path]) -> list[VideoInfo]:
        infos = []
        for path in paths:
            try:
                info = probe_video(path)
            except VideoError as e:
                log.warning("unlabeled video skipped: %s", e)
                self.counts["videos_skipped"] += 1
                continue
            if info.n_frames < self.span:
                log.warning("unlabeled video skipped: %s has %d frames, fewer than one sequence (%d frames: "
                            "seq_len %d, frame_stride %d)", path, info.n_frames, self.span, self.seq_len, self.stride)
                self.counts["videos_skipped"] += 1
                continue
            infos.append(info)
        if not infos:
            raise ValueError(f"unlabeled video: none of {[str(p) for p in paths]} has a sequence of {self.span} "
                             "decodable frames (see the warnings above)")
        return infos

    def __len__(self) -> int:
        return self.n_batches

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def share(self, epoch: int, rank: int | None = None) -> list[tuple[int, int]]:
        """Process ``rank``'s (video, start) candidates for ``epoch`` (this process's by default), in the order
        they are read."""
        rank = self.rank if rank is None else rank
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.sequences))
        return [self.sequences[i] for i in order[rank::self.world_size]]

    def _backend(self, video: int) -> str:
        """The decoder this video's sequences are read with: videos with the same one share a reader."""
        if self.reader != "auto":
            return self.reader
        if video not in self._backends:
            self._backends[video] = choose_reader(self.videos[video], self.device)[0]
        return self._backends[video]

    def read_sequences(self, items: Sequence[tuple[int, int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor] | None]:
        """For each (video, start) of ``items``, in order: its uint8 frames ``[T, 3, h, w]`` and frame numbers, or
        None (counted) if a frame cannot be decoded."""
        with closing(self._batches(items)) as batches:
            for (video, start), batch in zip(items, batches):
                yield self._sequence(video, start, batch)

    def _batches(self, items: Sequence[tuple[int, int]], shared: bool = True) -> Iterator[FrameBatch | None]:
        """One batch per (video, start) of ``items``, in order (None: its reader failed), from one reader per
        decoder over all of them (``open_video(ranges=...)``: DALI serves several videos from one pipeline,
        OpenCV keeps a capture per video open), not a reader per sequence; ``shared=False``: one per video."""
        key = self._backend if shared else (lambda video: (self._backend(video), video))
        streams: dict = {}
        try:
            for video, _ in items:
                group = key(video)
                if group not in streams:
                    streams[group] = self._stream([item for item in items if key(item[0]) == group], shared)
                yield next(streams[group])
        finally:
            for stream in streams.values():
                stream.close()

    def _stream(self, items: list[tuple[int, int]], shared: bool) -> Iterator[FrameBatch | None]:
        """One batch per (video, start) of ``items`` (None: the reader failed), from one reader over all of them,
        opened again past a failure."""
        k = 0
        while k < len(items):
            info = self.videos[items[k][0]]
            try:
                reader = open_video(info.path, reader=self.reader, device=self.device, prefetch=1, info=info,
                                    ranges=[(self.videos[v], s, s + self.span) for v, s in items[k:]])
            except VideoError as e:
                if shared and len({v for v, _ in items[k:]}) > 1:  # one video spoils a shared reader
                    log.warning("unlabeled video: %s; reading video by video", e)
                    with closing(self._batches(items[k:], shared=False)) as rest:
                        yield from rest
                    return
                log_once(log, ("open", str(info.path)), logging.WARNING, "unlabeled video: %s; its sequences are "
                         "skipped", e)
                yield from (None for _ in items[k:])
                return
            with reader, closing(iter(reader)) as batches:
                for k in range(k, len(items)):
                    try:
                        batch = next(batches)
                    except (VideoError, StopIteration) as e:  # this reader is done for: a new one past here
                        log.warning("unlabeled video %s: %s at frames %d-%d; reading on with a new reader",
                                    self.videos[items[k][0]].path, e if isinstance(e, VideoError) else
                                    "the reader stopped early", items[k][1], items[k][1] + self.span - 1)
                        yield None
                        k += 1
                        break
                    yield batch
                else:
                    return

    def _sequence(self, video: int, start: int, batch: FrameBatch | None
                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The sequence's frames (every ``frame_stride``-th, resized) and frame numbers; None (counted, logged)
        when a frame is missing."""
        if batch is None or len(batch) < self.span or not bool(batch.valid.all()):
            bad = self.span if batch is None else self.span - int(batch.valid.sum())
            self.counts["sequences_skipped"] += 1
            self.counts["bad_frames"] += bad
            log.warning("unlabeled video %s: frames %d-%d hold %d undecodable frame(s); sequence skipped (%d "
                        "skipped, %d bad frames so far)", self.videos[video].path, start, start + self.span - 1,
                        bad, self.counts["sequences_skipped"], self.counts["bad_frames"])
            return None
        keep = slice(0, self.span, self.stride)
        # one device per batch: a video OpenCV decodes joins DALI's GPU frames there
        frames = batch.frames[keep].to(self.device)
        return resize_frames(frames, self.resize), batch.indices[keep].clone()

    def _sequences(self, epoch: int, worker: int, n_workers: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Decoded sequences of this worker's share, pass after pass (the same share in a new order), skipping
        bad ones; each pass reads through one reader per decoder."""
        mine = self.share(epoch)[worker::n_workers]
        if not mine:  # more workers than this process has sequences
            return
        for repeat in itertools.count():
            good = 0
            order = np.random.default_rng([self.seed, epoch, repeat, worker]).permutation(len(mine)) if repeat \
                else range(len(mine))
            items = [mine[i] for i in order]
            with closing(self.read_sequences(items)) as sequences:
                for (video, _), item in zip(items, sequences):
                    if item is not None:
                        good += 1
                        yield video, *item
            if not good:
                log.warning("unlabeled video: no sequence of this worker's share could be decoded; it stops")
                return

    def __iter__(self) -> Iterator[dict]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = len(range(worker, self.n_batches, n_workers))  # batches worker w yields: w, w + n_workers, ...
        with closing(self._sequences(epoch, worker, n_workers)) as sequences:  # its readers end with the pass
            for _ in range(mine):
                items = [item for _, item in zip(range(self.batch_size), sequences)]
                if len(items) < self.batch_size:
                    return
                yield collate_sequences(items, self.pad_multiple, self.resize)


def collate_sequences(items: list[tuple[int, torch.Tensor, torch.Tensor]], pad_multiple: int,
                      scale: float | None) -> dict:
    """(video, frames ``[T, 3, h, w]``, frame numbers ``[T]``) -> the batch of the module doc."""
    return {
        "images": pad_images([frames for _, frames, _ in items], pad_multiple),
        "frame_index": torch.stack([index for _, _, index in items]).to(torch.int64),
        "video_index": torch.tensor([video for video, _, _ in items], dtype=torch.int64),
        "scale": torch.full((len(items),), 1.0 if scale is None else scale, dtype=torch.float32),
    }
