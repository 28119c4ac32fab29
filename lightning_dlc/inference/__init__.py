"""Inference: trained snapshots -> predictions in original image pixels (evaluation, video and image analysis)."""
from lightning_dlc.inference.predict import load_model, predict_batch, predict_dataset, resolve_device, snapshot_meta
from lightning_dlc.inference.video import FrameBatch, VideoError, VideoInfo, open_video, probe_video
from lightning_dlc.inference.analyze import (
    Predictor,
    VideoSummary,
    analyze_images,
    analyze_video,
    analyze_videos,
)

__all__ = ["FrameBatch", "Predictor", "VideoError", "VideoInfo", "VideoSummary", "analyze_images", "analyze_video",
           "analyze_videos", "load_model", "open_video", "predict_batch", "predict_dataset", "probe_video",
           "resolve_device", "snapshot_meta"]
