"""Tracking accuracy on the demo scene or a project's footage: IDF1, MOTA and identity switches of stitched
tracks, as JSON.

python benchmarks/tracking_accuracy.py [--frames 300] [--size 128] [--seeds 3]
python benchmarks/tracking_accuracy.py --trained [--frames 300] [--size 256] [--epochs 30] [--backbone regnetx_002]
    [--workdir DIR]
python benchmarks/tracking_accuracy.py --scene hard [--id-error 0.2] [--seeds 3] [--size 160]   (no model: seconds)
python benchmarks/tracking_accuracy.py --trained --scene hard [--look-alike] [--size 160] [--epochs 120] ...
python benchmarks/tracking_accuracy.py --project CONFIG --video VIDEO [--shuffle N] [--snapshot S]
    [--train-frames 120] [--truth TRACKS.h5] [--epochs 60] [--workdir DIR]

Mode ``ground_truth_noise`` (default): detections made from the true poses with pixel noise, dropped
keypoints and animals, and false positives (lightning_dlc.tracking.synthetic), linked by each tracker
and stitched into 3 tracks.

Mode ``hard_ground_truth`` (``--scene hard`` without ``--trained``): the hard demo's true poses (both the
known-identity and the look-alike scene) with a model's faults (noise, drops, false positives), each animal's
identity right except in a share ``--id-error`` of the frames (spread over the other fish), linked by the
ellipse tracker and stitched into 3 tracks: ``motion`` (``use_identity=False``), ``identity`` (the identity
votes as a cost) and ``identity_only`` (tracklets by identity alone). Measures the stitching alone;
``named_idf1`` is IDF1 with track i taken as fish i (the names the identity votes give).

Mode ``trained`` (``--trained``): the multi-animal demo project (``--frames`` frames of ``--size`` px,
80 labeled), a bottom-up model (``model=resnet_18``'s heads on ``--backbone``: regnetx_002 by default, as
ResNet-18 itself takes about a minute an epoch on 2 busy CPU cores) trained from scratch on it for
``--epochs`` (lr 3e-3, no augmentation; CPU unless a GPU is there), the demo video analyzed, then each
tracker's tracklets stitched into 3 tracks (``api.convert_detections2tracklets`` / ``api.stitch_tracklets``),
all as a user runs them. Also reported: the training and analysis times and the assemblies' median keypoint error (px).

Mode ``trained --scene hard`` (``--look-alike``): the hard demo (fish that touch, leave the frame and come back,
differ slightly in colour and size, or not at all; ``lightning_dlc.data.demo_scene.HardScene``) as a project
(``identity: true`` unless look-alike), a bottom-up model trained from scratch on it, the video analyzed
(``features=True``), then per tracker (``--trackers``) each variant of benchmarks/tracking_footage.py: motion
alone, identity-head evidence in stitching, identity_only, re-ID (``--reid-trackers``); a variant the api
does not offer yet is reported "unavailable". Ground truth: every frame's true poses, out-of-view keypoints
left out. ``--labeled``: labeled frames of the demo (80). The heads keep DeepLabCut's sizes unless ``--radius``
(plateau and locref radius, px; also the identity head's), ``--paf-width`` (px) or ``--nms-radius`` (peak window,
map cells) are given: at 160 px the fish are 37 px long and touch 5.5 px apart, under one map cell (stride 4) from
each other, so the model gives one peak per bodypart for two fish closer than about 20 px whatever these sizes
(8 px / 8 px / 3 cells: no better); training longer (``--epochs 120``) finds more of the fish that swim apart.

Mode ``project`` (``--project CONFIG --video VIDEO``): any DeepLabCut multi-animal project whose labeled
frames of VIDEO (``labeled-data/<video stem>``) are frames of the video with consistent individuals. Ground
truth: those labeled frames (or ``--truth``: a track table of every frame, such as the demo's
``videos/<stem>_groundtruth.h5``); a model trained from scratch on ``--train-frames`` of them spread evenly
(the rest are its test images) in shuffle ``--shuffle`` (a new one, made with api.create_training_dataset, which
adds its TrainingFraction to config.yaml as DeepLabCut does; an existing shuffle is never overwritten), or an
existing trained shuffle with ``--snapshot`` (best, last, index or file; ``--trainingsetindex``). All analysis
and tracking files go to ``--workdir``; scores on the ground-truth frames only. "found" is the fraction of
animal-frames matched by a track; "named_correctly" (identity projects) the fraction matched by the track
named after that individual. Where animals are lost along the way: ``assemblies_found`` (the model's
assemblies of each frame, before tracking) and per tracker ``tracklets_found`` (before stitching), same matching.
``--min-keypoints 3`` counts an animal only where 3 of its keypoints are in view (the fewest DeepLabCut's
assembler joins); the default (1) counts every animal with a keypoint in view.

A track matches an animal in a frame when their mean keypoint distance is under half a body length
(``--threshold`` px in project mode; default half the median snout-to-last-keypoint distance of the truth).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from lightning_dlc.data.demo_scene import BODYPARTS, render_scene
from lightning_dlc.tracking.metrics import pose_distances, tracking_metrics
from lightning_dlc.tracking.stitch import stitch_tracklets
from lightning_dlc.tracking.synthetic import noisy_detections
from lightning_dlc.tracking.tracklets import clean_detections, link_detections

METHODS = ("ellipse", "skeleton", "box")
MODEL_OVERRIDES = ["model.backbone.pretrained=false", "optimizer.lr=3e-3", "augment=none", "data.num_workers=0",
                   "eval_interval=0", "logger=csv", "trainer.enable_progress_bar=false"]
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


def with_identities(detections: dict, truth: np.ndarray, error: float, seed: int) -> dict:
    """The detections with each animal's identity: the true fish it lies on (Hungarian on pose distance), except
    in a share ``error`` of them another fish; false positives get a random one."""
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


def hard_ground_truth(args) -> dict:
    """Mode ``hard_ground_truth`` (module doc): stitching with and without identities, no model."""
    from lightning_dlc.tracking.identity import identity_tracklets

    results = {}
    for alike in (False, True):
        scene = render_scene(n_frames=args.frames, n_fish=N_FISH, width=args.size, height=args.size, seed=0,
                             scene="hard", look_alike=alike)
        raw = np.concatenate([scene.keypoints, scene.visible[..., None]], -1).astype(np.float64)
        truth = raw.copy()
        truth[..., :2][truth[..., 2] <= 0] = np.nan                 # scored where visible
        threshold = 0.5 * body_length(truth)
        variants = {"motion": [], **({} if alike else {"identity": [], "identity_only": []})}
        for seed in range(args.seeds):
            detections = noisy_detections(raw, seed=seed, false_positives=0.2)
            if not alike:
                detections = with_identities(detections, truth, args.id_error, seed)
            tracklets = link_detections(detections)
            for name, runs in variants.items():
                if name == "identity_only":
                    pieces, use = identity_tracklets(detections, N_FISH, len(truth)), None
                else:
                    pieces, use = tracklets, name == "identity"
                tracks = stitch_tracklets(pieces, N_FISH, n_frames=len(truth), use_identity=use)
                scored = tracking_metrics(truth, tracks, threshold)
                named = (np.diagonal(pose_distances(truth, tracks), axis1=1, axis2=2) < threshold).sum()
                present = np.isfinite(truth[..., 0]).any(-1).sum() + np.isfinite(tracks[..., 0]).any(-1).sum()
                runs.append({"idf1": scored["idf1"], "named_idf1": 2 * named / present,
                             "switches": scored["switches"], "found": scored["matches"] / scored["truth_detections"]})
        results["look_alike" if alike else "known"] = {
            name: {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
            for name, runs in variants.items()}
    return {"scene": "hard", "seeds": args.seeds, "id_error": args.id_error, "results": results}


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


def body_length(truth: np.ndarray) -> float:
    """Median distance from the first to the last keypoint of the animals (px)."""
    return float(np.nanmedian(np.linalg.norm(truth[..., 0, :2] - truth[..., -1, :2], axis=-1)))


def head_overrides(args) -> list[str]:
    """Hydra overrides for the heads' pixel sizes given on the command line (unset: the model's defaults)."""
    head = "model.heads.multi.bodypart"
    out = [f"{head}.radius={args.radius}", f"model.heads.identity.radius={args.radius}"] if args.radius else []
    if args.paf_width:
        out.append(f"{head}.paf_width={args.paf_width}")
    if args.nms_radius:
        out.append(f"{head}.predict_kwargs.nms_radius={args.nms_radius}")
    return out


def train_model(config, shuffle: int, args, trainingsetindex: int = 0) -> None:
    from lightning_dlc import api

    api.train_network(config, shuffle=shuffle, trainingsetindex=trainingsetindex, epochs=args.epochs, save_epochs=args.epochs, batch_size=8,
                      net_type="resnet_18", overrides=[f"model.backbone.name={args.backbone}", *MODEL_OVERRIDES,
                                                       *head_overrides(args)])


def analyzed_variants(config, video, frames, truth, args, shuffle: int, snapshot, work: Path,
                      trainingsetindex: int = 0) -> dict:
    """Analyze the video into ``work`` (features for re-ID), then score every tracker and variant."""
    from lightning_dlc import api
    from lightning_dlc.tracking.files import read_assemblies
    from tracking_footage import found_before_tracking, in_view, tracking_variants  # benchmarks/tracking_footage.py

    capture = cv2.VideoCapture(str(video))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    truth = in_view(truth, width, height, args.min_keypoints)
    threshold = args.threshold or 0.5 * body_length(truth)
    out = work / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = api.analyze_videos(config, [video], shuffle=shuffle, trainingsetindex=trainingsetindex,
                                 snapshot=snapshot, destfolder=out, features=True, overwrite=True, progress=False)[0]
    analyze_seconds = time.perf_counter() - start
    assemblies, _ = read_assemblies(Path(summary.h5).with_suffix("").as_posix() + "_assemblies.pickle")
    results = tracking_variants(config, video, frames, truth, threshold, shuffle=shuffle, snapshot=snapshot,
                                trainingsetindex=trainingsetindex, destfolder=out, trackers=args.trackers, reid_trackers=args.reid_trackers,
                                reid_epochs=args.reid_epochs)
    return {"threshold_px": threshold, "scored_frames": len(frames), "min_keypoints": args.min_keypoints,
            "animal_frames": int(np.isfinite(truth[..., 0]).any(-1).sum()), "analyze_seconds": analyze_seconds,
            "assemblies_found": found_before_tracking(assemblies, frames, truth, threshold),
            "results": results}


def hard_scene(args, work: Path) -> dict:
    from lightning_dlc import api
    from lightning_dlc.data.demo import make_demo_project
    from tracking_footage import track_file_truth

    config = make_demo_project(work / "hardtank", n_fish=N_FISH, n_frames=args.frames, n_labeled=min(args.labeled, args.frames),
                               size=args.size, scene="hard", look_alike=args.look_alike,
                               identity=not args.look_alike)
    api.create_training_dataset(config)
    start = time.perf_counter()
    train_model(config, 1, args)
    train_seconds = time.perf_counter() - start
    video = config.parent / "videos" / "fishtank.mp4"
    frames, truth = track_file_truth(config.parent / "videos" / "fishtank_groundtruth.h5", BODYPARTS)
    return {"scene": "hard", "look_alike": args.look_alike, "identity": not args.look_alike,
            "epochs": args.epochs, "labeled_frames": min(args.labeled, args.frames), "heads": head_overrides(args),
            "model": f"resnet_18 heads on {args.backbone} (from scratch), bottom-up",
            "train_seconds": train_seconds, **analyzed_variants(config, video, frames, truth, args, 1, "last", work)}


def project(args, work: Path) -> dict:
    from lightning_dlc import api
    from lightning_dlc.project.dlc import as_config, read_project_labels
    from lightning_dlc.project.labels import image_key
    from tracking_footage import labeled_truth, track_file_truth

    cfg = as_config(args.project)
    video = Path(args.video).resolve()
    frames, truth = (track_file_truth(args.truth, cfg.meta().bodyparts) if args.truth
                     else labeled_truth(cfg, video))
    snapshot, train_seconds, n_train, index = args.snapshot, None, None, args.trainingsetindex
    if snapshot is None:
        keys = [image_key(k) for k in read_project_labels(cfg).index]
        mine = [i for i, k in enumerate(keys) if k.split("/")[-2] == video.stem]
        n_train = min(args.train_frames, len(mine) - 1)
        picked = set(np.linspace(0, len(mine) - 1, n_train).round().astype(int).tolist())
        train = [mine[i] for i in sorted(picked)]
        test = [i for i in range(len(keys)) if i not in set(train)]
        made = api.create_training_dataset(cfg.path, Shuffles=[args.shuffle], trainIndices=[train],
                                           testIndices=[test])[0]
        index = as_config(cfg.path).training_fractions.index(made.train_fraction)  # the split's fraction, added
        start = time.perf_counter()
        train_model(cfg.path, args.shuffle, args, index)
        train_seconds, snapshot = time.perf_counter() - start, "last"
    return {"project": str(cfg.path), "video": str(video), "shuffle": args.shuffle, "trainingsetindex": index,
            "snapshot": str(snapshot), "trained_on": n_train, "train_seconds": train_seconds,
            "epochs": args.epochs if n_train else None,
            **analyzed_variants(cfg.path, video, frames, truth, args, args.shuffle, snapshot, work, index)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", action="store_true", help="track a trained model's predictions")
    parser.add_argument("--scene", choices=("default", "hard"), default="default", help="demo scene")
    parser.add_argument("--look-alike", action="store_true", help="hard scene: identical fish, no identity head")
    parser.add_argument("--project", type=Path, default=None, help="a DeepLabCut project's config.yaml")
    parser.add_argument("--video", type=Path, default=None, help="--project: the video to track")
    parser.add_argument("--shuffle", type=int, default=1, help="--project: shuffle to train (new) or use")
    parser.add_argument("--snapshot", default=None, help="--project: use this trained snapshot (no training)")
    parser.add_argument("--trainingsetindex", type=int, default=0, help="--project --snapshot: its TrainingFraction")
    parser.add_argument("--train-frames", type=int, default=120, help="--project: labeled frames to train on")
    parser.add_argument("--truth", type=Path, default=None, help="--project: track table of every frame")
    parser.add_argument("--threshold", type=float, default=None, help="match distance (px)")
    parser.add_argument("--min-keypoints", type=int, default=1,
                        help="an animal counts where this many of its keypoints are in view (3: assemblable)")
    parser.add_argument("--trackers", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--reid-trackers", nargs="*", default=["ellipse"], help="trackers also run with re-ID")
    parser.add_argument("--reid-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=None, help="px (default 128, --trained 256)")
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds (ground-truth modes)")
    parser.add_argument("--id-error", type=float, default=0.2,
                        help="--scene hard without --trained: share of wrong identities")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (--trained)")
    parser.add_argument("--backbone", default="regnetx_002", help="timm backbone, from scratch (--trained)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the trained project here (--trained)")
    parser.add_argument("--labeled", type=int, default=N_LABELED, help="--scene hard: labeled frames of the demo")
    parser.add_argument("--radius", type=float, default=None, help="heads' plateau/locref radius, px (default 17)")
    parser.add_argument("--paf-width", type=float, default=None, help="PAF half-width, px (default 20)")
    parser.add_argument("--nms-radius", type=int, default=None, help="peak window, map cells (default 5)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.scene == "hard" and not args.trained and not args.project:
        args.size = args.size or 160
        print(json.dumps({"mode": "hard_ground_truth", "frames": args.frames, "size": args.size,
                          **hard_ground_truth(args)}, indent=2))
        return
    if args.project or args.scene == "hard":
        if args.project and not args.video:
            parser.error("--project needs --video")
        args.size = args.size or 160
        # Training and analysis print progress; stdout keeps just the JSON.
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
            work = args.workdir or Path(tmp)
            start = time.perf_counter()
            result = project(args, work) if args.project else hard_scene(args, work)
        print(json.dumps({"mode": "project" if args.project else "trained", **result,
                          "total_seconds": time.perf_counter() - start}, indent=2, default=str))
        return
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
