"""Conditional top-down (CTD) training: DeepLabCut's generative sampling on the batch, crops around the
conditions, the training step, and the errors for a CTD model without conditions.

The architectures are tested in tests/models/test_dlc_ctd_models.py; here a stand-in conditional model
(a top-down resnet whose input gets the conditions drawn in) keeps the runs tiny.
"""
import pytest
import torch

from lightning_dlc.data.ctd_conditions import GenerativeSampling, sample_conditions
from lightning_dlc.lit.train import train
from lightning_dlc.models import ctd_crops
from lightning_dlc.models.top_down import TopDown
from ctd_standin import STANDIN  # tests/ is on sys.path
from test_train import compose_train, tiny_overrides  # tests/lit is on sys.path (pytest rootdir imports)


# ---- generative sampling -----------------------------------------------------------------------------
def _animals(m=400, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand((m, k, 3), generator=g) * 100
    kp[..., 2] = 1
    return kp


def test_sampling_keeps_most_keypoints_near_the_truth_with_deeplabcut_distances():
    kp = _animals()
    area = torch.full((len(kp),), 2500.0)
    out = sample_conditions(kp, kp[:, None], area, torch.tensor([[200.0, 200.0]]).expand(len(kp), 2),
                            generator=torch.Generator().manual_seed(1))
    d = (out[..., :2] - kp[..., :2]).norm(dim=-1)
    d85 = (-2 * 2500 * 0.2 ** 2 * torch.log(torch.tensor(0.85))).sqrt()
    d50 = (-2 * 2500 * 0.2 ** 2 * torch.log(torch.tensor(0.5))).sqrt()
    good = (d <= d85).float().mean()
    jitter = ((d > d85) & (d <= d50)).float().mean()
    assert 0.55 < good < 0.72  # DeepLabCut: 63 % good (renormalised when an error type is impossible)
    assert 0.10 < jitter < 0.24  # 16 % jitter
    assert (out[..., 2] == 2).all()  # DeepLabCut's visibility flag for synthesized keypoints


def test_sampling_leaves_unlabeled_keypoints_missing_and_clips_to_the_image():
    kp = _animals(50)
    kp[:, 1] = float("nan")
    kp[:, 2, 2] = 0  # visibility 0: unlabeled
    size = torch.tensor([[60.0, 40.0]]).expand(len(kp), 2)  # h, w: many labels lie outside
    out = sample_conditions(kp, kp[:, None], torch.full((len(kp),), 400.0), size)
    assert out[:, 1:3, :2].isnan().all() and (out[:, 1:3, 2] == 0).all()
    rest = out[:, [0, 3, 4]]
    assert (rest[..., 0] <= 40).all() and (rest[..., 1] <= 60).all() and (rest[..., :2] >= 0).all()


def test_sampling_error_probabilities_are_configurable():
    kp = _animals(200)
    only_good = GenerativeSampling(jitter_prob=0, swap_prob=0, inv_prob=0, miss_prob=0)
    out = sample_conditions(kp, kp[:, None], torch.full((200,), 2500.0), torch.full((200, 2), 500.0), only_good)
    d85 = (-2 * 2500 * 0.2 ** 2 * torch.log(torch.tensor(0.85))).sqrt()
    assert ((out[..., :2] - kp[..., :2]).norm(dim=-1) <= d85 + 1e-4).all()
    with pytest.raises(ValueError, match="probabilities"):
        GenerativeSampling(jitter_prob=0.9, miss_prob=0.5)


def test_training_crops_put_the_conditions_in_crop_pixels():
    top_down = TopDown(crop_size=(64, 64), margin=25)
    images = torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8)
    kp = torch.full((2, 3, 5, 3), float("nan"))
    kp[0, 0] = torch.tensor([[30.0, 30, 1], [40, 35, 1], [50, 40, 1], [60, 45, 1], [70, 50, 1]])
    kp[1, 2] = kp[0, 0] + torch.tensor([10.0, 20, 0])
    sizes = torch.tensor([[128, 128], [128, 128]])
    crops, cond = ctd_crops.training_crops(top_down, images, kp, sizes, 1.0, generator=torch.Generator())
    assert crops.images.shape == (2, 3, 64, 64) and cond.shape == (2, 5, 3)
    assert crops.image_index.tolist() == [0, 1] and crops.individual.tolist() == [0, 2]
    # conditions lie inside their crop (the crop is their box + margin), labels with them
    assert ((cond[..., :2] >= 0) & (cond[..., :2] <= 64)).all()
    assert torch.isfinite(crops.keypoints).all()


def test_missing_as_nan():
    c = torch.tensor([[[1.0, 2, 2], [float("nan"), 3, 2], [4, 5, 0]]])
    out = ctd_crops.missing_as_nan(c)
    assert out[0, 0].tolist() == [1, 2, 2] and out[0, 1:, :2].isnan().all() and (out[0, 1:, 2] == 0).all()


# ---- the training run --------------------------------------------------------------------------------
def ctd_overrides(project, out, *extra):
    return tiny_overrides(project, out, "model=top_down_resnet_18", "model.backbone.name=regnetx_002",
                          "model.backbone.pretrained=false", "model.top_down.crop_size=[64,64]",
                          "model.top_down.margin=25", *STANDIN, *extra)


@pytest.mark.slow
def test_ctd_model_trains_on_synthesized_conditions(tmp_path):
    out = tmp_path / "run"
    value = train(compose_train(ctd_overrides(tmp_path / "demo_project", out, "conditions=gt")))
    assert (out / "snapshot-001.ckpt").is_file()
    assert value == value  # validation ran on conditions synthesized from the labels: a number, not NaN


@pytest.mark.slow
def test_ctd_model_without_conditions_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="conditional top-down.*conditions=gt"):
        train(compose_train(ctd_overrides(tmp_path / "demo_project", tmp_path / "run")))


@pytest.mark.slow
def test_conditions_for_a_model_that_takes_none_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="takes none"):
        train(compose_train(tiny_overrides(tmp_path / "demo_project", tmp_path / "run",
                                           "conditions=/some/predictions.h5")))
