"""lightning_dlc: DeepLabCut's pose-estimation engine on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
