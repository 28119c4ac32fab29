"""onnxruntime vs PyTorch: frames/s of one pose network on this machine's CPU, printed as JSON.

    python benchmarks/onnx_speed.py [--net resnet_50] [--height 480] [--width 640] [--batch 8] [--repeats 3]

The network (from-scratch weights: speed does not depend on them) maps a batch of normalized frames to its
raw head outputs, as in analysis: PyTorch float32 (channels-last, as the Predictor runs it), PyTorch bf16
autocast (for reference) and onnxruntime float32 on the graph ``lightning-dlc export format=onnx`` writes.
Each engine runs one warm-up batch, then ``repeats`` timed batches; the ratio is onnxruntime's frames/s
over PyTorch float32's, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.inference.onnx_runner import OnnxNetwork
from lightning_dlc.models.onnx_export import export_pose_network
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.preprocess import run_network
from lightning_dlc.project.records import ProjectMeta


def _frames_per_second(step, batch: int, repeats: int) -> float:
    step()  # warm-up: allocations, onnxruntime's first-run graph work
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch * repeats / (time.perf_counter() - t0)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="resnet_50")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.net}", "model.backbone.pretrained=false"])
    meta = ProjectMeta(bodyparts=tuple(f"part{i}" for i in range(12)), individuals=("animal",))
    torch.manual_seed(0)
    model = model_from_config(cfg.model, meta).eval()
    x = torch.randn(args.batch, 3, args.height, args.width)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / f"{args.net}.onnx"
        t0 = time.perf_counter()
        export_pose_network(model, graph)
        export_s = time.perf_counter() - t0
        onnx = OnnxNetwork(graph, "cpu")
        model = model.to(memory_format=torch.channels_last)
        fps = {
            "torch_fp32": _frames_per_second(lambda: run_network(model, x_cl), args.batch, args.repeats),
            "torch_bf16": _frames_per_second(lambda: run_network(model, x_cl, torch.bfloat16), args.batch,
                                             args.repeats),
            "onnxruntime_fp32": _frames_per_second(lambda: onnx(x), args.batch, args.repeats),
        }
    import onnxruntime

    print(json.dumps({
        "benchmark": "onnx_speed", "net": args.net, "height": args.height, "width": args.width,
        "batch": args.batch, "repeats": args.repeats, "frames_per_s": {k: round(v, 3) for k, v in fps.items()},
        "onnxruntime_over_torch_fp32": round(fps["onnxruntime_fp32"] / fps["torch_fp32"], 3),
        "export_s": round(export_s, 2), "providers": onnx.providers, "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
