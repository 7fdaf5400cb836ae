"""Single-object tracking on event data: the STNet tracker, its metrics and data.

* :class:`STNetTracker` / :class:`TrackerConfig`: cropping, the network call, SiamFC++ post-processing;
* :func:`evaluate_tracking`: success AUC and precision at 20 px;
* :func:`make_tracking_sequences`: a SYNTHETIC set (a textured object moving over a textured background, seen by a
  simulated event camera); :func:`read_tracking_folder` / :func:`write_tracking_folder`: sequences on disk in the
  layout of STNet's preprocessed FE108 test set.
"""

from .boxes import center_error, cxywh2xywh, cxywh2xyxy, rect_iou, xywh2cxywh, xyxy2cxywh
from .crop import get_crop, get_subwindow
from .folder import TrackingFolderError, read_tracking_folder, read_tracking_sequence, write_tracking_folder
from .metrics import TrackingScores, evaluate_tracking, precision_curve, success_curve
from .synthetic import SyntheticTrackingConfig, TrackingSequence, make_tracking_sequences
from .tracker import STNetTracker, TrackerConfig, score_size_for

__all__ = [
    "STNetTracker", "TrackerConfig", "score_size_for", "get_crop", "get_subwindow",
    "evaluate_tracking", "TrackingScores", "success_curve", "precision_curve",
    "rect_iou", "center_error", "xywh2cxywh", "cxywh2xywh", "xyxy2cxywh", "cxywh2xyxy",
    "SyntheticTrackingConfig", "TrackingSequence", "make_tracking_sequences",
    "read_tracking_folder", "read_tracking_sequence", "write_tracking_folder", "TrackingFolderError",
]  # fmt: skip
