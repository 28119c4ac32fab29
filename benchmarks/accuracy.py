"""Accuracy after training from scratch on a real project: ours and (``--peer``) DeepLabCut 3.0.2's, as JSON.

    python benchmarks/accuracy.py [--peer] [--epochs 5] [--net resnet_50] [--batch-size 8]
        [--project DIR] [--device cpu] [--workdir DIR]

Both engines train ``--net`` (a DeepLabCut net_type, ``conf/model/``) with ImageNet weights off (no hub here)
for ``--epochs`` in batches of ``--batch-size`` on shuffle 1 of the project (default: the shared
openfield project, 116 labeled images: 110 train, 6 test), each through its own user API
(``train_network``), then score their last snapshot with their own ``evaluate_network`` (DeepLabCut's
numbers: RMSE in px over labeled keypoints, mAP from OKS with sigma 0.1; DeepLabCut rounds to 0.01).

The split: with ``--peer`` DeepLabCut's ``create_training_dataset`` makes shuffle 1 and ours trains on
those very files; without, ours makes it (``api.create_training_dataset``, seed 42; a different random
split from DeepLabCut's, which is not seeded).

Optimizer and schedule: DeepLabCut's for the net (its shuffle's ``pytorch_config.yaml``; resnet_50: AdamW
lr 5e-4, then 1e-4 from epoch 90 and 1e-5 from 120) and, with ``--peer``, ours is given the same; without
it ours keeps its own defaults (``experiment=dlc``: AdamW 1e-4, x0.1 and x0.01 at 80% and 95% of the run).
Both: weight decay 0.01, 2 data workers, no evaluation during training, seed 42.
Augmentation, both: 448x448 crops sampled "hybrid" (mostly centred on a keypoint, shifted up to 10%),
padded where the image is smaller; affine on half the images (rotation +-30 degrees, scale 0.5-1.25, no
translation); per-pixel gaussian noise up to 12.75/255 on half; ImageNet normalization.
- DeepLabCut (``aug_default.yaml``, albumentations on the CPU per image): also ``motion_blur: true``,
  ``A.MotionBlur(p=0.5)`` with a random kernel of 3-7 px.
- Ours (``augment=default``, on the batch's device): motion blur is off by default there, so this
  benchmark turns it on (``augment.motion_blur_p=0.5``, kernel 7) to match.

Default epochs: 5, about 20 minutes per engine for resnet_50 on 2 free CPU cores: one epoch of ours took
420 CPU seconds here (about 3.5 minutes on 2 cores; measured on a machine shared with other jobs, so by
CPU time); DeepLabCut's main process had used 270 CPU seconds, without its 2 augmenting workers, when
its first epoch was stopped unfinished. Prints one JSON line per engine, then the summary:
``{"ours": {...}, "deeplabcut": {...}}`` with test RMSE, mAP and train seconds (the per-engine lines add
the train split's and the main process's CPU seconds, a fairer time on a busy machine).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from lightning_dlc import api
from lightning_dlc.project import load_shuffle
from peer import run_in_peer  # benchmarks/peer.py (scripts here run as `python benchmarks/<name>.py`)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/openfield-Pranav-2018-10-30"

# DeepLabCut in its own environment: shuffle 1, train, evaluate. Its config needs project_path and
# video_sets filled in (it does not tolerate the shipped placeholders); backbones are built without
# ImageNet weights (DeepLabCut otherwise insists on downloading them).
PEER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import pandas as pd
    import deeplabcut
    import deeplabcut.pose_estimation_pytorch.apis.training as dlc_training
    from deeplabcut.utils import auxiliaryfunctions

    config, net, epochs, batch_size, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    build = dlc_training.PoseModel.build
    dlc_training.PoseModel.build = staticmethod(lambda cfg, weight_init=None, pretrained_backbone=False:
                                                build(cfg, weight_init, False))
    root = Path(config).parent
    cfg = auxiliaryfunctions.read_config(config)
    cfg["project_path"] = str(root)
    cfg["video_sets"] = {str(root / "videos" / f"{p.name}.mp4"): {"crop": "0, 640, 0, 480"}
                         for p in sorted((root / "labeled-data").iterdir()) if p.is_dir()}
    auxiliaryfunctions.write_config(config, cfg)
    deeplabcut.create_training_dataset(config, Shuffles=[1], net_type=net, userfeedback=False,
                                       engine=deeplabcut.Engine.PYTORCH)
    print(json.dumps({"step": "shuffle"}), flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    deeplabcut.train_network(config, shuffle=1, epochs=epochs, save_epochs=epochs, batch_size=batch_size,
                             device=device, pytorch_cfg_updates={"runner.eval_interval": epochs + 1,
                                                                 "train_settings.dataloader_workers": 2})
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    deeplabcut.evaluate_network(config, Shuffles=[1], device=device)
    table = pd.read_csv(next((root / "evaluation-results-pytorch").rglob("CombinedEvaluation-results.csv")))
    row = table.iloc[-1]
    scores = {f"{split}_{name}": float(row[f"{split} {name}"])
              for split in ("test", "train") for name in ("rmse", "mAP")}
    print(json.dumps({"step": "result", "version": deeplabcut.__version__, "train_seconds": seconds,
                      "train_cpu_seconds": cpu_seconds, **scores}), flush=True)
""")


def fresh_copy(project: Path, into: Path, keep_shuffles: bool = False) -> Path:
    """A writable copy of the project (no videos, no trained models); returns its config.yaml."""
    target = into / project.name
    skipped = ["videos", "dlc-models*", "evaluation-results*", *([] if keep_shuffles else ["training-datasets"])]
    shutil.copytree(project, target, ignore=shutil.ignore_patterns(*skipped))
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return target / "config.yaml"


def deeplabcut(args, work: Path) -> dict:
    """DeepLabCut's shuffle, training and evaluation on its own copy of the project."""
    config = fresh_copy(args.project, work / "deeplabcut")
    print(f"DeepLabCut: {args.net}, {args.epochs} epochs ...", file=sys.stderr, flush=True)
    lines = run_in_peer(PEER, str(config), args.net, str(args.epochs), str(args.batch_size), args.device)
    result = next(line for line in lines if line.get("step") == "result")
    return {"tool": "deeplabcut", **{k: v for k, v in result.items() if k != "step"}, "config": config}


def deeplabcut_runner(project: Path) -> list[str]:
    """DeepLabCut's optimizer and schedule for the net (its shuffle's pytorch_config.yaml) as our overrides."""
    path = next((project / "dlc-models-pytorch").glob("iteration-*/*shuffle1/train/pytorch_config.yaml"))
    runner = yaml.safe_load(path.read_text())["runner"]
    optimizer, scheduler = runner["optimizer"], runner["scheduler"]
    if scheduler["type"] != "LRListScheduler" or set(optimizer["params"]) != {"lr"}:
        raise NotImplementedError(f"{path}: only translates LRListScheduler and an optimizer's lr: {runner}")
    lr_list = [[float(v) for v in rates] for rates in scheduler["params"]["lr_list"]]  # PyYAML reads 1e-05 as text
    return [f"optimizer={optimizer['type'].lower()}", f"optimizer.lr={float(optimizer['params']['lr'])}",
            f"scheduler.milestones={list(scheduler['params']['milestones'])}", f"scheduler.lr_list={lr_list}"]


def ours(args, work: Path, shuffle_from: Path | None) -> dict:
    """Our training and evaluation on a copy of the project: DeepLabCut's shuffle and schedule if given, else ours."""
    config = fresh_copy(shuffle_from.parent if shuffle_from else args.project, work / "lightning_dlc",
                        keep_shuffles=shuffle_from is not None)
    runner = deeplabcut_runner(shuffle_from.parent) if shuffle_from else []
    if shuffle_from is None:
        api.create_training_dataset(config, Shuffles=[1])
    n_train, n_test = map(len, load_shuffle(config, 1))
    print(f"ours: {args.net}, {args.epochs} epochs on {n_train} images ...", file=sys.stderr, flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    api.train_network(config, shuffle=1, epochs=args.epochs, save_epochs=args.epochs, batch_size=args.batch_size,
                      net_type=args.net, device=args.device, overrides=[
                          "model.backbone.pretrained=false", *runner, "augment.motion_blur_p=0.5",
                          "data.num_workers=2", "eval_interval=0", "logger=csv", "trainer.enable_progress_bar=false"])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    table = api.evaluate_network(config, shuffles=[1], snapshots="last", device=args.device)
    rows = {row["split"]: row for _, row in table.iterrows()}
    scores = {f"{split}_{name}": float(rows[split][name]) for split in ("test", "train") for name in ("rmse", "mAP")}
    return {"tool": "lightning_dlc", "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "train_images": n_train, "test_images": n_test, **scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=DEFAULT)
    parser.add_argument("--net", default="resnet_50", help="a DeepLabCut net_type (conf/model/)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both engines")
    parser.add_argument("--workdir", type=Path, help="keep the projects, models and evaluations here")
    parser.add_argument("--peer", action="store_true", help="also train DeepLabCut 3.0.2, on its shuffle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        theirs = deeplabcut(args, work) if args.peer else None
        mine = ours(args, work, theirs.pop("config") if theirs else None)
        results = {"ours": mine, **({"deeplabcut": theirs} if theirs else {})}
        for result in results.values():
            print(json.dumps(result), flush=True)
        common = {"net": args.net, "epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                  "shuffle_by": "deeplabcut" if theirs else "lightning_dlc"}
        print(json.dumps({"summary": "accuracy from scratch, test split", **common,
                          **{tool: {k: round(r[k], 3) for k in ("test_rmse", "test_mAP", "train_seconds")}
                             for tool, r in results.items()}}))


if __name__ == "__main__":
    main()
