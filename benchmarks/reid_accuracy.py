"""Re-identification on the demo: held-out triplet accuracy, and identity switches when stitching fragmented
tracklets with and without the learned embedding, as JSON.

python benchmarks/reid_accuracy.py [--frames 150] [--size 128] [--pose-epochs 60] [--reid-epochs 40]

A 3-fish demo project (every fish textured differently) -> a small pose model trained on it -> the video
analyzed with features=True -> api.transformer_reID (tracklets, triplets: train on the first 80 % of the
frames, test on the rest; transformer; stitching -> _el_tr.h5). Then every tracklet is cut at random frames
with a few frames dropped after each cut (``fragment_tracklets``) and stitched with motion costs alone and
with the embedding cost added; switches and IDF1 against videos/fishtank_groundtruth.h5, per seed and averaged.
Runs on one CPU thread (``--threads``): these tiny models on 2 shared cores ran 17x slower with two.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.tracking import files
from lightning_dlc.tracking.metrics import tracking_metrics
from lightning_dlc.tracking.reid import fragment_tracklets
from lightning_dlc.tracking.stitch import stitch_tracklets

POSE_OVERRIDES = ["model.backbone.name=regnetx_002", "model.backbone.pretrained=false", "optimizer.lr=3e-3",
                  "data.num_workers=0", "eval_interval=0", "augment=none", "logger=csv",
                  "trainer.enable_progress_bar=false"]


def analyzed_demo(root: Path, frames: int, size: int, pose_epochs: int, labeled: int = 48) -> tuple[Path, Path]:
    """(config.yaml, video) of a 3-fish demo project whose video is analyzed with features=True."""
    config = make_demo_project(root / "fishtank", multianimal=True, n_frames=frames,
                               n_labeled=min(frames, labeled), size=size)
    api.create_training_dataset(config)
    api.train_network(config, shuffle=1, epochs=pose_epochs, save_epochs=pose_epochs, batch_size=8,
                      net_type="resnet_18", overrides=POSE_OVERRIDES)
    video = config.parent / "videos" / "fishtank.mp4"
    api.analyze_videos(config, [video], snapshot="last", features=True, progress=False, verbose=False)
    return config, video


def switches_with_and_without_reid(prefix: Path, truth_h5: Path, cost, n_frames: int, seeds=(0, 1, 2),
                                   mean_length: int = 20, max_gap: int = 25) -> dict:
    """Tracking scores of fragmented tracklets stitched by motion alone and with ``cost``, averaged over seeds."""
    truth = pd.read_hdf(truth_h5).to_numpy().reshape(n_frames, 3, -1, 3).copy()
    truth[..., :2][truth[..., 2] <= 0] = np.nan
    length = float(np.nanmedian(np.linalg.norm(truth[:, :, 0, :2] - truth[:, :, -1, :2], axis=-1)))
    tracklets = files.read_tracklets(files.tracklet_path(prefix.parent, prefix.name, "ellipse")).tracklets
    runs = {"motion": [], "reid": []}
    for seed in seeds:
        pieces = fragment_tracklets(tracklets, mean_length=mean_length, max_gap=max_gap, seed=seed)
        for name, extra in (("motion", None), ("reid", cost)):
            tracks = stitch_tracklets(pieces, 3, n_frames=n_frames, extra_cost=extra)
            runs[name].append(tracking_metrics(truth, tracks, threshold=0.5 * length))
    keys = ("switches", "idf1", "mota")
    return {name: {**{key: float(np.mean([r[key] for r in scores])) for key in keys},
                   "per_seed": {key: [round(float(r[key]), 3) for r in scores] for key in keys}}
            for name, scores in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--pose-epochs", type=int, default=60)
    parser.add_argument("--reid-epochs", type=int, default=40)
    parser.add_argument("--triplets", type=int, default=1000)
    parser.add_argument("--cost-weight", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        config, video = analyzed_demo(Path(tmp), args.frames, args.size, args.pose_epochs)
        analyzed = time.perf_counter()
        result, = api.transformer_reID(config, [video], snapshot="last", train_epochs=args.reid_epochs,
                                       n_triplets=args.triplets, cost_weight=args.cost_weight)
        trained = time.perf_counter()
        prefix = Path(str(result.tracks).removesuffix("_el_tr.h5"))
        scores = switches_with_and_without_reid(prefix, video.parent / "fishtank_groundtruth.h5", result.cost,
                                                args.frames)
    calibration = [round(result.cost.same, 3), round(result.cost.different, 3)]
    print(json.dumps({**vars(args), "triplet_accuracy": result.triplet_accuracy, "train_triplets": result.n_train,
                      "test_triplets": result.n_test, "cost_same_different": calibration,
                      "fragmented_stitching": scores,
                      "seconds": {"pose_and_analysis": round(analyzed - start, 1),
                                  "reid": round(trained - analyzed, 1)}}, indent=2))


if __name__ == "__main__":
    main()
