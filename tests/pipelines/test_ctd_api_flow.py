"""DeepLabCut's conditional top-down (CTD) workflow through the api, with its arguments, on the 3-fish demo:
create_training_dataset(net_type=...) for a bottom-up and a ctd shuffle (ctd_conditions=1), train both,
evaluate and analyze (with CTD tracking) the ctd shuffle with the conditions its pytorch_config.yaml names."""
from __future__ import annotations

import pytest
import torch
from ruamel.yaml import YAML

from lightning_dlc import api
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.models.snapshot_files import find_snapshots
from lightning_dlc.project import shuffles as _shuffles
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError

pytestmark = pytest.mark.slow  # trains twice

TINY = ["model.backbone.pretrained=false", "data.num_workers=0", "eval_interval=0", "logger=csv", "augment=none",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
# the ctd model on 64 x 64 crops (DeepLabCut's: 256 x 256)
SMALL_CROPS = ["model.top_down.crop_size=[64,64]", "model.heads.single.bodypart.input_size=[64,64]",
               "model.heads.single.bodypart.sigma=4.0"]


def train_dir(config, shuffle: int):
    cfg = ProjectConfig.read(config)
    return _shuffles.model_folder(cfg, cfg.training_fractions[0], shuffle) / "train"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    torch.set_num_threads(1)
    config = make_demo_project(tmp_path_factory.mktemp("ctd_flow") / "fish", n_frames=24, n_labeled=8, size=64)
    api.create_training_dataset(config, Shuffles=[1], net_type="resnet_50")
    api.train_network(config, shuffle=1, epochs=1, save_epochs=1, batch_size=8, overrides=TINY)
    api.create_training_dataset(config, Shuffles=[2], net_type="ctd_prenet_rtmpose_s", ctd_conditions=1)
    api.train_network(config, shuffle=2, epochs=1, save_epochs=1, batch_size=8, overrides=TINY + SMALL_CROPS)
    return config


def test_deeplabcuts_ctd_flow(project):
    written = YAML(typ="safe").load((train_dir(project, 2) / "pytorch_config.yaml").read_text())
    assert written["method"] == "ctd" and written["inference"]["conditions"] == {"shuffle": 1}
    run = YAML(typ="safe").load((train_dir(project, 2) / "run_config.yaml").read_text())
    assert run["model"]["backbone"]["_target_"].endswith("CondPreNet") and run["conditions"] == "gt"
    assert run["net_type"] == "ctd_prenet_rtmpose_s" and run["trainer"]["max_epochs"] == 1
    # the conditions named in the file: shuffle 1's last snapshot (DeepLabCut's snapshot_index -1)
    bottom_up = find_snapshots(train_dir(project, 1), -1)[0]
    assert api._ctd_conditions_snapshot(ProjectConfig.read(project), train_dir(project, 2), None, 0) == bottom_up
    table = api.evaluate_network(project, Shuffles=[2], device="cpu")
    assert set(table.split) == {"train", "test"} and (table.shuffle == 2).all()
    assert table.scorer.str.startswith("DLC_CtdPrenetRtmposeS").all()
    video = project.parent / "videos" / "fishtank.mp4"
    (summary,) = api.analyze_videos(project, [str(video)], shuffle=2, ctd_tracking=True, device="cpu",
                                    auto_track=True)
    assert summary.status == "analyzed" and summary.frames == 24
    assert (video.parent / f"{video.stem}{summary.scorer}_ctd.h5").is_file()
    assert (video.parent / f"{video.stem}{summary.scorer}_el.h5").is_file()  # auto_track: tracklets + stitching


def test_a_predictions_file_as_conditions_serves_evaluation_only(project):
    truth = project.parent / "videos" / "fishtank_groundtruth.h5"
    api.create_training_dataset(project, Shuffles=[3], net_type="ctd_prenet_rtmpose_s", ctd_conditions=str(truth))
    folder = train_dir(project, 3)
    written = YAML(typ="safe").load((folder / "pytorch_config.yaml").read_text())
    assert written["inference"]["conditions"] == str(truth.absolute())
    cfg = ProjectConfig.read(project)
    assert api._ctd_conditions_snapshot(cfg, folder, None, 0) == truth
    with pytest.raises(ValueError, match="evaluation only"):
        api._ctd_conditions_snapshot(cfg, folder / "snapshot-001.pt", None, 0, analysis=True)


def test_model_folders_are_not_overwritten_and_net_type_is_optional(project):
    with pytest.raises(ProjectError, match="overwrite=True"):
        api.create_training_dataset(project, Shuffles=[3], net_type="resnet_50")
    api.create_training_dataset(project, Shuffles=[3], net_type="resnet_50", overwrite=True)
    assert YAML(typ="safe").load((train_dir(project, 3) / "pytorch_config.yaml").read_text())["method"] == "bu"
    api.create_training_dataset(project, Shuffles=[4])  # no net_type: the shuffle only, as before
    assert not train_dir(project, 4).parent.exists()
    with pytest.raises(ValueError, match="A CTD conditions is required"):
        api.create_training_dataset(project, Shuffles=[5], net_type="ctd_coam_w32")
    assert not train_dir(project, 5).parent.exists()
