"""DeepLabCut and COCO files <-> plain records. Never imports torch."""
from lightning_dlc.project.coco import load_coco, write_coco
from lightning_dlc.project.config import ProjectConfig, VideoSet
from lightning_dlc.project.dlc import load_dlc_project, read_project_labels
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.labels import read_collected_data, write_collected_data
from lightning_dlc.project.records import LabeledData, PoseRecord, ProjectMeta
from lightning_dlc.project.shuffles import (
    Shuffle,
    create_training_dataset,
    load_shuffle,
    read_shuffle,
)

__all__ = [
    "LabeledData", "PoseRecord", "ProjectConfig", "ProjectError", "ProjectMeta", "Shuffle", "VideoSet",
    "create_training_dataset", "load_coco", "load_dlc_project", "load_shuffle", "read_collected_data",
    "read_project_labels", "read_shuffle", "write_coco", "write_collected_data",
]
