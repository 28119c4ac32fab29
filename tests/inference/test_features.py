"""Keypoint features taken during video analysis: the sampling convention, and equality with a separate forward
pass on the same frames (resized, padded, channels-last, micro-batches): DeepLabCut issue 2794's bug class."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.data.demo import demo_meta
from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.data.video_writer import write_video
from lightning_dlc.inference.analyze import analyze_video
from lightning_dlc.inference.features import (APPEARANCE_PATCH, FeaturesFile, appearance_maps, feature_layer,
                                              sample_at_keypoints)
from lightning_dlc.inference.predictor import Predictor
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.models.preprocess import normalize_images
from video_frames import decode_rgb  # tests/video_frames.py

WIDTH, HEIGHT, N_FRAMES = 100, 90, 10  # neither a multiple of 32: the network input is padded


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An untrained small single-animal model (stride 16) and a 10-frame demo video of 100 x 90 px."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=resnet_18", "model.backbone.name=regnetx_002",
                                          "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, demo_meta(multianimal=False)).eval()
    video = tmp_path_factory.mktemp("features") / "fish.mp4"
    write_video(video, render_scene(n_frames=N_FRAMES, n_fish=1, width=WIDTH, height=HEIGHT).frames, 30.0)
    return SimpleNamespace(model=model, video=video)


def _bilinear(feature_map: np.ndarray, x: float, y: float, stride: int) -> np.ndarray:
    """Independent reference: cell centres at (i + 0.5) s - 0.5, border values past the outer centres."""
    d, h, w = feature_map.shape
    u = np.clip((x + 0.5) / stride - 0.5, 0, w - 1)
    v = np.clip((y + 0.5) / stride - 0.5, 0, h - 1)
    j0, i0 = int(np.floor(u)), int(np.floor(v))
    j1, i1 = min(j0 + 1, w - 1), min(i0 + 1, h - 1)
    a, b = u - j0, v - i0
    return ((1 - a) * (1 - b) * feature_map[:, i0, j0] + a * (1 - b) * feature_map[:, i0, j1]
            + (1 - a) * b * feature_map[:, i1, j0] + a * b * feature_map[:, i1, j1])


def test_a_cell_is_read_at_its_centre_and_between_centres_linearly():
    stride, h, w = 8, 4, 5
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    feature_map = torch.stack([cols, rows])[None]                     # channel 0: column, 1: row
    # cell (row 2, col 3) has its centre at pixel (3 * 8 + 3.5, 2 * 8 + 3.5) = (27.5, 19.5)
    centre = torch.tensor([(3.0 + 0.5) * stride - 0.5, (2.0 + 0.5) * stride - 0.5])
    assert centre.tolist() == [27.5, 19.5]
    points = torch.stack([centre, centre + torch.tensor([stride / 4, stride / 2]),  # a quarter, half way on
                          torch.tensor([-3.0, 100.0]),                              # outside: border cells
                          torch.tensor([float("nan"), 5.0])]).reshape(1, 1, 4, 2)
    out = sample_at_keypoints(feature_map, points, stride)[0, 0]
    np.testing.assert_allclose(out[:3].numpy(), [[3, 2], [3.25, 2.5], [0, h - 1]], atol=1e-6)
    assert torch.isnan(out[3]).all()
    # the same as the independent reference on a random map
    rng = np.random.default_rng(0)
    random_map = rng.normal(size=(6, h, w)).astype(np.float32)
    xy = rng.uniform(-4, 44, size=(7, 2)).astype(np.float32)
    got = sample_at_keypoints(torch.from_numpy(random_map)[None], torch.from_numpy(xy).reshape(1, 1, 7, 2), stride)
    want = np.stack([_bilinear(random_map, x, y, stride) for x, y in xy])
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-5)


def _patch_statistics(image: np.ndarray, patch: int) -> np.ndarray:
    """Independent reference: ``[6, H, W]`` mean and std (ddof 0) of each channel over the patch around each
    pixel, counting only pixels inside the image (NaN padding left out)."""
    r = patch // 2
    padded = np.pad(image.astype(np.float64), ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch), axis=(1, 2))  # [3, H, W, p, p]
    return np.concatenate([np.nanmean(windows, (-2, -1)), np.nanstd(windows, (-2, -1))])


def test_appearance_is_the_patch_mean_and_spread_around_the_pixel():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 11, 13)).astype(np.float32)
    image[:, 4:, 6:] = [[[0.5]], [[-1.0]], [[2.0]]]               # a flat region: std 0 inside it
    got = appearance_maps(torch.from_numpy(image)[None], patch=5)[0].numpy()
    np.testing.assert_allclose(got, _patch_statistics(image, 5), atol=1e-5)
    np.testing.assert_allclose(got[:, 8, 10], [0.5, -1.0, 2.0, 0, 0, 0], atol=1e-3)


def test_top_down_models_read_their_crops_maps():
    """A top-down model's features come from its crops' backbone (tests/inference/test_top_down_identity.py)."""
    backbone = SimpleNamespace(out_channels=16, stride=8)
    assert feature_layer(SimpleNamespace(top_down=object(), neck=None, backbone=backbone))[1:] == ("backbone", 16, 8)


def _reference_features(model, video: Path, keypoints: np.ndarray, resize: float | None) -> np.ndarray:
    """A separate forward pass: frames decoded again, resized, padded to 32, the backbone alone in float32;
    the feature map's values, then the normalized input's patch mean and std (R, G, B)."""
    x = torch.from_numpy(decode_rgb(video)).permute(0, 3, 1, 2).float() / 255
    scale = resize or 1.0
    if resize:
        x = F.interpolate(x, scale_factor=resize, mode="area", recompute_scale_factor=False)
    x = F.pad(x, (0, -x.shape[-1] % 32, 0, -x.shape[-2] % 32))
    x = normalize_images(x)
    with torch.no_grad():
        maps = model.backbone(x).numpy()
    looks = [_patch_statistics(image, APPEARANCE_PATCH) for image in x.numpy()]
    stride = model.backbone.stride
    out = np.full((*keypoints.shape[:-1], maps.shape[1] + 6), np.nan, np.float32)
    for t, n, k in zip(*np.nonzero(np.isfinite(keypoints[..., 0]))):
        x_in, y_in = (keypoints[t, n, k, :2] + 0.5) * scale - 0.5   # frame pixels -> network-input pixels
        out[t, n, k] = np.concatenate([_bilinear(maps[t], x_in, y_in, stride), _bilinear(looks[t], x_in, y_in, 1)])
    return out


@pytest.mark.parametrize("resize, channels_last, micro_batch, batch_size", [
    (None, False, None, 4),      # padded 100 x 90 -> 128 x 96
    (0.75, True, 3, 4),          # resized then padded; channels-last; micro-batches of 3 in batches of 4
])
@pytest.mark.slow  # analyzes a video per case
def test_analysis_features_equal_a_separate_forward_pass(setup, tmp_path, resize, channels_last, micro_batch,
                                                         batch_size):
    predictor = Predictor(setup.model, device="cpu", channels_last=channels_last, resize=resize, precision="32",
                          micro_batch=micro_batch)
    summary = analyze_video(predictor, setup.video, tmp_path, batch_size=batch_size, chunk_frames=4, features=True,
                            reader="opencv", progress=False, verbose=False)
    prefix = Path(summary.h5).with_suffix("")
    table = pd.read_hdf(summary.h5, key="df_with_missing").to_numpy().reshape(N_FRAMES, 1, 5, 3)
    with FeaturesFile(f"{prefix}_features.h5") as stored:
        assert stored.shape == (N_FRAMES, 1, 5, 152 + 6)  # regnetx_002 cut at stride 16: 152 channels; appearance
        assert stored.attrs["stride"] == 16 and stored.attrs["layer"] == "backbone"
        assert stored.attrs["channels"] == 152 and stored.attrs["appearance"] == 6
        np.testing.assert_array_equal(stored.keypoints, table)   # read at the .h5's keypoints
        features = np.concatenate([chunk for _, chunk in stored.chunks(size=3)])
        np.testing.assert_array_equal(stored.rows([7, 2, 7], [0, 0, 0]), features[[7, 2, 7], 0])
    assert np.isfinite(table[..., :2]).all() and np.isfinite(features).all()
    want = _reference_features(setup.model.float().to(memory_format=torch.contiguous_format), setup.video, table,
                               resize)
    # each part against its own range: appearance values (normalized pixels) are smaller than the features;
    # float16 storage: relative error 1e-3; channels-last convolutions add rounding of the same order
    features_part, appearance = slice(0, 152), slice(152, None)
    for part in (features_part, appearance):
        np.testing.assert_allclose(features[..., part], want[..., part], atol=3e-3 * np.abs(want[..., part]).max(),
                                   rtol=2e-3)
    # the wrong convention (cell i centred at i * stride, issue 2794's kind of bug) is far off
    offset = 7.5 / (resize or 1)
    shifted = _reference_features(setup.model, setup.video, table + np.array([offset, offset, 0]), resize)
    scale = np.abs(want[..., features_part]).max()
    assert np.abs(shifted[..., features_part] - features[..., features_part]).max() > 30 * 3e-3 * scale


def test_the_features_option_does_not_change_predictions(setup, tmp_path):
    predictor = Predictor(setup.model, device="cpu", channels_last=False)
    frames = render_scene(n_frames=3, n_fish=1, width=WIDTH, height=HEIGHT).frames
    plain, with_features = predictor(frames), predictor(frames, features=True)
    assert set(with_features) == {*plain, "features"}
    np.testing.assert_array_equal(plain["bodypart"], with_features["bodypart"])
    assert with_features["features"].shape == (3, 1, 5, 152 + 6)
