"""The pieces of a pytorch_config's model section that training (translate_pytorch_config) and loading a
DeepLabCut model folder (models/dlc_model_folder.py) both read, from one place."""
from lightning_dlc.project.dlc_defaults import full_paf_graph
from lightning_dlc.project.pytorch_config_read import (detector_box_threshold, detector_name, paf_predictor_values,
                                                       translate_pytorch_config)


def test_detector_names_and_thresholds():
    assert detector_name({"type": "SSDLite"}) == "ssdlite"
    assert detector_name({"type": "FasterRCNN", "variant": "fasterrcnn_mobilenet_v3_large_fpn"}) \
        == "fasterrcnn_mobilenet_v3_large_fpn"
    assert detector_name({"type": "YOLO", "variant": "v8"}) is None
    assert detector_box_threshold({"type": "SSDLite", "box_score_thresh": 0.6}) is None  # unused by DeepLabCut
    assert detector_box_threshold({"type": "FasterRCNN", "box_score_thresh": 0.6}) == 0.6
    assert detector_box_threshold({"type": "FasterRCNN"}) is None


def test_paf_predictor_values():
    full = full_paf_graph(3)
    head = {"type": "DLCRNetHead", "predictor": {"graph": full, "edges_to_keep": [0, 2], "min_affinity": 0.2,
                                                 "nms_radius": None}}
    assert paf_predictor_values(head, 3) == {"edges_to_keep": [0, 2], "predict_kwargs.min_affinity": 0.2}
    pruned = {"type": "DLCRNetHead", "predictor": {"graph": [[0, 1], [1, 2]]}}
    assert paf_predictor_values(pruned, 3) == {"edges": [[0, 1], [1, 2]]}
    assert paf_predictor_values({"type": "HeatmapHead", "predictor": {"graph": [[0, 1]]}}, 3) == {}


def test_translation_uses_them():
    """A Faster R-CNN file's detector and threshold reach the training config through the same functions."""
    from lightning_dlc.project.dlc_defaults import detector_defaults, pose_config_defaults
    from lightning_dlc.project.records import ProjectMeta

    meta = ProjectMeta(bodyparts=("a", "b", "c"), individuals=("m1", "m2"), unique_bodyparts=())
    dlc = pose_config_defaults("top_down_resnet_50", meta, detector_type="fasterrcnn_mobilenet_v3_large_fpn")
    dlc["detector"] = detector_defaults("fasterrcnn_mobilenet_v3_large_fpn", 2)
    dlc["detector"]["model"]["box_score_thresh"] = 0.3
    out = translate_pytorch_config(dlc, meta)
    assert out.choices["detector"] == detector_name(dlc["detector"]["model"])
    assert out.values["detector.model.box_score_threshold"] == 0.3
