"""Training with the unsupervised losses: the step on {"labeled", "unlabeled"} batches, the PCA fit from the
training labels only, what each kind of model accepts, and a two-epoch run on the demo project's video."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lightning_dlc.lit.pose import PoseModule
from lightning_dlc.lit.unlabeled import check_losses, fit_pca, frame_outputs, training_poses, unsupervised_losses
from lightning_dlc.models.losses.soft_keypoints import soft_keypoints
from lightning_dlc.models.backbones import TimmBackbone
from lightning_dlc.models.heads.heatmap import HeatmapHead
from lightning_dlc.models.losses.unsupervised import PcaSingleViewLoss, TemporalLoss, UnimodalLoss
from lightning_dlc.models.pose_model import PoseModel
from lightning_dlc.models.top_down import TopDown
from lightning_dlc.project.records import LabeledData, PoseRecord, ProjectMeta

SINGLE = ProjectMeta(bodyparts=("snout", "ear", "tail"), individuals=("animal",))
MULTI = ProjectMeta(bodyparts=("snout", "tail"), individuals=("a", "b"))


def tiny_model(meta: ProjectMeta, top_down: TopDown | None = None) -> PoseModel:
    backbone = TimmBackbone("resnet18", pretrained=False, out_index=2)  # stride 8
    heads = {"bodypart": lambda **kw: HeatmapHead(**kw, n_upsample=1, radius=9.0)}
    return PoseModel(backbone, heads, meta, top_down=top_down)


def all_losses() -> dict:
    return {"temporal": TemporalLoss(weight=0.5, epsilon=1.0), "pca_singleview": PcaSingleViewLoss(weight=0.1),
            "unimodal": UnimodalLoss(weight=2.0)}


def labeled_batch(b: int = 2, k: int = 3, size: int = 32) -> dict:
    xy = 4 + torch.rand(b, 1, k, 2, generator=torch.Generator().manual_seed(0)) * (size - 8)
    return {"image": torch.randint(0, 255, (b, 3, size, size), dtype=torch.uint8),
            "keypoints": torch.cat([xy, torch.ones(b, 1, k, 1)], -1), "unique_keypoints": torch.zeros(b, 0, 3),
            "index": torch.arange(b), "scale": torch.ones(b), "sizes": torch.full((b, 2), size)}


def unlabeled_batch(b: int = 2, t: int = 3, size: int = 32) -> dict:
    """The contract with the unlabeled video loader: normalized frames, their indices and videos."""
    return {"images": torch.randn(b, t, 3, size, size), "frame_index": torch.arange(t).repeat(b, 1) + 10,
            "video_index": torch.zeros(b, dtype=torch.int64)}


def module_with(losses: dict, meta: ProjectMeta = SINGLE) -> tuple[PoseModule, dict]:
    module = PoseModule(tiny_model(meta), optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                        unsupervised_losses=losses)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)  # no Trainer here
    return module, logged


# ---- the training step -------------------------------------------------------------------------------------
def test_the_step_adds_each_weighted_loss_and_logs_it():
    losses = all_losses()
    module, logged = module_with(losses)
    losses["pca_singleview"].fit(np.random.default_rng(0).uniform(0, 30, (20, 3, 2)))
    torch.manual_seed(0)
    labeled = labeled_batch()
    total = module.training_step({"labeled": labeled, "unlabeled": unlabeled_batch()}, 0)
    assert {"train.loss_temporal", "train.loss_pca_singleview", "train.loss_unimodal"} <= set(logged)
    extra = sum(losses[n].weight * float(logged[f"train.loss_{n}"].detach()) for n in losses)
    assert extra > 0
    supervised, _ = module_with({})
    supervised.model.load_state_dict(module.model.state_dict())
    torch.manual_seed(0)
    plain = float(supervised.training_step(labeled, 0).detach())
    assert float(total.detach()) == pytest.approx(plain + extra, rel=1e-5)
    total.backward()
    assert all(p.grad is not None for p in module.model.heads.parameters())


def test_a_plain_batch_trains_on_labels_only():
    module, logged = module_with(all_losses())
    module.training_step(labeled_batch(), 0)
    assert not any(name.startswith("train.loss_") for name in logged)


def test_a_semi_supervised_snapshot_is_an_ordinary_snapshot():
    module, _ = module_with(all_losses())
    module.unsupervised_losses["pca_singleview"].fit(np.random.default_rng(0).uniform(0, 30, (20, 3, 2)))
    plain, _ = module_with({})
    assert module.state_dict().keys() == plain.state_dict().keys()


# ---- the PCA subspace: the training split's labels, never the test split's -----------------------------------
def records(poses: np.ndarray) -> list[PoseRecord]:
    return [PoseRecord(image=Path(f"img{i}.png"), key=f"img{i}.png", size=(200, 200), keypoints=p[None],
                       unique_keypoints=np.zeros((0, 3), np.float32))
            for i, p in enumerate(poses.astype(np.float32))]


def poses_along(direction: np.ndarray, n: int, seed: int) -> np.ndarray:
    """3-keypoint poses varying along one shape ``direction [3, 2]``, each placed anywhere."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0], [20, 0], [40, 10]], dtype=np.float64)
    xy = base + rng.uniform(-8, 8, (n, 1, 1)) * direction + rng.uniform(20, 120, (n, 1, 2))
    return np.concatenate([xy, np.ones((n, 3, 1))], -1)


class FakeDataModule:
    """What fit_pca reads of a PoseDataModule: its splits (after setup) and its resize factor."""

    def __init__(self, train: np.ndarray, test: np.ndarray, resize: float | None = None):
        self.splits = {"train": LabeledData(SINGLE, records(train), Path(".")),
                       "test": LabeledData(SINGLE, records(test), Path("."))}
        self.resize = resize

    def setup(self, stage=None):
        pass


STRETCH = np.array([[-1.0, 0], [0, 0], [1, 0]])
BEND = np.array([[0.0, 0], [0, 1], [0, 0]])


def test_pca_is_fitted_from_the_training_split_only():
    train = poses_along(STRETCH, 30, seed=0)
    test = poses_along(BEND, 30, seed=1)  # would add a direction to the subspace
    losses = {"pca_singleview": PcaSingleViewLoss()}
    fit_pca(losses, FakeDataModule(train, test))
    loss = losses["pca_singleview"]
    assert loss.n_poses == 30 and loss.components.shape[0] == 1
    assert float(loss(torch.tensor(poses_along(STRETCH, 5, seed=2)[..., :2]))) < 1e-3
    assert float(loss(torch.tensor(test[..., :2]))) > 0.5  # the test split's shapes are off the subspace
    with_test = PcaSingleViewLoss()
    with_test.fit(np.concatenate([train, test]))
    assert with_test.components.shape[0] == 2, "had the test split been used, the subspace would differ"


def test_training_poses_are_in_resized_input_pixels():
    train = poses_along(STRETCH, 4, seed=0)
    poses = training_poses(FakeDataModule(train, train[:1], resize=0.5))
    assert poses.shape == (4, 3, 3)
    assert np.allclose(poses[..., :2], (train[..., :2] + 0.5) * 0.5 - 0.5)


def test_the_module_fits_pca_when_training_starts():
    module, _ = module_with({"pca_singleview": PcaSingleViewLoss()})
    module.trainer = SimpleNamespace(datamodule=FakeDataModule(poses_along(STRETCH, 10, 0), poses_along(BEND, 10, 1)))
    module.on_fit_start()
    assert module.unsupervised_losses["pca_singleview"].fitted


# ---- which models take which losses --------------------------------------------------------------------------
def test_multi_animal_bottom_up_takes_unimodal_only():
    model = tiny_model(MULTI)
    with pytest.raises(ValueError, match="carry no identity"):
        check_losses(model, {"temporal": TemporalLoss()})
    check_losses(model, {"unimodal": UnimodalLoss()})
    module, logged = module_with({"unimodal": UnimodalLoss()}, MULTI)
    batch = labeled_batch(k=2)
    batch["keypoints"] = torch.cat([batch["keypoints"], batch["keypoints"].flip(0)], 1)
    module.training_step({"labeled": batch, "unlabeled": unlabeled_batch()}, 0)
    assert torch.isfinite(logged["train.loss_unimodal"])


def test_a_conditional_top_down_model_takes_none():
    model = tiny_model(MULTI, top_down=TopDown(crop_size=(32, 32)))
    model.backbone.conditional = True  # what a CTD backbone (cond_prenet, hrnet_coam) says of itself
    for name, loss in all_losses().items():
        with pytest.raises(ValueError, match="condition pose"):
            check_losses(model, {name: loss})


def test_top_down_pose_stage_takes_all_three():
    model = tiny_model(MULTI, top_down=TopDown(crop_size=(32, 32)))
    check_losses(model, all_losses())
    frames = torch.randn(2, 3, 48, 64)
    seen = frame_outputs(model, frames)
    assert seen.keypoints.shape == (2, 2, 2) and seen.outputs["heatmap"].shape[0] == 2
    in_crops = soft_keypoints(model.heads["bodypart"], seen.outputs)  # crop pixels
    assert torch.allclose(seen.to_head(seen.keypoints), in_crops, atol=1e-3)  # frame pixels back to the crops
    losses = all_losses()
    losses["pca_singleview"].fit(np.random.default_rng(0).uniform(0, 30, (20, 2, 2)))
    values, measures = unsupervised_losses(model, losses, unlabeled_batch(1, 2, size=48))
    assert set(measures) == {"temporal_px", "pca_singleview_px"}
    sum(values.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads.parameters())


# ---- end to end: two epochs on the demo project with its own video as unlabeled data ---------------------------
@pytest.mark.slow
def test_two_epochs_with_unlabeled_video_log_each_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lightning_dlc.config_compose import compose_train
    from lightning_dlc.lit.snapshots import load_snapshot
    from lightning_dlc.lit.train import train

    out = tmp_path / "run"
    train(compose_train([
        f"data.project={tmp_path / 'demo_project'}", "data.demo.n_frames=24", "data.demo.n_labeled=8",
        "data.demo.size=64", "data.demo.multianimal=false", "data.num_workers=0", "data.batch_size=4",
        "trainer.max_epochs=2",
        "eval_interval=2", "snapshots.save_epochs=2", "snapshots.dlc_snapshots=false", f"output_dir={out}",
        "trainer.enable_progress_bar=false", "unlabeled=videos", "unlabeled.videos=project", "unlabeled.seq_len=3",
        "unlabeled.batch_size=2", "unlabeled.num_workers=0", "unlabeled.reader=opencv",
        "losses=[temporal,pca_singleview,unimodal]"]))
    scalars = EventAccumulator(str(out / "tensorboard")).Reload().Tags()["scalars"]
    for name in ("temporal", "pca_singleview", "unimodal"):
        assert f"train.loss_{name}" in scalars
    assert {"train.temporal_px", "train.pca_singleview_px"} <= set(scalars)  # what they judge, in pixels
    snapshot = load_snapshot(out / "snapshot-002.ckpt")  # weights_only=True: plain data only
    assert all(key.startswith("model.") for key in snapshot["state_dict"]), "an ordinary snapshot"
