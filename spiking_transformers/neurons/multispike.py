r"""Multi-level (integer) spiking neurons and the expansion of integer spikes into binary spike trains.

Three published neurons emit an integer number of spikes per element in one (real) time step, normalised by a
constant. They are stateless and act element-wise, so they accept ``[T, B, ...]`` (or any shape):

.. math::
    k = \operatorname{round}(\operatorname{clamp}(a \cdot x, 0, D)) \in \{0, \dots, D\}, \qquad
    s = k / \text{norm}

=============================  ======  =========  ===============  ======  ====================================
neuron                         a       round      gradient window  norm    class
=============================  ======  =========  ===============  ======  ====================================
E-SpikeFormer base (SDT V3)    1       half-even  ``0 <= x <= D``  D (1)   ``MultiSpike()``
E-SpikeFormer large (SDT V3)   1       half-up    ``0 < x < D``    D (1)   ``MultiSpike(rounding="half_up",``
                                                                           ``grad_window="open")``
QSD-Transformer IE-LIF         4       half-up    ``0 < 4x < 4``   4       :class:`IELIF`
QSD attention IE-LIF           4       half-up    ``0 < 4x < 4``   2       :class:`IELIF` (``norm=2``)
=============================  ======  =========  ===============  ======  ====================================

(The norm in brackets is the one of the classifier-head neurons.) "half-even" is ``torch.round``; "half-up" is
``floor(clamp(.) + 0.5)``; they differ only at exact ties ``k + 0.5``, which do occur (attention inputs are sums
of spike products times a power of two). The backward is the straight-through estimator of the official code:
the gradient of ``k`` w.r.t. ``a*x`` is 1 inside the window and 0 outside, so ``ds/dx = a / norm`` inside.

``output * spike_scale`` (``spike_scale = norm``) is the integer level ``k``: the number of binary spikes the
element emits over ``D`` virtual time steps at inference (the "integer training, spike-driven inference" of
E-SpikeFormer / QSD). :func:`expand_to_binary` produces that spike train; ``spiking_transformers.export.
binary_expansion`` runs a whole model in that purely binary form.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .lif import Neuron

__all__ = [
    "ROUNDING_MODES",
    "GRAD_WINDOWS",
    "quantize_levels",
    "MultiSpike",
    "IELIF",
    "expand_to_binary",
    "binary_to_levels",
]

ROUNDING_MODES = ("half_even", "half_up")
GRAD_WINDOWS = ("closed", "open")


class _QuantizeLevels(torch.autograd.Function):
    """``round(clamp(x, 0, D))`` forward, straight-through (windowed identity) backward."""

    @staticmethod
    def forward(ctx, x: Tensor, max_level: int, half_up: bool, open_window: bool) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.max_level = max_level
        ctx.open_window = open_window
        clamped = torch.clamp(x, 0, max_level)
        # Same expressions as the official code, so float results agree bit for bit.
        return torch.floor(clamped + 0.5) if half_up else torch.round(clamped)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if ctx.open_window:
            inside = (x > 0) & (x < ctx.max_level)
        else:
            inside = (x >= 0) & (x <= ctx.max_level)
        return grad_output * inside.to(grad_output.dtype), None, None, None


def quantize_levels(
    x: Tensor, max_level: int = 4, *, rounding: str = "half_even", grad_window: str = "closed"
) -> Tensor:
    """Integer spike levels ``round(clamp(x, 0, max_level))`` (same shape and dtype as ``x``) with the official
    straight-through gradient (1 inside the window, 0 outside).

    Args:
        x: input (membrane) ``[...]``.
        max_level: ``D``, the largest level.
        rounding: ``"half_even"`` (``torch.round``, SDT V3 base) or ``"half_up"`` (``floor(. + 0.5)``, V3 large, QSD).
        grad_window: ``"closed"`` (``0 <= x <= D``, V3 base) or ``"open"`` (``0 < x < D``, V3 large, QSD).
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    if grad_window not in GRAD_WINDOWS:
        raise ValueError(f"grad_window must be one of {GRAD_WINDOWS}, got {grad_window!r}")
    return _QuantizeLevels.apply(x, int(max_level), rounding == "half_up", grad_window == "open")


class MultiSpike(Neuron):
    r"""Stateless multi-level spiking neuron: ``s = round(clamp(input_scale * x, 0, D)) / norm``.

    The defaults are E-SpikeFormer base's ``MultiSpike`` (SFA neuron): ``D = 4``, ``norm = D``, round half to even,
    closed gradient window. E-SpikeFormer large's ``Multispike`` is ``rounding="half_up", grad_window="open"``
    with ``max_level`` its module constant (4 for the ``1x4`` checkpoints, 8 for ``1x8``). Classifier-head neurons
    use ``norm=1`` (integer output).

    Args:
        max_level: ``D``, the largest integer level (= the number of virtual time steps of the binary expansion).
        norm: the output normaliser; ``None`` means ``max_level``. ``spike_scale = norm``.
        rounding: ``"half_even"`` or ``"half_up"`` (see :func:`quantize_levels`).
        grad_window: ``"closed"`` or ``"open"`` straight-through window.
        input_scale: factor applied to the input before quantising (QSD's IE-LIF uses 4); the gradient carries it.

    Shape:
        any shape (time-major ``[T, B, ...]`` by convention) -> same shape, values in ``{0, 1/norm, ..., D/norm}``.
    """

    def __init__(
        self,
        max_level: int = 4,
        norm: float | None = None,
        rounding: str = "half_even",
        grad_window: str = "closed",
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if int(max_level) != max_level or max_level < 1:
            raise ValueError(f"max_level must be a positive integer, got {max_level}")
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
        if grad_window not in GRAD_WINDOWS:
            raise ValueError(f"grad_window must be one of {GRAD_WINDOWS}, got {grad_window!r}")
        norm = float(max_level) if norm is None else float(norm)
        if norm <= 0:
            raise ValueError(f"norm must be positive, got {norm}")
        self.max_level = int(max_level)
        self.norm = norm
        self.spike_scale = norm
        self.rounding = rounding
        self.grad_window = grad_window
        self.input_scale = float(input_scale)

    def levels(self, x: Tensor) -> Tensor:
        """Integer levels ``k`` in ``{0..D}`` (float dtype of ``x``), differentiable through the STE."""
        if self.input_scale != 1.0:
            x = self.input_scale * x
        return quantize_levels(x, self.max_level, rounding=self.rounding, grad_window=self.grad_window)

    def forward(self, x: Tensor) -> Tensor:
        return self.levels(x) / self.norm

    def extra_repr(self) -> str:
        scale = f", input_scale={self.input_scale:g}" if self.input_scale != 1.0 else ""
        return (
            f"max_level={self.max_level}, norm={self.norm:g}, rounding={self.rounding}, "
            f"grad_window={self.grad_window}{scale}"
        )


class IELIF(MultiSpike):
    r"""QSD-Transformer's IE-LIF as released (the official ``Multispike``): ``floor(clamp(4x, 0, 4) + 0.5) / norm``.

    ``norm=4`` (default) gives the block neurons (values ``0, 1/4, ..., 1``); ``norm=2`` gives the attention
    neuron ``Multispike_att`` (values ``0, 1/2, ..., 2``). The gradient is ``4/norm`` for ``0 < 4x < 4``, else 0.
    The paper's information-enhancement rectification and its FGD loss are not in the released code, so they are
    not modelled here. ``max_level`` is the level count (the official code fixes 4; it also sets the input scale).
    """

    def __init__(self, norm: float = 4.0, max_level: int = 4) -> None:
        super().__init__(
            max_level=max_level, norm=norm, rounding="half_up", grad_window="open", input_scale=float(max_level)
        )


def expand_to_binary(levels: Tensor, max_level: int, *, order: str = "first", check: bool = True) -> Tensor:
    """Expand integer levels into a binary spike train over ``max_level`` virtual time steps.

    Args:
        levels: integer-valued tensor ``[...]`` with values in ``0..max_level`` (e.g. ``neuron.levels(x)`` or
            ``output * spike_scale``).
        max_level: ``D``, the number of virtual steps.
        order: where the ``k`` spikes sit among the ``D`` steps: ``"first"`` (steps ``0..k-1``) or ``"last"``.
            Any order gives the same sum; the paper leaves it free.
        check: verify that ``levels`` holds integers in range (raises ``ValueError``).

    Returns:
        ``[D, ...]`` exact 0/1 values in ``levels``' dtype, with ``out.sum(0) == levels``.
    """
    if check:
        if not torch.equal(levels, torch.round(levels)):
            raise ValueError("expand_to_binary: levels must be integer-valued")
        if levels.numel() and (levels.min() < 0 or levels.max() > max_level):
            raise ValueError(f"expand_to_binary: levels must lie in [0, {max_level}]")
    steps = torch.arange(max_level, device=levels.device, dtype=levels.dtype).view(-1, *([1] * levels.dim()))
    if order == "first":
        spikes = steps < levels.unsqueeze(0)
    elif order == "last":
        spikes = steps >= max_level - levels.unsqueeze(0)
    else:
        raise ValueError(f"order must be 'first' or 'last', got {order!r}")
    return spikes.to(levels.dtype)


def binary_to_levels(spikes: Tensor) -> Tensor:
    """Inverse of :func:`expand_to_binary`: ``[D, ...]`` binary -> integer levels ``[...]`` (sum over steps)."""
    return spikes.sum(0)
