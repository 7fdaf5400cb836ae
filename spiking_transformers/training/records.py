"""Records of a run: top-k accuracy, the per-epoch CSV, TensorBoard.

Learning-curve plots: :mod:`..analysis.plots`; firing rates: :mod:`..analysis.firing`.
"""

from __future__ import annotations

import csv
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..analysis.plots import plot_history  # the figure lives with the others; kept importable here


__all__ = ["topk_correct", "EpochLog", "plot_history", "TensorBoardWriter", "eval_mode"]

log = logging.getLogger(__name__)


def topk_correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose class is among the top ``k`` logits, for each ``k`` (capped at the class count)."""
    kmax = min(max(ks), logits.shape[-1])
    top = logits.topk(kmax, dim=-1).indices
    hit = top == target.unsqueeze(-1)
    return [int(hit[:, : min(k, kmax)].any(-1).sum()) for k in ks]


class EpochLog:
    """The per-epoch metrics: a list of dicts kept in memory and mirrored to ``metrics.csv``."""

    def __init__(self, path: Path | None, history: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.history: list[dict[str, Any]] = list(history or [])

    def append(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.path is None:
            return
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        tmp.replace(self.path)


class TensorBoardWriter:
    """Scalars to TensorBoard event files when ``tensorboard`` is installed; silently nothing otherwise."""

    def __init__(self, log_dir: Path | None) -> None:
        self.writer = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.debug("tensorboard not installed: no event files")
            return
        self.writer = SummaryWriter(str(log_dir))

    def scalars(self, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no grad inside; the previous mode restored afterwards."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was)
