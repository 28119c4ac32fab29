"""What the losses on unlabeled frames read of head outputs: score maps (differentiable), keypoints (a
soft-argmax: the centre of mass of a score map, corrected by the head's location-refinement offsets where
it has them) and how far outputs are from the head's ideal outputs for given keypoints.
"""
from __future__ import annotations

import torch
from torch import nn

from lightning_dlc.models.heads.heatmap_targets import grid_to_pixels
from lightning_dlc.models.heads.simcc import kl_per_keypoint

# a map with (almost) no positive mass has no centre: its keypoint is the map's centre instead of a corner
_MIN_MASS = 1e-6


def score_maps(head: nn.Module, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, K, H, W]`` bodypart score maps as the head's loss sees them (gradient kept).

    An MSE head's raw outputs (it regresses maps with a peak of 1), a logit head's sigmoid;
    a DEKR head's animal-centre map (its last channel) is left out.
    """
    if "heatmap" not in outputs:
        raise ValueError(f"{type(head).__name__} has no heatmaps (outputs {sorted(outputs)}): "
                         "the unimodal loss reads heatmap heads only")
    maps = outputs["heatmap"].float()
    n_bodyparts = getattr(head, "n_bodyparts", maps.shape[1])
    maps = maps[:, :n_bodyparts]
    if getattr(head, "loss_kind", None) == "mse":  # HeatmapHead(loss="mse")
        return maps
    decode = getattr(head, "decode_options", None)
    if decode is not None and not decode.get("apply_sigmoid", True):  # DEKR trained on raw MSE maps
        return maps
    return maps.sigmoid()


def heatmap_keypoints(maps: torch.Tensor, locref: torch.Tensor | None, stride: float,
                      locref_std: float = 1.0) -> torch.Tensor:
    """Soft-argmax of ``maps [B, K, H, W]`` -> ``[B, K, 2]`` (x, y) input pixels, differentiable.

    Without ``locref``: the centre of mass of the map's positive part (a Gaussian blob's is its
    centre, to well under a pixel, where the map's border does not cut it off). With ``locref [B, 2K, H, W]``:
    every cell of the peak (where the map is at least half its maximum) votes for its centre plus its
    offset, weighted by its score, so a map and offsets as the targets make them give the keypoint exactly.
    """
    B, K, H, W = maps.shape
    weights = maps.float().clamp(min=0)
    if locref is not None:  # the peak only: far cells have no trained offsets
        peak = weights.flatten(2).amax(-1)[..., None, None]
        weights = weights * (weights >= 0.5 * peak).detach()
    mass = weights.sum((-2, -1), keepdim=True)
    weights = torch.where(mass > _MIN_MASS, weights, torch.ones_like(weights))
    weights = weights / weights.sum((-2, -1), keepdim=True)
    xs = grid_to_pixels(torch.arange(W, device=maps.device, dtype=weights.dtype), stride)
    ys = grid_to_pixels(torch.arange(H, device=maps.device, dtype=weights.dtype), stride)
    x = (weights.sum(-2) * xs).sum(-1)
    y = (weights.sum(-1) * ys).sum(-1)
    points = torch.stack([x, y], -1)
    if locref is not None:
        # offsets are learned from labels only: losses that could move them fit any pose without moving the maps
        # (the semi-supervised benchmark's locref loss stayed at 0.42 vs 0.05 without the losses)
        offsets = locref.detach().float().reshape(B, K, 2, H, W)
        points = points + (offsets * weights[:, :, None]).sum((-2, -1)) * locref_std
    return points


def ideal_output_error(head: nn.Module, outputs: dict[str, torch.Tensor], keypoints: torch.Tensor) -> torch.Tensor:
    """``[B, K]``: how far each bodypart's outputs are from what the head would output for ``keypoints``
    (``[B, K, 2]`` input pixels, or ``[B, N, K, 3]`` with visibility; its own training targets), gradient
    kept. Heatmap heads: the MSE of the score map to the target map; RTMPose's coordinate classification:
    the KL divergence of each axis' distribution to its target, as its own loss, averaged over x and y."""
    if keypoints.ndim == 3:
        keypoints = torch.cat([keypoints, torch.ones_like(keypoints[..., :1])], -1)[:, None]
    keypoints = keypoints.detach()
    if "x" in outputs and "y" in outputs:  # SimCCHead
        targets = head.targets(keypoints, outputs)
        return torch.stack([kl_per_keypoint(outputs[axis], targets[axis], head.beta, head.label_softmax,
                                            head.label_beta) for axis in ("x", "y")]).mean(0)
    maps = score_maps(head, outputs)
    with torch.no_grad():
        ideal = head.targets(keypoints, outputs)["heatmap"][:, :maps.shape[1]].float()
    return ((maps - ideal) ** 2).mean((-2, -1))


def keypoint_scores(head: nn.Module, outputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """``[B, K]`` peak of each bodypart's score map, without gradient (None for heads without heatmaps): how
    sure the head is of a keypoint, so that losses can leave out the ones it has not found."""
    if "heatmap" not in outputs:
        return None
    with torch.no_grad():
        return score_maps(head, outputs).flatten(2).amax(-1)


def soft_keypoints(head: nn.Module, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """One animal's keypoints ``[B, K, 2]`` (input pixels) from a single-animal head's outputs, differentiable.

    Heatmap heads (DeepLabCut's, TokenPose's): :func:`heatmap_keypoints`; RTMPose's coordinate
    classification: the expected bin of each axis' softmax.
    """
    if "x" in outputs and "y" in outputs:  # SimCCHead: bins of 1 / split_ratio input pixels
        coords = []
        for axis in ("x", "y"):
            probs = outputs[axis].float().softmax(-1)
            bins = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
            coords.append((probs * bins).sum(-1) * head.stride)
        return torch.stack(coords, -1)
    locref = outputs.get("locref") if getattr(head, "locref_head", None) is not None else None
    return heatmap_keypoints(score_maps(head, outputs), locref, head.stride, getattr(head, "locref_std", 1.0))
