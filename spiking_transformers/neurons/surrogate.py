"""Surrogate gradients for the Heaviside spike function.

Each surrogate is one ``torch.autograd.Function``: the forward is the exact Heaviside step
``(x >= 0)`` (spikingjelly fires on equality, and so do we), the backward is the derivative of a smooth
*primitive* ``g_alpha(x)``. The primitive is kept beside each function so that tests can check the hand-written
backward against ``torch.autograd`` of the primitive.

Surrogates are looked up by name with :func:`get_surrogate`, which returns a small stateless callable; no module
instance is ever shared between neurons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "Surrogate",
    "SigmoidSurrogate",
    "ATanSurrogate",
    "RectangleSurrogate",
    "FastSigmoidSurrogate",
    "ErfSurrogate",
    "SURROGATES",
    "KERNEL_CODES",
    "get_surrogate",
    "heaviside",
]


def sigmoid_derivative(x: Tensor, alpha: float) -> Tensor:
    sgax = (x * alpha).sigmoid()
    return (1.0 - sgax) * sgax * alpha


def atan_derivative(x: Tensor, alpha: float) -> Tensor:
    return alpha / 2 / (1 + (math.pi / 2 * alpha * x).square())


def rectangle_derivative(x: Tensor, alpha: float) -> Tensor:
    return (x.abs() < alpha / 2).to(x.dtype) / alpha


def fast_sigmoid_derivative(x: Tensor, alpha: float) -> Tensor:
    return 1.0 / (1 + alpha * x.abs()).square()


def erf_derivative(x: Tensor, alpha: float) -> Tensor:
    return alpha / math.sqrt(math.pi) * torch.exp(-(alpha * x).square())


def heaviside(x: Tensor) -> Tensor:
    """Step function that fires on equality: ``1`` where ``x >= 0``, else ``0``, in ``x``'s dtype."""
    return (x >= 0).to(x.dtype)


def _spike_function(name: str, derivative: Callable[[Tensor, float], Tensor], doc: str) -> type[torch.autograd.Function]:
    """Build the ``autograd.Function`` of one surrogate: Heaviside forward, ``derivative(x, alpha)`` backward."""

    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * derivative(x, ctx.alpha), None

    return type(name, (torch.autograd.Function,), {
        "__doc__": doc, "forward": staticmethod(forward), "backward": staticmethod(backward),
    })  # fmt: skip


_SigmoidFn = _spike_function(
    "SigmoidSurrogate", sigmoid_derivative,
    "Heaviside forward, derivative of ``sigmoid(alpha * x)`` backward (spikingjelly's default, alpha 4).",
)  # fmt: skip
_ATanFn = _spike_function(
    "ATanSurrogate", atan_derivative, "Heaviside forward, derivative of ``atan(pi/2 * alpha * x) / pi + 1/2`` backward."
)
_RectangleFn = _spike_function(
    "RectangleSurrogate", rectangle_derivative,
    "Heaviside forward, box-car backward: ``1/alpha`` on ``|x| < alpha/2`` (the STBP rectangular window).",
)  # fmt: skip
_FastSigmoidFn = _spike_function(
    "FastSigmoidSurrogate", fast_sigmoid_derivative,
    "Heaviside forward, SuperSpike backward: derivative of ``x / (1 + alpha |x|)``, unit height at 0.",
)  # fmt: skip
_ErfFn = _spike_function(
    "ErfSurrogate", erf_derivative, "Heaviside forward, Gaussian backward: derivative of ``(1 + erf(alpha * x)) / 2``."
)


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate with its sharpness ``alpha``; calling it applies the spike function.

    Attributes:
        name: registry name (``"sigmoid"``, ``"atan"``, ...).
        alpha: sharpness of the smooth primitive.
        function: the ``autograd.Function`` (Heaviside forward, surrogate backward).
        primitive: the smooth function whose derivative the backward computes, ``primitive(x, alpha)``.
    """

    name: str
    alpha: float
    function: type[torch.autograd.Function]
    primitive: Callable[[Tensor, float], Tensor]
    derivative_fn: Callable[[Tensor, float], Tensor]

    def __call__(self, x: Tensor) -> Tensor:
        return self.function.apply(x, self.alpha)

    def derivative(self, x: Tensor) -> Tensor:
        """The surrogate gradient ``d spike / d x`` at ``x``, through the autograd function's own backward."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.function.apply(x, self.alpha)
            (g,) = torch.autograd.grad(out.sum(), x)
        return g

    def grad(self, x: Tensor) -> Tensor:
        """The surrogate gradient ``d spike / d x`` at ``x`` as a plain formula (for fused kernels; no autograd)."""
        return self.derivative_fn(x, self.alpha)


def _sigmoid_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.sigmoid(alpha * x)


def _atan_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5


def _erf_primitive(x: Tensor, alpha: float) -> Tensor:
    return 0.5 * (1 + torch.erf(alpha * x))


def _rectangle_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.clamp(x / alpha + 0.5, 0.0, 1.0)


def _fast_sigmoid_primitive(x: Tensor, alpha: float) -> Tensor:
    return x / (1 + alpha * x.abs())


_Fn = Callable[[Tensor, float], Tensor]

# name -> (autograd function, smooth primitive, derivative formula, default alpha)
SURROGATES: dict[str, tuple[type[torch.autograd.Function], _Fn, _Fn, float]] = {
    "sigmoid": (_SigmoidFn, _sigmoid_primitive, sigmoid_derivative, 4.0),
    "atan": (_ATanFn, _atan_primitive, atan_derivative, 2.0),
    "rectangle": (_RectangleFn, _rectangle_primitive, rectangle_derivative, 1.0),
    "fast_sigmoid": (_FastSigmoidFn, _fast_sigmoid_primitive, fast_sigmoid_derivative, 10.0),
    "erf": (_ErfFn, _erf_primitive, erf_derivative, 2.0),
}

# Public aliases, so users can refer to the functions themselves.
SigmoidSurrogate = _SigmoidFn
ATanSurrogate = _ATanFn
RectangleSurrogate = _RectangleFn
FastSigmoidSurrogate = _FastSigmoidFn
ErfSurrogate = _ErfFn


def get_surrogate(surrogate: str | Surrogate = "sigmoid", alpha: float | None = None) -> Surrogate:
    """Resolve a surrogate by name.

    Args:
        surrogate: a name from :data:`SURROGATES` or an existing :class:`Surrogate` (returned unchanged unless
            ``alpha`` is given).
        alpha: sharpness; ``None`` takes the surrogate's default (sigmoid: 4, the official spikingjelly value).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(surrogate, Surrogate):
        if alpha is None or alpha == surrogate.alpha:
            return surrogate
        return Surrogate(surrogate.name, float(alpha), surrogate.function, surrogate.primitive, surrogate.derivative_fn)
    try:
        function, primitive, derivative_fn, default_alpha = SURROGATES[surrogate]
    except KeyError:
        raise ValueError(f"unknown surrogate {surrogate!r}; known: {', '.join(sorted(SURROGATES))}") from None
    return Surrogate(surrogate, float(default_alpha if alpha is None else alpha), function, primitive, derivative_fn)


# The integer by which the compiled neuron kernels (kernels/cpp.py's C++ switch, kernels/triton_lif.py's constexpr
# branch) select a surrogate's derivative formula; a surrogate without a code runs on the fused back end.
KERNEL_CODES = {"sigmoid": 0, "atan": 1, "rectangle": 2, "fast_sigmoid": 3, "erf": 4}
