"""Many animals: video analysis speed with ten fish, ours and (optionally) DeepLabCut's, in one run.

    python benchmarks/multi_animal_speed.py [--peer] [--frames 8] [--device cpu|cuda] [--batch 8]
        [--precision 32] [--model resnet_50] [--size 1296 972] [--fish 10] [--bodyparts 9]

The footage: the demo generator's 10-fish, 9-bodypart, 1296x972 tank (a cichlid lab's recordings),
H.264. The model: ``resnet_50`` for a multi-animal project, which is DeepLabCut 3.0.2's default
``net_type`` for a new multi-animal PyTorch project (deeplabcut/create_project/new.py): ResNet-50 with
DeepLabCut's part-affinity-field head (5 refinement stages, stride 4, every pair of bodyparts an edge),
from scratch weights in both engines.

Two measurements, because an untrained network's maps are noise, and assembling noise is not what
ten real fish cost:

- ``whole call``: ``analyze_videos`` on the video (model loading, decoding, network, predictor, writing
  DeepLabCut's files), in a fresh process per video length (``--frames`` and twice that), with its
  peak memory (``ru_maxrss``; it should not grow with length) and the split of the time per frame
  into network (the model's forward), predictor and rest. In both engines the network's score maps
  are pushed to "nothing here" (:func:`nothing_found`): DeepLabCut cannot assemble an untrained
  model's noise at this size (it scores every pair of its thousands of peaks: 46 GB asked for).
- ``assembly alone``: the PAF predictor (peaks, locref, line integrals, greedy assembly) on the maps a
  perfectly trained model would output for the ground-truth poses of the same frames
  (lightning_dlc/models/heads/paf_ideal.py: Gaussian score maps, DeepLabCut's locref and PAF
  targets), ``--batch`` frames at a time: ten animals'
  worth of peaks and links in every frame. Its output is checked against the truth
  (``animals_per_frame``, ``pure``: the share of assembled animals whose keypoints all belong to one fish).

``--peer`` runs the same two in DeepLabCut 3.0.2's environment (benchmarks/peer.py's ``run_in_peer``):
``create_training_dataset(net_type="resnet_50")``, an untrained snapshot, ``analyze_videos`` (same
batch, ``auto_track=False``) with its forward and ``get_predictions`` timed the same way, and its
``PartAffinityFieldPredictor`` on the same ground-truth maps (``same_as_ours``: frames whose
assemblies equal ours), timed alternately with ours in that one process, best of 3, so that both
see the same load (``assembly_ratio``). Every line is JSON; the last one has the ratios, and ``assembled_fps``: the
frames/s of a call that also assembles every fish in every frame (whole call + assembly alone, per frame).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analyze_speed import make_clip, make_snapshot  # benchmarks/ (scripts here run as `python benchmarks/<name>.py`)
from peer import run_in_peer

HERE = Path(__file__).resolve().parent
EMPTY_LOGIT_SHIFT = 20.0
REPO = HERE.parent


def make_project(work: Path, frames: int, size=(1296, 972), fish: int = 10, bodyparts: int = 9,
                 labeled: int = 4) -> Path:
    """The demo project (config.yaml) at that size; ``labeled`` frames (a few: enough for DeepLabCut's shuffle)."""
    from lightning_dlc.data.demo import make_demo_project

    return make_demo_project(work / "cichlids", n_fish=fish, n_bodyparts=bodyparts, size=list(size),
                             n_frames=frames, n_labeled=min(frames, labeled), overwrite=True)


def ground_truth(config: Path, frames: int):
    """``[frames, N, K, 3]`` float32 (x, y, visible) of the demo video's first frames."""
    import numpy as np
    import pandas as pd

    table = pd.read_hdf(Path(config).parent / "videos/fishtank_groundtruth.h5")
    n_animals = table.columns.get_level_values("individuals").nunique()
    return table.to_numpy(np.float32)[:frames].reshape(frames, n_animals, -1, 3)


def perfect_batches(truth, batch: int, map_size, stride: float, edges, device, locref_std: float = 7.2801):
    """A perfectly trained head's outputs for every frame (:func:`~lightning_dlc.models.heads.paf_ideal.ideal_outputs`),
    ``batch`` frames per dict, on ``device``."""
    import torch

    from lightning_dlc.models.heads.paf_ideal import ideal_outputs

    truth = torch.tensor(truth, dtype=torch.float32, device=device)  # made where they are used: fast on a GPU
    return [ideal_outputs(truth[i:i + batch], map_size, stride, edges, locref_std) for i in range(0, len(truth), batch)]


def assembly_quality(predicted, truth, tolerance: float = 3.0) -> dict:
    """How well the assembly found the true animals: animals per frame, the share of assembled animals whose
    keypoints all lie within ``tolerance`` px of one fish's, and the median keypoint error (px)."""
    import numpy as np

    animals = pure = 0
    errors = []
    for pred, true in zip(predicted, truth):  # [N, K, 3] each
        visible = true[..., 2] > 0
        for animal in pred:
            found = ~np.isnan(animal[:, 0])
            if not found.any():
                continue
            animals += 1
            d = np.linalg.norm(true[:, found, :2] - animal[None, found, :2], axis=-1)  # [N true, found]
            d = np.where(visible[:, found], d, np.inf)
            owner = np.argmin(d.max(axis=1))
            pure += bool(d[owner].max() <= tolerance)
            errors.extend(d.min(axis=0)[np.isfinite(d.min(axis=0))].tolist())
    return {"animals_per_frame": round(animals / max(len(truth), 1), 2), "pure": round(pure / max(animals, 1), 3),
            "median_error_px": round(float(np.median(errors)), 2) if errors else None}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def our_assembly(snapshot: Path, truth, batch: int, device: str, size) -> tuple[dict, object]:
    """Our PAF predictor (the snapshot's head) on the perfect maps; the JSON line and its ``[F, N, K, 3]`` output."""
    import numpy as np
    import torch

    from lightning_dlc.inference.predict import load_model

    model = load_model(snapshot, device)
    head = model.heads["bodypart"]
    pad = 32  # our analysis pads frames to a multiple of 32, so the maps have this size
    map_size = (-(-size[1] // pad) * pad // int(head.stride), -(-size[0] // pad) * pad // int(head.stride))
    batches = perfect_batches(truth, batch, map_size, head.stride, head.edges, device, head.locref_std)
    head.predict(batches[0], truth.shape[1])  # warm-up (kernels, allocator)
    out, seconds = [], 0.0
    with torch.no_grad():
        for outputs in batches:
            _sync(device)
            start = time.perf_counter()
            predicted = head.predict(outputs, truth.shape[1])
            _sync(device)
            seconds += time.perf_counter() - start
            out.append(predicted.cpu().numpy())
    predicted = np.concatenate(out)
    line = {"part": "assembly", "tool": "lightning_dlc", "device": device, "batch": batch, "frames": len(truth),
            "map_size": list(map_size), "edges": len(head.edges), "seconds": round(seconds, 3),
            "fps": round(len(truth) / seconds, 2), "ms_per_frame": round(1000 * seconds / len(truth), 2),
            **assembly_quality(predicted, truth)}
    return line, predicted


def one(args) -> dict:
    """Child process: analyze the clip, time the network and the predictor inside the call, peak memory."""
    import torch

    from lightning_dlc.inference.analyze import analyze_videos
    from lightning_dlc.models.pose_model import PoseModel

    spent = {"network": 0.0, "predictor": 0.0}

    def timed(name, method):
        def wrapper(*a, **k):
            _sync(args.device)
            start = time.perf_counter()
            result = method(*a, **k)
            _sync(args.device)
            spent[name] += time.perf_counter() - start
            return result
        return wrapper

    PoseModel.forward = timed("network", nothing_found(PoseModel.forward))
    PoseModel.predict = timed("predictor", PoseModel.predict)
    start = time.perf_counter()
    summary = analyze_videos(args.snapshot, [args.clip], args.out, batch_size=args.batch, device=args.device,
                             precision=args.precision, progress=False, verbose=False, overwrite=True)[0]
    seconds = time.perf_counter() - start
    if summary.status == "failed":
        raise RuntimeError(summary.error)
    return {"part": "whole_call", "tool": "lightning_dlc", "model": args.model, "precision": args.precision,
            "batch": args.batch, "device": args.device, "frames": summary.frames, "seconds": round(seconds, 2),
            "fps": round(summary.frames / seconds, 3), "loop_fps": summary.fps, "reader": summary.reader,
            **split_ms(seconds, spent, summary.frames),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads()}


def nothing_found(forward):
    """The model's forward with its score maps pushed to "no animal here" (logits - 20), in both engines: an
    untrained network's maps are noise, whose thousands of peaks DeepLabCut scores pair by pair (at
    1296x972 it asks for 46 GB and fails); ten real animals' assembly is timed on its own instead."""
    def wrapper(*a, **k):
        outputs = forward(*a, **k)
        outputs["bodypart"]["heatmap"] = outputs["bodypart"]["heatmap"] - EMPTY_LOGIT_SHIFT
        return outputs
    return wrapper


def split_ms(seconds: float, spent: dict, frames: int) -> dict:
    """Time per frame (ms): network, predictor (peaks + assembly), and the rest of the call."""
    ms = {k: 1000 * v / frames for k, v in spent.items()}
    ms["rest"] = 1000 * seconds / frames - sum(ms.values())
    return {"ms_per_frame": {k: round(v, 1) for k, v in ms.items()}}


def assembled_fps(whole: dict, assembly: dict) -> float:
    """Frames/s of a whole call that also assembles every fish in every frame: its time per frame plus the assembly's."""
    return round(1000 / (1000 * whole["seconds"] / whole["frames"] + assembly["ms_per_frame"]), 4)


def _child(args, snapshot: Path, clip: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", "--snapshot", str(snapshot), "--clip", str(clip), "--out", str(out),
           "--model", args.model, "--batch", str(args.batch), "--device", args.device, "--precision", args.precision]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"analysis of {clip.name} failed ({run.returncode}): {run.stderr[-3000:]}")
    return json.loads(lines[-1])


PEER_CODE = r'''
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch
sys.path[:0] = [sys.argv[1], str(Path(sys.argv[1]).parent)]
import multi_animal_speed as mas
import deeplabcut
import deeplabcut.pose_estimation_pytorch.apis.training as training
from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path
from deeplabcut.pose_estimation_pytorch.models.model import PoseModel

config, clip, out, batch, device, predicted = sys.argv[2:8]
batch = int(batch)
build = training.PoseModel.build  # no model hub here: from scratch, as ../shared/peer/dlc_baseline.py
training.PoseModel.build = staticmethod(lambda cfg, weight_init=None, pretrained_backbone=False: build(cfg, weight_init, False))
deeplabcut.create_training_dataset(config, net_type="resnet_50", userfeedback=False, engine=deeplabcut.Engine.PYTORCH)
train_dir = Path(return_train_network_path(config, shuffle=1)[2])
cfg = deeplabcut.utils.auxiliaryfunctions.read_plainconfig(str(train_dir / "pytorch_config.yaml"))
torch.manual_seed(0)
model = PoseModel.build(cfg["model"], pretrained_backbone=False)
torch.save({"model": model.state_dict()}, train_dir / "snapshot-001.pt")

spent = {"network": 0.0, "predictor": 0.0}
def timed(name, method):
    def wrapper(*a, **k):
        mas._sync(device)
        start = time.perf_counter()
        result = method(*a, **k)
        mas._sync(device)
        spent[name] += time.perf_counter() - start
        return result
    return wrapper
forward, get_predictions = PoseModel.forward, PoseModel.get_predictions
PoseModel.forward, PoseModel.get_predictions = timed("network", mas.nothing_found(forward)), timed("predictor", get_predictions)
start = time.perf_counter()
deeplabcut.analyze_videos(config, [clip], shuffle=1, device=device, batch_size=batch, destfolder=out, auto_track=False)
seconds = time.perf_counter() - start
PoseModel.forward, PoseModel.get_predictions = forward, get_predictions
import cv2
frames = int(cv2.VideoCapture(clip).get(cv2.CAP_PROP_FRAME_COUNT))
print(json.dumps({"part": "whole_call", "tool": "deeplabcut", "model": "resnet_50", "batch": batch, "device": device,
                  "frames": frames, "seconds": round(seconds, 2), "fps": round(frames / seconds, 3),
                  **mas.split_ms(seconds, spent, frames),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)

# assembly alone: DeepLabCut's PartAffinityFieldPredictor on the same perfect maps
head = model.heads["bodypart"]
predictor, stride = head.predictor, model.get_stride("bodypart")
ours = np.load(predicted)
truth = mas.ground_truth(Path(config), len(ours))
height, width = cv2.VideoCapture(clip).read()[1].shape[:2]
size = (-(-height // 32) * 32 // int(stride), -(-width // 32) * 32 // int(stride))
edges = [tuple(int(v) for v in e) for e in predictor.graph]
batches = mas.perfect_batches(truth, batch, size, stride, edges, device, predictor.locref_stdev)
from lightning_dlc.models.heads.paf_assembly import predict_paf
n_animals = truth.shape[1]
engines = {"deeplabcut": lambda o: predictor(stride, o),
           "ours": lambda o: predict_paf(o["heatmap"], o["locref"], o["paf"], edges, stride, n_animals)}
best = {name: float("inf") for name in engines}
for repeat in range(3):  # alternately, best of 3: both under the same load
    for name, engine in engines.items():
        seconds, results = 0.0, []
        with torch.no_grad():
            for outputs in batches:
                mas._sync(device)
                start = time.perf_counter()
                results.append(engine(outputs))
                mas._sync(device)
                seconds += time.perf_counter() - start
        best[name] = min(best[name], seconds)
        if name == "deeplabcut":
            poses = [r["poses"][..., :3].cpu().numpy() for r in results]
seconds = best["deeplabcut"]
poses = np.concatenate(poses)
poses[poses[..., 2] < 0] = np.nan  # DeepLabCut's -1 rows: missing animals
poses[np.isnan(poses[..., 0])] = np.nan  # its missing keypoints score 0, ours NaN
theirs = poses
same = [np.allclose(np.nan_to_num(a, nan=-7), np.nan_to_num(b, nan=-7), atol=1e-3) for a, b in zip(theirs, ours)]
print(json.dumps({"part": "assembly", "tool": "deeplabcut", "device": device, "batch": batch, "frames": len(truth),
                  "map_size": list(size), "edges": len(edges), "seconds": round(seconds, 3),
                  "fps": round(len(truth) / seconds, 2), "ms_per_frame": round(1000 * seconds / len(truth), 2),
                  **mas.assembly_quality(theirs, truth), "same_as_ours": round(float(np.mean(same)), 3),
                  "ours_alternating_ms_per_frame": round(1000 * best["ours"] / len(truth), 2)}), flush=True)
'''


def peer(config: Path, clip: Path, out: Path, batch: int, device: str, predicted: Path) -> list[dict]:
    return run_in_peer(PEER_CODE, str(HERE), str(config), str(clip), str(out), str(batch), device, str(predicted))


def run(args, echo: bool = True):
    """Every measurement, one JSON-ready dict at a time, printed as a JSON line unless ``echo`` is false
    (benchmarks/gpu_check.py prints them itself)."""
    import numpy as np

    def emit(line: dict) -> dict:
        if echo:
            print(json.dumps(line), flush=True)
        return line

    lengths = [args.frames, 2 * args.frames] if not args.no_memory_check else [args.frames]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = make_project(work, max(lengths), tuple(args.size), args.fish, args.bodyparts)
        video = config.parent / "videos/fishtank.mp4"
        snapshot = make_snapshot(args.model, work, config)
        clips = {n: video if n == max(lengths) else make_clip(n, work, video) for n in lengths}
        whole = [_child(args, snapshot, clips[n], work / f"out{n}") for n in lengths]
        for line in whole:
            yield emit(line)
        truth = ground_truth(config, args.frames)
        assembly, predicted = our_assembly(snapshot, truth, args.batch, args.device, args.size)
        yield emit(assembly)
        ours = whole[0]
        summary = {"summary": "many animals", "size": list(args.size), "fish": args.fish, "bodyparts": args.bodyparts,
                   "device": args.device, "batch": args.batch, "precision": args.precision,
                   "fps": ours["fps"], "assembly_fps": assembly["fps"],
                   "assembled_fps": assembled_fps(ours, assembly),
                   "assembly_share": round(assembly["ms_per_frame"] / (1000 / assembled_fps(ours, assembly)), 4)}
        if len(whole) > 1:
            summary["peak_rss_mib"] = {str(line["frames"]): line["peak_rss_mib"] for line in whole}
            summary["memory_grows"] = whole[1]["peak_rss_mib"] > 1.1 * whole[0]["peak_rss_mib"]
        if args.peer:
            np.save(work / "ours.npy", predicted)
            theirs = {line["part"]: line for line in peer(config, clips[args.frames], work / "dlc_out", args.batch,
                                                          args.device, work / "ours.npy")}
            for line in theirs.values():
                yield emit(line)
            summary.update(deeplabcut_fps=theirs["whole_call"]["fps"],
                           deeplabcut_assembly_fps=theirs["assembly"]["fps"],
                           deeplabcut_assembled_fps=assembled_fps(theirs["whole_call"], theirs["assembly"]),
                           assembled_ratio=round(assembled_fps(ours, assembly)
                                                  / assembled_fps(theirs["whole_call"], theirs["assembly"]), 3),
                           ratio=round(ours["fps"] / theirs["whole_call"]["fps"], 3),
                           # timed alternately in one process: the same load for both
                           assembly_ratio=round(theirs["assembly"]["ms_per_frame"]
                                                / theirs["assembly"]["ours_alternating_ms_per_frame"], 3),
                           assemblies_equal=theirs["assembly"]["same_as_ours"])
        yield emit(summary)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=8, help="frames analyzed (and twice that, for the memory check)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="32", help="32, bf16, 16 or auto (ours; DeepLabCut runs fp32)")
    p.add_argument("--model", default="resnet_50")
    p.add_argument("--size", type=int, nargs=2, default=[1296, 972], metavar=("WIDTH", "HEIGHT"))
    p.add_argument("--fish", type=int, default=10)
    p.add_argument("--bodyparts", type=int, default=9, choices=[5, 9])
    p.add_argument("--no-memory-check", action="store_true", help="one video length only")
    p.add_argument("--peer", action="store_true", help="also run DeepLabCut 3.0.2 (benchmarks/peer.py)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--snapshot", help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main() -> None:
    args = parser().parse_args()
    if args.one:
        print(json.dumps(one(args)), flush=True)
        return
    for _ in run(args):
        pass


if __name__ == "__main__":
    main()
