"""Evaluation: pose metrics (RMSE, OKS mAP/mAR, detection RMSE) as DeepLabCut reports them."""
from lightning_dlc.evaluation.metrics import *  # noqa: F403 (the names metrics.__all__ lists)
from lightning_dlc.evaluation.metrics import __all__  # noqa: F401
