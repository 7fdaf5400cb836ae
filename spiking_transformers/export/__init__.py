"""Deployment forms: the integer-to-binary expansion of multi-level models, BatchNorm folding for inference."""

from .binary_expansion import ExpansionReport, SpikeTrain, binary_expanded, run_binary_expanded

__all__ = ["ExpansionReport", "SpikeTrain", "binary_expanded", "run_binary_expanded"]
