"""Data sets, file-format readers and writers, frame integration and transforms.

Public API::

    list_datasets() -> list[str]
    dataset_info(name) -> DatasetInfo
    get_dataset(name, split="train", root=None, **options) -> torch.utils.data.Dataset   # (x, y) samples
    time_major_collate(batch) -> (x, y)     # images [B, C, H, W]; events [T, B, C, H, W]

The bundled default is ``"digits"`` (UCI handwritten digits, 8x8). Event-camera formats live in
:mod:`spiking_transformers.data.events` and frame integration in :mod:`spiking_transformers.data.frames`.
"""

from __future__ import annotations

from .errors import DataFormatError
from .registry import DatasetInfo, dataset_info, get_dataset, list_datasets, time_major_collate

__all__ = ["DataFormatError", "DatasetInfo", "dataset_info", "get_dataset", "list_datasets", "time_major_collate"]
