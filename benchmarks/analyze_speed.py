"""Video analysis speed and memory, ours and (optionally) DeepLabCut's, in one run.

    python benchmarks/analyze_speed.py [--frames 300 | --all-frames] [--model resnet_50] [--batch 8]
        [--configs 32:cl bf16:cl] [--device cpu] [--peer]

Ours: a single-animal ``--model`` (default ``resnet_50``, DeepLabCut's net_type: ResNet-50 GroupNorm,
output stride 16) for the shared openfield project, weights from scratch (untrained weights analyze
at the same speed), saved as a snapshot, then ``lightning_dlc.inference.analyze.analyze_videos`` on
the first ``--frames`` frames of ``openfield/videos/m3v1mp4.mp4`` (re-encoded H.264 as the peer
script does) or, with ``--all-frames``, on all 2330 frames of the original. Each configuration
(``precision:cl`` = channels-last, ``precision:nocl``) runs in a fresh process, so its peak memory
(``resource.getrusage`` ru_maxrss) is its own: it should not grow with the number of frames.

Prints one JSON line per configuration: ``fps`` (frames / seconds of the whole call: model loading,
decoding, inference, writing DeepLabCut's files, as the peer measures DeepLabCut's ``analyze_videos``)
and ``loop_fps`` (the frame loop alone), ``peak_rss_mib``. ``--peer`` then runs
``../shared/peer/run_dlc_baseline.sh`` (DeepLabCut 3.0.2: it trains 2 epochs, then analyzes the same
300-frame clip with batch size 8; about 10 minutes) and prints the ratio to DeepLabCut's frames/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from peer import run_peer  # benchmarks/peer.py (scripts here run as `python benchmarks/<name>.py`)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PROJECT = SHARED / "data/openfield-Pranav-2018-10-30"
VIDEO = PROJECT / "videos/m3v1mp4.mp4"


def make_snapshot(model: str, out: Path, config: Path = PROJECT / "config.yaml") -> Path:
    """A from-scratch snapshot of ``model`` for a project (openfield by default): what training would save, untrained."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lightning_dlc.models.pose_model import model_from_config
    from lightning_dlc.project import ProjectConfig

    from lightning_dlc.config_compose import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dlc", f"data.project={config}", f"model={model}",
                                          "model.backbone.pretrained=false", f"output_dir={out}"])
    meta = ProjectConfig.read(config).meta()
    torch.manual_seed(0)
    net = model_from_config(cfg.model, meta)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["net_type"] = model
    path = out / "snapshot-002.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}, "epoch": 1,
                "run_config": run_config,
                "project_meta": {"bodyparts": list(meta.bodyparts), "individuals": list(meta.individuals),
                                 "unique_bodyparts": list(meta.unique_bodyparts),
                                 "skeleton": [list(e) for e in meta.skeleton], "identity": meta.identity}}, path)
    return path


def make_clip(frames: int, out: Path, video: Path = VIDEO) -> Path:
    """The first ``frames`` frames of ``video`` (openfield's: the peer script's clip), H.264."""
    import imageio_ffmpeg

    clip = out / f"clip{frames}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video),
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


def one(args) -> dict:
    """Child process: analyze the clip with one configuration, report speed and peak memory."""
    import torch

    from lightning_dlc.inference.analyze import analyze_videos

    precision, layout = args.one.split(":")
    start = time.perf_counter()
    summary = analyze_videos(args.snapshot, [args.clip], args.out, batch_size=args.batch, device=args.device,
                             precision=precision, channels_last=layout == "cl", progress=False, verbose=False,
                             overwrite=True, chunk_frames=args.chunk_frames)[0]
    seconds = time.perf_counter() - start
    if summary.status == "failed":
        raise RuntimeError(summary.error)
    return {"tool": "lightning_dlc", "model": args.model, "precision": precision, "channels_last": layout == "cl",
            "batch": args.batch, "device": args.device, "frames": summary.frames, "seconds": round(seconds, 2),
            "fps": round(summary.frames / seconds, 3), "loop_fps": summary.fps, "reader": summary.reader,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}


def peer(frames: int) -> dict:
    return {"tool": "deeplabcut", **run_peer(2, frames)["analyze_videos"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--all-frames", action="store_true", help="the whole video (2330 frames)")
    parser.add_argument("--model", default="resnet_50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-frames", type=int, default=1000)
    parser.add_argument("--configs", nargs="+", default=["32:cl", "bf16:cl"],
                        help="precision:cl|nocl for each run (precision 32, bf16 or 16)")
    parser.add_argument("--peer", action="store_true", help="also run DeepLabCut (../shared/peer) and print the ratio")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)), flush=True)
        return
    if not VIDEO.is_file():
        sys.exit(f"{VIDEO} is not here (../shared beside the checkout)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        snapshot = make_snapshot(args.model, work)
        clip = VIDEO if args.all_frames else make_clip(args.frames, work)
        for config in args.configs:
            cmd = [sys.executable, __file__, "--one", config, "--snapshot", str(snapshot), "--clip", str(clip),
                   "--out", str(work / "out"), "--model", args.model, "--batch", str(args.batch),
                   "--device", args.device, "--chunk-frames", str(args.chunk_frames)]
            run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
            if run.returncode != 0 or not lines:
                sys.exit(f"{config} failed ({run.returncode}): {run.stderr[-3000:]}")
            results.append(json.loads(lines[-1]))
            print(lines[-1], flush=True)
    if args.peer:
        theirs = peer(args.frames)
        print(json.dumps(theirs), flush=True)
        best = max(results, key=lambda r: r["fps"])
        print(json.dumps({"summary": "analyze frames/s, ours / DeepLabCut",
                          "ratio": round(best["fps"] / theirs["fps"], 3), "ours": best["fps"],
                          "ours_config": f"{best['precision']}, channels_last={best['channels_last']}",
                          "deeplabcut": round(theirs["fps"], 3)}), flush=True)


if __name__ == "__main__":
    main()
