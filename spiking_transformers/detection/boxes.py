"""Box helpers of the detection task: IoU, generalised IoU, greedy NMS. Boxes are ``(x0, y0, x1, y1)`` in pixels."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["box_area", "box_iou", "generalized_iou", "nms", "batched_nms", "xywh_to_xyxy", "xyxy_to_xywh"]


def xywh_to_xyxy(b: Tensor) -> Tensor:
    """``[..., 4]`` ``(x, y, w, h)`` (top-left corner) -> ``(x0, y0, x1, y1)``."""
    return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], -1)


def xyxy_to_xywh(b: Tensor) -> Tensor:
    """``[..., 4]`` ``(x0, y0, x1, y1)`` -> ``(x, y, w, h)``."""
    return torch.cat([b[..., :2], b[..., 2:] - b[..., :2]], -1)


def box_area(b: Tensor) -> Tensor:
    """Areas ``[...]`` of boxes ``[..., 4]`` (0 for inverted boxes)."""
    return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of boxes ``a [N, 4]`` and ``b [M, 4]``."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp_min(1e-9)


def generalized_iou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise generalised IoU (Rezatofighi et al. 2019) of aligned boxes ``a, b [N, 4]`` -> ``[N]`` in [-1, 1].

    ``GIoU = IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest box enclosing both.
    """
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = box_area(a) + box_area(b) - inter
    iou = inter / union.clamp_min(1e-9)
    enclose = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp_min(0).prod(-1)
    return iou - (enclose - union) / enclose.clamp_min(1e-9)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices (into ``boxes [N, 4]``) of the kept boxes, by decreasing score."""
    order = scores.argsort(descending=True)
    keep = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    iou = box_iou(boxes, boxes)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class (boxes of different ``labels`` never suppress each other); kept indices by score."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    # shift each class to its own region of the plane, so one NMS pass treats classes separately
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, iou_threshold)
