"""DeepLabCut's multi-animal bottom-up head (``DLCRNetHead``): heatmaps + locref + part-affinity fields.

Layer for layer DeepLabCut 3's head, with its module names (so state dicts load as they are):

* ``convt1``/``convt2``/``convt3``/``convt4``: padded stride-2 deconvs of the features into
  heatmaps, locref, PAFs and a 128-channel feature bank (size 2H);
* ``hm_ref_layers`` / ``paf_ref_layers``: ``n_stages`` 3x3 convs, each reading the previous
  stage's heatmaps, PAFs and the bank; heatmaps of stages after the first add the previous ones;
* ``heatmap_head`` / ``paf_head`` / ``locref_head``: DeepLabCut's unpadded deconvs (2H -> 4H + 1)
  on the last stage (locref: on ``convt2``'s maps, no ReLU between).

With ``n_stages = 0`` the three maps are read from the features directly (DeepLabCut still
builds the unused ``convt`` layers, and so do we, for identical state dicts).
Targets (plateau heatmaps, locref, :func:`paf_targets`) are made at the head's stride; the
predictor is DeepLabCut's (:mod:`paf_assembly`).
"""
from __future__ import annotations

import math
import random
from itertools import combinations

import torch
from torch import nn

from lightning_dlc.models.heads.heatmap import DeconvMaps
from lightning_dlc.models.heads.heatmap_targets import LOCREF_STD, heatmap_targets, locref_targets
from lightning_dlc.models.heads.losses import aggregate, weighted_bce_with_logits, weighted_huber
from lightning_dlc.models.heads.paf_assembly import predict_paf
from lightning_dlc.models.heads.paf_targets import paf_targets

# DeepLabCut prunes the full graph from this many edges (15+ bodyparts) to an average degree of 6.
PRUNE_FROM_EDGES = 105


def paf_graph(n_bodyparts: int, skeleton: list[tuple[int, int]] | None = None, average_degree: int = 6,
              seed: int = 0) -> list[tuple[int, int]]:
    """The edges a PAF head learns: every pair ``(i, j), i < j`` (DeepLabCut's ``paf_graph``), or a skeleton.

    Like DeepLabCut, a full graph of ``PRUNE_FROM_EDGES`` edges or more is pruned to a random
    connected subgraph with the given average degree. DeepLabCut draws it unseeded and stores
    it in the model's config; ours is seeded, so a project always gets the same graph. The
    skeleton is our option (``edges: skeleton``); DeepLabCut 3 always learns the full graph.
    """
    if skeleton:
        return [tuple(sorted(e)) for e in skeleton]
    full = list(combinations(range(n_bodyparts), 2))
    if len(full) < PRUNE_FROM_EDGES:
        return full
    wanted = math.ceil(n_bodyparts * average_degree / 2)
    rng = random.Random(seed)
    while True:
        edges = sorted(rng.sample(full, wanted))
        if _connected(n_bodyparts, edges):
            return edges


def _connected(n: int, edges: list[tuple[int, int]]) -> bool:
    seen, stack = {0}, [0]
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    while stack:
        for m in neighbours.get(stack.pop(), []):
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return len(seen) == n


def _padded_deconv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """DeepLabCut's first-stage deconvs: padded to give exactly 2H (TensorFlow's 'same')."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1)


class PafHead(nn.Module):
    """DeepLabCut's ``DLCRNetHead`` with its plateau/locref/PAF targets, criteria and PAF predictor.

    Args:
        edges: ``[[a, b], ...]`` bodypart index pairs; None = :func:`paf_graph` (every pair).
        edges_to_keep: indices of ``edges`` used to assemble animals (DeepLabCut's
            ``paf_edges_to_keep``, its project's ``paf_best``); None = all.
        n_stages: refinement stages (DeepLabCut: 5).
        features_dim: channels of the feature bank the stages share.
        hidden_channels: widths of extra deconvs before each map's last one (DeepLabCut's
            ``dlcrnet_stride32_ms5``: ``[1152]``); each deconv doubles the resolution.
        radius: plateau and locref radius (DeepLabCut's ``pos_dist_thresh``), input pixels.
        paf_width: half-width of the PAF band, input pixels.
        predict_kwargs: passed to :func:`predict_paf` (``nms_radius``, ``sigma``, ``min_affinity``).
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, edges=None, edges_to_keep=None,
                 n_stages: int = 5, features_dim: int = 128, hidden_channels: list[int] | tuple = (),
                 radius: float = 17.0, locref_std: float = LOCREF_STD, locref_weight: float = 0.05,
                 paf_width: float = 20.0, paf_weight: float = 0.1, predict_kwargs: dict | None = None):
        super().__init__()
        self.edges = [tuple(int(v) for v in e) for e in (paf_graph(n_bodyparts) if edges is None else edges)]
        self.edges_to_keep = None if edges_to_keep is None else [int(i) for i in edges_to_keep]
        self.n_bodyparts, self.n_stages = n_bodyparts, n_stages
        self.radius, self.locref_std, self.locref_weight = float(radius), locref_std, locref_weight
        self.paf_width, self.paf_weight = paf_width, paf_weight
        self.predict_kwargs = dict(predict_kwargs or {})
        n_paf = 2 * len(self.edges)
        refined = features_dim + n_bodyparts + n_paf
        hidden = list(hidden_channels)
        maps_in = refined if n_stages > 0 else in_channels
        self.heatmap_head = DeconvMaps(maps_in, [*hidden, n_bodyparts])
        self.locref_head = DeconvMaps(2 * n_bodyparts if n_stages > 0 else in_channels, [*hidden, 2 * n_bodyparts])
        self.paf_head = DeconvMaps(maps_in, [*hidden, n_paf])
        self.convt1 = _padded_deconv(in_channels, n_bodyparts)
        self.convt2 = _padded_deconv(in_channels, 2 * n_bodyparts)
        self.convt3 = _padded_deconv(in_channels, n_paf)
        self.convt4 = _padded_deconv(in_channels, features_dim)
        self.hm_ref_layers = nn.ModuleList(nn.Conv2d(refined, n_bodyparts, 3, padding="same") for _ in range(n_stages))
        self.paf_ref_layers = nn.ModuleList(nn.Conv2d(refined, n_paf, 3, padding="same") for _ in range(n_stages))
        upsampling = 2 ** (len(hidden) + 1 + (n_stages > 0))
        self.stride = in_stride / upsampling

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.n_stages == 0:
            return {"heatmap": self.heatmap_head(features), "locref": self.locref_head(features),
                    "paf": self.paf_head(features)}
        heat, bank = self.convt1(features), self.convt4(features)
        x = torch.cat([heat, self.convt3(features), bank], dim=1)
        for i, (heat_layer, paf_layer) in enumerate(zip(self.hm_ref_layers, self.paf_ref_layers)):
            heat = heat_layer(x) + heat if i > 0 else heat_layer(x)  # the first stage replaces convt1's maps
            x = torch.cat([heat, paf_layer(x), bank], dim=1)
        return {"heatmap": self.heatmap_head(x), "locref": self.locref_head(self.convt2(features)),
                "paf": self.paf_head(x)}

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        size = tuple(outputs["heatmap"].shape[-2:])
        heatmap, heatmap_weights = heatmap_targets(keypoints, size, self.stride, radius=self.radius, mode="plateau")
        locref, locref_weights = locref_targets(keypoints, size, self.stride, self.radius, self.locref_std,
                                                mode="plateau")
        paf, paf_weights = paf_targets(keypoints, self.edges, tuple(outputs["paf"].shape[-2:]), self.stride,
                                       self.paf_width)
        return {"heatmap": heatmap, "heatmap_weights": heatmap_weights, "locref": locref,
                "locref_weights": locref_weights, "paf": paf, "paf_weights": paf_weights}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """DeepLabCut's criteria (BCE heatmaps, Huber locref and PAFs) and their weighted mean."""
        losses = {
            "heatmap": weighted_bce_with_logits(outputs["heatmap"], targets["heatmap"], targets["heatmap_weights"]),
            "locref": weighted_huber(outputs["locref"], targets["locref"], targets["locref_weights"]),
            "paf": weighted_huber(outputs["paf"], targets["paf"], targets["paf_weights"]),
        }
        losses["total"] = aggregate(losses, {"heatmap": 1.0, "locref": self.locref_weight, "paf": self.paf_weight})
        return losses

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs["heatmap"].float().sigmoid()

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """DeepLabCut's ``PartAffinityFieldPredictor``: ``[B, n_individuals, K, 3]``, NaN where missing."""
        return predict_paf(outputs["heatmap"], outputs["locref"], outputs["paf"], self.edges, self.stride,
                           n_individuals, edges_to_keep=self.edges_to_keep, locref_std=self.locref_std,
                           **self.predict_kwargs)
