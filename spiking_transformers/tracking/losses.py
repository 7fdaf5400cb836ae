"""SiamFC++ training targets and losses, as the official tree carries them (video_analyst
``data/target/target_impl/utils/make_densebox_target.py`` and ``model/loss/loss_impl/``).

* Targets (:func:`densebox_target`): score-map cell ``(i, j)`` sits at crop pixel ``(o + j*s, o + i*s)``
  (``o`` = score offset, ``s`` = total stride). It is positive when it lies strictly inside the ground-truth box
  (all of ``l, t, r, b > 0``); its centre-ness is ``sqrt(min(l,r) min(t,b) / (max(l,r) max(t,b) + 1e-5))`` and its
  box target the ground-truth box. Negative cells get 0, 0 and a zero box. (One box per crop: the official code's
  several-box tie-breaking by area does not arise.)
* Classification (:func:`sigmoid_ce_retina`): ``-(alpha (1-p)^gamma y log p + (1-alpha) p^gamma (1-y) log(1-p))``
  summed over cells, divided by ``max(#positives, 1)``; official defaults ``alpha = 0.5``, ``gamma = 0``.
* Centre-ness (:func:`centerness_bce`): BCE-with-logits on the cells whose centre-ness target is non-zero, minus the
  target's own entropy (so a perfect prediction scores 0), averaged over those cells.
* Box (:func:`iou_loss`): ``-log IoU`` on positive cells (boxes in the ``+1`` pixel convention), averaged.

``log`` is clamped at float32's smallest normal number (upstream ``SafeLog``). The loss weights of the official
training configurations are not in the STNet repository; :func:`siamfcpp_loss` takes them as arguments (1, 1, 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["densebox_target", "sigmoid_ce_retina", "centerness_bce", "iou_loss", "siamfcpp_loss"]

_TINY = float(np.finfo(np.float32).tiny)


def _safelog(x: Tensor) -> Tensor:
    return torch.log(torch.clamp(x, min=_TINY))


def densebox_target(gt_xyxy: Tensor, x_size: int, score_size: int, total_stride: int = 8
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """Targets for ground-truth boxes ``gt_xyxy [B, 4]`` (x0, y0, x1, y1 in the search crop).

    Returns:
        ``cls [B, HW, 1]`` (1 positive / 0 negative), ``ctr [B, HW, 1]`` (centre-ness), ``box [B, HW, 4]``.
    """
    if gt_xyxy.dim() != 2 or gt_xyxy.shape[1] != 4:
        raise ValueError(f"gt_xyxy must be [B, 4], got shape {tuple(gt_xyxy.shape)}")
    offset = (x_size - 1 - (score_size - 1) * total_stride) // 2
    r = offset + torch.arange(score_size, dtype=gt_xyxy.dtype, device=gt_xyxy.device) * total_stride
    ys, xs = torch.meshgrid(r, r, indexing="ij")
    xs, ys = xs.reshape(1, -1), ys.reshape(1, -1)  # [1, HW]
    g = gt_xyxy[:, :, None]  # [B, 4, 1]
    l, t = xs - g[:, 0], ys - g[:, 1]
    rr, b = g[:, 2] - xs, g[:, 3] - ys
    inside = (l > 0) & (t > 0) & (rr > 0) & (b > 0)  # [B, HW]
    ctr = torch.sqrt(torch.abs(torch.minimum(l, rr) * torch.minimum(t, b)
                               / (torch.maximum(l, rr) * torch.maximum(t, b) + 1e-5)))
    ctr = torch.where(inside, ctr, torch.zeros_like(ctr))
    box = torch.where(inside[..., None], gt_xyxy[:, None, :].expand(-1, xs.shape[1], -1), torch.zeros(()))
    return inside[..., None].to(gt_xyxy.dtype), ctr[..., None], box


def sigmoid_ce_retina(logits: Tensor, label: Tensor, alpha: float = 0.5, gamma: float = 0.0) -> Tensor:
    """Focal / sigmoid cross-entropy over all cells, normalised by the number of positives (``[B, HW, 1]`` x 2)."""
    p = torch.sigmoid(logits)
    pos = (1 - p) ** gamma * label * _safelog(p)
    neg = p**gamma * (1 - label) * _safelog(1 - p)
    loss = -(alpha * pos + (1 - alpha) * neg).sum()
    return loss / torch.clamp(label.sum(), min=1.0)


def centerness_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Centre-ness BCE on cells with a non-zero target, less the target's entropy (``[B, HW, 1]`` x 2)."""
    mask = (target != 0).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask
    residual = F.binary_cross_entropy(target, target, reduction="none") * mask
    return (loss - residual.detach()).sum() / torch.clamp(mask.sum(), min=1.0)


def iou_loss(pred: Tensor, gt: Tensor, label: Tensor) -> Tensor:
    """``-log IoU`` of predicted and target boxes ``[B, HW, 4]`` (xyxy, +1 widths) on positive cells."""
    mask = (label[..., 0] > 0).to(pred.dtype)
    area_g = torch.abs(gt[..., 2] - gt[..., 0] + 1) * torch.abs(gt[..., 3] - gt[..., 1] + 1)
    area_p = torch.abs(pred[..., 2] - pred[..., 0] + 1) * torch.abs(pred[..., 3] - pred[..., 1] + 1)
    iw = torch.minimum(pred[..., 2], gt[..., 2]) - torch.maximum(pred[..., 0], gt[..., 0]) + 1
    ih = torch.minimum(pred[..., 3], gt[..., 3]) - torch.maximum(pred[..., 1], gt[..., 1]) + 1
    inter = torch.clamp(iw, min=0) * torch.clamp(ih, min=0)
    iou = torch.clamp(inter / (area_g + area_p - inter), min=0)
    return (-_safelog(iou) * mask).sum() / torch.clamp(mask.sum(), min=1.0)


def siamfcpp_loss(cls_logits: Tensor, ctr_logits: Tensor, boxes: Tensor, targets: tuple[Tensor, Tensor, Tensor],
                  weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the three losses; returns ``(loss, {"cls": ..., "ctr": ..., "iou": ...})``."""
    cls_t, ctr_t, box_t = targets
    parts = (sigmoid_ce_retina(cls_logits, cls_t), centerness_bce(ctr_logits, ctr_t), iou_loss(boxes, box_t, cls_t))
    total = sum(w * p for w, p in zip(weights, parts))
    return total, {k: float(v.detach()) for k, v in zip(("cls", "ctr", "iou"), parts)}
