"""DEKR head (DeepLabCut 3's ``DEKRHead``, net_types ``dekr_w18/w32/w48``), layer for layer.

Every animal is a peak of an instance-centre heatmap, and its whole pose is read from that
peak's cell: per bodypart, the cell regresses the offset (in cells, ``cell - keypoint``) to
that bodypart of the animal centred there. The offsets come from *disentangled* branches:
after a shared transition each bodypart has its own ``num_offset_per_kpt`` channels and two
adaptive (deformable) residual blocks. Module and attribute names are DeepLabCut's, so the
state dicts match key for key (``heatmap_head.*``, ``offset_head.*``).

Targets: :mod:`dekr_targets`; decoding: :mod:`dekr_decode`; losses: DeepLabCut's
``DEKRHeatmapLoss`` (weighted MSE, plain mean) and ``DEKROffsetLoss`` (smooth-L1, beta 1/9,
summed over the cells with weight > 0).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import DeformConv2d

from lightning_dlc.models.heads.dekr_decode import ScoreType, decode_dekr
from lightning_dlc.models.heads.dekr_targets import dekr_targets

BN_MOMENTUM = 0.1


class BasicBlock(nn.Module):
    """Residual pair of 3x3 convs (channels kept), as DeepLabCut's DEKR ``BasicBlock``."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + x)


class AdaptBlock(nn.Module):
    """Residual 3x3 deformable conv whose sampling grid is an affine map of the regular one, per pixel.

    Two small convs predict a 2x2 matrix and a translation per pixel; the kernel's 9 taps
    ``(dy, dx)`` move to ``M @ tap + t`` (DeepLabCut's ``AdaptBlock``, from DEKR).
    """

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        taps = torch.tensor([[-1, -1, -1, 0, 0, 0, 1, 1, 1], [-1, 0, 1, -1, 0, 1, -1, 0, 1]])  # (dy, dx) rows
        self.register_buffer("regular_matrix", taps.float())
        self.transform_matrix_conv = nn.Conv2d(channels, 4, 3, 1, 1, bias=True)
        self.translation_conv = nn.Conv2d(channels, 2, 3, 1, 1, bias=True)
        self.adapt_conv = DeformConv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, _, H, W = x.shape
        matrix = self.transform_matrix_conv(x).permute(0, 2, 3, 1).reshape(N * H * W, 2, 2)
        taps = self.regular_matrix.to(x.dtype)
        moved = (matrix @ taps - taps).transpose(1, 2)  # [NHW, 9, 2]: per tap (dy, dx)
        moved = moved + self.translation_conv(x).permute(0, 2, 3, 1).reshape(N * H * W, 1, 2)
        offset = moved.reshape(N, H, W, 18).permute(0, 3, 1, 2)
        return self.relu(self.bn(self.adapt_conv(x, offset)) + x)


def _transition(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(True))


class DEKRHeatmap(nn.Module):
    """1x1 transition to ``channels``, ``num_blocks`` BasicBlocks, a final conv to K + 1 maps."""

    def __init__(self, in_channels: int, channels: int, n_maps: int, num_blocks: int = 1, dilation: int = 1,
                 final_kernel: int = 1):
        super().__init__()
        self.transition_heatmap = _transition(in_channels, channels)
        self.head_heatmap = nn.ModuleList([
            nn.Sequential(*[BasicBlock(channels, dilation) for _ in range(num_blocks)]),
            nn.Conv2d(channels, n_maps, final_kernel, padding=final_kernel // 2),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_heatmap[1](self.head_heatmap[0](self.transition_heatmap(x)))


class DEKROffset(nn.Module):
    """1x1 transition to ``K * per_keypoint`` channels; bodypart k's slice -> its AdaptBlocks -> (dx, dy)."""

    def __init__(self, in_channels: int, n_keypoints: int, per_keypoint: int = 15, num_blocks: int = 2,
                 dilation: int = 1, final_kernel: int = 1):
        super().__init__()
        self.per_keypoint = per_keypoint
        self.transition_offset = _transition(in_channels, n_keypoints * per_keypoint)
        self.offset_feature_layers = nn.ModuleList([
            nn.Sequential(*[AdaptBlock(per_keypoint, dilation) for _ in range(num_blocks)])
            for _ in range(n_keypoints)
        ])
        self.offset_final_layer = nn.ModuleList([
            nn.Conv2d(per_keypoint, 2, final_kernel, padding=final_kernel // 2) for _ in range(n_keypoints)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.transition_offset(x).split(self.per_keypoint, dim=1)
        return torch.cat([final(layers(f)) for f, layers, final in
                          zip(features, self.offset_feature_layers, self.offset_final_layer)], 1)


def _smooth_l1(prediction: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    error = (prediction - target).abs()
    return torch.where(error < beta, 0.5 * error**2 / beta, error - 0.5 * beta)


class DEKRHead(nn.Module):
    """DeepLabCut's DEKR head on a stride-s feature map (HRNet's branches concatenated: s = 4).

    Outputs at the features' stride: ``heatmap [B, K + 1, H, W]`` (bodyparts, then the animal
    centre; raw values, regressed with MSE) and ``offset [B, 2K, H, W]`` (x0, y0, ...; cells,
    ``cell - keypoint``).

    Args:
        heatmap_channels: width of the heatmap branch (DeepLabCut: the HRNet width, 18/32/48).
        offset_channels: channels per bodypart in the offset branch (``num_offset_per_kpt``, 15).
        heatmap_blocks / offset_blocks / dilation / final_kernel: DeepLabCut's ``num_blocks``
            (1 and 2), ``dilation_rate`` and ``final_conv_kernel``.
        pos_dist_thresh, bg_weight: target generator (:func:`dekr_targets`).
        heatmap_weight / offset_weight: loss weights (1 and 0.03); ``total`` is the mean of the
            weighted losses, as DeepLabCut's ``WeightedLossAggregator``.
        score_type, use_heatmap, max_absorb_distance, nms_threshold, apply_pose_nms,
        apply_sigmoid, clip_scores: the predictor (:func:`decode_dekr`), DeepLabCut's defaults
        for the dekr configs.
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, heatmap_channels: int = 32,
                 offset_channels: int = 15, heatmap_blocks: int = 1, offset_blocks: int = 2, dilation: int = 1,
                 final_kernel: int = 1, pos_dist_thresh: float = 17.0, bg_weight: float = 0.1,
                 heatmap_weight: float = 1.0, offset_weight: float = 0.03, score_type: ScoreType = "combined",
                 use_heatmap: bool = False, max_absorb_distance: float = 75.0, nms_threshold: float = 0.05,
                 apply_pose_nms: bool = True, apply_sigmoid: bool = False, clip_scores: bool = True,
                 init_std: float = 0.001):
        super().__init__()
        self.stride = float(in_stride)
        self.n_bodyparts = n_bodyparts
        self.pos_dist_thresh, self.bg_weight = pos_dist_thresh, bg_weight
        self.heatmap_weight, self.offset_weight = heatmap_weight, offset_weight
        self.decode_options = dict(score_type=score_type, use_heatmap=use_heatmap,
                                   max_absorb_distance=max_absorb_distance, nms_threshold=nms_threshold,
                                   apply_pose_nms=apply_pose_nms, apply_sigmoid=apply_sigmoid,
                                   clip_scores=clip_scores)
        self.heatmap_head = DEKRHeatmap(in_channels, heatmap_channels, n_bodyparts + 1, heatmap_blocks, dilation,
                                        final_kernel)
        self.offset_head = DEKROffset(in_channels, n_bodyparts, offset_channels, offset_blocks, dilation,
                                      final_kernel)
        self._init_weights(init_std)

    @torch.no_grad()
    def _init_weights(self, std: float) -> None:
        # DeepLabCut's "dekr" init: every parameter (batch-norm scales included) N(0, std), biases 0
        for name, param in self.named_parameters():
            if "bias" in name:
                param.zero_()
            else:
                param.normal_(0.0, std)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmap": self.heatmap_head(features), "offset": self.offset_head(features)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        return dekr_targets(keypoints, size, self.stride, self.pos_dist_thresh, bg_weight=self.bg_weight)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heatmap = ((outputs["heatmap"].float() - targets["heatmap"]) ** 2 * targets["heatmap_weights"]).mean()
        weights = targets["offset_weights"]
        offset = ((_smooth_l1(outputs["offset"].float(), targets["offset"], 1 / 9) * weights).sum()
                  / (weights > 0).sum().clamp(min=1))
        # DeepLabCut reports the plain losses and trains on the mean of the weighted ones
        total = (self.heatmap_weight * heatmap + self.offset_weight * offset) / 2
        return {"heatmap": heatmap, "offset": offset, "total": total}

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The heatmaps as the decoder reads them, in [0, 1] (for images of the maps)."""
        heatmap = outputs["heatmap"].float()
        return heatmap.sigmoid() if self.decode_options["apply_sigmoid"] else heatmap.clamp(0.0, 1.0)

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """``[B, n_individuals, K, 3]`` (x, y, score) in input pixels; NaN rows for poses NMS dropped."""
        return decode_dekr(outputs["heatmap"], outputs["offset"], self.stride, n_individuals,
                           **self.decode_options)
