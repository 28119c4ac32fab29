"""Everything a GPU session must measure, in one script that fits in a few minutes (under 8 on one CUDA GPU).

    python benchmarks/gpu_check.py [--device cuda] [--out benchmarks/results/gpu_check.jsonl]
    python benchmarks/gpu_check.py --device cpu --tiny      # the same parts, tiny, on a CPU (CI)

Nothing is downloaded: test videos are written here with imageio-ffmpeg's ffmpeg (its ``testsrc2``
pattern; H.264, or VP9 with ``--tiny``, since DALI's CPU reader does not decode H.264), models start
from scratch weights (speed does not depend on them), the training data is the demo generator's.
Parts, each one JSON line per measurement (a part that fails prints one line with its ``error`` and
the others still run):

- ``decode``: frames/s of decoding alone (DALI's reader on the device: NVDEC on a GPU, its CPU reader
  with ``--tiny``; OpenCV's for reference) at 640x480 and 1296x972.
- ``analysis``: ``analyze_videos`` frames/s (whole call, and its frame loop) for a single-animal
  ``resnet_50`` at 640x480, fp32, bf16 and fp16, batch 8, 32 and 64, with the DALI and OpenCV readers;
  peak GPU memory per configuration.
- ``analysis_memory``: peak memory (``ru_maxrss``, and the GPU's) of one analysis in a fresh process
  for a video and one twice as long: it should not grow with the length.
- ``training``: images/s of ``resnet_50`` training (augmentation on the GPU, as always here) at batch 8
  and 32 on the demo project at 640x480: the last epoch's, and the whole call's.
- ``multi_animal``: benchmarks/multi_animal_speed.py (ten fish, 1296x972, batch 32): frames/s of the whole
  call, of the assembly alone, the assembly's share of the time per frame, and its memory check.

``--out FILE`` also writes the lines to FILE (JSON lines, atomically), for benchmarks/results/.
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
import traceback
from pathlib import Path
from types import SimpleNamespace

import lightning as L

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchmarks/ siblings, also when imported by a test

FULL = SimpleNamespace(decode_sizes=[(640, 480), (1296, 972)], decode_frames=600, codec="libx264",
                       model="resnet_50", size=(640, 480), analysis_frames=512, precisions=["32", "bf16", "16"],
                       batches=[8, 32, 64], memory_frames=512, train_batches=[8, 32], train_images=256,
                       train_epochs=3, multi=dict(size=[1296, 972], fish=10, frames=64, batch=32, model="resnet_50"))
TINY = SimpleNamespace(decode_sizes=[(128, 96), (160, 120)], decode_frames=16, codec="libvpx-vp9",
                       model="resnet_18", size=(128, 96), analysis_frames=8, precisions=["32", "bf16", "16"],
                       batches=[4], memory_frames=4, train_batches=[4], train_images=8, train_epochs=1,
                       multi=dict(size=[160, 128], fish=3, frames=4, batch=4, model="resnet_18"))


def test_video(path: Path, size, frames: int, codec: str) -> Path:
    """``frames`` frames of ffmpeg's moving test pattern at ``size``, H.264 (yuv420p) or VP9."""
    import imageio_ffmpeg

    args = {"libx264": ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0"],
            "libvpx-vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p"]}
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size[0]}x{size[1]}:rate=30", "-frames:v", str(frames), *args[codec], str(path)],
                   check=True)
    return path


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _gpu_peak_mib(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _reset_gpu_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def decode(args, plan, work: Path):
    """Frames/s of reading alone (every frame, on the device for DALI)."""
    from lightning_dlc.data.video import open_video

    for size in plan.decode_sizes:
        video = test_video(work / f"decode_{size[0]}x{size[1]}.{'webm' if 'vp9' in plan.codec else 'mp4'}", size,
                           plan.decode_frames, plan.codec)
        for reader in ("dali", "opencv"):
            def run():
                frames = 0
                with open_video(video, reader=reader, device=args.device, batch_size=32) as batches:
                    for batch in batches:
                        frames += len(batch)
                _sync(args.device)
                return frames
            run()  # warm-up: DALI builds its pipeline, the decoder its state
            start = time.perf_counter()
            frames = run()
            seconds = time.perf_counter() - start
            yield {"part": "decode", "reader": reader, "device": args.device, "codec": plan.codec,
                   "size": list(size), "frames": frames, "fps": round(frames / seconds, 1)}


def _single_animal_snapshot(plan, work: Path) -> tuple[Path, Path]:
    """An untrained single-animal snapshot for a demo project at the analysis size; (snapshot, config)."""
    from analyze_speed import make_snapshot

    from lightning_dlc.data.demo import make_demo_project

    config = make_demo_project(work / "single", multianimal=False, n_frames=8, n_labeled=4, size=list(plan.size),
                               overwrite=True)
    return make_snapshot(plan.model, work, config), config


def _analyze(snapshot, video, out, device, precision, batch, reader) -> dict:
    from lightning_dlc.inference.analyze import analyze_videos

    start = time.perf_counter()
    summary = analyze_videos(snapshot, [video], out, batch_size=batch, device=device, precision=precision,
                             reader=reader, progress=False, verbose=False, overwrite=True)[0]
    seconds = time.perf_counter() - start
    if summary.status == "failed":
        raise RuntimeError(summary.error)
    return {"frames": summary.frames, "fps": round(summary.frames / seconds, 2), "loop_fps": summary.fps,
            "reader_used": summary.reader}


def analysis(args, plan, work: Path):
    """analyze_videos frames/s per reader, precision and batch size."""
    snapshot, _ = _single_animal_snapshot(plan, work)
    video = test_video(work / f"analysis.{'webm' if 'vp9' in plan.codec else 'mp4'}", plan.size,
                       plan.analysis_frames, plan.codec)
    _analyze(snapshot, video, work / "warm", args.device, "32", plan.batches[0], "opencv")  # warm-up
    for reader in ("dali", "opencv"):
        for precision in plan.precisions:
            for batch in plan.batches:
                _reset_gpu_peak(args.device)
                line = {"part": "analysis", "model": plan.model, "size": list(plan.size), "reader": reader,
                        "precision": precision, "batch": batch, "device": args.device}
                try:
                    line.update(_analyze(snapshot, video, work / "out", args.device, precision, batch, reader),
                                gpu_peak_mib=_gpu_peak_mib(args.device))
                except Exception as e:  # one configuration failing does not hide the others
                    line["error"] = f"{type(e).__name__}: {e}"
                yield line


def analysis_memory(args, plan, work: Path):
    """One analysis (DALI, bf16, the largest batch up to 32) in a fresh process, for two video lengths."""
    snapshot, _ = _single_animal_snapshot(plan, work)
    batch = max(b for b in plan.batches if b <= 32)
    precision = "bf16"
    lines = []
    for frames in (plan.memory_frames, 2 * plan.memory_frames):
        video = test_video(work / f"memory{frames}.{'webm' if 'vp9' in plan.codec else 'mp4'}", plan.size, frames,
                           plan.codec)
        cmd = [sys.executable, __file__, "--memory-child", str(snapshot), str(video), str(work / f"mem{frames}"),
               precision, str(batch), "--device", args.device]
        run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        found = [line for line in run.stdout.splitlines() if line.startswith("{")]
        if run.returncode != 0 or not found:
            raise RuntimeError(f"analysis of {frames} frames failed ({run.returncode}): {run.stderr[-2000:]}")
        line = {"part": "analysis_memory", "model": plan.model, "size": list(plan.size), "reader": "dali",
                "precision": precision, "batch": batch, "device": args.device, **json.loads(found[-1])}
        lines.append(line)
        yield line
    yield {"part": "analysis_memory", "summary": True, "frames": [line["frames"] for line in lines],
           "peak_rss_mib": [line["peak_rss_mib"] for line in lines],
           "grows": lines[1]["peak_rss_mib"] > 1.1 * lines[0]["peak_rss_mib"]}


def memory_child(argv) -> None:
    snapshot, video, out, precision, batch = argv[:5]
    device = argv[argv.index("--device") + 1]
    _reset_gpu_peak(device)
    line = _analyze(snapshot, video, out, device, precision, int(batch), "dali")
    line.update(peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                gpu_peak_mib=_gpu_peak_mib(device))
    print(json.dumps(line), flush=True)


class EpochTimer(L.Callback):
    """Each training epoch's seconds (the last one is the steady state), kept on the class for the caller."""

    seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        _sync(str(module.device))
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        _sync(str(module.device))
        EpochTimer.seconds.append(time.perf_counter() - self.start)


def training(args, plan, work: Path):
    """Training images/s (whole call and last epoch) of the analysis model on the demo project."""
    from hydra import compose, initialize_config_dir

    from lightning_dlc import api
    from lightning_dlc.config_compose import CONF_DIR
    from lightning_dlc.data.demo import make_demo_project
    from lightning_dlc.lit.train import train
    from lightning_dlc.project import load_shuffle

    config = make_demo_project(work / "train_project", multianimal=False, n_frames=plan.train_images,
                               n_labeled=plan.train_images, size=list(plan.size), overwrite=True)
    api.create_training_dataset(config)
    n_train = len(load_shuffle(config, 1)[0])
    gpu = args.device.startswith("cuda")
    precision = "bf16-mixed" if gpu else "32-true"
    for batch in plan.train_batches:
        EpochTimer.seconds = []
        overrides = ["experiment=dlc", f"data.project={config}", f"model={plan.model}", "model.backbone.pretrained=false",
                     f"data.batch_size={batch}", f"data.num_workers={4 if gpu else 0}",
                     f"trainer.max_epochs={plan.train_epochs}", f"trainer.accelerator={'gpu' if gpu else 'cpu'}",
                     "trainer.devices=1", f"trainer.precision={precision}", "eval_interval=0", "~logger",
                     f"snapshots.save_epochs={plan.train_epochs}", "trainer.enable_progress_bar=false",
                     f"output_dir={work / f'run{batch}'}", f"+callbacks.epoch_timer._target_={__name__}.EpochTimer"]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        start = time.perf_counter()
        train(cfg)
        seconds = time.perf_counter() - start
        yield {"part": "training", "model": plan.model, "size": list(plan.size), "batch": batch, "precision": precision,
               "device": args.device, "augmentation": "on the device (BatchAugment)", "train_images": n_train,
               "epochs": plan.train_epochs, "seconds": round(seconds, 2),
               "images_per_s": round(plan.train_epochs * n_train / seconds, 2),
               "last_epoch_images_per_s": round(n_train / EpochTimer.seconds[-1], 2) if EpochTimer.seconds else None}


def multi_animal(args, plan, work: Path):
    """benchmarks/multi_animal_speed.py's measurements (no peer), as its lines."""
    import multi_animal_speed

    m = plan.multi
    options = ["--frames", str(m["frames"]), "--batch", str(m["batch"]), "--device", args.device,
               "--model", m["model"], "--size", *map(str, m["size"]), "--fish", str(m["fish"]),
               "--precision", "bf16" if args.device.startswith("cuda") else "32"]
    if args.tiny:
        options.append("--no-memory-check")
    for line in multi_animal_speed.run(multi_animal_speed.parser().parse_args(options), echo=False):
        yield {"part": "multi_animal", "measure": line.pop("part", "summary"), **line}


PARTS = {"decode": decode, "analysis": analysis, "analysis_memory": analysis_memory, "training": training,
         "multi_animal": multi_animal}


def main() -> None:
    if "--memory-child" in sys.argv:
        memory_child(sys.argv[sys.argv.index("--memory-child") + 1:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, resnet_18, few frames (a CPU's CI run)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    args = parser.parse_args()
    plan = TINY if args.tiny else FULL
    lines = []

    def emit(line: dict) -> None:
        lines.append(line)
        print(json.dumps(line), flush=True)

    import torch

    emit({"part": "machine", "device": args.device, "tiny": args.tiny, "torch": torch.__version__,
          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
          "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.parts:
            part_start = time.perf_counter()
            work = Path(tmp) / name
            work.mkdir()
            try:
                for line in PARTS[name](args, plan, work):
                    emit(line)
            except Exception as e:  # the failure is a line; the other parts still run
                emit({"part": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]})
            emit({"part": name, "done": True, "seconds": round(time.perf_counter() - part_start, 1)})
    emit({"part": "total", "seconds": round(time.perf_counter() - start, 1)})
    if args.out:
        from lightning_dlc.project.io import atomic_path

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out, overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()
