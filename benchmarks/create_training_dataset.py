"""Time reading a DeepLabCut project and creating a shuffle, ours and (optionally) DeepLabCut's.

    python benchmarks/create_training_dataset.py [--project DIR] [--peer-python /path/to/dlc/venv/bin/python]

Each tool works on its own fresh copy of the project (default: the shared openfield
project). Prints one JSON line per tool and a summary line with the speed ratio.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/openfield-Pranav-2018-10-30"

# DeepLabCut needs project_path and video_sets filled in; it does not tolerate placeholders.
PEER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import deeplabcut
    from deeplabcut.utils import auxiliaryfunctions
    config = sys.argv[1]
    cfg = auxiliaryfunctions.read_config(config)
    root = Path(config).parent
    cfg["project_path"] = str(root)
    cfg["video_sets"] = {str(root / "videos" / f"{p.name}.mp4"): {"crop": "0, 640, 0, 480"}
                         for p in (root / "labeled-data").iterdir() if p.is_dir()}
    auxiliaryfunctions.write_config(config, cfg)
    t = time.perf_counter()
    deeplabcut.create_training_dataset(config, Shuffles=[1], userfeedback=False, net_type="resnet_50",
                                       engine=deeplabcut.Engine.PYTORCH)
    print(json.dumps({"seconds": time.perf_counter() - t}))
""")


def copy(project: Path, into: Path) -> Path:
    target = into / project.name
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("videos", "training-datasets", "dlc-models*"))
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return target / "config.yaml"


def ours(config: Path, warm_up: Path) -> dict:
    from lightning_dlc import api
    from lightning_dlc.project import load_shuffle

    # DeepLabCut's timing starts after `import deeplabcut` has loaded everything; ours imports
    # some modules (scipy.io) on first use, so do one run on another copy first.
    api.create_training_dataset(warm_up, Shuffles=[1])
    t = time.perf_counter()
    (shuffle,) = api.create_training_dataset(config, Shuffles=[1])
    created = time.perf_counter() - t
    train, test = load_shuffle(config, 1)
    return {"tool": "lightning_dlc", "seconds": created, "load_shuffle_seconds": time.perf_counter() - t - created,
            "train": len(train), "test": len(test)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", type=Path, default=DEFAULT)
    ap.add_argument("--peer-python", help="python of a virtual environment with deeplabcut installed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        ours_result = ours(copy(args.project, Path(work) / "ours"), copy(args.project, Path(work) / "warm"))
        print(json.dumps(ours_result), flush=True)
        if not args.peer_python:
            return
        config = copy(args.project, Path(work) / "peer")
        out = subprocess.run([args.peer_python, "-c", PEER, str(config)], capture_output=True, text=True, check=True)
        peer = {"tool": "deeplabcut", **json.loads(out.stdout.strip().splitlines()[-1])}
        print(json.dumps(peer), flush=True)
        print(json.dumps({"summary": "create_training_dataset", "ours_s": ours_result["seconds"],
                          "deeplabcut_s": peer["seconds"], "speedup": peer["seconds"] / ours_result["seconds"]}))


if __name__ == "__main__":
    sys.exit(main())
