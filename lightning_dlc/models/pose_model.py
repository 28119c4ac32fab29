"""PoseModel = backbone + optional neck + named heads, each head owning targets, loss and predictor."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from inspect import signature

import torch
from torch import nn

from lightning_dlc.models.heads.identity import CropIdentityHead, assign_identities
from lightning_dlc.models.top_down import TopDown
from lightning_dlc.project.records import ProjectMeta

log = logging.getLogger(__name__)

# What each head role learns: the size argument its head takes, and that size for a project
# (0 = the project has nothing for this role, and the head is not built).
ROLES: dict[str, tuple[str, Callable[[ProjectMeta], int]]] = {
    "bodypart": ("n_bodyparts", lambda meta: len(meta.bodyparts)),
    "unique_bodypart": ("n_bodyparts", lambda meta: len(meta.unique_bodyparts)),
    "identity": ("n_identities", lambda meta: len(meta.individuals) if meta.identity else 0),
}


def model_from_config(cfg, meta: ProjectMeta) -> PoseModel:
    """Instantiate a ``conf/model`` node for a project (metadata passed as an object, not merged into config)."""
    from hydra.utils import instantiate

    return instantiate(cfg, _partial_=True, _convert_="all")(meta=meta)


def build_pose_model(backbone: nn.Module, heads: Mapping, meta: ProjectMeta,
                     neck: Callable[..., nn.Module] | None = None, top_down: Mapping | None = None,
                     weights: str | None = None, conditional: bool = False) -> PoseModel:
    """The model a named config describes, fitted to a project (the target of ``conf/model/*.yaml``).

    ``heads`` holds ``single`` (roles for a one-animal project: a heatmap head in DeepLabCut)
    and ``multi`` (a multi-animal project: PAF, DEKR, ...), plus optional ``unique_bodypart``
    and ``identity`` heads, built only when the project has unique bodyparts or
    ``identity: true``. A head whose ``edges`` is ``"skeleton"`` learns the project's
    skeleton instead of the full graph.

    ``top_down`` (the arguments of :class:`~lightning_dlc.models.top_down.TopDown`: crop size,
    margin, box jitter) makes a top-down model: the ``single`` heads read one animal per crop, for
    any project; unique bodyparts are not learned from crops; with ``identity: true`` a
    :class:`~lightning_dlc.models.heads.identity.CropIdentityHead` (ours) learns which individual a crop shows.

    ``conditional`` (``ctd_*`` configs): the backbone reads each crop's proposed pose besides the
    crop (conditional top-down); ``forward(images, conditions)``. Set in the config so readers of
    it know without building the model.

    ``weights`` (``model.weights=``, fine-tuning): a snapshot, ours or DeepLabCut's, to start from
    (:func:`~lightning_dlc.models.snapshot_files.init_from_snapshot`).
    """
    model = _build(backbone, heads, meta, neck, top_down)
    if model.conditional != conditional:  # the config's flag is what readers of the config go by
        raise ValueError(f"model.conditional is {conditional}, but backbone {type(model.backbone).__name__} is "
                         f"{'' if model.conditional else 'not '}conditional")
    if weights:
        from lightning_dlc.models.snapshot_files import init_from_snapshot

        init_from_snapshot(model, weights)
    return model


def _build(backbone, heads, meta, neck, top_down) -> PoseModel:
    if not isinstance(backbone, nn.Module):  # a conditional (CTD) backbone: one condition channel per bodypart
        backbone = backbone(n_bodyparts=len(meta.bodyparts))
    unknown = set(heads) - {"single", "multi", *ROLES}
    if unknown:
        raise ValueError(f"unknown keys in model.heads: {sorted(unknown)}; "
                         f"expected single, multi and optional {sorted(set(ROLES) - {'bodypart'})}")
    if top_down is not None:
        if meta.unique_bodyparts:
            log.warning("top-down model: unique bodyparts %s are not learned from animal crops (their predictions "
                        "are NaN); a bottom-up model learns them", list(meta.unique_bodyparts))
        crop_heads = {"bodypart": heads["single"]["bodypart"], "identity": partial(CropIdentityHead)}
        return PoseModel(backbone, crop_heads, meta, neck, TopDown(**top_down))
    chosen = dict(heads["multi" if meta.multianimal else "single"])
    chosen.update({role: factory for role, factory in heads.items() if role in ROLES and factory is not None})
    for role, factory in chosen.items():
        if isinstance(factory, partial) and factory.keywords.get("edges") == "skeleton":
            chosen[role] = partial(factory, edges=skeleton_edges(meta))
    return PoseModel(backbone, chosen, meta, neck)


def skeleton_edges(meta: ProjectMeta) -> list[tuple[int, int]]:
    """config.yaml's skeleton as bodypart index pairs (an error names a part that is not a bodypart)."""
    index = {name: i for i, name in enumerate(meta.bodyparts)}
    missing = sorted({p for edge in meta.skeleton for p in edge} - set(index))
    if missing or not meta.skeleton:
        raise ValueError(f"edges=skeleton needs config.yaml's skeleton to link multi-animal bodyparts; "
                         f"skeleton={list(meta.skeleton)}, unknown parts: {missing}")
    return [(index[a], index[b]) for a, b in meta.skeleton]


class PoseModel(nn.Module):
    """Maps images to head outputs; knows nothing about optimizers or logging.

    ``heads`` maps a role (``bodypart``, ``unique_bodypart``) to a head factory (a Hydra
    ``_partial_``) called with the features' channels and stride and the role's number of
    keypoints: project metadata enters the model here, once.
    """

    def __init__(self, backbone: nn.Module, heads: dict[str, Callable[..., nn.Module]], meta: ProjectMeta,
                 neck: Callable[..., nn.Module] | None = None, top_down: TopDown | None = None):
        super().__init__()
        self.meta = meta
        self.top_down = top_down  # None: bottom-up (whole images); else it reads one animal per crop
        self.backbone = backbone
        channels, stride = backbone.out_channels, backbone.stride
        # a neck that learns one token per keypoint (DeepLabCut's TokenPose) is told how many
        wants_count = neck is not None and "n_bodyparts" in signature(neck).parameters
        counts = {"n_bodyparts": len(meta.bodyparts)} if wants_count else {}
        self.neck = neck(in_channels=channels, in_stride=stride, **counts) if neck is not None else None
        if self.neck is not None:
            channels, stride = self.neck.out_channels, self.neck.stride
        unknown = set(heads) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown head roles {sorted(unknown)}; known: {sorted(ROLES)}")
        sizes = {role: (ROLES[role][0], ROLES[role][1](meta)) for role in heads}
        self.heads = nn.ModuleDict({
            role: factory(in_channels=channels, in_stride=stride, **{sizes[role][0]: sizes[role][1]})
            for role, factory in heads.items() if factory is not None and sizes[role][1] > 0
        })
        if "bodypart" not in self.heads:
            raise ValueError("a pose model needs a bodypart head (model.heads.single/multi.bodypart)")

    @property
    def conditional(self) -> bool:
        """A conditional top-down (CTD) model: ``forward`` needs each crop's proposed pose."""
        return bool(getattr(self.backbone, "conditional", False))

    def forward(self, images: torch.Tensor,
                conditions: torch.Tensor | None = None) -> dict[str, dict[str, torch.Tensor]]:
        return self.run_heads(self.features(images, conditions))

    def features(self, images: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """What the heads read: the backbone's (and neck's) features.

        ``conditions`` (CTD models only): ``[B, n_bodyparts, 3]`` (x, y, score) per image, in its
        pixels; NaN or score 0 for a missing keypoint.
        """
        if self.conditional and conditions is None:
            raise ValueError(f"{type(self.backbone).__name__} is a conditional (CTD) model: it needs conditions, "
                             f"each crop's proposed pose [batch, {len(self.meta.bodyparts)} bodyparts, 3] "
                             "(x, y, score), e.g. from a bottom-up model's predictions")
        if not self.conditional and conditions is not None:
            raise ValueError(f"{type(self.backbone).__name__} is not a conditional (CTD) model; it takes no conditions")
        features = self.backbone(images, conditions) if self.conditional else self.backbone(images)
        return self.neck(features) if self.neck is not None else features

    def run_heads(self, features: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        return {role: head(features) for role, head in self.heads.items()}

    def loss(self, outputs, keypoints: torch.Tensor, unique_keypoints: torch.Tensor | None = None,
             identities: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-head losses with targets made on the batch's device; ``total`` sums them. ``identities``
        (top-down crops): the individual each crop shows, what a crop's identity head learns."""
        labels = {"bodypart": keypoints, "identity": keypoints if self.top_down is None else identities,
                  "unique_bodypart": None if unique_keypoints is None else unique_keypoints.unsqueeze(1)}
        losses: dict[str, torch.Tensor] = {}
        for role, head in self.heads.items():
            for name, value in head.loss(outputs[role], head.targets(labels[role], outputs[role])).items():
                losses[f"{role}/{name}"] = value
        losses["total"] = sum(v for k, v in losses.items() if k.endswith("/total"))
        return losses

    @torch.no_grad()
    def predict(self, outputs) -> dict[str, torch.Tensor]:
        """``bodypart``: [B, n_individuals, K, 3]; ``unique_bodypart``: [B, 1, K_unique, 3].

        With an identity head, ``identity`` holds each predicted animal's identity
        probabilities ``[B, n_individuals, n_identities]`` and ``bodypart`` rows are reordered
        so row n is the animal recognised as individual n (``individuals`` in config.yaml).
        """
        animals = 1 if self.top_down is not None else self.meta.max_individuals
        predictions = {role: head.predict(outputs[role], 1 if role == "unique_bodypart" else animals)
                       for role, head in self.heads.items() if role != "identity"}
        if "identity" in self.heads and self.top_down is not None:  # per crop: TopDown matches a frame's crops
            predictions["identity"] = self.heads["identity"].predict(outputs["identity"])
        elif "identity" in self.heads:
            probs = self.heads["identity"].predict(outputs["identity"], predictions["bodypart"])
            predictions["bodypart"] = assign_identities(predictions["bodypart"], probs)
            predictions["identity"] = assign_identities(probs, probs)  # row n: the scores of row n's animal
        return predictions
