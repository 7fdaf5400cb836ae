r"""Neurons of the mechanisms published without code: a ternary LIF (A²OS²A's value neuron) and a parametric LIF
with one learnable time constant per channel (DISTA's "intrinsic plasticity", per-channel option).

Both are built from the paper descriptions, not from official code (none is published); the readings are stated
on each class.

Ternary LIF (Guo et al., "Ternary Spike", AAAI 2024, as A²OS²A uses it for V; our reading of the update):

.. math::
    H_t = V_{t-1} + \frac{X_t - V_{t-1}}{\tau}, \qquad
    S_t = \Theta(H_t - V_{th}) - \Theta(-H_t - V_{th}) \in \{-1, 0, +1\}, \qquad
    V_t = H_t (1 - |S_t|)

i.e. the library's LIF charge (spikingjelly's ``decay_input`` form, hard reset to 0) with a second, negative
threshold. A fired element (either sign) resets to 0. The spike count per element is ``|S_t|``.

Channel parametric LIF: :class:`~spiking_transformers.neurons.ParametricLIF` (``1/tau = sigmoid(w)``) with ``w`` a
vector of one entry per channel instead of one scalar per layer. It always runs the step-by-step reference
(:func:`~spiking_transformers.neurons.plif_multistep`, whose charge broadcasts ``w``); the fused kernels reduce the
gradient of ``w`` to a scalar and so are never used for it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .lif import Neuron, ParametricLIF, plif_multistep
from .surrogate import Surrogate, get_surrogate

__all__ = ["TernaryLIF", "ChannelParametricLIF", "ternary_lif_multistep"]


def ternary_lif_multistep(
    x: Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
) -> Tensor:
    """Ternary leaky integrate-and-fire over ``x: [T, B, ...]``; returns spikes in {-1, 0, +1} of the same shape.

    Each side of the double threshold has its own surrogate gradient (the surrogate of ``H - V_th`` for +1, of
    ``-H - V_th`` for -1), so the gradient is symmetric around 0.
    """
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    if v_threshold <= 0:
        raise ValueError(f"a ternary neuron needs v_threshold > 0 (thresholds +-v_threshold), got {v_threshold}")
    sg = get_surrogate(surrogate)
    v: Tensor | float = 0.0
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = sg(h - v_threshold) - sg(-h - v_threshold)
        fired = s.abs()
        fired = fired.detach() if detach_reset else fired
        v = h * (1.0 - fired)
        out.append(s)
    return torch.stack(out)


class TernaryLIF(Neuron):
    r"""Multi-step ternary LIF: fires +1 when ``H >= V_th``, -1 when ``H <= -V_th``, else 0; fired elements reset.

    Args:
        tau: membrane time constant (charge ``H = V + (X - V)/tau``, as :class:`~spiking_transformers.neurons.LIF`).
        v_threshold: the two thresholds are ``+v_threshold`` and ``-v_threshold``.
        surrogate: surrogate-gradient name or object (sigmoid, alpha 4, as the library's LIF).
        alpha: surrogate sharpness (``None``: the surrogate's default).
        detach_reset: detach the reset path from the graph.

    Shape:
        ``x: [T, B, ...]`` -> spikes in {-1, 0, +1}, same shape. ``min_level = -1``: the spike count of an element
        is ``|output|``.
    """

    max_level = 1
    min_level = -1

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        surrogate: str | Surrogate = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
    ) -> None:
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1 for a leaky neuron, got {tau}")
        if v_threshold <= 0:
            raise ValueError(f"v_threshold must be > 0 (thresholds +-v_threshold), got {v_threshold}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.surrogate = get_surrogate(surrogate, alpha)
        self.detach_reset = bool(detach_reset)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"TernaryLIF expects a time-major tensor [T, B, ...], got shape {tuple(x.shape)}")
        return ternary_lif_multistep(
            x, tau=self.tau, v_threshold=self.v_threshold, surrogate=self.surrogate, detach_reset=self.detach_reset
        )

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, v_threshold=+-{self.v_threshold}, surrogate={self.surrogate.name}"
                f"(alpha={self.surrogate.alpha}), detach_reset={self.detach_reset}")


class ChannelParametricLIF(ParametricLIF):
    """Parametric LIF with a learnable time constant per channel: ``1/tau_c = sigmoid(w_c)``.

    Everything else is :class:`~spiking_transformers.neurons.ParametricLIF` (hard reset to ``v_reset``, detached
    reset, sigmoid surrogate). With every ``w_c`` equal it gives the same spikes as ``ParametricLIF``.

    Args:
        num_channels: number of channels ``C`` (the length of ``w``).
        channel_dim: axis of ``x`` holding the channels, counted on the full ``[T, B, ...]`` input (-1 for tokens
            ``[T, B, N, C]``, 2 for feature maps ``[T, B, C, H, W]``).
        init_tau: initial time constant of every channel (> 1).
        v_threshold, v_reset, surrogate, alpha, detach_reset, decay_input: as ``ParametricLIF``.

    Shape:
        ``x: [T, B, ...]`` with ``x.shape[channel_dim] == num_channels`` -> spikes, same shape.
    """

    def __init__(
        self,
        num_channels: int,
        *,
        channel_dim: int = -1,
        init_tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate: str | Surrogate = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
        decay_input: bool = True,
    ) -> None:
        super().__init__(
            init_tau=init_tau, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, alpha=alpha,
            detach_reset=detach_reset, decay_input=decay_input, backend="torch",
        )
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        if channel_dim in (0, 1):
            raise ValueError(f"channel_dim must not be the time (0) or batch (1) axis, got {channel_dim}")
        self.num_channels = int(num_channels)
        self.channel_dim = int(channel_dim)
        self.w = nn.Parameter(torch.full((num_channels,), -math.log(init_tau - 1.0)))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        dim = self.channel_dim % x.dim()
        if dim < 2 or x.shape[dim] != self.num_channels:
            raise ValueError(
                f"ChannelParametricLIF: expected {self.num_channels} channels on axis {self.channel_dim} of a "
                f"[T, B, ...] input, got shape {tuple(x.shape)}"
            )
        # w broadcast against one time step x[t] (its axes are x's without the leading T).
        w = self.w.to(x.dtype).reshape(self.num_channels, *([1] * (x.dim() - 1 - dim)))
        return plif_multistep(
            x, w, v_threshold=self.v_threshold, v_reset=self.v_reset, surrogate=self.surrogate,
            detach_reset=self.detach_reset, decay_input=self.decay_input,
        )

    @property
    def tau(self) -> Tensor:  # type: ignore[override]
        """Per-channel time constants ``[C]`` (detached)."""
        return 1.0 / self.w.detach().sigmoid()

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, channel_dim={self.channel_dim}, " + super().extra_repr()
