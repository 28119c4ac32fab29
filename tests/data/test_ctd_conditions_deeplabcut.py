"""Our generative sampling (conditions for CTD training) against DeepLabCut 3's ``GenerativeSampler``: the same
distribution of condition errors (by sampling both many times; the draws themselves differ).

Needs DeepLabCut: skipped without it, a failure under LIGHTNING_DLC_REQUIRE_PEER=1 (CI);
.ci/run runs it in DeepLabCut's environment:

    PYTHONPATH=. /tmp/dlc-baseline/venv/bin/python -m pytest tests/data/test_ctd_conditions_deeplabcut.py
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlc_peer import import_deeplabcut  # noqa: E402  (tests/ is on sys.path)
import_deeplabcut()

from deeplabcut.pose_estimation_pytorch.data.generative_sampling import GenerativeSampler  # noqa: E402

from lightning_dlc.data.ctd_conditions import sample_conditions  # noqa: E402

pytestmark = pytest.mark.slow  # thousands of DeepLabCut draws

K, DRAWS, AREA, SIZE = 5, 1500, 3600.0, (400, 400)


def _scene():
    """Two overlapping animals (swaps possible) with one unlabeled keypoint."""
    rng = np.random.default_rng(0)
    own = np.concatenate([rng.uniform(150, 210, (K, 2)), np.ones((K, 1))], 1)
    other = own.copy()
    other[:, :2] += rng.uniform(-20, 20, (K, 2))
    own[4] = (0, 0, 0)  # unlabeled (DeepLabCut's visibility 0)
    return own, other


def _errors(samples: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per draw and keypoint, the distance class of the condition: 0 <= d85 < 1 <= d50 < 2 <= d10 < 3."""
    d = np.linalg.norm(samples[..., :2] - own[None, :, :2], axis=-1)
    edges = np.sqrt(-2 * AREA * 0.2 ** 2 * np.log([0.85, 0.5, 0.1]))
    return np.digitize(d, edges)


def test_condition_errors_are_distributed_as_deeplabcuts():
    own, other = _scene()
    np.random.seed(0)
    import random

    random.seed(0)
    sampler = GenerativeSampler(K)
    theirs = np.stack([sampler(own.copy(), np.stack([own, other]), AREA, SIZE) for _ in range(DRAWS)])
    torch.manual_seed(0)
    kp = torch.as_tensor(own, dtype=torch.float32)
    kp[4] = torch.tensor([float("nan"), float("nan"), 0.0])
    near = torch.as_tensor(np.stack([own, other]), dtype=torch.float32)
    near[:, 4] = torch.tensor([float("nan"), float("nan"), 0.0])
    ours = sample_conditions(kp.expand(DRAWS, K, 3), near.expand(DRAWS, 2, K, 3), torch.full((DRAWS,), AREA),
                             torch.tensor(SIZE, dtype=torch.float32).expand(DRAWS, 2)).numpy()
    # the unlabeled keypoint: no condition (DeepLabCut: 0, 0, 0; ours NaN, score 0)
    assert (theirs[:, 4] == 0).all() and np.isnan(ours[:, 4, :2]).all() and (ours[:, 4, 2] == 0).all()
    assert (theirs[:, :4, 2] == 2).all() and (ours[:, :4, 2] == 2).all()
    for j in range(4):
        a = np.bincount(_errors(theirs[:, :4], own[:4])[:, j], minlength=4) / DRAWS
        b = np.bincount(_errors(ours[:, :4], own[:4])[:, j], minlength=4) / DRAWS
        # binomial noise of 1500 draws: about 0.013 per class; 0.05 catches a wrong probability or radius
        np.testing.assert_allclose(b, a, atol=0.05, err_msg=f"keypoint {j}: distance classes {b} vs DeepLabCut {a}")
