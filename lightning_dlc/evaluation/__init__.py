"""Evaluation: pose metrics (RMSE, OKS mAP/mAR, detection RMSE) as DeepLabCut reports them."""
from lightning_dlc.evaluation.matching import match_individuals, oks_matrix
from lightning_dlc.evaluation.metrics import compute_metrics
from lightning_dlc.evaluation.oks_map import OKS_THRESHOLDS, RECALL_THRESHOLDS, oks_map
from lightning_dlc.evaluation.rmse import rmse, rmse_detections

__all__ = ["OKS_THRESHOLDS", "RECALL_THRESHOLDS", "compute_metrics", "match_individuals", "oks_map", "oks_matrix",
           "rmse", "rmse_detections"]
