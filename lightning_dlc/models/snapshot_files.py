"""Snapshot files: their names (``snapshot-050.ckpt``, ``snapshot-best-120.ckpt``; a top-down run's
detector as DeepLabCut names it, ``snapshot-detector-020.ckpt``, ``snapshot-detector-best-020.ckpt``)
and safe reading.

Here rather than in ``lit/`` so evaluation and inference read snapshots without importing Lightning.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

POSE, DETECTOR = "snapshot", "snapshot-detector"  # file name prefixes


def snapshot_patterns(prefix: str = POSE) -> tuple[re.Pattern, re.Pattern]:
    """Regular and best snapshot names of one kind (``prefix``: :data:`POSE` or :data:`DETECTOR`)."""
    return re.compile(rf"(?:^|/){prefix}-(\d+)\.ckpt$"), re.compile(rf"(?:^|/){prefix}-best-(\d+)\.ckpt$")


SNAPSHOT, BEST = snapshot_patterns(POSE)
DETECTOR_SNAPSHOT, DETECTOR_BEST = snapshot_patterns(DETECTOR)


def snapshot_epoch(path: Path) -> int:
    """The epoch in a snapshot's name (``snapshot-050.ckpt``, ``snapshot-detector-best-120.ckpt``), else -1."""
    for pattern in (SNAPSHOT, BEST, DETECTOR_SNAPSHOT, DETECTOR_BEST):
        match = pattern.search(path.name)
        if match:
            return int(match.group(1))
    return -1


def load_snapshot(path: str | Path) -> dict:
    """A snapshot's contents without running code from it (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)
