"""The one composer of conf/: the same config inside and outside a running Hydra app, whose Hydra survives."""
from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lightning_dlc.config_compose import CONF_DIR, compose_config, compose_train


def test_train_config_records_the_model_choice_as_net_type():
    cfg = compose_train(["model=resnet_50"])
    assert cfg.net_type == "resnet_50" and "hydra" not in cfg
    assert not GlobalHydra.instance().is_initialized()  # nothing left behind


def test_inside_an_app_of_conf_the_apps_hydra_composes_and_stays():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        running = GlobalHydra.instance().hydra
        assert compose_train(["model=resnet_50"]).net_type == "resnet_50"
        assert GlobalHydra.instance().hydra is running


def test_inside_another_app_its_hydra_is_restored(tmp_path):
    (tmp_path / "other.yaml").write_text("answer: 42\n")
    with initialize_config_dir(str(tmp_path), version_base="1.3"):
        running = GlobalHydra.instance().hydra
        assert compose_config("train", ["model=resnet_50"]).model is not None
        assert GlobalHydra.instance().hydra is running
        assert compose("other").answer == 42  # the app still composes its own configs
