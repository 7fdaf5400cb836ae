"""Task-specific metrics and helpers beyond classification (segmentation, ...)."""

from .segmentation import confusion_matrix, evaluate_segmenter, iou_from_confusion, mean_iou, train_segmenter

__all__ = ["confusion_matrix", "iou_from_confusion", "mean_iou", "evaluate_segmenter", "train_segmenter"]
