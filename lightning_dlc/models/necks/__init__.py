"""Necks: feature map [B, C, H, W] -> features for the heads (a map; TokenPoseNeck: keypoint tokens).

Built from config as a ``_partial_`` of ``lightning_dlc.models.necks.<Class>``; :class:`PoseModel`
calls it with ``in_channels`` and ``in_stride`` and reads ``out_channels`` and ``stride``.
"""
from lightning_dlc.models.necks.tokenpose import TokenPoseNeck
from lightning_dlc.models.necks.transformer import TransformerNeck

__all__ = ["TokenPoseNeck", "TransformerNeck"]
