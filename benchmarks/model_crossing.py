"""The same trained openfield model scored by both engines, each with its own evaluate_network, as JSON.

    python benchmarks/model_crossing.py [--ours DIR] [--dlc DIR] [--net resnet_50] [--workdir DIR]

``--ours``: a project copy whose shuffle-1 model folder holds our snapshot(s) (``api.train_network``'s
``snapshot-NNN.ckpt``), default ``benchmarks/accuracy.py``'s ``/tmp/acc/work/lightning_dlc/<project>``.
It is copied to the work dir, exported (``export_run``: ``snapshot-NNN.pt`` + ``pytorch_config.yaml``
beside the ``.ckpt``), evaluated by us (``evaluate_snapshots``) and by DeepLabCut 3.0.2
(``deeplabcut.evaluate_network`` in its own environment, reading only its files).
``--dlc``: a project copy whose shuffle-1 folder DeepLabCut trained (``pytorch_config.yaml`` +
``snapshot-NNN.pt``), default ``/tmp/acc/work/deeplabcut/<project>``: evaluated here from that folder and
by DeepLabCut. Prints one JSON line per model: ``{"model", "ours": {split: metrics}, "deeplabcut": {...},
"max_abs_prediction_diff_px"}`` (DeepLabCut rounds metrics to 0.01).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from lightning_dlc.evaluation.report import evaluate_snapshots
from lightning_dlc.models.export import export_run, shuffle_train_dir
from peer import run_in_peer  # benchmarks/peer.py

NAME = "openfield-Pranav-2018-10-30"
PEER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import pandas as pd
    import deeplabcut
    from deeplabcut.utils import auxiliaryfunctions
    config = sys.argv[1]
    cfg = auxiliaryfunctions.read_config(config)
    cfg["project_path"] = str(Path(config).parent)  # the copy, not the project it was copied from
    auxiliaryfunctions.write_config(config, cfg)
    deeplabcut.evaluate_network(config, Shuffles=[1], device="cpu")
    folder = Path(config).parent / "evaluation-results-pytorch" / "iteration-0"
    (shuffle,) = [p for p in folder.iterdir() if p.is_dir()]
    (csv,) = sorted(shuffle.glob("DLC_*-results.csv"))
    print(json.dumps({"scorer": csv.name[:-len("-results.csv")], "row": pd.read_csv(csv).iloc[0].to_dict()}))
""")


def by_split(table: pd.DataFrame) -> dict:
    return {r.split: {m: round(float(getattr(r, m)), 4) for m in ("rmse", "rmse_pcutoff", "mAP", "mAR")}
            for r in table.itertuples()}


def dlc_by_split(row: dict) -> dict:
    return {s: {m: row[f"{s} {m}"] for m in ("rmse", "rmse_pcutoff", "mAP", "mAR")} for s in ("train", "test")}


def score(project: Path, snapshots_dir: Path, which, model: str, work: Path) -> dict:
    config = project / "config.yaml"
    shutil.rmtree(project / "evaluation-results-pytorch", ignore_errors=True)
    ours = evaluate_snapshots(snapshots_dir, which, out_dir=work / f"ours_{model}", device="cpu", verbose=False)
    (dlc,) = run_in_peer(PEER, str(config))
    theirs = pd.read_hdf(next((project / "evaluation-results-pytorch").rglob(f"{dlc['scorer']}.h5")))
    mine = pd.read_hdf(work / f"ours_{model}" / f"{ours.scorer[0]}.h5")
    if set(mine.index) == set(theirs.index):  # both in image-path order already; made sure
        mine = mine.reindex(theirs.index)
    diff = float(np.nanmax(np.abs(mine.to_numpy() - theirs.to_numpy()))) if mine.shape == theirs.shape else None
    return {"model": model, "scorer": {"ours": ours.scorer[0], "deeplabcut": dlc["scorer"]},
            "ours": by_split(ours), "deeplabcut": dlc_by_split(dlc["row"]), "max_abs_prediction_diff_px": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours", type=Path, default=Path("/tmp/acc/work/lightning_dlc") / NAME)
    ap.add_argument("--dlc", type=Path, default=Path("/tmp/acc/work/deeplabcut") / NAME)
    ap.add_argument("--net", default="resnet_50", help="DeepLabCut's net_type of our run (older runs do not record it)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="model_crossing_"))
    results = []
    if args.ours.is_dir():
        project = work / "ours" / NAME
        shutil.copytree(args.ours, project, dirs_exist_ok=True)
        train_dir = shuffle_train_dir(project / "config.yaml")
        export_run(train_dir, project / "config.yaml", snapshots="last", overwrite=True, net_type=args.net)
        results.append(score(project, train_dir, "last", "ours_exported", work))
    if args.dlc.is_dir():
        project = work / "dlc" / NAME
        shutil.copytree(args.dlc, project, dirs_exist_ok=True)
        results.append(score(project, shuffle_train_dir(project / "config.yaml"), -1, "deeplabcut_trained", work))
    if not results:
        sys.exit(f"neither {args.ours} nor {args.dlc} is there: run benchmarks/accuracy.py --peer first")
    for line in results:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
