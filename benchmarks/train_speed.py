"""Training throughput on a real DeepLabCut project, ours and (optionally) DeepLabCut's, in one run.

    python benchmarks/train_speed.py [--project DIR] [--epochs 2] [--model resnet_50] [--batch 8]
        [--precision 32-true|bf16-mixed] [--channels-last] [--peer]

Ours: ``lightning_dlc.lit.train.train`` with ``experiment=dlc`` on a fresh copy of the project
(default: the shared openfield project), the backbone from scratch (no hub here), AdamW,
DeepLabCut's default augmentation (448x448 crops), no evaluation during training. The time is
the whole call (data loading, model building, fit), as the peer's is its whole
``train_network`` call. ``--peer`` then runs ``../shared/peer/run_dlc_baseline.sh`` (DeepLabCut 3
with the same model, batch size, epochs and crop size) and prints the ratio.
Prints JSON lines; the last one is the summary.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_dlc import api
from lightning_dlc.lit.train import train
from lightning_dlc.project import load_shuffle
from peer import run_peer  # benchmarks/peer.py (scripts here run as `python benchmarks/<name>.py`)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT = SHARED / "data/openfield-Pranav-2018-10-30"


def ours(args, work: Path) -> dict:
    project = work / args.project.name
    shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("videos", "dlc-models*", "training-datasets"))
    config = project / "config.yaml"
    api.create_training_dataset(config)
    n_train = len(load_shuffle(config, 1)[0])
    overrides = [
        "experiment=dlc", f"data.project={config}", f"model={args.model}", "model.backbone.pretrained=false",
        f"data.batch_size={args.batch}", f"data.num_workers={args.workers}", f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu", f"trainer.precision={args.precision}", f"channels_last={str(args.channels_last).lower()}",
        "eval_interval=0", "logger=csv", f"snapshots.save_epochs={args.epochs}", "trainer.enable_progress_bar=false",
        f"output_dir={work / 'run'}",
    ]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    start = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - start
    return {"tool": "lightning_dlc", "model": args.model, "batch": args.batch, "epochs": args.epochs,
            "precision": args.precision, "channels_last": args.channels_last, "train_images": n_train,
            "seconds": round(seconds, 2), "train_images_per_s": round(args.epochs * n_train / seconds, 3),
            "threads": torch.get_num_threads()}


def peer(args) -> dict:
    return {"tool": "deeplabcut", **run_peer(args.epochs)["train"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=DEFAULT)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="resnet_50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--peer", action="store_true", help="also run DeepLabCut (../shared/peer) and print the ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mine = ours(args, Path(tmp))
    print(json.dumps(mine), flush=True)
    if args.peer:
        theirs = peer(args)
        print(json.dumps(theirs), flush=True)
        print(json.dumps({"summary": "train images/s, ours / DeepLabCut",
                          "ratio": round(mine["train_images_per_s"] / theirs["train_images_per_s"], 3),
                          "ours": mine["train_images_per_s"], "deeplabcut": theirs["train_images_per_s"]}))


if __name__ == "__main__":
    main()
