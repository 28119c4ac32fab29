"""Conditional top-down (CTD): bottom-up alone vs bottom-up + CTD, and CTD tracking vs tracklets + stitching.

    python benchmarks/ctd.py [--scene demo3|fish10|hard] [--quick] [--epochs N] [--ctd-epochs N] [--size PX]
        [--resize F] [--frames N] [--labeled N] [--crop PX] [--threads N] [--workdir DIR [--reuse]] [--seed S]

Scenes: ``demo3`` (default): the demo project (lightning_dlc.data.demo, 3 fish, 5 bodyparts, ``--size`` px
square); ``fish10``: the 10-fish, 9-bodypart, 1296x972 demo of benchmarks/multi_animal_speed.py
(``make_project``; trained and analyzed at ``--resize``, 0.25 by default); ``hard``: the hard demo
(fish that touch and leave the frame, benchmarks/tracking_accuracy.py's ``--scene hard``). Each video's
ground-truth tracks are the demo's ``videos/fishtank_groundtruth.h5``.

All through the api, as a user runs it, in one project: shuffle 1 a bottom-up model (``net_type=resnet_18``,
DeepLabCut's multi-animal heads, on ``--backbone``; tracking_accuracy's from-scratch overrides) trained for
``--epochs``; shuffle 2 (the same train/test split) a CTD model (``--ctd-model``, ``ctd_prenet_rtmpose_s`` by
default: DeepLabCut's conditional pre-network + RTMPose-s, from scratch, ``--crop`` px crops) trained for
``--ctd-epochs`` on conditions synthesized from the labels, the bottom-up run recorded as its conditions.
Then ``evaluate_network`` of both (the CTD model refines the bottom-up model's poses: ``ctd_conditions=1``),
and ``analyze_videos`` of the demo video: bottom-up with ``auto_track=True`` (tracklets + stitching,
``--tracker``) and the CTD model with ``ctd_tracking=True`` (its ``_ctd.h5``). Tracks are scored against the
ground truth (benchmarks/tracking_footage.py's ``score``: IDF1, MOTA, identity switches, fraction of
animal-frames found; a match is a mean keypoint distance under half a body length; hidden and out-of-view
keypoints are not counted).

Prints one JSON line per measured thing (``part``: ``train``, ``evaluate``, ``track``), then a summary line:
test RMSE and mAP of each model, IDF1 / switches / found of each tracking, and the seconds of each step.
``--quick``: 128 px, 60 frames, 40 labeled, 8 + 8 epochs, 64 px crops: checks that it works (about 1 minute
on 1 thread for demo3, 5 for fish10; the models are too short-trained to find the fish). Defaults: demo3 and
hard 256 px, 300 frames, 80 labeled, 60 + 150 epochs (CTD at lr 1e-3), 64 px crops; fish10 200 frames, 60 labeled, 40 + 40
epochs, 96 px crops. Estimated from --quick runs (CPU time: a bottom-up epoch of demo3 about 5 s, a CTD epoch
about 20 s on one core): about 20 minutes for demo3 on 2 idle cores (``--threads 2``), 15-20 for fish10.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# benchmarks/ (scripts here run as `python benchmarks/<name>.py`)
from tracking_accuracy import MODEL_OVERRIDES, N_FISH, N_LABELED, body_length
from tracking_footage import in_view, read_tracks, score, track_file_truth

TRAINED = "trained.json"  # the training lines, beside the models in --workdir (for --reuse)
TRACK_SUFFIX = {"ellipse": "_el", "box": "_bx", "skeleton": "_sk"}
QUICK = {"size": 128, "frames": 60, "labeled": 40, "epochs": 8, "ctd_epochs": 8, "crop": 64}
# CTD from scratch: RTMPose's coordinate classifier predicts one template pose for every animal for its first
# ~500 steps (a plain top-down RTMPose too); at lr 3e-3 it stayed there, at 1e-3 it memorised 4 images to 2.2 px in
# 800 steps (64 px crops): hence --ctd-lr 1e-3 and 150 epochs (~1500 steps)
DEFAULTS = {"size": 256, "frames": 300, "labeled": N_LABELED, "epochs": 60, "ctd_epochs": 150, "crop": 64}
# ten fish: ten crops per image, and 1296x972 frames to decode: fewer frames and CTD epochs, smaller crops
SCENE_DEFAULTS = {"fish10": {"frames": 200, "labeled": 60, "epochs": 40, "ctd_epochs": 40, "crop": 96}}


def make_scene_project(args, work: Path) -> Path:
    """The scene's demo project (config.yaml), its labeled frames taken from its video."""
    from lightning_dlc.data.demo import make_demo_project

    if args.scene == "fish10":
        from multi_animal_speed import make_project

        return make_project(work, args.frames, labeled=args.labeled)
    return make_demo_project(work / "fishtank", n_fish=N_FISH, n_frames=args.frames, n_labeled=args.labeled,
                             size=args.size, scene="hard" if args.scene == "hard" else "default", overwrite=True)


def scene_truth(config: Path) -> tuple[np.ndarray, float]:
    """Every frame's true poses ``[T, N, K, 3]`` (hidden and out-of-view keypoints NaN) and the match threshold
    (half the median body length, px)."""
    import cv2

    from lightning_dlc.project.dlc import as_config

    bodyparts = as_config(config).meta().bodyparts
    _, truth = track_file_truth(config.parent / "videos" / "fishtank_groundtruth.h5", bodyparts)
    truth = np.array(truth)
    truth[..., :2][truth[..., 2] <= 0] = np.nan
    capture = cv2.VideoCapture(str(config.parent / "videos" / "fishtank.mp4"))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    truth = in_view(truth, width, height)
    return truth, 0.5 * body_length(truth)


def train_both(config: Path, args) -> list[dict]:
    """Shuffle 1: the bottom-up model; shuffle 2 (same split): the CTD model, the bottom-up run its conditions."""
    from lightning_dlc import api
    from lightning_dlc.project.dlc import as_config
    from lightning_dlc.project.shuffles import model_folder

    made = api.create_training_dataset(config, Shuffles=[1])[0]
    api.create_training_dataset(config, Shuffles=[2], trainIndices=[list(made.train_indices)],
                                testIndices=[list(made.test_indices)])
    common = [*MODEL_OVERRIDES, *([f"data.resize={args.resize}"] if args.resize != 1 else [])]
    lines = []
    start = time.perf_counter()
    api.train_network(config, shuffle=1, epochs=args.epochs, save_epochs=args.epochs, batch_size=args.batch,
                      net_type="resnet_18", seed=args.seed,
                      overrides=[*common, f"model.backbone.name={args.backbone}"])
    lines.append({"part": "train", "model": "bottom_up", "net_type": f"resnet_18 heads on {args.backbone}",
                  "epochs": args.epochs, "seconds": round(time.perf_counter() - start, 1)})
    bottom_up = model_folder(as_config(config), made.train_fraction, 1) / "train"  # where train_network put it
    crop = f"[{args.crop},{args.crop}]"
    start = time.perf_counter()
    api.train_network(config, shuffle=2, epochs=args.ctd_epochs, save_epochs=args.ctd_epochs, batch_size=args.batch,
                      net_type=args.ctd_model, seed=args.seed,
                      overrides=[*common, f"optimizer.lr={args.ctd_lr}", f"model.top_down.crop_size={crop}",
                                 f"conditions={bottom_up}",
                                 *([f"model.heads.single.bodypart.input_size={crop}"] if "rtmpose" in args.ctd_model
                                   else [])])
    lines.append({"part": "train", "model": "ctd", "net_type": args.ctd_model, "crop": args.crop,
                  "epochs": args.ctd_epochs, "seconds": round(time.perf_counter() - start, 1)})
    return lines


def evaluate_both(config: Path) -> list[dict]:
    """Train/test RMSE and mAP of the bottom-up model alone and of the CTD model refining its poses."""
    from lightning_dlc import api

    lines = []
    for name, shuffle, conditions in (("bottom_up", 1, None), ("bottom_up+ctd", 2, {"shuffle": 1, "snapshot": "last"})):
        start = time.perf_counter()
        table = api.evaluate_network(config, shuffles=[shuffle], snapshots="last", overwrite=True, device="cpu",
                                     ctd_conditions=conditions)
        line = {"part": "evaluate", "model": name, "seconds": round(time.perf_counter() - start, 1)}
        for row in table.itertuples():
            line.update({f"{row.split}_rmse": round(float(row.rmse), 3), f"{row.split}_mAP": round(float(row.mAP), 4),
                         f"{row.split}_images": int(row.n_images)})
        lines.append(line)
    return lines


def track_both(config: Path, args, truth: np.ndarray, threshold: float, out: Path) -> list[dict]:
    """The video analyzed and tracked both ways, each scored against the ground-truth tracks."""
    from lightning_dlc import api
    from lightning_dlc.project.dlc import as_config

    video = config.parent / "videos" / "fishtank.mp4"
    bodyparts = as_config(config).meta().bodyparts
    lines = []
    start = time.perf_counter()
    summary = api.analyze_videos(config, [video], shuffle=1, snapshot="last", destfolder=out / "bottom_up",
                                 auto_track=True, track_method=args.tracker, overwrite=True, progress=False,
                                 device="cpu")[0]
    h5 = Path(summary.h5).with_suffix("").as_posix() + f"{TRACK_SUFFIX[args.tracker]}.h5"
    lines.append({"part": "track", "method": f"bottom_up+{args.tracker}_stitching", "seconds":
                  round(time.perf_counter() - start, 1),
                  **score(truth, read_tracks(h5, bodyparts, len(truth)), threshold, names_match=False)})
    start = time.perf_counter()
    summary = api.analyze_videos(config, [video], shuffle=2, snapshot="last", destfolder=out / "ctd",
                                 ctd_conditions={"shuffle": 1, "snapshot": "last"}, ctd_tracking=True,
                                 overwrite=True, progress=False, device="cpu")[0]
    if summary.status == "failed":
        raise RuntimeError(f"CTD tracking of {video} failed: {summary.error}")
    h5 = Path(summary.h5).with_suffix("").as_posix() + "_ctd.h5"
    lines.append({"part": "track", "method": "ctd_tracking", "seconds": round(time.perf_counter() - start, 1),
                  **score(truth, read_tracks(h5, bodyparts, len(truth)), threshold, names_match=False)})
    return lines


def summarize(lines: list[dict], args, threshold: float, seconds: float) -> dict:
    evaluated = {line["model"]: line for line in lines if line["part"] == "evaluate"}
    tracked = {line["method"]: line for line in lines if line["part"] == "track"}
    return {"summary": "ctd", "scene": args.scene, "frames": args.frames, "labeled": args.labeled,
            "size": args.size if args.scene != "fish10" else [1296, 972], "resize": args.resize,
            "epochs": args.epochs, "ctd_epochs": args.ctd_epochs, "crop": args.crop,
            "threshold_px": round(threshold, 2),
            "test_rmse": {k: v.get("test_rmse") for k, v in evaluated.items()},
            "test_mAP": {k: v.get("test_mAP") for k, v in evaluated.items()},
            **{key: {k: v[key] for k, v in tracked.items()} for key in ("idf1", "switches", "found")},
            "seconds": {f"{line['part']}_{line.get('model', line.get('method'))}": line["seconds"] for line in lines},
            "total_seconds": round(seconds, 1)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", choices=("demo3", "fish10", "hard"), default="demo3")
    p.add_argument("--quick", action="store_true", help=f"small and short, to check it works: {QUICK}")
    p.add_argument("--epochs", type=int, help=f"bottom-up training epochs (default {DEFAULTS['epochs']})")
    p.add_argument("--ctd-epochs", type=int, help=f"CTD training epochs (default {DEFAULTS['ctd_epochs']})")
    p.add_argument("--size", type=int, help=f"demo3/hard frame side, px (default {DEFAULTS['size']}; fish10: 1296x972)")
    p.add_argument("--resize", type=float, help="scale of images for training and analysis (data.resize; "
                                                  "default 1, fish10 0.25)")
    p.add_argument("--frames", type=int, help=f"video frames (default {DEFAULTS['frames']})")
    p.add_argument("--labeled", type=int, help=f"labeled frames (default {DEFAULTS['labeled']})")
    p.add_argument("--crop", type=int, help=f"CTD crop side, px (default {DEFAULTS['crop']}; DeepLabCut's 256)")
    p.add_argument("--batch", type=int, default=8, help="training batch (images)")
    p.add_argument("--backbone", default="regnetx_002", help="bottom-up timm backbone, from scratch")
    p.add_argument("--ctd-model", default="ctd_prenet_rtmpose_s", help="CTD net_type (conf/model)")
    p.add_argument("--ctd-lr", type=float, default=1e-3, help="CTD model learning rate (from scratch)")
    p.add_argument("--tracker", default="ellipse", choices=tuple(TRACK_SUFFIX), help="bottom-up tracklets")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--workdir", type=Path, default=None, help="keep the project and outputs here")
    p.add_argument("--reuse", action="store_true", help="--workdir's trained models: evaluate and track only")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.reuse and not args.workdir:
        sys.exit("--reuse needs the --workdir of an earlier run")
    sizes = QUICK if args.quick else {**DEFAULTS, **SCENE_DEFAULTS.get(args.scene, {})}
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.labeled = min(args.labeled, args.frames)
    if args.resize is None:
        args.resize = 0.25 if args.scene == "fish10" else 1.0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    stdout = sys.stdout

    def emit(line: dict) -> dict:
        print(json.dumps(line), file=stdout, flush=True)
        return line

    start = time.perf_counter()
    # Training and analysis print progress; stdout keeps just the JSON lines.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if args.reuse:  # a --workdir that holds both trained models: evaluate and track again
            config = next(work.glob("*/config.yaml"))
            lines = [emit(line) for line in json.loads((work / TRAINED).read_text())]
        else:
            config = make_scene_project(args, work)
            lines = [emit(line) for line in train_both(config, args)]
            (work / TRAINED).write_text(json.dumps(lines))
        truth, threshold = scene_truth(config)
        lines += [emit(line) for line in evaluate_both(config)]
        lines += [emit(line) for line in track_both(config, args, truth, threshold, work / "analysis")]
        emit(summarize(lines, args, threshold, time.perf_counter() - start))


if __name__ == "__main__":
    main()
