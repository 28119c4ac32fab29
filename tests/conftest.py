"""Shared fixtures: the real openfield project (from ../shared) and the built-in demo project."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENFIELD = SHARED / "openfield-Pranav-2018-10-30"


@pytest.fixture(scope="session")
def openfield_source() -> Path:
    if not OPENFIELD.is_dir():
        pytest.skip(f"real data not here: {OPENFIELD} (../shared is beside the checkout in CI)")
    return OPENFIELD


@pytest.fixture
def openfield(openfield_source, tmp_path) -> Path:
    """A writable copy of openfield as DeepLabCut ships it (placeholder paths); returns config.yaml."""
    root = tmp_path / openfield_source.name
    shutil.copytree(openfield_source, root, ignore=shutil.ignore_patterns("videos"))
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return root / "config.yaml"


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """The multi-animal demo project, made once per test session; returns config.yaml."""
    from lightning_dlc.data.demo import make_demo_project

    return make_demo_project(tmp_path_factory.mktemp("demo") / "fishtank", unique_bodyparts=True)


@pytest.fixture
def demo(demo_source, tmp_path) -> Path:
    """A writable copy of the demo project (its config names its own folder, so it reads as moved)."""
    root = tmp_path / "fishtank"
    shutil.copytree(demo_source.parent, root)
    return root / "config.yaml"
