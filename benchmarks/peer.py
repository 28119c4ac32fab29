"""Running DeepLabCut 3.0.2 for a side-by-side benchmark: its measurement script (../shared/peer/run_dlc_baseline.sh),
or any Python code in its environment (:func:`run_in_peer`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_peer(epochs: int = 2, frames: int = 300) -> dict[str, dict]:
    """DeepLabCut's JSON lines by step (train, evaluate, analyze_videos, summary).

    DeepLabCut skips a video whose outputs exist, so the previous run's analysis folder is
    removed first: otherwise its analyze_videos "runs" in a fraction of a second.
    """
    work = Path(os.environ.get("DLC_BASELINE_WORK") or Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
                / "dlc-baseline")
    shutil.rmtree(work / "run" / "analyzed", ignore_errors=True)
    script = SHARED / "peer/run_dlc_baseline.sh"
    result = subprocess.run(["bash", str(script), str(epochs), str(frames)], capture_output=True, text=True)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed ({result.returncode}): {result.stderr[-2000:]}")
    return {line["step"]: line for line in lines if "step" in line}


def peer_python() -> Path:
    """DeepLabCut's interpreter: ``$LIGHTNING_DLC_PEER_PYTHON``, else the checkout's ``.venv-dlc`` (made by
    .ci/run), else run_dlc_baseline.sh's environment (``$DLC_BASELINE_VENV``, ``$TMPDIR/dlc-baseline/venv``)."""
    work = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "dlc-baseline"
    candidates = [os.environ.get("LIGHTNING_DLC_PEER_PYTHON"), REPO / ".venv-dlc/bin/python",
                  os.environ.get("DLC_BASELINE_VENV") and Path(os.environ["DLC_BASELINE_VENV"]) / "bin/python",
                  work / "venv/bin/python"]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file():
            return Path(candidate)
    looked = ", ".join(map(str, filter(None, candidates)))
    raise FileNotFoundError(f"DeepLabCut 3.0.2's environment not found ({looked}); "
                            f"make one with {SHARED / 'peer/run_dlc_baseline.sh'} or as .ci/run does")


def run_in_peer(code: str, *args: str) -> list[dict]:
    """Run Python ``code`` (with ``args`` as sys.argv[1:]) in DeepLabCut's environment; the JSON lines it printed.

    Its output is kept (DeepLabCut logs every training iteration) and shown only when it fails.
    """
    python = peer_python()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True, env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0:
        raise RuntimeError(f"DeepLabCut ({python}) failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
                           f"{result.stderr[-4000:]}")
    return lines
