"""Building blocks shared by many model families."""

from ._shapes import TimeDistributed, fold_time, repeat_over_time, unfold_time

__all__ = ["TimeDistributed", "fold_time", "unfold_time", "repeat_over_time"]
