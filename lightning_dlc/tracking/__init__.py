"""Multi-animal tracking: per-frame assemblies -> tracklets (SORT-like trackers) -> whole-video tracks
(min-cost flow stitching), in DeepLabCut's files; tracking scores (IDF1, MOTA, identity switches).

Arrays in, arrays out: :func:`link_detections` and :func:`stitch_tracklets`. On a video's analysis
files: :func:`convert_to_tracklets` and :func:`stitch_tracklet_file` (what ``api`` calls).
"""
from lightning_dlc.tracking.metrics import tracking_metrics
from lightning_dlc.tracking.pipeline import convert_to_tracklets, stitch_tracklet_file
from lightning_dlc.tracking.stitch import fill_gaps, stitch_tracklets
from lightning_dlc.tracking.trackers import TRACK_METHODS, SortTracker
from lightning_dlc.tracking.tracklets import Tracklet, link_detections

__all__ = ["TRACK_METHODS", "SortTracker", "Tracklet", "convert_to_tracklets", "fill_gaps", "link_detections",
           "stitch_tracklet_file", "stitch_tracklets", "tracking_metrics"]
