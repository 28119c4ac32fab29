"""Semi-supervised training on unlabeled video: the same schedule with and without the losses, as JSON.

    python benchmarks/unlabeled.py [--frames 20] [--epochs 40] [--net resnet_18] [--resize 0.5]
        [--losses temporal,pca_singleview,unimodal] [--warmup-epochs 10] [--max-frames 300] [--device cpu]
        [--set losses.temporal.epsilon=10 ...] [--workdir DIR]

Data: a fresh copy of the shared openfield project (116 labeled 640x480 frames, one mouse). Shuffle 1 is
our seeded 95 % split; the benchmark's shuffles 2 and 3 train on the first ``--frames`` images of its
training split (in the label table's order) and test on its test split. The unlabeled video is the
project's ``videos/m3v1mp4.mp4`` (2330 frames of another session), drawn in sequences of consecutive frames
(``unlabeled=videos``, defaults of ``conf/unlabeled/videos.yaml``) for shuffle 3 only.

Both runs: the same net from scratch (no ImageNet weights here), the same schedule and seed
(``experiment=dlc``'s AdamW and step schedule for ``--epochs``), images resized by ``--resize``, light
augmentation without flips or crops, no evaluation during training; shuffle 3 adds ``losses=[--losses]``
(each with its config's weight and epsilon, ramped up over ``--warmup-epochs``). Then each run's last
snapshot is evaluated (``evaluate_network``: test RMSE in px) and analyzes the first ``--max-frames``
frames of the video (0: all), where the benchmark measures the frame-to-frame jump of every keypoint (px
of the video; median and 99th percentile over keypoints and frame pairs) and the fraction of frames with
a keypoint below config.yaml's ``pcutoff``.

The default (resnet_18, 40 epochs of 2 steps, 300 analysed frames) is sized to finish in about 20 minutes
for both runs on 2 CPU cores: with 4 epochs on a CPU shared with other jobs, an epoch took about 8 s without
the losses and 16 s with them (10 unlabeled frames per step), plus about 25 s per run to start and 4 frames/s
to analyze. Larger with flags (``--net resnet_50 --epochs 200 --resize 1 --device cuda``).
Prints one JSON line per run, then the summary with both.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from lightning_dlc import api
from lightning_dlc.project.shuffles import read_shuffle

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared/data/openfield-Pranav-2018-10-30"
VIDEO = "videos/m3v1mp4.mp4"
WITHOUT, WITH = 2, 3  # the benchmark's shuffles: same split, without / with the unsupervised losses


def fresh_copy(project: Path, into: Path) -> Path:
    """A writable copy of the project's labels (no videos, shuffles or models); returns its config.yaml."""
    target = into / project.name
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("videos", "dlc-models*", "evaluation-results*",
                                                                   "training-datasets"))
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return target / "config.yaml"


def make_shuffles(config: Path, n_frames: int) -> tuple[int, int, int]:
    """Shuffle 1 (seeded split), then shuffles 2 and 3: its first ``n_frames`` training images, its test images.
    Returns the train and test sizes and the trainingsetindex of their TrainingFraction (added to config.yaml)."""
    api.create_training_dataset(config, Shuffles=[1])
    split = read_shuffle(config, 1)
    train, test = list(split.train_indices[:n_frames]), list(split.test_indices)
    created = api.create_training_dataset(config, Shuffles=[WITHOUT, WITH], trainIndices=[train, train],
                                          testIndices=[test, test])
    fractions = [float(f) for f in yaml.safe_load(config.read_text())["TrainingFraction"]]
    return len(train), len(test), fractions.index(created[0].train_fraction)


def clip(video: Path, out: Path, max_frames: int) -> Path:
    """The first ``max_frames`` frames of ``video`` (0: the whole video, linked)."""
    if max_frames <= 0:
        out.symlink_to(video)
        return out
    reader = cv2.VideoCapture(str(video))
    fps = reader.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    for _ in range(max_frames):
        ok, frame = reader.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(frame)
    reader.release()
    if writer is None:
        raise SystemExit(f"{video}: no frame could be read")
    writer.release()
    return out


def video_metrics(h5: Path, pcutoff: float) -> dict:
    """Frame-to-frame jumps (px) of every keypoint and the fraction of frames with a keypoint below pcutoff."""
    table = pd.read_hdf(h5)
    values = table.to_numpy(dtype=np.float64).reshape(len(table), -1, 3)  # [frames, bodyparts, (x, y, p)]
    jumps = np.linalg.norm(np.diff(values[..., :2], axis=0), axis=-1)
    jumps = jumps[np.isfinite(jumps)]
    below = (values[..., 2] < pcutoff).any(-1)
    return {"video_frames": len(table), "jump_median_px": float(np.median(jumps)),
            "jump_p99_px": float(np.percentile(jumps, 99)), "frames_below_pcutoff": float(below.mean())}


def run(args, config: Path, shuffle: int, trainset: int, video: Path, clip_path: Path, losses: list[str]) -> dict:
    """Train one shuffle (with ``losses`` on the unlabeled video if any), evaluate it, analyze the clip."""
    # light augmentation without flips (openfield's ears are left/right) and without DeepLabCut's 448 px crops,
    # which would pad the resized images back to 448 x 448 and cost as much as full-size ones
    overrides = ["model.backbone.pretrained=false", f"optimizer.lr={args.lr}", f"data.resize={args.resize}",
                 "data.num_workers=2",
                 "augment=light", "augment.hflip_p=0",
                 "eval_interval=0", "logger=csv", "trainer.enable_progress_bar=false", f"seed={args.seed}"]
    if losses:
        overrides += ["unlabeled=videos", f"unlabeled.videos=[{video}]", f"losses=[{','.join(losses)}]",
                      *(f"losses.{name}.warmup_epochs={args.warmup_epochs}" for name in losses), *args.set]
    print(f"shuffle {shuffle}: {args.net}, {args.epochs} epochs, losses={losses or 'none'} ...",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    api.train_network(config, shuffle=shuffle, trainingsetindex=trainset, epochs=args.epochs, save_epochs=args.epochs,
                      batch_size=args.batch_size, net_type=args.net, device=args.device, overrides=overrides)
    seconds = time.perf_counter() - start
    table = api.evaluate_network(config, shuffles=[shuffle], trainingsetindex=trainset, snapshots="last",
                                 device=args.device)
    test = next(row for _, row in table.iterrows() if row["split"] == "test")
    out = clip_path.parent / f"shuffle{shuffle}"
    out.mkdir(exist_ok=True)
    api.analyze_videos(config, [str(clip_path)], shuffle=shuffle, trainingsetindex=trainset, destfolder=str(out),
                       snapshot="last",
                       device=args.device, progress=False)
    pcutoff = float(yaml.safe_load(config.read_text()).get("pcutoff", 0.6))
    return {"shuffle": shuffle, "losses": losses, "train_seconds": round(seconds, 1),
            "test_rmse": float(test["rmse"]), **video_metrics(next(out.glob("*.h5")), pcutoff)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=DEFAULT)
    parser.add_argument("--frames", type=int, default=20, help="labeled training images (the first of the split)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--net", default="resnet_18", help="a net_type of conf/model/")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="from scratch (DeepLabCut's 1e-4 suits ImageNet weights: 80 steps at 1e-4 left the "
                             "model untrained, test RMSE 152 px)")
    parser.add_argument("--resize", type=float, default=0.5, help="image scale factor for training and inference")
    parser.add_argument("--losses", default="temporal,pca_singleview,unimodal")
    parser.add_argument("--warmup-epochs", type=int, default=10, help="epochs over which the losses' weights ramp up")
    parser.add_argument("--set", nargs="*", default=[], metavar="OVERRIDE",
                        help="more overrides for the run with the losses, e.g. losses.temporal.epsilon=10")
    parser.add_argument("--max-frames", type=int, default=300, help="video frames analysed for the jumps (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, help="keep the project, models and analyses here")
    args = parser.parse_args()
    video = (args.project / VIDEO).resolve()
    if not video.is_file():
        raise SystemExit(f"{video}: the unlabeled video is missing")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = fresh_copy(args.project, work)
        n_train, n_test, trainset = make_shuffles(config, args.frames)
        clip_path = clip(video, work / f"clip{args.max_frames}_{video.name}", args.max_frames)
        results = {"without": run(args, config, WITHOUT, trainset, video, clip_path, []),
                   "with": run(args, config, WITH, trainset, video, clip_path, args.losses.split(","))}
        for result in results.values():
            print(json.dumps(result), flush=True)
        without, with_ = results["without"], results["with"]
        print(json.dumps({
            "summary": "unsupervised losses on unlabeled video, openfield", "net": args.net, "epochs": args.epochs,
            "train_images": n_train, "test_images": n_test, "resize": args.resize, "device": args.device,
            "warmup_epochs": args.warmup_epochs, "losses": args.losses, "set": args.set,
            "without": {k: without[k] for k in ("test_rmse", "jump_median_px", "jump_p99_px", "frames_below_pcutoff",
                                                "train_seconds")},
            "with": {k: with_[k] for k in ("test_rmse", "jump_median_px", "jump_p99_px", "frames_below_pcutoff",
                                           "train_seconds")},
            "test_rmse_ratio": with_["test_rmse"] / without["test_rmse"],
            "jump_p99_ratio": with_["jump_p99_px"] / without["jump_p99_px"]}))


if __name__ == "__main__":
    main()
