"""Forward+backward (training step, targets included) and inference speed of named model configs.

    python benchmarks/model_speed.py [--models resnet_50 hrnet_w32] [--batch 8] [--size 448 448]
        [--multi] [--steps 5] [--precision 32|bf16] [--channels-last]

Models are built from ``conf/model/<name>.yaml`` exactly as training builds them (pretrained
weights off: the speed is the same). Prints one JSON line per model: train images/s (forward,
targets made on the device, loss, backward, optimizer step) and predict images/s (forward +
the head's predictor, PAF assembly included for ``--multi``).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

CONF = Path(__file__).resolve().parents[1] / "conf"


def project(multi: bool) -> ProjectMeta:
    bodyparts = tuple(f"part{i}" for i in range(9))  # the cichlid project's size: 9 bodyparts
    return ProjectMeta(bodyparts, tuple(f"fish{i}" for i in range(10)) if multi else ("animal",))


def measure(name: str, args) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "model.backbone.pretrained=false"])
    meta = project(args.multi)
    model = model_from_config(cfg.model, meta)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    h, w = args.size
    images = torch.rand(args.batch, 3, h, w).contiguous(memory_format=fmt)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(args.batch, meta.max_individuals, len(meta.bodyparts), 2, generator=g) * torch.tensor([w, h])
    keypoints = torch.cat([xy, torch.full_like(xy[..., :1], 2.0)], -1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()

    def train_step():
        with autocast:
            loss = model.loss(model(images), keypoints)["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def predict_step():
        with torch.no_grad(), autocast:
            model.predict(model(images))

    result = {"model": name, "batch": args.batch, "size": [h, w], "multianimal": args.multi,
              "precision": args.precision, "channels_last": args.channels_last,
              "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    for label, step, mode in (("train", train_step, model.train), ("predict", predict_step, model.eval)):
        mode()
        step()  # warm-up (allocations, oneDNN kernel choice)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - start) / args.steps
        result[f"{label}_images_per_s"] = round(args.batch / seconds, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet_50"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[448, 448], metavar=("H", "W"))
    parser.add_argument("--multi", action="store_true", help="multi-animal project (10 animals): PAF/DEKR heads")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in args.models:
        row = measure(name, args)
        row.update(device="cpu", threads=torch.get_num_threads(), cpu=platform.processor() or platform.machine(),
                   torch=torch.__version__)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
