"""Identities on the hard demo scene: IDF1 and identity switches of the stitched tracks, with and without the
identity head and re-ID, as JSON.

python benchmarks/identity_tracking.py [--epochs 30] [--frames 300] [--size 160] [--workdir DIR] [--look-alike]
python benchmarks/identity_tracking.py --workdir DIR --skip-training   (score an existing run again)
python benchmarks/identity_tracking.py --ground-truth [--id-error 0.2] [--seeds 3]   (no model: seconds)

Known animals (default): the hard scene's fish differ slightly in colour and size (``identity: true``); a bottom-up
model (resnet_18 heads on regnetx_002, from scratch, no augmentation) trained on 80 labeled frames, the video
analyzed (with features), then per variant the ellipse tracker's tracklets stitched into 3 tracks:

- ``motion``: ``stitch_tracklets(use_identity=False)`` (motion and shape alone);
- ``identity``: ``stitch_tracklets()`` (the identity head's votes as a cost, track i = individual i);
- ``identity_only``: ``convert_detections2tracklets(identity_only=True)`` then ``stitch_tracklets()``;
- ``reid``: ``transformer_reID`` (embedding cost; with identities also the identity cost).

``--ground-truth``: no model; the hard scene's true poses with the faults of a model (noise, drops, false positives:
``lightning_dlc.tracking.synthetic``), each animal's identity right except in a share ``--id-error`` of the frames
(the wrong ones spread over the other fish), scored for ``motion``, ``identity`` and ``identity_only``.

``--look-alike``: identical fish, no identity head: ``motion`` and ``reid``. Scores against every frame's true
poses (the project's ``videos/fishtank_groundtruth.h5``), in-view keypoints only; a track matches a fish under
half a fish length. ``named_idf1``: IDF1 with track i taken as fish i (the names the identity head gives).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.tracking.metrics import pose_distances, tracking_metrics

N_FISH = 3
OVERRIDES = ["model.backbone.pretrained=false", "optimizer.lr=3e-3", "augment=none", "data.num_workers=0",
             "eval_interval=0", "logger=csv", "trainer.enable_progress_bar=false"]


def ground_truth(project: Path, n_frames: int, size: int) -> np.ndarray:
    """``[T, 3, K, 3]`` true poses, NaN where a keypoint is hidden or out of view."""
    table = pd.read_hdf(project / "videos" / "fishtank_groundtruth.h5")
    truth = table.to_numpy(np.float64).reshape(n_frames, N_FISH, -1, 3).copy()
    hidden = (truth[..., 2] <= 0) | (truth[..., :2] < 0).any(-1) | (truth[..., :2] > size).any(-1)
    truth[..., :2][hidden] = np.nan
    return truth


def scores(truth: np.ndarray, h5: Path, threshold: float) -> dict:
    tracks = pd.read_hdf(h5).to_numpy(np.float64).reshape(len(truth), N_FISH, truth.shape[2], 3)
    result = tracking_metrics(truth, tracks, threshold)
    named = (np.diagonal(pose_distances(truth, tracks), axis1=1, axis2=2) < threshold).sum()
    present = np.isfinite(truth[..., 0]).any(-1).sum() + np.isfinite(tracks[..., 0]).any(-1).sum()
    return {"idf1": round(result["idf1"], 4), "named_idf1": round(float(2 * named / max(present, 1)), 4),
            "switches": int(result["switches"]), "mota": round(result["mota"], 4),
            "found": round(result["matches"] / max(result["truth_detections"], 1), 4)}


def with_identities(detections: dict, truth: np.ndarray, error: float, seed: int) -> dict:
    """The detections with each animal's identity: the true fish it lies on (Hungarian on pose distance), except
    in a share ``error`` of them another fish; false positives get a random one."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    out = {}
    for t, animals in detections.items():
        animals = animals.copy()
        ids = rng.integers(0, N_FISH, len(animals)).astype(float)
        d = np.nan_to_num(pose_distances(truth[t:t + 1], animals[None])[0], nan=1e9)   # [fish, animals]
        fish, found = linear_sum_assignment(d)
        real = d[fish, found] < 1e9
        ids[found[real]] = fish[real]
        wrong = rng.random(len(animals)) < error
        ids[wrong] = (ids[wrong] + rng.integers(1, N_FISH, wrong.sum())) % N_FISH
        animals[..., 3] = ids[:, None]
        out[t] = animals
    return out


def ground_truth_mode(args) -> dict:
    from lightning_dlc.data.demo_scene import render_scene
    from lightning_dlc.tracking.identity import identity_tracklets
    from lightning_dlc.tracking.stitch import stitch_tracklets
    from lightning_dlc.tracking.synthetic import noisy_detections
    from lightning_dlc.tracking.tracklets import link_detections

    results = {}
    for alike in (False, True):
        scene = render_scene(n_frames=args.frames, n_fish=N_FISH, width=args.size, height=args.size, seed=0,
                             scene="hard", look_alike=alike)
        raw = np.concatenate([scene.keypoints, scene.visible[..., None]], -1).astype(np.float64)
        truth = raw.copy()
        truth[..., :2][truth[..., 2] <= 0] = np.nan                 # scored where visible
        ends = scene.keypoints[..., 0, :] - scene.keypoints[..., -1, :]
        threshold = 0.5 * float(np.median(np.linalg.norm(ends, axis=-1)))
        variants = {"motion": [], **({} if alike else {"identity": [], "identity_only": []})}
        for seed in range(args.seeds):
            detections = noisy_detections(raw, seed=seed, false_positives=0.2)
            detections = with_identities(detections, truth, args.id_error, seed) if not alike else detections
            tracklets = link_detections(detections)
            for name in variants:
                if name == "identity_only":
                    pieces, use = identity_tracklets(detections, N_FISH, len(truth)), None
                else:
                    pieces, use = tracklets, name == "identity"
                tracks = stitch_tracklets(pieces, N_FISH, n_frames=len(truth), use_identity=use)
                scored = tracking_metrics(truth, tracks, threshold)
                named = (np.diagonal(pose_distances(truth, tracks), axis1=1, axis2=2) < threshold).sum()
                present = np.isfinite(truth[..., 0]).any(-1).sum() + np.isfinite(tracks[..., 0]).any(-1).sum()
                variants[name].append({"idf1": scored["idf1"], "named_idf1": 2 * named / present,
                                       "switches": scored["switches"],
                                       "found": scored["matches"] / scored["truth_detections"]})
        results["look_alike" if alike else "known"] = {
            name: {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
            for name, runs in variants.items()}
    return {"mode": "ground_truth", "scene": "hard", "frames": args.frames, "size": args.size, "seeds": args.seeds,
            "id_error": args.id_error, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--backbone", default="regnetx_002")
    parser.add_argument("--look-alike", action="store_true")
    parser.add_argument("--reid-epochs", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-training", action="store_true", help="reuse the project and model in --workdir")
    parser.add_argument("--ground-truth", action="store_true", help="no model: noisy true poses (module doc)")
    parser.add_argument("--id-error", type=float, default=0.2, help="--ground-truth: share of wrong identities")
    parser.add_argument("--seeds", type=int, default=3, help="--ground-truth: noise seeds")
    args = parser.parse_args()
    if args.ground_truth:
        print(json.dumps(ground_truth_mode(args), indent=2))
        return

    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        config = work / "hardtank" / "config.yaml"
        started = time.perf_counter()
        if not args.skip_training:
            config = make_demo_project(work / "hardtank", n_fish=N_FISH, n_frames=args.frames, n_labeled=80,
                                       size=args.size, scene="hard", look_alike=args.look_alike,
                                       identity=not args.look_alike)
            api.create_training_dataset(config)
            api.train_network(config, epochs=args.epochs, save_epochs=args.epochs, batch_size=8,
                              net_type="resnet_18", overrides=[f"model.backbone.name={args.backbone}", *OVERRIDES])
        train_seconds = time.perf_counter() - started
        video = config.parent / "videos" / "fishtank.mp4"
        out = work / "analysis"
        api.analyze_videos(config, [video], snapshot="last", destfolder=out, features=True, overwrite=True,
                           progress=False)
        truth = ground_truth(config.parent, args.frames, args.size)
        threshold = 0.5 * float(np.nanmedian(np.linalg.norm(truth[..., 0, :2] - truth[..., -1, :2], axis=-1)))
        common = dict(snapshot="last", destfolder=out)
        results = {}
        variants = [("motion", {}, {"use_identity": False})]
        if not args.look_alike:
            variants += [("identity", {}, {}), ("identity_only", {"identity_only": True}, {})]
        for name, convert, stitch in variants:
            api.convert_detections2tracklets(config, [video], overwrite=True, **convert, **common)
            h5 = api.stitch_tracklets(config, [video], overwrite=True, **stitch, **common)[0]
            results[name] = scores(truth, h5, threshold)
        api.convert_detections2tracklets(config, [video], overwrite=True, **common)
        reid = api.transformer_reID(config, [video], overwrite=True, train_epochs=args.reid_epochs, **common)[0]
        results["reid"] = {**scores(truth, reid.tracks, threshold), "triplet_accuracy": reid.triplet_accuracy}
    print(json.dumps({"scene": "hard", "look_alike": args.look_alike, "frames": args.frames, "size": args.size,
                      "epochs": args.epochs, "backbone": args.backbone, "threshold_px": threshold,
                      "train_seconds": round(train_seconds, 1), "results": results}, indent=2))


if __name__ == "__main__":
    main()
