"""Top-down on the demo: train a detector and a top-down pose model, then find the fish in the demo video.

    python benchmarks/top_down_demo.py [--detector-epochs 20] [--pose-epochs 30] [--out outputs/top_down_demo]

One ``scripts/train.py``-equivalent run (``lightning_dlc.lit.train.train``) on the built-in demo
project (3 fish, 256 x 256, 80 labeled frames): ``model=top_down_resnet_18`` from scratch on
128 x 128 crops and ``detector=fasterrcnn_mobilenet_v3_large_fpn`` from scratch (no COCO weights
offline) at 256 pixels, batch 2, with fewer region proposals. Then the run's best snapshots analyze the demo video (300 frames) and the
result is scored against the video's true tracks (``fishtank_groundtruth.h5``).

Prints one JSON line: training seconds per stage, the detector's test box mAP / mAR, the pose
model's test RMSE / mAP with the labeled boxes (its validation) and with the detector's boxes
(evaluation), and on the video: the share of frames where all 3 fish were found (a predicted animal
within 10 px median keypoint error of each true fish) and the median keypoint error.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MATCH_PX = 10.0  # a fish counts as found if some predicted animal's median keypoint error is below this


def compose(out: Path, project: Path, detector_epochs: int, pose_epochs: int):
    from hydra import compose as hydra_compose, initialize_config_dir

    overrides = [
        f"data.project={project}", "model=top_down_resnet_18", "model.backbone.pretrained=false",
        "model.top_down.crop_size=[128,128]", "detector=fasterrcnn_mobilenet_v3_large_fpn",
        "detector.model.pretrained=false", "detector.model.min_size=256", "detector.model.max_size=256",
        # fewer region proposals than torchvision's defaults (2000/1000/512): a few fish per image
        "detector.model.torchvision_kwargs={rpn_pre_nms_top_n_train:300,rpn_post_nms_top_n_train:150,"
        "rpn_pre_nms_top_n_test:150,rpn_post_nms_top_n_test:50,box_batch_size_per_image:64}",
        # from scratch a detector needs many steps: small batches (DeepLabCut's detectors train with 1)
        f"detector.train.epochs={detector_epochs}", "detector.train.optimizer.lr=5e-4", "detector.train.batch_size=2",
        f"detector.train.eval_interval={max(detector_epochs // 3, 1)}", f"detector.train.save_epochs={detector_epochs}",
        f"trainer.max_epochs={pose_epochs}", f"eval_interval={max(pose_epochs // 3, 1)}",
        f"snapshots.save_epochs={pose_epochs}", "trainer.enable_progress_bar=false", "data.num_workers=1",
        f"output_dir={out}"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def video_scores(h5: Path, truth_h5: Path) -> dict:
    predicted = pd.read_hdf(h5, key="df_with_missing").to_numpy().reshape(-1, 3, 5, 3)
    truth = pd.read_hdf(truth_h5).to_numpy().reshape(len(predicted), -1, 5, 3)
    visible = truth[..., 2] > 0
    # [frame, true fish, predicted animal]: median keypoint distance over the true fish's visible points
    distance = np.linalg.norm(truth[:, :, None, :, :2] - predicted[:, None, :, :, :2], axis=-1)
    distance = np.where(visible[:, :, None], distance, np.nan)
    with np.errstate(all="ignore"):
        per_pair = np.nanmedian(distance, axis=-1)
    best = np.nanmin(np.where(np.isfinite(per_pair), per_pair, np.inf), axis=-1)  # closest predicted animal
    found = best < MATCH_PX
    return {"frames": int(len(predicted)), "frames_all_found": round(float(found.all(-1).mean()), 4),
            "fish_found": round(float(found.mean()), 4),
            "median_error_px": round(float(np.median(best[np.isfinite(best)])), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector-epochs", type=int, default=20)
    parser.add_argument("--pose-epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "top_down_demo")
    args = parser.parse_args()

    from lightning_dlc.evaluation.report import evaluate_snapshots
    from lightning_dlc.inference.analyze import analyze_video
    from lightning_dlc.lit.train import train_detector, train_pose

    project = REPO / "outputs" / "demo_project"
    cfg = compose(args.out, project, args.detector_epochs, args.pose_epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    detector = train_detector(cfg, args.out)
    t1 = time.perf_counter()
    pose = train_pose(cfg, args.out)
    t2 = time.perf_counter()
    evaluation = evaluate_snapshots(args.out, "best", device="cpu", overwrite=True)
    test = evaluation[evaluation["split"] == "test"].iloc[0]
    summary = analyze_video(args.out, project / "videos" / "fishtank.mp4", args.out / "video", device="cpu",
                            overwrite=True, progress=False, verbose=False)
    result = {
        "detector_train_s": round(t1 - t0, 1), "pose_train_s": round(t2 - t1, 1),
        "detector_epochs": args.detector_epochs, "pose_epochs": args.pose_epochs,
        **{f"detector_{k.removeprefix('test.')}": round(v, 3) for k, v in detector.items()},
        **{f"pose_labeled_boxes_{k.removeprefix('test.')}": round(v, 3) for k, v in pose.items()},
        "pose_detector_boxes_test_rmse": round(float(test["rmse"]), 3),
        "pose_detector_boxes_test_mAP": round(float(test["mAP"]), 3),
        "video_fps": summary.fps,
        **video_scores(Path(summary.h5), project / "videos" / "fishtank_groundtruth.h5"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
