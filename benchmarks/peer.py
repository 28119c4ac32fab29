"""Running DeepLabCut's measurement script (../shared/peer/run_dlc_baseline.sh) for a side-by-side benchmark."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


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
