"""Object detection on event data: Spike-TransCNN's head targets and losses, COCO metrics, Gen1 and synthetic data.

* :func:`detection_loss`, :func:`decode_detections`: the FCOS-style single-level head (focal, GIoU, centre-ness);
* :func:`coco_map`: COCO mAP by ``pycocotools`` (optional extra ``detection``);
* :class:`Gen1Detection`, :func:`read_dat`, :func:`read_bbox_npy` (and writers): the Prophesee Gen1 layout;
* :class:`SyntheticEventDetection`, :func:`write_synthetic_gen1`: a SYNTHETIC set of moving shapes seen by a
  simulated event camera, with their boxes;
* :func:`train_detector`, :func:`evaluate_detector`, :func:`mean_box_baseline`.
"""

from .boxes import batched_nms, box_iou, generalized_iou, nms
from .gen1 import (BBOX_DTYPE, GEN1_CLASSES, Gen1Detection, bin_events, read_bbox_npy, read_dat, write_bbox_npy,
                   write_dat)
from .losses import decode_detections, detection_loss, fcos_targets
from .metrics import COCO_STAT_NAMES, coco_map, require_pycocotools
from .synthetic import (SHAPE_CLASSES, SyntheticDetectionConfig, SyntheticEventDetection, make_sample,
                        write_synthetic_gen1)
from .train import collate_detection, evaluate_detector, mean_box_baseline, predict, train_detector

__all__ = [
    "batched_nms", "box_iou", "generalized_iou", "nms",
    "BBOX_DTYPE", "GEN1_CLASSES", "Gen1Detection", "bin_events", "read_bbox_npy", "read_dat", "write_bbox_npy",
    "write_dat",
    "decode_detections", "detection_loss", "fcos_targets",
    "COCO_STAT_NAMES", "coco_map", "require_pycocotools",
    "SHAPE_CLASSES", "SyntheticDetectionConfig", "SyntheticEventDetection", "make_sample", "write_synthetic_gen1",
    "collate_detection", "evaluate_detector", "mean_box_baseline", "predict", "train_detector",
]  # fmt: skip
