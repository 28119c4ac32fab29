"""lightning_dlc: DeepLabCut's pose-estimation engine on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

from lightning_dlc.config_resolvers import register as _register_resolvers

_register_resolvers()
