"""DeepLabCut's multi-animal bottom-up head: heatmaps + locref + part-affinity fields (PAFs).

With ``n_stages > 0`` it is DeepLabCut's DLCRNet head: a first transposed conv predicts
heatmaps, PAFs and a feature bank at half the input stride; each refinement stage reads all
three and predicts new heatmaps (added to the previous stage's) and PAFs; the last stage's
maps are upsampled to the output stride. With ``n_stages = 0`` heatmaps, locref and PAFs are
read straight from the backbone's features (DeepLabCut's ResNet/HRNet + PAF models).

Targets, scores and assembly live in :mod:`paf_targets` / :mod:`heatmap_targets`.
"""
from __future__ import annotations

import math
import random
from itertools import combinations

import torch
from torch import nn

from lightning_dlc.models.heads.heatmap import HeatmapHead, upsample_steps, upsampler
from lightning_dlc.models.heads.heatmap_targets import LOCREF_STD
from lightning_dlc.models.heads.losses import weighted_huber
from lightning_dlc.models.heads.paf_targets import paf_targets, predict_paf

# DeepLabCut prunes the full graph above this many edges (15+ bodyparts) to an average degree of 6.
MAX_FULL_GRAPH_EDGES = 104


def paf_graph(n_bodyparts: int, skeleton: list[tuple[int, int]] | None = None, average_degree: int = 6,
              seed: int = 0) -> list[tuple[int, int]]:
    """The edges a PAF head learns: the skeleton if given, else every pair of bodyparts.

    Like DeepLabCut, a full graph larger than ``MAX_FULL_GRAPH_EDGES`` edges is pruned to a
    random connected subgraph with the given average degree (seeded: the same project always
    gets the same graph, so a checkpoint and its config agree).
    """
    if skeleton:
        return [tuple(sorted(e)) for e in skeleton]
    full = list(combinations(range(n_bodyparts), 2))
    if len(full) <= MAX_FULL_GRAPH_EDGES:
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


class PafHead(HeatmapHead):
    """Heatmaps + locref (as :class:`HeatmapHead`) plus 2 PAF channels per graph edge.

    Defaults are DeepLabCut's multi-animal ones: plateau targets of radius 17 px with BCE,
    locref Huber x0.05, PAF width 20 px with Huber x0.1, output stride 8.

    Args:
        edges: ``[[a, b], ...]`` bodypart index pairs; None = :func:`paf_graph` of all bodyparts.
        n_stages: DLCRNet refinement stages (0 = plain convs on the backbone features).
        features_dim: channels of the feature bank the stages share.
        predict_kwargs: passed to :func:`predict_paf` (``max_peaks``, ``peak_threshold``,
            ``min_affinity``, ...).
    """

    def __init__(self, in_channels: int, in_stride: int, n_bodyparts: int, edges=None,
                 output_stride: float | None = 8, n_upsample: int | None = None, n_stages: int = 0,
                 features_dim: int = 128, target: str = "plateau", radius: float = 17.0,
                 loss: str = "bce", locref_weight: float = 0.05, paf_width: float = 20.0,
                 paf_weight: float = 0.1, locref_std: float = LOCREF_STD,
                 predict_kwargs: dict | None = None, **heatmap_kwargs):
        self.edges = [tuple(e) for e in (paf_graph(n_bodyparts) if edges is None else edges)]
        if n_stages > 0:  # the stem's deconv already halves the stride
            heatmap_kwargs["n_upsample"] = max(upsample_steps(in_stride, output_stride, n_upsample) - 1, 0)
            stem_stride = in_stride / 2
        else:
            heatmap_kwargs["n_upsample"] = n_upsample
            stem_stride = in_stride
        n_paf = 2 * len(self.edges)
        refined = features_dim + n_bodyparts + n_paf
        super().__init__(refined if n_stages else in_channels, stem_stride, n_bodyparts,
                         output_stride=output_stride, target=target, radius=radius, loss=loss,
                         locref_weight=locref_weight, locref_std=locref_std, **heatmap_kwargs)
        steps = round(math.log2(stem_stride / self.stride))
        self.n_stages, self.paf_width, self.paf_weight = n_stages, paf_width, paf_weight
        self.predict_kwargs = dict(predict_kwargs or {})
        self.paf = upsampler(refined if n_stages else in_channels, n_paf, steps)
        if n_stages:
            # locref reads the backbone directly (as in DeepLabCut), through one more deconv
            self.locref = upsampler(in_channels, 2 * n_bodyparts, steps + 1) if self.locref is not None else None
            self.stem = upsampler(in_channels, refined, 1)
            self.heatmap_stages = nn.ModuleList(nn.Conv2d(refined, n_bodyparts, 3, padding=1)
                                                for _ in range(n_stages))
            self.paf_stages = nn.ModuleList(nn.Conv2d(refined, n_paf, 3, padding=1) for _ in range(n_stages))
        self._split = (n_bodyparts, n_paf, features_dim)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.locref is not None:
            out["locref"] = self.locref(features)
        x = features
        if self.n_stages:
            x = self.stem(features)
            heat, _, bank = x.split(self._split, dim=1)
            for i, (heat_layer, paf_layer) in enumerate(zip(self.heatmap_stages, self.paf_stages)):
                new_heat = heat_layer(x)
                heat = new_heat + heat if i > 0 else new_heat
                x = torch.cat([heat, paf_layer(x), bank], dim=1)
        out["heatmap"] = self.heatmap(x)
        out["paf"] = self.paf(x)
        return out

    def targets(self, keypoints: torch.Tensor, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        targets = super().targets(keypoints, outputs)
        size = tuple(outputs["paf"].shape[-2:])
        targets["paf"], targets["paf_weights"] = paf_targets(keypoints, self.edges, size, self.stride,
                                                             self.paf_width)
        return targets

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = super().loss(outputs, targets)
        losses["paf"] = self.paf_weight * weighted_huber(outputs["paf"], targets["paf"], targets["paf_weights"])
        losses["total"] = losses["total"] + losses["paf"]
        return losses

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], n_individuals: int = 1) -> torch.Tensor:
        """Peaks (capped) -> locref -> greedy PAF assembly: ``[B, n_individuals, K, 3]``."""
        return predict_paf(self.probabilities(outputs), outputs.get("locref"), outputs["paf"].float(),
                           self.edges, self.stride, n_individuals, locref_std=self.locref_std,
                           **self.predict_kwargs)
