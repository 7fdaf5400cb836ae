"""Faster implementations of the same neurons, chosen from :data:`spiking_transformers.neurons.lif.BACKENDS`.

``"torch"`` is the reference. ``"fused"`` runs all T steps in one autograd node (see :mod:`.fused`). Every back end
is tested against the reference, forward and backward.
"""

from __future__ import annotations

from torch import nn

from ..lif import BACKENDS, LIF, register_backend
from .fused import lif_multistep_fused

__all__ = ["lif_multistep_fused", "set_backend", "available_backends"]

if "fused" not in BACKENDS:
    register_backend("fused", lif_multistep_fused)


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def set_backend(model: nn.Module, backend: str) -> int:
    """Switch every LIF module of ``model`` to ``backend``; returns how many modules were switched."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown neuron back end {backend!r}; available: {', '.join(available_backends())}")
    n = 0
    for module in model.modules():
        if isinstance(module, LIF):
            module.backend = backend
            n += 1
    return n
