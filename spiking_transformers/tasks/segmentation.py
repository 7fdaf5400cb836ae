"""Semantic-segmentation metrics: confusion matrix, per-class IoU and mIoU (the mmseg / VOC definitions).

``IoU_k = TP_k / (TP_k + FP_k + FN_k)`` from the confusion matrix ``M[true, pred]``; pixels labelled
``ignore_index`` do not count. The mean IoU averages over classes that occur in the ground truth *or* the
predictions (a class absent from both has an undefined IoU, reported as NaN and left out of the mean), as mmseg's
``nanmean`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["confusion_matrix", "iou_from_confusion", "mean_iou", "evaluate_segmenter", "train_segmenter"]


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Pixel confusion matrix ``M[true, pred]`` ``[K, K]`` (int64).

    Args:
        pred: predicted labels ``[...]`` (e.g. ``[B, H, W]``), or scores ``[B, K, H, W]`` (argmax over dim 1 is
            taken when ``pred`` has one dimension more than ``target``).
        target: true labels, same shape as the label map; ``ignore_index`` pixels are skipped.
        num_classes: K.
    """
    if pred.dim() == target.dim() + 1:
        if pred.shape[1] != num_classes:
            raise ValueError(f"scores have {pred.shape[1]} classes, expected num_classes={num_classes}")
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    bad = (target < 0) | (target >= num_classes)
    if bad.any():
        raise ValueError(f"target has labels outside 0..{num_classes - 1} (e.g. {int(target[bad][0])}) that are not "
                         f"ignore_index={ignore_index}")
    if ((pred < 0) | (pred >= num_classes)).any():
        raise ValueError(f"pred has labels outside 0..{num_classes - 1}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: Tensor) -> Tensor:
    """Per-class IoU ``[K]`` (float64) from ``M[true, pred]``; NaN for a class absent from truth and prediction."""
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square [K, K], got shape {tuple(cm.shape)}")
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """Mean of the defined per-class IoUs (NaN classes left out); 0 if none is defined."""
    iou = iou_from_confusion(cm)
    valid = ~torch.isnan(iou)
    return float(iou[valid].mean()) if valid.any() else 0.0


def evaluate_segmenter(model: torch.nn.Module, dataset, num_classes: int, batch_size: int = 8,
                       ignore_index: int = 255) -> Tensor:
    """Confusion matrix ``[K, K]`` of ``model`` (``[B, C, H, W]`` -> scores ``[B, K, H, W]``) over ``dataset``
    (pairs ``(image [C, H, W], labels [H, W])``), in eval mode without gradients."""
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            cm += confusion_matrix(model(x), y, num_classes, ignore_index)
    model.train(was_training)
    return cm


def train_segmenter(model: torch.nn.Module, dataset, *, steps: int, batch_size: int = 8, lr: float = 2e-3,
                    weight_decay: float = 0.0, clip: float | None = None, seed: int = 0, loss_fn=None,
                    log=None) -> list[float]:
    """Train ``model`` with AdamW (cosine-decayed ``lr``) for ``steps`` steps on random batches of ``dataset``.

    The loss is ``loss_fn(scores [B, K, H, W], labels [B, H, W])`` when given; otherwise the model's own
    ``model.loss(x, labels)`` when it has one (Spike2Former: the Hungarian set loss with deep supervision), else
    :func:`~spiking_transformers.models.spike2former.semantic_loss` (per-pixel cross-entropy on the normalised
    semantic scores). ``clip``: gradient-norm clipping. Returns the loss of every step; ``log(step, loss)`` is
    called every 10 steps.
    """
    from torch.utils.data import DataLoader, RandomSampler

    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if loss_fn is not None:
        compute = lambda x, y: loss_fn(model(x), y)  # noqa: E731
    elif hasattr(model, "loss"):
        compute = model.loss
    else:
        from ..models.spike2former import semantic_loss

        compute = lambda x, y: semantic_loss(model(x), y)  # noqa: E731
    g = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size, generator=g)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    model.train()
    losses = []
    for step, (x, y) in enumerate(loader, 1):
        loss = compute(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None and (step % 10 == 0 or step == steps):
            log(step, losses[-1])
    return losses
