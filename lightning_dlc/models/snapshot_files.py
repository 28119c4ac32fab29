"""Snapshot files: their names (``snapshot-050.ckpt``, ``snapshot-best-120.ckpt``) and safe reading.

Here rather than in ``lit/`` so evaluation and inference read snapshots without importing Lightning.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

SNAPSHOT = re.compile(r"snapshot-(\d+)\.ckpt$")
BEST = re.compile(r"snapshot-best-(\d+)\.ckpt$")


def snapshot_epoch(path: Path) -> int:
    """The epoch in a snapshot's name (``snapshot-050.ckpt``, ``snapshot-best-120.ckpt``), else -1."""
    match = SNAPSHOT.search(path.name) or BEST.search(path.name)
    return int(match.group(1)) if match else -1


def load_snapshot(path: str | Path) -> dict:
    """A snapshot's contents without running code from it (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)
