"""The ``"traced"`` back end: the reference maths in the fewest graph operators, for export (ONNX) and tracing.

Forward only (it keeps the surrogate out of the graph): the same charge as the reference, then per step one
comparison, one cast and, for a hard reset, one ``where`` (the reference's ``(1 - s) h + s v_reset`` is four
element-wise operators). Spikes are identical to the ``"torch"`` reference: ``h >= v_th`` and ``h - v_th >= 0`` agree
for every finite float, and ``where(s, v_reset, h)`` equals ``(1 - s) h + s v_reset`` for ``s`` in {0, 1} up to the sign
of a zero membrane, which no later comparison or charge can tell apart. An unrolled graph of a T-step neuron is 6
operators per step instead of 10, which is most of what onnxruntime spends outside convolutions and products.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..lif import _lif_charge, _plif_charge

__all__ = ["lif_multistep_traced", "if_multistep_traced", "plif_multistep_traced"]


def _run(x: Tensor, charge, v_threshold: float, v_reset: float | None) -> Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        raise ValueError("the 'traced' neuron back end is forward-only (for export); train with 'fused' or 'torch'")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    v: Tensor | float = 0.0 if v_reset is None else v_reset
    spikes = []
    for x_t in x.unbind(0):
        h = charge(v, x_t)
        fired = h >= v_threshold
        s = fired.to(h.dtype)
        v = h - s * v_threshold if v_reset is None else torch.where(fired, v_reset, h)
        spikes.append(s)
    return torch.stack(spikes)


def lif_multistep_traced(x: Tensor, *, tau: float = 2.0, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                         surrogate=None, detach_reset: bool = True, decay_input: bool = True) -> Tensor:
    """LIF over ``x: [T, B, ...]`` (forward only); arguments as :func:`~spiking_transformers.neurons.lif_multistep`."""
    return _run(x, _lif_charge(tau, v_reset, decay_input), v_threshold, v_reset)


def if_multistep_traced(x: Tensor, *, v_threshold: float = 1.0, v_reset: float | None = 0.0, surrogate=None,
                        detach_reset: bool = True) -> Tensor:
    """IF over ``x: [T, B, ...]`` (forward only)."""
    return _run(x, lambda v, x_t: v + x_t, v_threshold, v_reset)


def plif_multistep_traced(x: Tensor, w: Tensor, *, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                          surrogate=None, detach_reset: bool = True, decay_input: bool = True) -> Tensor:
    """Parametric LIF over ``x: [T, B, ...]`` (forward only)."""
    return _run(x, _plif_charge(w, v_reset, decay_input), v_threshold, v_reset)
