"""Single-object tracking metrics: the success plot and its AUC, the precision plot and precision at 20 px.

These are the OTB-2013 measures that FE108 / FE240hz report (as RSR = success AUC and RPR = precision at 20 px):

* **success** ``S(t)`` = fraction of frames whose IoU with the ground truth is **greater than** ``t``, for
  ``t`` in 21 thresholds ``0, 0.05, ..., 1``; **success AUC** = mean of ``S`` over those thresholds;
* **precision** ``P(d)`` = fraction of frames whose centre error is **at most** ``d`` pixels, ``d = 0..50``;
  **precision@20** = ``P(20)``.

The first frame (the initialisation box) is excluded when ``skip_first`` is set (as the GOT-10k/FE evaluation does;
OTB keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .boxes import center_error, rect_iou

__all__ = ["SUCCESS_THRESHOLDS", "PRECISION_THRESHOLDS", "TrackingScores", "success_curve", "precision_curve",
           "evaluate_tracking"]

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(f"predicted and ground-truth boxes must both be [N, 4] xywh, got {pred.shape} and {gt.shape}")
    return pred, gt


def success_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU > each threshold: ``pred, gt [N, 4]`` xywh -> ``[len(thresholds)]``."""
    pred, gt = _pair(pred, gt)
    iou = rect_iou(pred, gt)
    return (iou[:, None] > np.asarray(thresholds)[None, :]).mean(0)


def precision_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error <= each threshold (pixels): ``[N, 4]`` x 2 -> ``[len(thresholds)]``."""
    pred, gt = _pair(pred, gt)
    err = center_error(pred, gt)
    return (err[:, None] <= np.asarray(thresholds)[None, :]).mean(0)


@dataclass(frozen=True)
class TrackingScores:
    """``success_auc`` (RSR) and ``precision_20`` (RPR) in [0, 1], the mean IoU and the number of frames scored."""

    success_auc: float
    precision_20: float
    mean_iou: float
    frames: int

    def as_dict(self) -> dict[str, float]:
        return {"success_auc": self.success_auc, "precision_20": self.precision_20, "mean_iou": self.mean_iou,
                "frames": self.frames}


def evaluate_tracking(preds: list[np.ndarray], gts: list[np.ndarray], *, skip_first: bool = True) -> TrackingScores:
    """Scores over several sequences, frames pooled (every frame weighs the same).

    Args:
        preds, gts: per sequence ``[N_i, 4]`` xywh boxes (prediction, ground truth).
        skip_first: leave out each sequence's first frame (the given initial box).
    """
    if len(preds) != len(gts) or not preds:
        raise ValueError(f"need equally many (>= 1) predicted and ground-truth sequences, got {len(preds)}, {len(gts)}")
    s = 1 if skip_first else 0
    pairs = [_pair(p, g) for p, g in zip(preds, gts)]
    pred = np.concatenate([p[s:] for p, _ in pairs])
    gt = np.concatenate([g[s:] for _, g in pairs])
    if len(pred) == 0:
        raise ValueError("no frames to score (sequences of one frame with skip_first)")
    return TrackingScores(
        success_auc=float(success_curve(pred, gt).mean()),
        precision_20=float(precision_curve(pred, gt, np.array([20.0]))[0]),
        mean_iou=float(rect_iou(pred, gt).mean()),
        frames=len(pred),
    )
