"""COCO-style detection metrics, computed by ``pycocotools`` (the reference COCO evaluation, never re-implemented).

``pycocotools`` is an optional dependency: ``pip install spiking-transformers[detection]``. Without it,
:func:`coco_map` raises an ``ImportError`` whose one line names the extra.
"""

from __future__ import annotations

import contextlib
import io
from typing import Sequence

from torch import Tensor

__all__ = ["coco_map", "require_pycocotools", "COCO_STAT_NAMES"]

#: The 12 numbers of ``COCOeval.summarize()`` (bbox), in order.
COCO_STAT_NAMES = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


def require_pycocotools():
    """Import ``pycocotools`` (``(COCO, COCOeval)``), or raise a one-line ``ImportError`` naming the extra."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError("detection metrics need pycocotools: pip install 'spiking-transformers[detection]' "
                          "(or pip install pycocotools)") from None
    return COCO, COCOeval


def _xywh(b: Tensor) -> list[list[float]]:
    b = b.detach().double().reshape(-1, 4)
    return [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in b.tolist()]


def coco_map(predictions: Sequence[dict[str, Tensor]], ground_truth: Sequence[dict[str, Tensor]], num_classes: int,
             image_size: tuple[int, int] | None = None) -> dict[str, float]:
    """COCO bbox evaluation (``COCOeval``, IoU 0.50:0.95, up to 100 detections per image).

    Args:
        predictions: per image ``{"boxes": [n, 4] xyxy, "scores": [n], "labels": [n]}`` (0-based labels).
        ground_truth: per image ``{"boxes": [m, 4] xyxy, "labels": [m]}``, same order.
        num_classes: K (categories 0..K-1).
        image_size: ``(H, W)`` recorded in the image entries (informational).

    Returns:
        the 12 summary numbers named by :data:`COCO_STAT_NAMES` (``map`` = mAP@[.5:.95], ``map50`` = mAP@0.5);
        COCO reports -1 where no ground truth exists (e.g. no box of that size).
    """
    COCO, COCOeval = require_pycocotools()
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truth)} ground-truth images")
    H, W = image_size if image_size is not None else (0, 0)
    images = [{"id": i + 1, "height": int(H), "width": int(W)} for i in range(len(ground_truth))]
    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    anns, dets = [], []
    for i, (gt, pr) in enumerate(zip(ground_truth, predictions)):
        for box, lab in zip(_xywh(gt["boxes"]), gt["labels"].tolist()):
            if not 0 <= lab < num_classes:
                raise ValueError(f"ground-truth label {lab} of image {i} is outside 0..{num_classes - 1}")
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
        for box, lab, sc in zip(_xywh(pr["boxes"]), pr["labels"].tolist(), pr["scores"].tolist()):
            dets.append({"id": len(dets) + 1, "image_id": i + 1, "category_id": int(lab) + 1, "bbox": box,
                         "area": box[2] * box[3], "score": float(sc), "iscrowd": 0})
    quiet = contextlib.redirect_stdout(io.StringIO())  # COCO prints progress lines
    with quiet:
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "categories": categories, "annotations": anns}
        coco_gt.createIndex()
        # loadRes rejects an empty list: an empty result set is built the same way as the ground truth
        coco_dt = COCO()
        coco_dt.dataset = {"images": images, "categories": categories, "annotations": dets}
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, ev.stats)}
