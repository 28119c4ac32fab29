"""DeepLabCut 3.0.2 as the peer: jobs run in its own virtual environment, results come back as tensors.

The environment is found at ``$LIGHTNING_DLC_PEER_PYTHON``, else ``.venv-dlc/bin/python`` in the
checkout (made by ``.ci/run``), else ``/tmp/dlc-baseline/venv/bin/python`` (``../shared/peer``).
Without it the peer tests skip, except where ``LIGHTNING_DLC_REQUIRE_PEER=1`` (CI): there a
missing peer is a failure, so nothing that needs DeepLabCut is skipped in CI.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).resolve().parent / "peer" / "dlc_side.py"
CANDIDATES = [ROOT / ".venv-dlc" / "bin" / "python", Path("/tmp/dlc-baseline/venv/bin/python")]


def peer_python() -> Path:
    """The DeepLabCut environment's interpreter, or skip (fail in CI) with where it was looked for."""
    given = os.environ.get("LIGHTNING_DLC_PEER_PYTHON")
    for candidate in ([Path(given)] if given else CANDIDATES):
        if candidate.is_file():
            return candidate
    message = (f"DeepLabCut 3.0.2's environment not found (LIGHTNING_DLC_PEER_PYTHON, "
               f"{', '.join(map(str, CANDIDATES))}); make it as .ci/run does")
    if os.environ.get("LIGHTNING_DLC_REQUIRE_PEER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def import_deeplabcut():
    """``import deeplabcut`` for the test modules that use it directly; skip where it is not installed.

    Those modules run in DeepLabCut's environment (``PYTHONPATH=. .venv-dlc/bin/python -m pytest ...``,
    as .ci/run does); under ``LIGHTNING_DLC_REQUIRE_PEER=1`` a missing DeepLabCut fails instead.
    """
    try:
        import deeplabcut
        return deeplabcut
    except ImportError as error:
        message = (f"DeepLabCut is not installed in this environment ({error}); run this module with "
                   f"DeepLabCut 3.0.2's python and PYTHONPATH=., as .ci/run does")
    if os.environ.get("LIGHTNING_DLC_REQUIRE_PEER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def run_peer(jobs: list[dict], timeout: float = 900) -> list[dict]:
    """Run jobs (see tests/peer/dlc_side.py) in DeepLabCut's environment; one result per job.

    A job DeepLabCut could not run fails the test with DeepLabCut's error.
    """
    python = peer_python()
    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "request.pt", Path(tmp) / "result.pt"
        torch.save({"jobs": jobs}, request)
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run([str(python), str(SIDE), str(request), str(result)], capture_output=True,
                              text=True, timeout=timeout, env=env)
        if done.returncode != 0:
            raise AssertionError(f"DeepLabCut's side failed ({python}):\n{done.stderr[-4000:]}")
        results = torch.load(result, weights_only=False)["results"]
    for job, res in zip(jobs, results):
        if "error" in res:
            what = job.get("function") or f"{job.get('net_type')} (top_down={job.get('top_down', False)})"
            raise AssertionError(f"DeepLabCut could not run {what}: {res['error']}")
    return results


class Largest:
    """The largest difference seen per quantity in a test module, printed at its end (``pytest -s``)."""

    def __init__(self, family: str):
        self.family, self.values = family, {}

    def note(self, key: str, value: float) -> None:
        self.values[key] = max(self.values.get(key, 0.0), float(value))

    def print(self) -> None:
        for key, value in self.values.items():
            print(f"\n[{self.family}] largest {key}: {value:.3g}")
