r"""Learned-step-size (LSQ) weight quantization, per output channel (Esser et al., ICLR 2020), as QSD uses it.

A quantized layer keeps full-precision weights ``w`` and one step size ``alpha_c`` per output channel, and
computes with the fake-quantized weight

.. math::
    \hat w = \operatorname{round}(\operatorname{clamp}(w / \alpha, Q_n, Q_p)) \cdot \alpha, \qquad
    Q_n = -2^{b-1}, \; Q_p = 2^{b-1} - 1 \quad (b = 4: -8 \dots 7)

with a straight-through round (the gradient of ``w`` is 1 inside the clamp range, 0 outside) and the step-size
gradient scaled by ``g = 1 / sqrt(numel(w) * Q_p)``. The arithmetic follows the official QSD ``quan_w.py`` term by
term (``(round(u) - u) + u`` and ``(a - a g) + a g``), so float64 results agree to the last bit.

Differences from the official layers, all on purpose:

* The step sizes are initialised **at construction** (and by :meth:`LSQWeightMixin.reset_step_size` after the
  weights change), per output channel: ``alpha_c = 2 mean|w_c| / sqrt(Q_p)``. The official code allocates them
  uninitialised and, on the first training forward, sets *every* channel to the tensor-wide value
  ``2 mean|w| / sqrt(Q_p)``; a freshly built official model in eval mode therefore computes with garbage.
  ``reset_step_size(per_channel=False)`` gives the official tensor-wide value. Loaded checkpoints overwrite alpha.
* The unused activation quantizer (``.act``, whose forward is the identity) and the ``init_state`` flags are not
  built; the QSD converter drops those keys.

:func:`integer_weight` and :func:`export_integer_weights` give the deployable form: signed ``b``-bit integers and
their per-channel scales.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LSQWeightMixin",
    "LSQConv2d",
    "LSQConv1d",
    "LSQLinear",
    "lsq_fake_quantize",
    "lsq_levels",
    "reset_step_sizes",
]


def lsq_levels(bits: int) -> tuple[int, int]:
    """``(Q_n, Q_p)`` of a signed ``bits``-bit integer grid."""
    if bits < 2:
        raise ValueError(f"bits must be >= 2 for a signed grid, got {bits}")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _channel_view(alpha: Tensor, weight: Tensor) -> Tensor:
    # [C_out] -> [C_out, 1, ...] broadcasting against the weight
    return alpha.view(-1, *([1] * (weight.dim() - 1)))


def lsq_fake_quantize(weight: Tensor, alpha: Tensor, bits: int) -> Tensor:
    """Fake-quantized weight ``round(clamp(w / alpha, Qn, Qp)) * alpha`` with LSQ's gradients.

    Args:
        weight: ``[C_out, ...]`` full-precision weight.
        alpha: ``[C_out]`` positive step sizes.
        bits: integer width ``b``.
    """
    qn, qp = lsq_levels(bits)
    g = 1.0 / math.sqrt(weight.numel() * qp)
    # Gradient scaling of the step size: value alpha, gradient g * dL/dalpha (official "detach trick" order).
    a = alpha * g
    a = (alpha - a).detach() + a
    a = _channel_view(a, weight)
    u = (weight / a).clamp(qn, qp)
    u = (u.round() - u).detach() + u  # straight-through round
    return u * a


class LSQWeightMixin:
    """Per-output-channel LSQ weight quantization for a conv or linear layer (``weight`` is ``[C_out, ...]``).

    Mixed in before the layer class (``class LSQConv2d(LSQWeightMixin, nn.Conv2d)``): the constructor is the layer's
    plus ``bits``, and the subclass's ``forward`` computes with :meth:`quantized_weight`.

    Attributes:
        bits: integer width of the weights.
        alpha: ``[C_out]`` learnable step sizes.
    """

    weight: Tensor
    alpha: nn.Parameter
    bits: int

    def __init__(self, *args: Any, bits: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the layer class: builds and initialises ``weight``
        self._init_lsq(bits)

    def _init_lsq(self, bits: int) -> None:
        lsq_levels(bits)  # validates
        self.bits = int(bits)
        out = self.weight.shape[0]
        self.alpha = nn.Parameter(torch.empty(out, device=self.weight.device, dtype=self.weight.dtype))
        self.reset_step_size()

    @torch.no_grad()
    def reset_step_size(self, per_channel: bool = True) -> None:
        """Set ``alpha`` from the current weights: ``2 mean|w| / sqrt(Q_p)`` per output channel (default) or, as the
        official first training step does, the tensor-wide value in every channel."""
        _, qp = lsq_levels(self.bits)
        w = self.weight.detach().abs()
        mean = w.flatten(1).mean(1) if per_channel else w.mean().expand(w.shape[0])
        self.alpha.copy_(2 * mean / math.sqrt(qp))

    def quantized_weight(self) -> Tensor:
        """The fake-quantized weight the layer computes with (same shape as ``weight``)."""
        return lsq_fake_quantize(self.weight, self.alpha, self.bits)

    @torch.no_grad()
    def integer_weight(self) -> tuple[Tensor, Tensor]:
        """``(w_int, scale)``: int8 tensor of signed ``bits``-bit integers and the ``[C_out]`` scales, with
        ``w_int * scale[:, None, ...]`` equal to :meth:`quantized_weight` (up to the last bit of the official
        straight-through arithmetic)."""
        qn, qp = lsq_levels(self.bits)
        a = _channel_view(self.alpha, self.weight)
        w_int = (self.weight / a).clamp(qn, qp).round()
        return w_int.to(torch.int8), self.alpha.detach().clone()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}, per_channel_alpha={tuple(self.alpha.shape)}"


class LSQConv2d(LSQWeightMixin, nn.Conv2d):
    """``nn.Conv2d`` with per-output-channel LSQ weights (official ``Conv2dLSQ``, ``kernel_wise`` mode).

    Same constructor as ``nn.Conv2d`` plus ``bits`` (4 in QSD). Keys: ``weight``, ``bias``, ``alpha``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class LSQConv1d(LSQWeightMixin, nn.Conv1d):
    """``nn.Conv1d`` with per-output-channel LSQ weights (official ``Conv1dLSQ``)."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class LSQLinear(LSQWeightMixin, nn.Linear):
    """``nn.Linear`` with per-output-feature LSQ weights (official ``LinearLSQ``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


def reset_step_sizes(model: nn.Module, per_channel: bool = True) -> int:
    """Re-initialise the step size of every LSQ layer of ``model`` from its current weights; returns the count."""
    n = 0
    for module in model.modules():
        if isinstance(module, LSQWeightMixin):
            module.reset_step_size(per_channel=per_channel)
            n += 1
    return n
