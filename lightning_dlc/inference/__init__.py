"""Inference: trained snapshots -> predictions in original image pixels (evaluation, video analysis)."""
from lightning_dlc.inference.predict import load_model, predict_batch, predict_dataset, resolve_device, snapshot_meta

__all__ = ["load_model", "predict_batch", "predict_dataset", "resolve_device", "snapshot_meta"]
