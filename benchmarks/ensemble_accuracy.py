"""Ensemble Kalman smoothing on the demo's ground truth: error of each member, of their plain mean and median,
and of the smoothed ensemble, as JSON.

python benchmarks/ensemble_accuracy.py [--frames 300] [--members 2 4] [--noise 3] [--glitches 0.02] [--seeds 3]
                                       [--eks-python /path/to/venv/bin/python]

The single-animal demo's true track (videos/fishtank_groundtruth.h5) plus, per member, independent Gaussian
noise (``--noise`` px) and glitches (a ``--glitches`` fraction of points thrown 20-40 px, with a likelihood
drawn from 0.2-0.9 instead of 0.9): the errors a model ensemble averages away. RMSE in px over visible points.
``--eks-python``: an environment with ``ensemble-kalman-smoother`` installed; its ``fit_eks_singlecam``
smooths the same members (as DeepLabCut csv files) for comparison.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.tracking.ensemble_smoother import smooth_ensemble


def members_of(truth: np.ndarray, n: int, noise: float, glitches: float, rng) -> np.ndarray:
    """``[n, T, P, 3]``: the truth ``[T, P, 2]`` seen by n imperfect models."""
    xy = truth[None] + rng.normal(0, noise, (n, *truth.shape))
    glitch = rng.random(xy.shape[:-1]) < glitches
    angle, size = rng.uniform(0, 2 * np.pi, glitch.shape), rng.uniform(20, 40, glitch.shape)
    jump = np.stack([np.cos(angle), np.sin(angle)], -1) * size[..., None]
    xy = np.where(glitch[..., None], xy + jump, xy)
    likelihood = np.where(glitch, rng.uniform(0.2, 0.9, glitch.shape), 0.9)
    return np.concatenate([xy, likelihood[..., None]], -1)


def rmse(points: np.ndarray, truth: np.ndarray) -> float:
    seen = np.isfinite(truth).all(-1)
    return float(np.sqrt(np.mean(np.sum((points[..., :2] - truth) ** 2, -1)[seen])))


def eks_package(python: str, members: np.ndarray, columns: pd.MultiIndex, folder: Path) -> np.ndarray:
    """The ``ensemble-kalman-smoother`` package's smoothed x, y ``[T, P, 2]`` of the same members."""
    folder.mkdir(parents=True)
    files = []
    for i, m in enumerate(members):
        path = folder / f"member{i}.csv"
        pd.DataFrame(m.reshape(len(m), -1), columns=columns).to_csv(path)
        files.append(str(path))
    out = folder / "eks" / "smoothed.csv"
    script = textwrap.dedent(f"""
        from eks.singlecam_smoother import fit_eks_singlecam
        fit_eks_singlecam(input_source={files!r}, save_file={str(out)!r})
    """)
    subprocess.run([python, "-c", script], check=True, capture_output=True, text=True)
    df = pd.read_csv(out, header=[0, 1, 2], index_col=0)
    parts = list(dict.fromkeys(columns.get_level_values("bodyparts")))
    return np.stack([df.xs(bp, level=1, axis=1).xs(c, level=1, axis=1).iloc[:, 0].to_numpy()
                     for bp in parts for c in ("x", "y")], -1).reshape(len(df), len(parts), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--members", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--glitches", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eks-python", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = make_demo_project(Path(tmp) / "fish", multianimal=False, n_frames=args.frames,
                                   n_labeled=min(10, args.frames))
        table = pd.read_hdf(config.parent / "videos" / "fishtank_groundtruth.h5")
        truth = table.to_numpy(np.float64).reshape(args.frames, -1, 3)[..., :2]
        results = []
        for n in args.members:
            for seed in range(args.seeds):
                members = members_of(truth, n, args.noise, args.glitches, np.random.default_rng(seed))
                start = time.perf_counter()
                smoothed = smooth_ensemble(members)
                seconds = time.perf_counter() - start
                row = {"members": n, "seed": seed, "member_rmse": [rmse(m, truth) for m in members],
                       "mean_rmse": rmse(members.mean(0), truth), "median_rmse": rmse(np.median(members, 0), truth),
                       "ensemble_rmse": rmse(smoothed.points, truth),
                       "ensemble_mean_average_rmse": rmse(smooth_ensemble(members, average="mean").points, truth),
                       "seconds": round(seconds, 3)}
                if args.eks_python:
                    eks = eks_package(args.eks_python, members, table.columns, Path(tmp) / f"eks{n}-{seed}")
                    row["eks_package_rmse"] = rmse(eks, truth)
                    gap = eks - smoothed.points[..., :2]
                    row["eks_package_vs_ours_rms_px"] = float(np.sqrt(np.nanmean(gap ** 2)))
                results.append(row)
    summary = {str(n): {k: float(np.mean([r[k] for r in results if r["members"] == n]))
                        for k in results[0] if k not in ("members", "seed", "member_rmse")}
               | {"best_member_rmse": float(np.mean([min(r["member_rmse"]) for r in results if r["members"] == n]))}
               for n in args.members}
    print(json.dumps({"frames": args.frames, "noise_px": args.noise, "glitches": args.glitches,
                      "by_members": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
