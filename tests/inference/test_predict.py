"""The batched predictor: a model rebuilt from a snapshot, predictions in original pixels, training's normalization."""
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc import api
from lightning_dlc.data.dataset import PoseDataset, collate_pose
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.inference import load_model, predict_dataset
from lightning_dlc.lit.pose import PoseModule
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project import ProjectConfig, load_shuffle



@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> tuple[Path, Path]:
    """(config.yaml, snapshot) of an untrained single-animal demo model; its run config asks for ImageNet
    weights from a file that does not exist, which loading a snapshot must not touch."""
    config = make_demo_project(tmp_path_factory.mktemp("predict") / "one", multianimal=False, n_frames=12,
                               n_labeled=10, size=96)
    api.create_training_dataset(config)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.project={config.parent}", "data.demo.multianimal=false",
                                          f"output_dir={config.parent / 'run'}"])
    meta = ProjectConfig.read(config).meta()
    torch.manual_seed(0)
    model = model_from_config(cfg.model, meta)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["model"]["backbone"].update(pretrained=True, weights="/nonexistent/imagenet.pt")
    path = config.parent / "snapshot-000.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0,
                "run_config": run_config, "project_meta": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in asdict(meta).items()}}, path)
    return config, path


def test_load_model_restores_weights_in_eval_mode(snapshot):
    _, path = snapshot
    model = load_model(path)
    assert not model.training and model.meta.bodyparts == ("snout", "head", "dorsal", "tailbase", "tailtip")
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(v, stored[f"model.{k}"]) for k, v in model.state_dict().items())


def test_load_model_refuses_other_files(snapshot, tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a lightning_dlc snapshot"):
        load_model(path)


def test_predictions_in_original_pixels_with_training_normalization(snapshot):
    config, path = snapshot
    model = load_model(path)
    _, test = load_shuffle(config, 1)
    dataset = PoseDataset(test, resize=0.5)
    out = predict_dataset(model, dataset, batch_size=3, device="cpu", pad_multiple=32)
    n = len(dataset)
    assert out["bodypart"].shape == (n, 1, 5, 3) and out["unique_bodypart"].shape == (n, 0, 3)

    module = PoseModule(model, optimizer=None)  # training's own preprocessing
    for i in range(n):
        batch = collate_pose([dataset[i]], pad_multiple=32)
        with torch.no_grad():
            predicted = model.predict(model(module.prepare(batch["image"])))["bodypart"][0].numpy()
        xy = (predicted[..., :2] + 0.5) / 0.5 - 0.5  # the half-size input's pixels -> the original image's
        np.testing.assert_allclose(out["bodypart"][i, ..., :2], xy, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(out["bodypart"][i, ..., 2], predicted[..., 2], rtol=1e-5, atol=1e-6)
    assert model.training is False
