"""Tracking accuracy on the demo scene: IDF1, MOTA and identity switches of stitched tracks, as JSON.

python benchmarks/tracking_accuracy.py [--frames 300] [--size 128] [--seeds 3]
python benchmarks/tracking_accuracy.py --trained [--frames 300] [--size 256] [--epochs 30] [--backbone regnetx_002]
    [--workdir DIR]

Mode ``ground_truth_noise`` (default): detections made from the true poses with pixel noise, dropped
keypoints and animals, and false positives (lightning_dlc.tracking.synthetic), linked by each tracker
and stitched into 3 tracks.

Mode ``trained`` (``--trained``): the multi-animal demo project (``--frames`` frames of ``--size`` px,
80 labeled), a bottom-up model (``model=resnet_18``'s heads on ``--backbone``: regnetx_002 by default, as
ResNet-18 itself takes about a minute an epoch on 2 busy CPU cores) trained from scratch on it for
``--epochs`` (lr 3e-3, no augmentation; CPU unless a GPU is there), the demo video analyzed, then each
tracker's tracklets stitched into 3 tracks (``api.convert_detections2tracklets`` / ``api.stitch_tracklets``),
all as a user runs them. Also reported: the training and analysis times and the assemblies' median keypoint error (px).

A track matches a fish in a frame when their mean keypoint distance is under half a fish length.
"""
from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.tracking.metrics import pose_distances, tracking_metrics
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.synthetic import noisy_detections
from lightning_dlc.tracking.tracklets import clean_detections, link_detections

METHODS = ("ellipse", "skeleton", "box")
SCORES = ("idf1", "mota", "switches", "misses", "false_positives")
N_FISH, N_LABELED = 3, 80


def true_poses(frames: int, size: int) -> tuple[np.ndarray, float]:
    """The demo scene's true poses ``[T, 3, 5, 3]`` (x, y, visibility) and the mean fish length (px);
    the same scene ``make_demo_project`` renders (same seed)."""
    scene = render_scene(n_frames=frames, n_fish=N_FISH, width=size, height=size)
    truth = np.concatenate([scene.keypoints, scene.visible[..., None]], -1).astype(np.float64)
    length = float(np.linalg.norm(scene.keypoints[:, :, 0] - scene.keypoints[:, :, -1], axis=-1).mean())
    return truth, length


def ground_truth_noise(args, truth: np.ndarray, threshold: float) -> dict:
    results = {}
    for method in METHODS:
        runs = []
        for seed in range(args.seeds):
            detections = noisy_detections(truth, noise=1.0, drop_keypoint=0.1, drop_animal=0.05,
                                          false_positives=0.2, seed=seed)
            start = time.perf_counter()
            tracks = stitch_tracklets(link_detections(detections, method), N_FISH, n_frames=len(truth), fill=3)
            seconds = time.perf_counter() - start
            runs.append({**tracking_metrics(truth, tracks, threshold), "seconds": seconds})
        results[method] = {key: float(np.mean([r[key] for r in runs])) for key in (*SCORES, "seconds")}
    return {"seeds": args.seeds, "results": results}


def assembly_error(assemblies: dict, truth: np.ndarray) -> float:
    """Median keypoint error (px) of each frame's assemblies matched one to one with the true fish."""
    errors = []
    for t in range(len(truth)):
        found = clean_detections(assemblies.get(t, np.zeros((0, truth.shape[2], 3))))
        if not len(found):
            continue
        distances = np.nan_to_num(pose_distances(truth[t:t + 1], found[None])[0], nan=1e9)
        g, h = linear_sum_assignment(distances)
        errors += list(distances[g, h][distances[g, h] < 1e9])
    return float(np.median(errors)) if errors else float("nan")


def trained(args, truth: np.ndarray, threshold: float, work: Path) -> dict:
    import pandas as pd

    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project

    config = make_demo_project(work / "fishtank", n_fish=N_FISH, n_frames=args.frames, n_labeled=N_LABELED,
                               size=args.size)
    api.create_training_dataset(config)
    start = time.perf_counter()
    api.train_network(config, epochs=args.epochs, save_epochs=args.epochs, batch_size=8, net_type="resnet_18",
                      overrides=[f"model.backbone.name={args.backbone}", "model.backbone.pretrained=false",
                                 "optimizer.lr=3e-3", "augment=none", "data.num_workers=0", "eval_interval=0",
                                 "logger=csv", "trainer.enable_progress_bar=false"])
    train_seconds = time.perf_counter() - start
    video = config.parent / "videos" / "fishtank.mp4"
    start = time.perf_counter()
    summary = api.analyze_videos(config, [video], snapshot="last", progress=False)[0]
    analyze_seconds = time.perf_counter() - start
    with open(Path(summary.h5).with_suffix("").as_posix() + "_assemblies.pickle", "rb") as f:
        assemblies = pickle.load(f)
    results = {}
    for method in METHODS:
        start = time.perf_counter()
        api.convert_detections2tracklets(config, [video], track_method=method, snapshot="last")
        h5 = api.stitch_tracklets(config, [video], track_method=method, snapshot="last", fill_gaps=3)[0]
        seconds = time.perf_counter() - start
        tracks = pd.read_hdf(h5).to_numpy().reshape(len(truth), N_FISH, truth.shape[2], 3)
        scores = tracking_metrics(truth, tracks, threshold)
        results[method] = {**{key: scores[key] for key in SCORES}, "seconds": seconds}
    return {"epochs": args.epochs, "model": f"resnet_18 heads on {args.backbone} (from scratch), bottom-up",
            "train_seconds": train_seconds,
            "analyze_seconds": analyze_seconds, "assembly_median_error_px": assembly_error(assemblies, truth),
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", action="store_true", help="track a trained model's predictions")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=None, help="px (default 128, --trained 256)")
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds (ground-truth mode)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (--trained)")
    parser.add_argument("--backbone", default="regnetx_002", help="timm backbone, from scratch (--trained)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the trained project here (--trained)")
    args = parser.parse_args()
    args.size = args.size or (256 if args.trained else 128)
    truth, length = true_poses(args.frames, args.size)
    threshold = 0.5 * length
    if args.trained:
        with tempfile.TemporaryDirectory() as tmp:
            result = trained(args, truth, threshold, args.workdir or Path(tmp))
    else:
        result = ground_truth_noise(args, truth, threshold)
    print(json.dumps({"mode": "trained" if args.trained else "ground_truth_noise", "frames": args.frames,
                      "size": args.size, "threshold_px": threshold, **result}, indent=2))


if __name__ == "__main__":
    main()
