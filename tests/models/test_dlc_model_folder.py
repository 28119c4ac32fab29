"""Reading a DeepLabCut model folder's pytorch_config: the model section through pytorch_config_read's pieces."""
import pytest

from lightning_dlc.models.dlc_model_folder import _apply_paf_predictor, _top_down_overrides
from lightning_dlc.project.errors import ProjectError


def test_unsupported_crop_names_file_key_and_supported_values(tmp_path):
    where = tmp_path / "pytorch_config.yaml"
    cfg = {"data": {"inference": {"top_down_crop": {"width": 64, "height": 64, "margin": 8}}}}
    with pytest.raises(ProjectError) as error:
        _top_down_overrides(cfg, where)
    message = str(error.value)
    assert str(where) in message and "data.inference.top_down_crop" in message and "'margin': 8" in message
    assert "'crop_with_context': True" in message and "'margin': 0" in message


def test_crop_and_detector_overrides(tmp_path):
    cfg = {"data": {"bbox_margin": 25, "inference": {"top_down_crop": {"width": 96, "height": 64}}},
           "detector": {"model": {"type": "FasterRCNN", "variant": "fasterrcnn_mobilenet_v3_large_fpn",
                                  "box_score_thresh": 0.4}}}
    assert _top_down_overrides(cfg, tmp_path) == [
        "model.top_down.crop_size=[64,96]", "model.top_down.margin=25.0",
        "detector=fasterrcnn_mobilenet_v3_large_fpn", "detector.model.box_score_threshold=0.4"]
    cfg["detector"]["model"] = {"type": "YOLO"}
    with pytest.raises(ProjectError, match="YOLO"):
        _top_down_overrides(cfg, tmp_path)


def test_paf_predictor_applied_to_our_head():
    run_config = {"model": {"heads": {"multi": {"bodypart": {"edges_to_keep": None, "predict_kwargs": {}}}}}}
    cfg = {"model": {"heads": {"bodypart": {"type": "DLCRNetHead", "predictor": {
        "graph": [[0, 1], [0, 2], [1, 2]], "edges_to_keep": [1], "sigma": 2.0}}}}}
    _apply_paf_predictor(run_config, cfg, 3)
    head = run_config["model"]["heads"]["multi"]["bodypart"]
    assert head == {"edges_to_keep": [1], "predict_kwargs": {"sigma": 2.0}}
