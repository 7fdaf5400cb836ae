"""FCOS-style targets, losses and decoding for a single-level anchor-free head (Tian et al., FCOS, ICCV 2019).

The head map ``[B, K + 5, h, w]`` (stride ``s``) holds, per location (cell centre ``((j + 0.5) s, (i + 0.5) s)``):
``K`` class logits, 4 raw box distances ``r`` (left, top, right, bottom distances are ``exp(clamp(r, -8, 8)) * s``)
and a centre-ness logit.

* **Assignment**: a location is positive for a ground-truth box when it lies inside the box and within
  ``radius * s`` of the box centre (FCOS "centre sampling"); the cell holding the centre is always positive, so a
  small box gets at least one location. A location claimed by several boxes takes the smallest.
* **Losses**: sigmoid focal loss (alpha 0.25, gamma 2) over all locations and classes, divided by the number of
  positives; GIoU loss ``1 - GIoU`` on the positives (weight 2), weighted by their centre-ness target; binary
  cross-entropy of the centre-ness logit on the positives (target
  ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``).
* **Decoding**: score ``sqrt(sigmoid(class) * sigmoid(centre-ness))``, locations above ``score_threshold``, the
  ``pre_nms`` best, class-wise NMS, at most ``max_detections`` per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import batched_nms, generalized_iou

__all__ = ["locations", "fcos_targets", "detection_loss", "decode_detections", "decode_boxes"]

_MAX_LOG = 8.0


def locations(h: int, w: int, stride: int, device=None, dtype=torch.float32) -> Tensor:
    """Cell centres ``[h * w, 2]`` ``(x, y)`` in pixels, row-major."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)


def decode_boxes(reg: Tensor, locs: Tensor, stride: int) -> Tensor:
    """Raw distances ``[..., N, 4]`` and locations ``[N, 2]`` -> boxes ``[..., N, 4]`` ``(x0, y0, x1, y1)``."""
    d = torch.exp(reg.clamp(-_MAX_LOG, _MAX_LOG)) * stride
    return torch.cat([locs - d[..., :2], locs + d[..., 2:]], -1)


def fcos_targets(boxes: Tensor, labels: Tensor, locs: Tensor, stride: int, radius: float = 1.5
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Targets of one image.

    Args:
        boxes: ground truth ``[M, 4]`` ``(x0, y0, x1, y1)``.
        labels: classes ``[M]`` (0-based).
        locs: locations ``[N, 2]``.
        stride: the map's stride.
        radius: centre-sampling radius in strides.

    Returns:
        ``(cls [N] long, -1 = background; box [N, 4] assigned ground-truth box; centreness [N], 0 off positives)``.
    """
    N = len(locs)
    if len(boxes) == 0:
        return (torch.full((N,), -1, dtype=torch.long), torch.zeros(N, 4, dtype=locs.dtype),
                torch.zeros(N, dtype=locs.dtype))
    boxes = boxes.to(locs.dtype)
    x, y = locs[:, 0:1], locs[:, 1:2]  # [N, 1]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], -1)  # [N, M, 4]
    inside = ltrb.min(-1).values > 0
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    r = radius * stride
    near = ((x - cx).abs() <= r) & ((y - cy).abs() <= r)
    # the cell that holds the centre is always positive (small boxes)
    cell = ((x - cx).abs() <= stride / 2) & ((y - cy).abs() <= stride / 2)
    pos = (inside & near) | cell
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(N, -1)
    area = torch.where(pos, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    is_pos = torch.isfinite(best_area)
    cls = torch.where(is_pos, labels[best], torch.full_like(best, -1))
    box = boxes[best]
    d = ltrb[torch.arange(N), best].clamp_min(1e-6)
    ctr = torch.sqrt((torch.minimum(d[:, 0], d[:, 2]) / torch.maximum(d[:, 0], d[:, 2]))
                     * (torch.minimum(d[:, 1], d[:, 3]) / torch.maximum(d[:, 1], d[:, 3])))
    return cls, box, torch.where(is_pos, ctr, torch.zeros_like(ctr))


def detection_loss(out: Tensor, targets: list[dict[str, Tensor]], stride: int, *, radius: float = 1.5,
                   alpha: float = 0.25, gamma: float = 2.0, box_weight: float = 2.0) -> tuple[Tensor, dict[str, float]]:
    """FCOS loss of a batch.

    Args:
        out: head map ``[B, K + 5, h, w]``.
        targets: per image ``{"boxes": [M, 4] xyxy, "labels": [M]}``.
        stride: the map's stride.
        radius: centre-sampling radius in strides.
        alpha, gamma: focal-loss parameters.
        box_weight: weight of the GIoU loss (2, as ATSS / FCOS-imprv use).

    Returns:
        ``(loss, parts)``: the scalar loss and its parts ``{"cls", "box", "ctr", "positives"}`` as floats.
    """
    B, C, h, w = out.shape
    K = C - 5
    if len(targets) != B:
        raise ValueError(f"{len(targets)} targets for a batch of {B}")
    locs = locations(h, w, stride, out.device, out.dtype)
    flat = out.flatten(2).transpose(1, 2)  # [B, N, K + 5]
    t_cls, t_box, t_ctr = zip(*(fcos_targets(t["boxes"].to(out.device), t["labels"].to(out.device), locs, stride,
                                             radius) for t in targets))
    t_cls, t_box, t_ctr = torch.stack(t_cls), torch.stack(t_box), torch.stack(t_ctr)
    pos = t_cls >= 0
    n_pos = max(float(pos.sum()), 1.0)
    onehot = F.one_hot(t_cls.clamp_min(0), K).to(out.dtype) * pos[..., None]
    logits = flat[..., :K]
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    a_t = alpha * onehot + (1 - alpha) * (1 - onehot)
    loss_cls = (a_t * (1 - p_t) ** gamma * ce).sum() / n_pos
    if pos.any():
        pred_box = decode_boxes(flat[..., K:K + 4][pos], locs.expand(B, -1, -1)[pos], stride)
        w_ctr = t_ctr[pos]
        loss_box = ((1 - generalized_iou(pred_box, t_box[pos])) * w_ctr).sum() / w_ctr.sum().clamp_min(1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(flat[..., K + 4][pos], t_ctr[pos], reduction="sum") / n_pos
    else:
        loss_box = loss_ctr = flat[..., K:].sum() * 0
    loss = loss_cls + box_weight * loss_box + loss_ctr
    parts = {"cls": loss_cls.item(), "box": loss_box.item(), "ctr": loss_ctr.item(), "positives": n_pos}
    return loss, parts


def decode_detections(out: Tensor, stride: int, *, image_size: tuple[int, int] | None = None,
                      score_threshold: float = 0.05, pre_nms: int = 1000, nms_iou: float = 0.5,
                      max_detections: int = 100) -> list[dict[str, Tensor]]:
    """Head map ``[B, K + 5, h, w]`` -> per image ``{"boxes": [n, 4] xyxy, "scores": [n], "labels": [n]}``.

    ``image_size = (H, W)`` clips the boxes (default ``(h * stride, w * stride)``).
    """
    B, C, h, w = out.shape
    K = C - 5
    H, W = image_size if image_size is not None else (h * stride, w * stride)
    locs = locations(h, w, stride, out.device, out.dtype)
    flat = out.detach().flatten(2).transpose(1, 2)
    scores = torch.sqrt(torch.sigmoid(flat[..., :K]) * torch.sigmoid(flat[..., K + 4:K + 5]))  # [B, N, K]
    boxes = decode_boxes(flat[..., K:K + 4], locs, stride)
    lim = torch.tensor([W, H, W, H], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.minimum(boxes.clamp_min(0), lim)
    results = []
    for b in range(B):
        s = scores[b].reshape(-1)
        keep = (s > score_threshold).nonzero().squeeze(1)
        if len(keep) > pre_nms:
            keep = keep[s[keep].topk(pre_nms).indices]
        loc, lab = keep // K, keep % K
        bx, sc = boxes[b, loc], s[keep]
        k = batched_nms(bx, sc, lab, nms_iou)[:max_detections]
        results.append({"boxes": bx[k], "scores": sc[k], "labels": lab[k]})
    return results
