"""Inference: trained snapshots -> predictions in original image pixels (evaluation, video and image analysis)."""
from lightning_dlc.inference.analyze import VideoSummary, analyze_images, analyze_video, analyze_videos
from lightning_dlc.inference.devices import resolve_device
from lightning_dlc.inference.predict import load_model, predict_batch, predict_dataset, snapshot_meta
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_reader import FrameBatch, VideoError, VideoInfo, probe_video

__all__ = ["FrameBatch", "Predictor", "VideoError", "VideoInfo", "VideoSummary", "analyze_images", "analyze_video",
           "analyze_videos", "load_model", "open_video", "predict_batch", "predict_dataset", "probe_video",
           "resolve_device", "snapshot_meta"]
