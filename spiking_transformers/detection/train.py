"""Training and evaluation of an event detector (Spike-TransCNN's FCOS-style head; see :mod:`.losses`).

Samples are ``(frames [T, C, H, W], {"boxes": [n, 4] xyxy, "labels": [n]})``; :func:`collate_detection` stacks a
batch time-major, ``[T, B, C, H, W]``, with a list of targets. Training: AdamW, cosine-decayed learning rate, random
horizontal flips (the boxes flipped with the frames).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .losses import decode_detections, detection_loss
from .metrics import coco_map

__all__ = ["collate_detection", "train_detector", "predict", "evaluate_detector", "mean_box_baseline"]


def collate_detection(batch: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """``[(frames [T, C, H, W], target), ...]`` -> ``(frames [T, B, C, H, W], [target, ...])``."""
    frames = torch.stack([b[0] for b in batch], 1)
    return frames, [b[1] for b in batch]


def _flip(frames: Tensor, targets: list[dict[str, Tensor]], flip: Tensor) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Mirror the samples where ``flip [B]`` is True (frames ``[T, B, C, H, W]`` and their boxes)."""
    W = frames.shape[-1]
    frames = torch.where(flip[None, :, None, None, None], frames.flip(-1), frames)
    out = []
    for t, f in zip(targets, flip.tolist()):
        if f and len(t["boxes"]):
            b = t["boxes"]
            t = {**t, "boxes": torch.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], 1)}
        out.append(t)
    return frames, out


def train_detector(model: nn.Module, dataset, *, steps: int, batch_size: int = 16, lr: float = 2e-3,
                   weight_decay: float = 1e-4, seed: int = 0, flip: bool = True,
                   log: Callable[[int, float, dict[str, float]], None] | None = None) -> list[float]:
    """Train ``model`` (frames ``[T, B, C, H, W]`` -> head map ``[B, K + 5, h, w]``, attribute ``stride``).

    Returns the loss of every step; ``log(step, loss, parts)`` is called every 10 steps and at the end.
    """
    from torch.utils.data import DataLoader, RandomSampler

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    g = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size, generator=g)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_detection)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses: list[float] = []
    for step, (x, targets) in enumerate(loader, 1):
        if flip:
            x, targets = _flip(x, targets, torch.rand(x.shape[1], generator=g) < 0.5)
        loss, parts = detection_loss(model(x), targets, model.stride)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log is not None and (step % 10 == 0 or step == steps):
            log(step, losses[-1], parts)
    return losses


@torch.no_grad()
def predict(model: nn.Module, dataset, *, batch_size: int = 16, score_threshold: float = 0.05
            ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """Detections and ground truth of every sample of ``dataset`` (model in eval mode)."""
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    preds, gts = [], []
    for x, targets in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection):
        preds += decode_detections(model(x), model.stride, image_size=tuple(x.shape[-2:]),
                                   score_threshold=score_threshold)
        gts += targets
    model.train(was_training)
    return preds, gts


def evaluate_detector(model: nn.Module, dataset, num_classes: int, *, batch_size: int = 16) -> dict[str, float]:
    """COCO metrics (pycocotools) of ``model`` on ``dataset`` (see :func:`~.metrics.coco_map`)."""
    preds, gts = predict(model, dataset, batch_size=batch_size)
    size = tuple(dataset[0][0].shape[-2:]) if len(dataset) else None
    return coco_map(preds, gts, num_classes, size)


def mean_box_baseline(train_set, val_set, num_classes: int) -> dict[str, float]:
    """A trivial detector, scored by pycocotools: on every image, one box per class, the training set's mean box
    (mean centre and mean size of all its boxes), with score 1. It knows where objects tend to be, but never looks at
    the events."""
    boxes = torch.cat([train_set[i][1]["boxes"] for i in range(len(train_set))]).reshape(-1, 4)
    mean = boxes.mean(0) if len(boxes) else torch.zeros(4)
    pred = {"boxes": mean.expand(num_classes, 4), "scores": torch.ones(num_classes),
            "labels": torch.arange(num_classes)}
    gts = [val_set[i][1] for i in range(len(val_set))]
    return coco_map([pred] * len(gts), gts, num_classes)
