"""lightning_dlc: DeepLabCut's pose-estimation engine on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

try:  # the resolvers conf/ uses; absent OmegaConf (e.g. metrics used from DeepLabCut's env) nothing composes configs
    from lightning_dlc.config_resolvers import register as _register_resolvers
except ImportError:
    pass
else:
    _register_resolvers()
