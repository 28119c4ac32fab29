"""Losses on unlabeled frames (Lightning Pose's ideas, our code): each a small module with a config
``weight`` (applied by the training step) and a tolerance ``epsilon`` below which nothing is penalised.

- :class:`TemporalLoss`: keypoints move smoothly: jumps between consecutive frames beyond ``epsilon`` px;
- :class:`PcaSingleViewLoss`: poses lie near the subspace of the labeled training poses, fitted once
  (:meth:`PcaSingleViewLoss.fit`): distance beyond ``epsilon`` px per keypoint;
- :class:`UnimodalLoss`: a heatmap has one peak per animal: distance (MSE) of each map to the head's own
  ideal map at its peaks, beyond ``epsilon``.

Every loss is 0 on ideal input. Keypoints are ``[..., K, 2]`` input pixels.

The two keypoint losses measure in pixels (``forward``: the ``train.<name>_px`` curve) but train in the head's
own units: :meth:`KeypointLoss.targets` moves every keypoint that breaks the rule to where it would keep it (a
jump cut to ``epsilon``, a pose brought to ``epsilon`` of the subspace), and :meth:`KeypointLoss.head_loss` is
the distance of the head's outputs to its ideal outputs for those keypoints, like a label's. Differentiating
the pixels instead (through a soft-argmax) gave gradients 10-20x the supervised loss's at Lightning Pose's
weights (a map cell moves a keypoint by pixels, while the label loss is averaged over every cell): a model
trained from scratch on 20 labels collapsed to one still pose (``benchmarks/unlabeled.py``).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import decode_top_k
from lightning_dlc.models.losses.soft_keypoints import heatmap_keypoints, ideal_output_error, score_maps

log = logging.getLogger(__name__)


class UnsupervisedLoss(nn.Module):
    """What every loss carries: its name (the ``train.loss_<name>`` curve), weight and tolerance, and
    ``warmup_epochs``: the weight grows linearly over the first epochs (an untrained model's constant
    predictions satisfy temporal and unimodal losses; the labels get a head start)."""

    name = "unsupervised"
    # what the training step hands to forward (by keyword): "keypoints" (one pose per frame, [M, K, 2], scores=),
    # "sequences" ([B, T, K, 2], frame_index=, scores=) or "heatmaps" (the head and its outputs)
    reads = "keypoints"

    def __init__(self, weight: float = 1.0, epsilon: float = 0.0, warmup_epochs: int = 0):
        super().__init__()
        if weight < 0 or epsilon < 0 or warmup_epochs < 0:
            raise ValueError(f"losses.{self.name}: weight, epsilon and warmup_epochs must be >= 0, got {weight}, "
                             f"{epsilon}, {warmup_epochs}")
        self.weight, self.epsilon, self.warmup_epochs = float(weight), float(epsilon), int(warmup_epochs)

    def weight_at(self, epoch: int) -> float:
        """The weight in (0-based) ``epoch``: ``weight`` from epoch ``warmup_epochs`` on, a linear ramp before."""
        return self.weight * min(1.0, (epoch + 1) / (self.warmup_epochs + 1))

    def extra_repr(self) -> str:
        return f"weight={self.weight}, epsilon={self.epsilon}, warmup_epochs={self.warmup_epochs}"


class KeypointTargets(NamedTuple):
    """Where a keypoint loss wants the keypoints ``points [..., K, 2]``; ``moved [..., K]``: the keypoints it
    moves (they break its rule); ``counted [..., K]``: those it judged (found by the head, in a valid pair)."""

    points: torch.Tensor
    moved: torch.Tensor
    counted: torch.Tensor


class KeypointLoss(UnsupervisedLoss):
    """A loss on keypoints: measured in pixels (``forward``), trained through :meth:`head_loss`."""

    def targets(self, keypoints: torch.Tensor, *args, **kwargs) -> KeypointTargets:
        raise NotImplementedError

    @staticmethod
    def head_loss(head: nn.Module, outputs: dict[str, torch.Tensor], targets: KeypointTargets) -> torch.Tensor:
        """Distance of ``outputs`` (of frames ``[M]``) to the head's ideal outputs at ``targets`` (``[M, K, 2]``,
        head input pixels) for the moved keypoints, averaged over the counted ones: 0 when none is moved."""
        error = ideal_output_error(head, outputs, targets.points)  # [M, K]
        moved = targets.moved.to(error.dtype)
        return (error * moved).sum() / targets.counted.sum().clamp(min=1)


class TemporalLoss(KeypointLoss):
    """Mean over keypoints and consecutive frame pairs of ``max(0, |jump| - epsilon)`` (pixels)."""

    name = "temporal"
    reads = "sequences"

    def __init__(self, weight: float = 1.0, epsilon: float = 0.0, min_score: float = 0.0, warmup_epochs: int = 0):
        super().__init__(weight, epsilon, warmup_epochs)
        self.min_score = float(min_score)

    def _jumps(self, keypoints, frame_index, scores):
        """Each pair's jump ``[B, T - 1, K, 2]``, its excess over epsilon and whether it counts (``[B, T - 1, K]``)."""
        if keypoints.ndim != 4 or keypoints.shape[1] < 2:
            raise ValueError(f"temporal loss: keypoints [B, T >= 2, K, 2] expected, got {tuple(keypoints.shape)}")
        jumps = keypoints[:, 1:] - keypoints[:, :-1]
        excess = (jumps.norm(dim=-1) - self.epsilon).clamp(min=0)
        counted = torch.ones_like(excess)
        if frame_index is not None:
            gaps = frame_index[:, 1:] - frame_index[:, :-1]
            step = gaps.clamp(min=1).min(dim=1, keepdim=True).values  # the sequence's stride
            counted = counted * ((gaps == step) & (gaps > 0)).to(excess.dtype)[..., None]
        if scores is not None:
            found = (scores >= self.min_score).to(excess.dtype)
            counted = counted * found[:, 1:] * found[:, :-1]
        return jumps, excess, counted

    def forward(self, keypoints: torch.Tensor, frame_index: torch.Tensor | None = None,
                scores: torch.Tensor | None = None) -> torch.Tensor:
        """``keypoints [B, T, K, 2]`` of T frames of each sequence; ``frame_index [B, T]``: pairs further
        apart in the video than the sequence's step (``unlabeled.frame_stride``) are left out; ``scores
        [B, T, K]``: a pair where either keypoint scores below ``min_score`` is left out (a keypoint the head
        has not found has no position to keep steady: counting it rewards flattening the maps)."""
        _, excess, counted = self._jumps(keypoints, frame_index, scores)
        return (excess * counted).sum() / counted.sum().clamp(min=1)

    def targets(self, keypoints: torch.Tensor, frame_index: torch.Tensor | None = None,
                scores: torch.Tensor | None = None) -> KeypointTargets:
        """A keypoint in a pair that jumps beyond epsilon goes to the median (per axis) of the 3-frame window
        around it (at a sequence's ends, the first or last 3 frames): a lone outlier comes back between its
        neighbours, and its neighbours are not pulled towards it (cutting each jump, the gradient of the
        pixel loss, would move them half way). A window with a pair left out (a gap in the video, a keypoint
        not found) moves nothing. Sequences of 2 frames have no window: each keypoint of a breaking pair
        moves half the excess towards the other."""
        keypoints = keypoints.detach()
        B, T = keypoints.shape[:2]
        jumps, excess, counted = self._jumps(keypoints, frame_index, scores)
        breaks = (excess * counted) > 0  # [B, T - 1, K]
        in_break = torch.zeros(keypoints.shape[:-1], dtype=torch.bool, device=keypoints.device)
        in_break[:, :-1] |= breaks
        in_break[:, 1:] |= breaks
        if T == 2:
            step = jumps / jumps.norm(dim=-1, keepdim=True).clamp(min=1e-6) * (excess * counted / 2)[..., None]
            return KeypointTargets(keypoints + torch.cat([step, -step], 1), in_break, (counted > 0).expand(B, 2, -1))
        starts = (torch.arange(T, device=keypoints.device) - 1).clamp(0, T - 3)
        window = torch.stack([keypoints[:, starts + i] for i in range(3)], 2)  # [B, T, 3, K, 2]
        median = window.median(dim=2).values
        judged = (counted[:, starts] > 0) & (counted[:, starts + 1] > 0)  # both pairs of the window count
        moved = in_break & judged & (median != keypoints).any(-1)
        return KeypointTargets(torch.where(moved[..., None], median, keypoints), moved, judged)


def centred_poses(keypoints: torch.Tensor) -> torch.Tensor:
    """Poses ``[..., K, 2]`` -> ``[..., 2K]`` vectors, each moved so its mean keypoint is at the origin
    (where the animal is in the frame says nothing about its shape)."""
    return (keypoints - keypoints.mean(-2, keepdim=True)).flatten(-2)


class PcaSingleViewLoss(KeypointLoss):
    """Distance of each keypoint of a pose to its projection on the labeled poses' principal subspace.

    :meth:`fit` (once, at the start of training, from the training split's labels only) keeps the
    components explaining ``explained_variance`` of the centred labeled poses; the loss is the mean
    over keypoints of ``max(0, |pose - projection|_keypoint - epsilon)`` in pixels. Until fitted
    (or fitted to too few poses to leave a residual space) it is 0. ``epsilon="auto"``: measured at the
    fit, the ``auto_percentile`` percentile of the labeled keypoints' own distances to the subspace (what
    the labels themselves stray; Lightning Pose's empirical epsilon), so it follows the project's scale.
    """

    name = "pca_singleview"

    def __init__(self, weight: float = 1.0, epsilon: float | str = 0.0, explained_variance: float = 0.99,
                 min_score: float = 0.0, warmup_epochs: int = 0, auto_percentile: float = 99.0):
        self.auto_epsilon = epsilon == "auto"
        if isinstance(epsilon, str) and not self.auto_epsilon:
            raise ValueError(f"losses.pca_singleview.epsilon must be pixels or 'auto', got {epsilon!r}")
        super().__init__(weight, 0.0 if self.auto_epsilon else epsilon, warmup_epochs)
        if not 0 <= auto_percentile <= 100:
            raise ValueError(f"losses.pca_singleview.auto_percentile must be in [0, 100], got {auto_percentile}")
        self.auto_percentile = float(auto_percentile)
        self.min_score = float(min_score)
        if not 0 < explained_variance <= 1:
            raise ValueError(f"losses.pca_singleview.explained_variance must be in (0, 1], got {explained_variance}")
        self.explained_variance = float(explained_variance)
        # not persistent: a snapshot stays an ordinary snapshot; fit() runs again when training resumes
        self.register_buffer("mean", torch.zeros(0), persistent=False)
        self.register_buffer("components", torch.zeros(0, 0), persistent=False)
        self.n_poses = 0

    @property
    def fitted(self) -> bool:
        return self.components.numel() > 0

    def fit(self, keypoints) -> int:
        """Fit from labeled poses ``[N, K, 2+]`` (NaN where unlabeled: such poses are left out); returns
        the number of components kept (2K - 2 or more leaves no residual, and the loss stays 0)."""
        poses = np.asarray(keypoints, dtype=np.float64)[..., :2]
        poses = poses[np.isfinite(poses).all((-2, -1))]
        self.n_poses = len(poses)
        k = poses.shape[-2] if poses.ndim == 3 else 0
        if self.n_poses < 2 or k < 2:
            log.warning("pca_singleview: %d complete labeled poses: no subspace fitted, the loss stays 0",
                        self.n_poses)
            return 0
        vectors = centred_poses(torch.from_numpy(poses)).numpy()
        mean = vectors.mean(0)
        _, singular, vt = np.linalg.svd(vectors - mean, full_matrices=False)
        variance = singular**2
        ratio = np.cumsum(variance) / max(variance.sum(), 1e-12)
        kept = int(np.searchsorted(ratio, self.explained_variance - 1e-9) + 1)
        kept = min(kept, len(vt))
        device = self.mean.device
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
        self.components = torch.as_tensor(vt[:kept], dtype=torch.float32, device=device)  # [r, 2K]
        if kept >= 2 * k - 2:  # centring removes 2 dimensions: nothing is left outside the subspace
            log.warning("pca_singleview: %d components for %d keypoints span every centred pose: the loss stays 0",
                        kept, k)
        log.info("pca_singleview: %d components explain %.1f%% of %d labeled poses' variance", kept,
                 100 * ratio[kept - 1], self.n_poses)
        if self.auto_epsilon:
            residual, _ = self._residuals(torch.as_tensor(poses, dtype=torch.float32, device=device), None)
            self.epsilon = float(np.percentile(residual.norm(dim=-1).cpu().numpy(), self.auto_percentile))
            log.info("pca_singleview: epsilon auto = %.2f px (the %g percentile of the labels' own distances)",
                     self.epsilon, self.auto_percentile)
        return kept

    def _counted(self, keypoints: torch.Tensor, scores: torch.Tensor | None) -> torch.Tensor:
        """``[..., K]`` 1 where the pose counts: every keypoint of it scored at least ``min_score`` (else its
        shape is not known)."""
        if scores is None:
            return torch.ones(keypoints.shape[:-1], device=keypoints.device)
        return (scores >= self.min_score).all(-1, keepdim=True).float().expand(keypoints.shape[:-1])

    def _residuals(self, keypoints: torch.Tensor, scores: torch.Tensor | None):
        """Each keypoint's offset from the subspace ``[..., K, 2]`` and whether its pose counts ``[..., K]``."""
        vectors = centred_poses(keypoints.float()) - self.mean
        residual = (vectors - (vectors @ self.components.T) @ self.components).unflatten(-1, (-1, 2))
        return residual, self._counted(keypoints, scores)

    def forward(self, keypoints: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """``keypoints [..., K, 2]`` -> the mean penalty over poses and keypoints; ``scores [..., K]``: a pose
        with a keypoint scoring below ``min_score`` is left out."""
        if not self.fitted:
            return keypoints.sum() * 0.0
        residual, counted = self._residuals(keypoints, scores)
        penalty = (residual.norm(dim=-1) - self.epsilon).clamp(min=0)  # [..., K]
        return (penalty * counted).sum() / counted.sum().clamp(min=1)

    def targets(self, keypoints: torch.Tensor, scores: torch.Tensor | None = None) -> KeypointTargets:
        """Each keypoint further than epsilon from the pose the subspace gives for the others moved to epsilon of
        it. That pose is a robust fit (:meth:`robust_reconstruction`), not the plain projection, in which one
        wrong keypoint pulls every other off the subspace too (and the rule would then move the right ones:
        on the semi-supervised benchmark, test RMSE +11 % with the projection's targets)."""
        keypoints = keypoints.detach()
        if not self.fitted:
            nothing = torch.zeros(keypoints.shape[:-1], dtype=torch.bool, device=keypoints.device)
            return KeypointTargets(keypoints, nothing, nothing)
        counted = self._counted(keypoints, scores)
        offset = keypoints.float() - self.robust_reconstruction(keypoints)
        distance = offset.norm(dim=-1)
        excess = (distance - self.epsilon).clamp(min=0) * counted
        shift = offset * (excess / distance.clamp(min=1e-6))[..., None]
        return KeypointTargets(keypoints - shift.to(keypoints.dtype), excess > 0, counted > 0)

    def robust_reconstruction(self, keypoints: torch.Tensor, iterations: int = 5) -> torch.Tensor:
        """The pose of the subspace ``[..., K, 2]`` nearest ``keypoints``, placed anywhere (a translation and the
        components' coefficients, least squares), with keypoints further than epsilon (at least 1 px) from it
        weighed down (Huber weights, re-fitted ``iterations`` times): a lone wrong keypoint barely moves it."""
        shape = keypoints.shape
        points = keypoints.float().reshape(-1, shape[-2] * 2)  # [M, 2K] as x0, y0, x1, y1, ...
        k = shape[-2]
        shift = torch.eye(2, device=points.device).repeat(k, 1)  # [2K, 2]: the translation's columns
        design = torch.cat([shift, self.components.T], 1)  # [2K, 2 + r]
        target = points - self.mean
        ridge = 1e-6 * torch.eye(design.shape[1], device=points.device)
        weights = torch.ones(len(points), k, device=points.device)
        threshold = max(self.epsilon, 1.0)
        with torch.autocast(points.device.type, enabled=False):  # mixed precision has no half-precision solve
            for _ in range(iterations):
                w = weights.repeat_interleave(2, dim=1)  # [M, 2K]
                normal = torch.einsum("mj,ja,jb->mab", w, design, design) + ridge
                coefficients = torch.linalg.solve(normal, torch.einsum("mj,ja,mj->ma", w, design, target))
                fitted = coefficients @ design.T + self.mean
                distance = (points - fitted).unflatten(-1, (k, 2)).norm(dim=-1)
                weights = (threshold / distance.clamp(min=1e-6)).clamp(max=1.0)
        return fitted.reshape(shape)  # float32


class UnimodalLoss(UnsupervisedLoss):
    """MSE of each bodypart's score map to the head's own target map for a keypoint at the map's peak.

    One animal (``n_peaks=1``): the peak is the map's soft-argmax (locref-refined where the head has
    offsets). ``n_peaks > 1`` (multi-animal bottom-up, one peak per animal): the ``n_peaks`` best peaks
    above ``min_peak`` (after non-maximum suppression) each get their blob, so what is penalised is
    score away from every animal's peak and peaks that are not blob-shaped; a map without any peak
    above ``min_peak`` (no animal shows that bodypart) is left out. The peaks are not differentiated
    through: the loss shapes the maps around where they already peak. Mean over maps of
    ``max(0, MSE - epsilon)``.
    """

    name = "unimodal"
    reads = "heatmaps"

    def __init__(self, weight: float = 1.0, epsilon: float = 0.0, min_peak: float = 0.1, warmup_epochs: int = 0):
        super().__init__(weight, epsilon, warmup_epochs)
        self.min_peak = float(min_peak)

    def forward(self, head: nn.Module, outputs: dict[str, torch.Tensor], n_peaks: int = 1) -> torch.Tensor:
        maps = score_maps(head, outputs)  # [B, K, H, W]
        locref = outputs.get("locref") if getattr(head, "locref_head", None) is not None else None
        locref_std = getattr(head, "locref_std", 1.0)
        with torch.no_grad():
            if n_peaks == 1:
                xy = heatmap_keypoints(maps, locref, head.stride, locref_std)[:, None]  # [B, 1, K, 2]
                peaks = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
            else:
                peaks = decode_top_k(maps.clamp(0, 1), locref, head.stride, locref_std, n_peaks, self.min_peak)
                peaks = torch.cat([peaks[..., :2], torch.isfinite(peaks[..., :1]).to(peaks.dtype)], -1)
            counted = (peaks[..., 2] > 0).any(1).to(maps.dtype)  # [B, K]: maps with a peak
        error = ideal_output_error(head, outputs, peaks)  # [B, K]
        penalty = (error - self.epsilon).clamp(min=0)
        return (penalty * counted).sum() / counted.sum().clamp(min=1)
