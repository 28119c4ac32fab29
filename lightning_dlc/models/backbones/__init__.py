"""Backbones: images [B, 3, H, W] -> one feature map [B, out_channels, H / stride, W / stride].

Built from config with ``_target_: lightning_dlc.models.backbones.<Class>``; any timm model
through :class:`TimmBackbone`.
"""
from lightning_dlc.models.backbones.cond_prenet import CondPreNet
from lightning_dlc.models.backbones.cspnext import CSPNeXt
from lightning_dlc.models.backbones.dlcrnet import DLCRNet
from lightning_dlc.models.backbones.hrnet import HRNet
from lightning_dlc.models.backbones.hrnet_coam import HRNetCoAM
from lightning_dlc.models.backbones.resnet import ResNet
from lightning_dlc.models.backbones.timm_backbone import TimmBackbone

__all__ = ["CondPreNet", "CSPNeXt", "DLCRNet", "HRNet", "HRNetCoAM", "ResNet", "TimmBackbone"]
