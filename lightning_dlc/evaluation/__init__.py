"""Evaluation: pose metrics (RMSE, OKS mAP/mAR, detection RMSE) as DeepLabCut reports them."""
from lightning_dlc.evaluation.metrics import (
    OKS_THRESHOLDS,
    RECALL_THRESHOLDS,
    compute_metrics,
    match_individuals,
    oks_map,
    oks_matrix,
    rmse,
    rmse_detections,
)

__all__ = [
    "OKS_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "compute_metrics",
    "match_individuals",
    "oks_map",
    "oks_matrix",
    "rmse",
    "rmse_detections",
]
