"""BatchAugment: geometry agrees between pixels and labels, flips swap pairs, NaN handling, crops, configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.data.augment import BatchAugment, pairs_from_names

CONF = CONF_DIR / "augment"
NAN = float("nan")


def render_dots(points: torch.Tensor, h: int, w: int, sigma: float = 1.2) -> torch.Tensor:
    """[B, 2] sub-pixel dot centres (pixel centres at integers) -> [B, 3, h, w] gaussian dots."""
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    d2 = (xs - points[:, 0, None, None]) ** 2 + (ys - points[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2))[:, None].expand(-1, 3, -1, -1).contiguous()


def centroid(images: torch.Tensor) -> torch.Tensor:
    """Brightness-weighted centre [B, 2] (x, y) of channel 0, background removed."""
    img = images[:, 0]
    img = torch.where(img > 0.05 * img.amax(dim=(1, 2), keepdim=True), img, 0.0)
    h, w = img.shape[-2:]
    ys = torch.arange(h, dtype=img.dtype)[:, None]
    xs = torch.arange(w, dtype=img.dtype)[None, :]
    mass = img.sum(dim=(1, 2))
    return torch.stack([(img * xs).sum(dim=(1, 2)) / mass, (img * ys).sum(dim=(1, 2)) / mass], 1)


def one_dot_batch(b=12, h=60, w=76, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.stack([15 + (w - 30) * torch.rand(b, generator=g), 15 + (h - 30) * torch.rand(b, generator=g)], 1)
    images = render_dots(pts, h, w)
    kp = torch.cat([pts, torch.ones(b, 1)], 1).view(b, 1, 1, 3)
    return images, kp, torch.zeros(b, 0, 3)


@pytest.mark.parametrize("kwargs", [
    dict(rotation=40, scale=[0.7, 1.3], translation=0.05, affine_p=1.0),
    dict(hflip_p=1.0),
    dict(crop_size=[40, 50], crop_sampling={"p_around_animal": 1.0}),
    dict(crop_size=[48, 44], rotation=30, scale=[0.8, 1.2], translation=0.05, affine_p=1.0, hflip_p=0.5),
], ids=["affine", "flip", "crop", "all"])
def test_dot_lands_on_transformed_keypoint(kwargs):
    torch.manual_seed(0)
    images, kp, ukp = one_dot_batch()
    out, kp_out, _ = BatchAugment(**kwargs)(images, kp, ukp)
    found = torch.isfinite(kp_out[:, 0, 0, 0])
    assert found.sum() >= 10
    err = (centroid(out[found]) - kp_out[found, 0, 0, :2]).norm(dim=1)
    assert err.max() < 0.3, err  # a half-pixel convention slip would show here
    assert torch.equal(kp_out[found, 0, 0, 2], torch.ones(int(found.sum())))


def test_flip_mirrors_exactly_and_swaps_pairs():
    b, h, w = 3, 10, 13
    images = torch.rand(b, 3, h, w)
    kp = torch.rand(2, 4, 3).mul(8).expand(b, -1, -1, -1).clone()  # [B, N=2, K=4, 3]
    kp[:, 1, 3] = NAN
    ukp = torch.rand(b, 3, 3) * 8
    aug = BatchAugment(hflip_p=1.0, symmetric_pairs=[[0, 2], [1, 3]], unique_symmetric_pairs=[[0, 1]])
    out, kp_out, ukp_out = aug(images, kp, ukp)
    assert torch.equal(out, images.flip(-1))  # a mirror is copied exactly
    for i, j in [(0, 2), (2, 0), (1, 3), (3, 1)]:
        expect = kp[:, :, j].clone()
        expect[..., 0] = w - 1 - expect[..., 0]
        torch.testing.assert_close(kp_out[:, :, i], expect, equal_nan=True)
    assert torch.isnan(kp_out[:, 1, 1]).all()  # the NaN bodypart 3 moved to slot 1
    torch.testing.assert_close(ukp_out[:, 0, 0], w - 1 - ukp[:, 1, 0])
    torch.testing.assert_close(ukp_out[:, :, 1:], ukp[:, [1, 0, 2], 1:])


def test_pairs_from_names():
    parts = ["nose", "left_ear", "right_ear", "tail"]
    assert pairs_from_names([["left_ear", "right_ear"]], parts) == [(1, 2)]
    assert BatchAugment.pairs_from_names([["right_ear", "left_ear"]], parts) == [(2, 1)]
    with pytest.raises(ValueError, match="left_eye"):
        pairs_from_names([["left_eye", "right_ear"]], parts)
    aug = BatchAugment(hflip_p=1.0, symmetric_pairs=[["left_ear", "right_ear"]], bodyparts=parts)
    assert aug.symmetric_pairs == [(1, 2)]
    with pytest.raises(ValueError):
        BatchAugment(symmetric_pairs=[[0, 1], [1, 2]])


def test_keypoints_outside_become_nan():
    # Zoom x2 about the centre (15.5, 15.5) of a 32x32 image: corners leave, the centre stays.
    images = torch.rand(1, 3, 32, 32)
    kp = torch.tensor([[[[0.0, 0.0, 1.0], [15.0, 16.0, 1.0], [31.0, 20.0, 2.0], [23.0, 23.0, 1.0]]]])
    ukp = torch.tensor([[[31.0, 31.0, 1.0], [14.0, 14.0, 0.5]]])
    _, kp_out, ukp_out = BatchAugment(scale=[2.0, 2.0], affine_p=1.0)(images, kp, ukp)
    assert torch.isnan(kp_out[0, 0, [0, 2]]).all()
    torch.testing.assert_close(kp_out[0, 0, 1], torch.tensor([14.5, 16.5, 1.0]))
    torch.testing.assert_close(kp_out[0, 0, 3], torch.tensor([30.5, 30.5, 1.0]))
    assert torch.isnan(ukp_out[0, 0]).all()
    torch.testing.assert_close(ukp_out[0, 1], torch.tensor([12.5, 12.5, 0.5]))


def test_nan_keypoints_stay_nan_and_pixels_stay_finite():
    torch.manual_seed(1)
    b = 4
    images = torch.rand(b, 3, 70, 90)
    kp = torch.rand(b, 3, 5, 3) * 60
    kp[0] = NAN  # an image without labels
    kp[1, 2] = NAN  # a padded individual
    kp[2, :, 1, 0] = NAN  # x missing only
    aug = instantiate(OmegaConf.load(CONF / "default.yaml"), crop_size=[64, 64], motion_blur_p=0.5,
                      brightness=0.2, contrast=0.2, brightness_contrast_p=0.5, grayscale_p=0.5)
    for _ in range(3):
        out, kp_out, ukp_out = aug(images, kp, torch.zeros(b, 0, 3))
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        assert torch.isnan(kp_out[0]).all() and torch.isnan(kp_out[1, 2]).all()
        assert torch.isnan(kp_out[2, :, 1]).all()
        assert torch.equal(torch.isnan(kp_out).all(-1), torch.isnan(kp_out).any(-1))
        assert ukp_out.shape == (b, 0, 3)


def test_crop_size_fixed_and_centred_on_animals():
    torch.manual_seed(2)
    b, h, w = 64, 150, 200
    images = torch.rand(b, 3, h, w)
    kp = torch.full((b, 2, 2, 3), NAN)
    kp[:, 0, 0] = torch.stack([torch.rand(b) * (w - 1), torch.rand(b) * (h - 1), torch.ones(b)], 1)
    ukp = torch.zeros(b, 0, 3)
    out, kp_out, _ = BatchAugment(crop_size=[32, 40])(images, kp, ukp)
    assert out.shape == (b, 3, 32, 40)
    kept = torch.isfinite(kp_out[:, 0, 0, 0]).float().mean()
    assert kept >= 0.8
    # Crops are whole-pixel shifts: each kept keypoint still sits on its source pixel's value.
    for i in torch.nonzero(torch.isfinite(kp_out[:, 0, 0, 0])).flatten()[:5].tolist():
        sx, sy = kp[i, 0, 0, :2].round().long().tolist()
        ox, oy = kp_out[i, 0, 0, :2].round().long().tolist()
        assert torch.equal(out[i, :, oy, ox], images[i, :, sy, sx])
    _, kp_uniform, _ = BatchAugment(crop_size=[32, 40], crop_sampling={"p_around_animal": 0.0})(images, kp, ukp)
    assert torch.isfinite(kp_uniform[:, 0, 0, 0]).float().mean() < 0.5


def test_crop_pads_small_images():
    images = torch.rand(2, 3, 20, 30)
    kp = torch.tensor([[5.0, 7.0, 1.0]]).expand(2, 1, 1, 3)
    out, kp_out, _ = BatchAugment(crop_size=[48, 48])(images, kp, torch.zeros(2, 0, 3))
    assert out.shape == (2, 3, 48, 48)
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))  # nothing lost
    dy, dx = kp_out[0, 0, 0, 1] - 7.0, kp_out[0, 0, 0, 0] - 5.0
    assert torch.equal(out[0, :, int(dy):int(dy) + 20, int(dx):int(dx) + 30], images[0])


def test_deterministic_given_seed():
    images, kp, ukp = one_dot_batch(b=4)
    aug = instantiate(OmegaConf.load(CONF / "default.yaml"), crop_size=[32, 32], noise_p=1.0)
    torch.manual_seed(5)
    first = aug(images, kp, ukp)
    torch.manual_seed(5)
    second = aug(images, kp, ukp)
    for x, y in zip(first, second):
        torch.testing.assert_close(x, y, equal_nan=True, rtol=0, atol=0)


def test_none_config_is_identity():
    aug = instantiate(OmegaConf.load(CONF / "none.yaml"))
    images, kp, ukp = torch.rand(2, 3, 16, 20), torch.rand(2, 1, 3, 3) * 40, torch.rand(2, 1, 3)
    out = aug(images, kp, ukp)
    assert out[0] is images and out[1] is kp and out[2] is ukp


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_configs_instantiate_and_run(path):
    aug = instantiate(OmegaConf.load(path))
    assert isinstance(aug, BatchAugment)
    torch.manual_seed(0)
    images, kp, ukp = one_dot_batch(b=2, h=40, w=50)
    out, kp_out, ukp_out = aug(images, kp, ukp)
    size = tuple(aug.crop_size) if aug.crop_size is not None else (40, 50)
    assert out.shape == (2, 3, *size) and kp_out.shape == kp.shape and ukp_out.shape == ukp.shape
    assert torch.isfinite(out).all()


@pytest.mark.gpu
def test_runs_on_cuda_like_on_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    images, kp, ukp = one_dot_batch(b=4)
    aug = BatchAugment(crop_size=[40, 40], hflip_p=0.5, grayscale_p=0.5, brightness=0.2, brightness_contrast_p=0.5)
    torch.manual_seed(3)
    cpu = aug(images, kp, ukp)
    torch.manual_seed(3)
    gpu = aug(images.cuda(), kp.cuda(), ukp.cuda())
    assert all(t.is_cuda for t in gpu)
    for x, y in zip(cpu, gpu):  # per-sample draws come from the CPU generator: same result
        torch.testing.assert_close(x, y.cpu(), equal_nan=True, atol=1e-5, rtol=0)
