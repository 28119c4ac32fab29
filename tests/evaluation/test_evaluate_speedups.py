"""Evaluation's fast path (micro-batches, channels-last, autocast) predicts what the plain batched path does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_dlc import api
from lightning_dlc.config_compose import compose_train
from lightning_dlc.data.dataset import PoseDataset
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.inference import predict_dataset
from lightning_dlc.inference.malloc import cpu_micro_batch
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig, load_shuffle


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    """An untrained single-animal demo model (its heatmaps are not flat: real peaks) and the demo's images."""
    config = make_demo_project(tmp_path_factory.mktemp("speedups") / "one", multianimal=False, n_frames=12,
                               n_labeled=10, size=96)
    api.create_training_dataset(config)
    cfg = compose_train([f"data.project={config.parent}", "data.demo.multianimal=false",
                         "model.backbone.name=regnetx_002", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = model_from_config(cfg.model, ProjectConfig.read(config).meta()).eval()
    train, _ = load_shuffle(config, 1)
    return model, PoseDataset(train)


def test_cpu_micro_batches_keep_the_largest_activation_under_the_mmap_threshold():
    assert cpu_micro_batch(480, 640) == 1 and cpu_micro_batch(480, 640, half=True) == 2
    assert cpu_micro_batch(96, 96) > 8 and cpu_micro_batch(10_000, 10_000) == 1


def test_micro_batches_and_channels_last_change_nothing(model_and_images):
    model, dataset = model_and_images
    plain = predict_dataset(model, dataset, batch_size=4, pad_multiple=32)
    for options in ({"micro_batch": 1}, {"micro_batch": 3, "channels_last": True},
                    {"micro_batch": "auto", "channels_last": True}):
        if options.get("channels_last"):
            model.to(memory_format=torch.channels_last)
        fast = predict_dataset(model, dataset, batch_size=4, pad_multiple=32, **options)
        model.to(memory_format=torch.contiguous_format)
        for coords, atol in ((slice(0, 2), 1e-3), (slice(2, 3), 1e-5)):  # px; scores
            np.testing.assert_allclose(fast["bodypart"][..., coords], plain["bodypart"][..., coords], atol=atol,
                                       err_msg=str(options))


def test_autocast_reaches_the_network(model_and_images):
    model, dataset = model_and_images
    plain = predict_dataset(model, dataset, batch_size=4, pad_multiple=32)
    bf16 = predict_dataset(model, dataset, batch_size=4, pad_multiple=32, micro_batch="auto",
                           autocast_dtype=torch.bfloat16)
    assert bf16["bodypart"].dtype == np.float32
    assert not np.array_equal(bf16["bodypart"][..., 2], plain["bodypart"][..., 2])  # bf16 ran
    np.testing.assert_allclose(bf16["bodypart"][..., 2], plain["bodypart"][..., 2], atol=0.05)
