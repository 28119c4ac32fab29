"""Evaluation speed, ours and (optionally) DeepLabCut's, in one run, on the same model and images.

    python benchmarks/evaluate_speed.py [--model resnet_50] [--configs auto 32] [--backends torch onnxruntime]
                                        [--threads 1] [--rounds 2] [--peer]

The shared openfield project (116 labeled images, 640x480) with a ``--model`` (default ``resnet_50``,
DeepLabCut's net_type) from scratch: untrained weights evaluate at the same speed. Without ``--peer`` the
model is our snapshot (benchmarks/analyze_speed.py's ``make_snapshot``). With ``--peer`` DeepLabCut 3.0.2
(its environment: benchmarks/peer.py) makes shuffle 1 of a copy of the project and saves its untrained
model as ``snapshot-001.pt`` (no training: only evaluation is timed), times its own ``evaluate_network``,
and ours evaluates the same DeepLabCut model folder (``evaluate_snapshots``), so both score the same
weights on the same split.

Each of our ``--configs`` (precision: ``auto``, ``32``, ``bf16``, ``16``) runs in a fresh process and
prints one JSON line: ``images_per_s`` (images / seconds of the whole call: model loading, reading
the images, inference, metrics and DeepLabCut's files, as DeepLabCut's ``evaluate_network`` is
timed), the precision ``auto`` chose, and the train/test RMSE. ``--peer`` adds DeepLabCut's line and a
summary with the ratio of our fastest configuration's images/s to DeepLabCut's and each RMSE beside
DeepLabCut's. Both engines run with ``--threads`` torch threads (1 by default: on a shared 2-core machine 2
threads slowed the forward ~3x by an amount the other jobs set), in ``--rounds`` alternating rounds
(DeepLabCut, then ours), each figure the median over the rounds. The first configuration's line also carries what the CPU's arithmetic allows: the network's
GFLOP per image, the GFLOP/s of a large fp32 matrix product, and their ratio (``images_per_s_bound``, an
upper bound for any engine in fp32; the summary divides it by DeepLabCut's images/s).

``--backends torch onnxruntime``: the ``--configs`` run with torch, then one more run in float32 with
``backend=onnxruntime`` (the snapshot's ONNX export, written before the clock starts: ``export_seconds``);
each line says its ``backend``, the summary the fastest images/s of each. ``--threads`` is torch's;
onnxruntime keeps its own default (one thread per physical core).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer import run_in_peer  # benchmarks/peer.py (scripts here run as `python benchmarks/<name>.py`)

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO.parent / "shared" / "data/openfield-Pranav-2018-10-30"

# DeepLabCut's side: argv = project, work folder, net_type, "time" or "setup", torch threads (0: torch's default)
PEER_CODE = r'''
import json, shutil, sys, time
from pathlib import Path
import torch
import deeplabcut
from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path
from deeplabcut.pose_estimation_pytorch.models import PoseModel
from deeplabcut.utils import auxiliaryfunctions

project, work, net, what = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
if int(sys.argv[5]):
    torch.set_num_threads(int(sys.argv[5]))
copy = work / project.name
config = str(copy / "config.yaml")
if what == "setup":
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(project, copy)
    cfg = auxiliaryfunctions.read_config(config)
    cfg["project_path"] = str(copy)
    auxiliaryfunctions.write_config(config, cfg)
    deeplabcut.create_training_dataset(config, net_type=net, userfeedback=False, engine=deeplabcut.Engine.PYTORCH)
    train_dir = Path(return_train_network_path(config, shuffle=1)[2])
    model_cfg = auxiliaryfunctions.read_plainconfig(str(train_dir / "pytorch_config.yaml"))["model"]
    torch.manual_seed(0)
    model = PoseModel.build(model_cfg, pretrained_backbone=False)  # no model hub here: from scratch
    torch.save({"model": model.state_dict(), "metadata": {"epoch": 1, "metrics": {}, "losses": {}}},
               train_dir / "snapshot-001.pt")
    print(json.dumps({"config": config, "train_dir": str(train_dir)}), flush=True)
else:
    images = sum(1 for _ in (copy / "labeled-data").rglob("*.png"))
    start = time.perf_counter()
    deeplabcut.evaluate_network(config, Shuffles=[1], device="cpu")
    seconds = time.perf_counter() - start
    (results,) = sorted((copy / "evaluation-results-pytorch").rglob("DLC_*-results.csv"))
    import pandas as pd
    row = pd.read_csv(results).iloc[0].to_dict()
    print(json.dumps({"tool": "deeplabcut", "version": deeplabcut.__version__, "net": net, "images": images,
                      "seconds": round(seconds, 2), "images_per_s": round(images / seconds, 3),
                      "threads": torch.get_num_threads(), "train_rmse": row.get("train rmse"),
                      "test_rmse": row.get("test rmse")}), flush=True)
'''


def one(args) -> dict:
    """Child process: evaluate the snapshot (or DeepLabCut model folder) with one precision."""
    import torch

    from lightning_dlc.evaluation.report import evaluate_snapshots
    from lightning_dlc.inference.devices import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    export = {}
    if args.backend == "onnxruntime":  # the export is a one-off step, not evaluation: made before the clock starts
        from lightning_dlc.inference.onnx_runner import export_snapshot_onnx
        from lightning_dlc.models.snapshot_files import find_snapshots

        path = Path(args.snapshot)
        start = time.perf_counter()
        export_snapshot_onnx(find_snapshots(path, -1)[0] if path.is_dir() else path, overwrite=True)
        export = {"export_seconds": round(time.perf_counter() - start, 2)}
    start = time.perf_counter()
    rows = evaluate_snapshots(args.snapshot, -1, out_dir=args.out, overwrite=True, device=args.device,
                              precision=args.one, verbose=False, backend=args.backend)
    seconds = time.perf_counter() - start
    images = int(rows["n_images"].sum())
    rmse = {f"{r.split}_rmse": round(float(r.rmse), 2) for r in rows.itertuples()}
    bound = compute_bound(args.snapshot) if args.bound else {}
    return {"tool": "lightning_dlc", "model": args.model, "backend": args.backend, "precision": args.one,
            "chosen": resolve_precision(args.one, args.device, log_choice=False), "device": args.device, **export,
            "images": images, "seconds": round(seconds, 2), "images_per_s": round(images / seconds, 3), **rmse,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), **bound}


def compute_bound(snapshot: str) -> dict:
    """What this CPU's arithmetic allows: the network's GFLOP per openfield image (640x480, fp32), the
    GFLOP/s of a large fp32 matrix product (about the most any convolution reaches here), and their
    ratio, an upper bound on images/s for any engine running this network in fp32."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lightning_dlc.inference.predict import load_model
    from lightning_dlc.models.snapshot_files import find_snapshots

    path = Path(snapshot)
    model = load_model(find_snapshots(path, "last")[0] if path.is_dir() else path)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 480, 640))
    gflop = counter.get_total_flops() / 1e9
    a = torch.randn(4096, 4096)
    a @ a  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    matmul_gflops = 5 * 2 * 4096 ** 3 / (time.perf_counter() - start) / 1e9
    return {"gflop_per_image": round(gflop, 1), "matmul_gflops": round(matmul_gflops, 1),
            "images_per_s_bound": round(matmul_gflops / gflop, 3)}


def ours(config: str, backend: str, args, snapshot: str, out: Path, bound: bool) -> dict:
    cmd = [sys.executable, __file__, "--one", config, "--backend", backend, "--snapshot", snapshot, "--out", str(out),
           "--model", args.model, "--device", args.device, "--threads", str(args.threads or 0), *(["--bound"] * bound)]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        sys.exit(f"{config} failed ({run.returncode}): {run.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet_50")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["auto", "32"], help="precisions: auto, 32, bf16, 16")
    parser.add_argument("--backends", nargs="+", default=["torch"], choices=["torch", "onnxruntime"],
                        help="ours through torch (each of --configs) and/or onnxruntime (float32, once)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of both engines (0: torch's default). On a shared 2-core machine two "
                             "threads made the forward ~3x slower, by an amount set by the other jobs: 1 compares")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of DeepLabCut then ours (alternating: a machine whose speed drifts slows both)")
    parser.add_argument("--peer", action="store_true", help="also time DeepLabCut's evaluate_network on the same model")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--bound", action="store_true", help=argparse.SUPPRESS)  # the run that also measures the bound
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)), flush=True)
        return
    if not (PROJECT / "config.yaml").is_file():
        sys.exit(f"{PROJECT} is not here (../shared beside the checkout)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.peer:
            (setup,) = run_in_peer(PEER_CODE, str(PROJECT), str(work), args.model, "setup", str(args.threads))
            snapshot = setup["train_dir"]
        else:
            from analyze_speed import make_snapshot

            snapshot = str(make_snapshot(args.model, work))
        runs = [(config, "torch") for config in args.configs if "torch" in args.backends]
        runs += [("32", "onnxruntime")] if "onnxruntime" in args.backends else []  # its graph is float32
        rounds = []  # per round: DeepLabCut's line (with --peer), then ours
        for round_ in range(args.rounds):
            theirs = []
            if args.peer:
                theirs = run_in_peer(PEER_CODE, str(PROJECT), str(work), args.model, "time", str(args.threads))
                print(json.dumps({**theirs[0], "round": round_}), flush=True)
            results = []
            for i, (config, backend) in enumerate(runs):
                results.append({**ours(config, backend, args, snapshot, work / f"ours-{backend}-{config}",
                                       bound=i == 0 and round_ == 0), "round": round_})
                print(json.dumps(results[-1]), flush=True)
            rounds.append((theirs[0] if theirs else None, results))
        if args.peer:
            print(json.dumps(summary(rounds)), flush=True)


def summary(rounds: list) -> dict:
    """Each configuration's median images/s over the rounds, the fastest of ours over DeepLabCut's."""
    import statistics

    theirs = statistics.median(t["images_per_s"] for t, _ in rounds)
    first = rounds[0][1]
    ours_by_run = {(r["backend"], r["precision"]): statistics.median(res[i]["images_per_s"] for _, res in rounds)
                   for i, r in enumerate(first)}
    (backend, precision), best = max(ours_by_run.items(), key=lambda item: item[1])
    return {"summary": "evaluate images/s, ours / DeepLabCut (medians over rounds)", "rounds": len(rounds),
            "threads": rounds[0][0]["threads"], "ratio": round(best / theirs, 3), "ours": round(best, 3),
            "ours_precision": next(r["chosen"] for r in first if (r["backend"], r["precision"]) == (backend,
                                                                                                  precision)),
            "ours_backend": backend,
            "by_run": {f"{b}-{p}": round(v / theirs, 3) for (b, p), v in ours_by_run.items()},
            "deeplabcut": round(theirs, 3),
            "fp32_bound_over_deeplabcut": round(first[0]["images_per_s_bound"] / theirs, 3),
            "rmse": {f'{r["backend"]}-{r["precision"]}': [r.get("train_rmse"), r.get("test_rmse")] for r in first},
            "deeplabcut_rmse": [rounds[0][0]["train_rmse"], rounds[0][0]["test_rmse"]]}

if __name__ == "__main__":
    main()
