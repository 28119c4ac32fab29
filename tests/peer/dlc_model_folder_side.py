"""DeepLabCut's side of the model-folder tests (tests/models/test_dlc_model_folder_peer.py), run in its own
environment through tests/dlc_peer.py "call" jobs: make a shuffle, train tiny models offline, evaluate
and analyze with DeepLabCut's own functions, and read back what it wrote."""
from __future__ import annotations

from pathlib import Path


def _offline() -> None:
    """No model hub here: DeepLabCut's backbones and detectors start from scratch (as
    ../shared/peer/dlc_baseline.py). DeepLabCut's training builds detectors with COCO weights
    (``pretrained=True``), and torchvision's Faster R-CNN builders fetch an ImageNet backbone even
    without them (``weights_backbone``'s default), in training, evaluation and analysis alike."""
    import functools

    import torchvision.models.detection as detection

    import deeplabcut.pose_estimation_pytorch.apis.training as training
    from deeplabcut.pose_estimation_pytorch.models.detectors import DETECTORS

    if getattr(training.PoseModel.build, "_offline", False):
        return
    build = training.PoseModel.build

    def offline(cfg, weight_init=None, pretrained_backbone=False):
        return build(cfg, weight_init, False)

    offline._offline = True
    training.PoseModel.build = staticmethod(offline)
    build_detector = DETECTORS.build
    DETECTORS.build = lambda cfg, **kwargs: build_detector(cfg, **{**kwargs, "pretrained": False})
    for name in ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn_v2", "ssdlite320_mobilenet_v3_large"):
        setattr(detection, name, functools.partial(getattr(detection, name), weights_backbone=None))


def train_tiny(config: str, net_type: str, epochs: int = 1, detector_type: str | None = None,
               updates: str = "{}", detector_start: str | None = None) -> str:
    """DeepLabCut's create_training_dataset + train_network (shuffle 1, batch 2, no evaluation during
    training; a top-down model's detector first, as many epochs, from the snapshot ``detector_start``);
    ``updates``: more of DeepLabCut's ``pytorch_cfg_updates`` as JSON. Returns the model folder's train/."""
    import json

    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import return_train_network_path

    _offline()
    epochs = int(epochs)
    kwargs = {"detector_type": detector_type} if detector_type else {}
    deeplabcut.create_training_dataset(config, net_type=net_type, userfeedback=False,
                                       engine=deeplabcut.Engine.PYTORCH, **kwargs)
    updates = {"runner.eval_interval": epochs + 1, "train_settings.dataloader_workers": 0, **json.loads(updates)}
    if detector_type:
        updates = {"detector.runner.eval_interval": epochs + 1, "detector.train_settings.dataloader_workers": 0,
                   **updates}
    deeplabcut.train_network(config, shuffle=1, epochs=epochs, save_epochs=epochs, batch_size=2, device="cpu",
                             detector_epochs=epochs if detector_type else None,
                             detector_save_epochs=epochs if detector_type else None, detector_path=detector_start,
                             pytorch_cfg_updates=updates)
    return str(return_train_network_path(config, shuffle=1)[2])


def evaluate(config: str, snapshot_index=-1, detector_snapshot_index=-1) -> dict:
    """DeepLabCut's evaluate_network on shuffle 1: its results row and its predictions (.h5) as arrays."""
    import deeplabcut
    import pandas as pd
    from deeplabcut.utils import auxiliaryfunctions

    _offline()
    cfg = auxiliaryfunctions.read_config(config)
    cfg["snapshotindex"], cfg["detector_snapshotindex"] = snapshot_index, detector_snapshot_index
    cfg["project_path"] = str(Path(config).parent)  # DeepLabCut finds the model folder through it
    auxiliaryfunctions.write_config(config, cfg)
    deeplabcut.evaluate_network(config, Shuffles=[1], device="cpu")
    folder = Path(config).parent / "evaluation-results-pytorch" / f"iteration-{cfg['iteration']}"
    (shuffle_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    (results,) = sorted(shuffle_dir.glob("DLC_*-results.csv"))
    (h5,) = sorted(shuffle_dir.glob("DLC_*.h5"))
    table = pd.read_hdf(h5)
    return {"scorer": h5.stem, "row": pd.read_csv(results).iloc[0].to_dict(),
            "index": ["/".join(i) if isinstance(i, tuple) else str(i) for i in table.index],
            "values": table.to_numpy(dtype="float64")}


def analyze(config: str, video: str, destfolder: str) -> dict:
    """DeepLabCut's analyze_videos on shuffle 1: the scorer, the files it wrote, the predictions table as an
    array (single animal; multi-animal projects get a table only after tracking) and the ``_full.pickle``."""
    import pickle

    import deeplabcut
    import pandas as pd

    _offline()
    scorer = deeplabcut.analyze_videos(config, [video], shuffle=1, device="cpu", batch_size=4,
                                       destfolder=destfolder, auto_track=False)
    prefix = f"{Path(video).stem}{scorer}"
    h5 = Path(destfolder) / f"{prefix}.h5"
    with open(Path(destfolder) / f"{prefix}_full.pickle", "rb") as stream:
        full = pickle.load(stream)
    return {"scorer": scorer, "files": sorted(p.name[len(prefix):] for p in Path(destfolder).glob(f"{prefix}*")),
            "values": pd.read_hdf(h5).to_numpy(dtype="float64") if h5.is_file() else None,
            "full": {k: v for k, v in full.items() if k.startswith("frame")}}
