"""Box formats and overlap measures used by the tracker and its metrics.

Formats (all 0-indexed pixel coordinates, the video_analyst / SiamFC++ convention that STNet's tracker uses):

* ``xywh``: ``(x0, y0, w, h)``, the ground-truth and result format of tracking benchmarks (FE108, OTB, GOT-10k);
* ``cxywh``: ``(cx, cy, w, h)``;
* ``xyxy``: ``(x0, y0, x1, y1)``.

The tracker-internal conversions count a box as ``w`` pixels wide from ``x0`` to ``x1 = x0 + w - 1`` (so
``cx = x0 + (w - 1) / 2``), as upstream. The metrics (:mod:`.metrics`) use the benchmark toolkits' continuous
convention (``x1 = x0 + w``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["xywh2cxywh", "cxywh2xywh", "xyxy2cxywh", "cxywh2xyxy", "rect_iou", "center_error"]


def _as(box: np.ndarray | list | tuple, name: str) -> np.ndarray:
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"{name} must end with 4 coordinates, got shape {arr.shape}")
    return arr


def xywh2cxywh(rect: np.ndarray | list | tuple) -> np.ndarray:
    """``(x0, y0, w, h) -> (x0 + (w-1)/2, y0 + (h-1)/2, w, h)``, on the last axis."""
    r = _as(rect, "rect")
    return np.concatenate([r[..., :2] + (r[..., 2:] - 1) / 2, r[..., 2:]], axis=-1)


def cxywh2xywh(box: np.ndarray | list | tuple) -> np.ndarray:
    """Inverse of :func:`xywh2cxywh`."""
    b = _as(box, "box")
    return np.concatenate([b[..., :2] - (b[..., 2:] - 1) / 2, b[..., 2:]], axis=-1)


def xyxy2cxywh(bbox: np.ndarray | list | tuple) -> np.ndarray:
    """``(x0, y0, x1, y1) -> ((x0+x1)/2, (y0+y1)/2, x1-x0+1, y1-y0+1)``."""
    b = _as(bbox, "bbox")
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2] + 1], axis=-1)


def cxywh2xyxy(box: np.ndarray | list | tuple) -> np.ndarray:
    """Inverse of :func:`xyxy2cxywh`."""
    b = _as(box, "box")
    half = (b[..., 2:] - 1) / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def rect_iou(a: np.ndarray | list | tuple, b: np.ndarray | list | tuple) -> np.ndarray:
    """Intersection over union of ``xywh`` rectangles ``[..., 4]`` (continuous: ``x1 = x0 + w``), broadcast.

    Empty rectangles (``w`` or ``h`` <= 0) have IoU 0 with everything."""
    a, b = _as(a, "a"), _as(b, "b")
    aw, ah = np.maximum(a[..., 2], 0), np.maximum(a[..., 3], 0)
    bw, bh = np.maximum(b[..., 2], 0), np.maximum(b[..., 3], 0)
    iw = np.minimum(a[..., 0] + aw, b[..., 0] + bw) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 1] + ah, b[..., 1] + bh) - np.maximum(a[..., 1], b[..., 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = aw * ah + bw * bh - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def center_error(a: np.ndarray | list | tuple, b: np.ndarray | list | tuple) -> np.ndarray:
    """Euclidean distance in pixels between the centres ``(x0 + w/2, y0 + h/2)`` of ``xywh`` rectangles."""
    a, b = _as(a, "a"), _as(b, "b")
    ca = a[..., :2] + a[..., 2:] / 2
    cb = b[..., :2] + b[..., 2:] / 2
    return np.sqrt(((ca - cb) ** 2).sum(-1))
