"""Keypoints and heatmaps drawn on images: TensorBoard images during training, labeled images and videos after."""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def bodypart_colors(n: int) -> np.ndarray:
    """``[n, 3]`` uint8 RGB colours spread around the hue circle, one per bodypart."""
    hues = (np.arange(n) * 180 // max(n, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 230, np.uint8), np.full(n, 255, np.uint8)], -1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def _as_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def draw_keypoints(image, predicted=None, truth=None, pcutoff: float = 0.0, radius: int = 3) -> np.ndarray:
    """An RGB ``[H, W, 3]`` uint8 copy of ``image`` with ground truth as ``+`` and predictions as dots.

    Colours follow the bodypart. Predictions scoring below ``pcutoff`` are drawn as hollow
    circles, so low-confidence points stay visible but read as doubtful.

    Args:
        image: ``[3, H, W]`` or ``[H, W, 3]``, uint8 or float in [0, 1].
        predicted: ``[N, K, 3]`` (x, y, score), NaN = none. truth: ``[N, K, 3]`` (x, y, visibility).
    """
    canvas = _as_hwc(image).copy()
    for points, is_truth in ((truth, True), (predicted, False)):
        if points is None:
            continue
        pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
        colors = bodypart_colors(pts.shape[1])
        for n in range(pts.shape[0]):
            for k in range(pts.shape[1]):
                x, y, s = pts[n, k]
                if not (np.isfinite(x) and np.isfinite(y)):
                    continue
                c, center = tuple(int(v) for v in colors[k]), (int(round(x)), int(round(y)))
                if is_truth:
                    cv2.drawMarker(canvas, center, c, cv2.MARKER_CROSS, 2 * radius + 3, 1)
                else:
                    cv2.circle(canvas, center, radius, c, -1 if s >= pcutoff else 1, cv2.LINE_AA)
    return canvas


def keypoint_image(image, predicted=None, truth=None, pcutoff: float = 0.0) -> np.ndarray:
    """:func:`draw_keypoints` as ``[3, H, W]`` (TensorBoard's default layout)."""
    return draw_keypoints(image, predicted, truth, pcutoff).transpose(2, 0, 1)


def heatmap_image(image, heatmaps: torch.Tensor) -> np.ndarray:
    """The max over bodyparts of ``heatmaps [K, h, w]`` (values in [0, 1]) over the image, ``[3, H, W]``."""
    base = _as_hwc(image)
    heat = heatmaps.detach().float().amax(0, keepdim=True)[None]
    heat = F.interpolate(heat, size=base.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    heat = (heat.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(base, 0.5, colored, 0.5, 0).transpose(2, 0, 1)
