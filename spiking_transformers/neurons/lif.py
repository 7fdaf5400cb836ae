r"""Multi-step integrate-and-fire neurons over time-major tensors ``[T, B, ...]``.

The maths follows spikingjelly 0.0.0.0.12 (``clock_driven.neuron``), which Spikformer, SDT V1 and V2 use, with
the operations in the same order so that float64 outputs are bit-identical:

.. math::
    H_t = V_{t-1} + \frac{X_t - (V_{t-1} - V_{reset})}{\tau}     \quad\text{(LIF, decay\_input)}

    S_t = \Theta(H_t - V_{th}) \quad\text{(fires on equality)}

    V_t = H_t (1 - S_t) + V_{reset} S_t \quad\text{(hard reset)} \qquad V_t = H_t - V_{th} S_t \quad\text{(soft)}

The membrane potential is a local variable of one call: it starts at rest (``v_reset``, or 0 for a soft reset)
every time, so the neurons are stateless across calls and never need a reset.

Pure functions (:func:`lif_multistep`, :func:`if_multistep`, :func:`plif_multistep`) hold the maths; the
modules (:class:`LIF`, :class:`IF`, :class:`ParametricLIF`) only hold hyper-parameters and pick a back end from
:data:`BACKENDS` (``"torch"`` is the reference; faster kernels register themselves there).
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from .surrogate import Surrogate, get_surrogate

__all__ = [
    "Neuron",
    "LIF",
    "IF",
    "ParametricLIF",
    "lif_multistep",
    "if_multistep",
    "plif_multistep",
    "multistep_neuron",
    "BACKENDS",
    "IF_BACKENDS",
    "PLIF_BACKENDS",
    "DEFAULT_BACKEND",
    "register_backend",
]


class ChargeFn(Protocol):
    def __call__(self, v: Tensor, x: Tensor) -> Tensor: ...


class Neuron(nn.Module):
    """Base class of every spiking neuron module in the library.

    Subclasses map a time-major input ``[T, B, ...]`` to an output of the same shape. Analysis tools find neurons
    through this class.

    Attributes:
        spike_scale: ``output * spike_scale`` is the integer number of spikes per element (1.0 for binary neurons,
            the level normaliser for multi-level neurons whose output is divided by it).
        max_level: the largest number of spikes one element can carry in one time step (1 for binary neurons,
            ``D`` for a multi-level neuron with levels ``0..D``).
        min_level: the smallest (0 for every unsigned neuron; -1 for a ternary neuron emitting -1, 0, +1, whose
            spike count per element is ``|output * spike_scale|``).
    """

    spike_scale: float = 1.0
    max_level: int = 1
    min_level: int = 0

    @property
    def is_binary(self) -> bool:
        return self.max_level == 1


def multistep_neuron(
    x: Tensor,
    charge: ChargeFn,
    *,
    v_threshold: float,
    v_reset: float | None,
    surrogate: Surrogate,
    detach_reset: bool,
) -> Tensor:
    """Run a charge / fire / reset neuron over the leading time axis (reference torch implementation).

    Args:
        x: input current ``[T, B, ...]``.
        charge: ``charge(v, x_t) -> h_t``, the membrane update before firing.
        v_threshold: firing threshold; a spike is emitted where ``h - v_threshold >= 0``.
        v_reset: hard-reset potential, or ``None`` for a soft reset (subtract the threshold).
        surrogate: the spike function (Heaviside forward, surrogate backward).
        detach_reset: detach the spike inside the reset term from the graph (spikingjelly's ``detach_reset``).

    Returns:
        spikes ``[T, B, ...]`` in ``x``'s dtype, exact 0.0 / 1.0.
    """
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    v: Tensor | float = 0.0 if v_reset is None else v_reset
    spikes = []
    for t in range(x.shape[0]):
        h = charge(v, x[t])
        s = surrogate(h - v_threshold)
        s_reset = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - s_reset * v_threshold
        else:
            v = (1.0 - s_reset) * h + s_reset * v_reset
        spikes.append(s)
    return torch.stack(spikes)


def _lif_charge(tau: float, v_reset: float | None, decay_input: bool) -> ChargeFn:
    # Four forms, exactly as spikingjelly writes them (a division by tau, not a multiplication by 1/tau).
    if decay_input:
        if v_reset is None or v_reset == 0.0:
            return lambda v, x: v + (x - v) / tau
        return lambda v, x: v + (x - (v - v_reset)) / tau
    if v_reset is None or v_reset == 0.0:
        return lambda v, x: v * (1.0 - 1.0 / tau) + x
    return lambda v, x: v - (v - v_reset) / tau + x


def _plif_charge(w: Tensor, v_reset: float | None, decay_input: bool) -> ChargeFn:
    k = w.sigmoid()  # 1 / tau, learnable
    if decay_input:
        if v_reset is None or v_reset == 0.0:
            return lambda v, x: v + (x - v) * k
        return lambda v, x: v + (x - (v - v_reset)) * k
    if v_reset is None or v_reset == 0.0:
        return lambda v, x: v * (1.0 - k) + x
    return lambda v, x: v - (v - v_reset) * k + x


def lif_multistep(
    x: Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """Leaky integrate-and-fire over ``x: [T, B, ...]``; returns spikes of the same shape (reference back end)."""
    return multistep_neuron(
        x,
        _lif_charge(tau, v_reset, decay_input),
        v_threshold=v_threshold,
        v_reset=v_reset,
        surrogate=get_surrogate(surrogate),
        detach_reset=detach_reset,
    )


def if_multistep(
    x: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
) -> Tensor:
    """Non-leaky integrate-and-fire over ``x: [T, B, ...]``: ``H = V + X``."""
    return multistep_neuron(
        x,
        lambda v, x_t: v + x_t,
        v_threshold=v_threshold,
        v_reset=v_reset,
        surrogate=get_surrogate(surrogate),
        detach_reset=detach_reset,
    )


def plif_multistep(
    x: Tensor,
    w: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """Parametric LIF (Fang et al. 2021) over ``x: [T, B, ...]`` with ``1/tau = sigmoid(w)``, ``w`` learnable."""
    return multistep_neuron(
        x,
        _plif_charge(w, v_reset, decay_input),
        v_threshold=v_threshold,
        v_reset=v_reset,
        surrogate=get_surrogate(surrogate),
        detach_reset=detach_reset,
    )


# Back ends: one table per neuron kind, name -> function with the signature of the reference function
# (``lif_multistep`` / ``if_multistep`` / ``plif_multistep``). The torch reference is always present; the fused and
# compiled kernels (``neurons/kernels``) add themselves through ``register_backend`` when the package is imported.
BACKENDS: dict[str, Callable[..., Tensor]] = {"torch": lif_multistep}
IF_BACKENDS: dict[str, Callable[..., Tensor]] = {"torch": if_multistep}
PLIF_BACKENDS: dict[str, Callable[..., Tensor]] = {"torch": plif_multistep}
_TABLES = {"lif": BACKENDS, "if": IF_BACKENDS, "plif": PLIF_BACKENDS}

#: The back end new neurons use: the fused kernel (one autograd node for all T steps; forward bit-identical to the
#: "torch" reference, gradients equal to rounding, less memory). "torch" is the step-by-step reference.
DEFAULT_BACKEND = "fused"


def register_backend(name: str, fn: Callable[..., Tensor], kind: str = "lif") -> None:
    """Register a back end for neurons of ``kind`` (``"lif"``, ``"if"``, ``"plif"``); duplicate names are an error."""
    table = _TABLES[kind]
    if name in table:
        raise ValueError(f"{kind} back end {name!r} is already registered")
    table[name] = fn


def _resolve_backend(backend: str, table: dict[str, Callable[..., Tensor]] = BACKENDS) -> Callable[..., Tensor]:
    try:
        return table[backend]
    except KeyError:
        raise ValueError(f"unknown neuron back end {backend!r}; available: {', '.join(sorted(table))}") from None


class _IntegrateFireBase(Neuron):
    _kind = "lif"  # which back-end table the class dispatches through

    def __init__(
        self,
        *,
        v_threshold: float,
        v_reset: float | None,
        surrogate: str | Surrogate,
        alpha: float | None,
        detach_reset: bool,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        super().__init__()
        self.backend = backend
        if v_reset is not None and v_reset >= v_threshold:
            raise ValueError(f"v_reset ({v_reset}) must lie below v_threshold ({v_threshold})")
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.surrogate = get_surrogate(surrogate, alpha)
        self.detach_reset = bool(detach_reset)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        _resolve_backend(name, _TABLES[self._kind])  # fail at once on an unknown name
        self._backend = name

    def _kernel(self) -> Callable[..., Tensor]:
        return _TABLES[self._kind][self._backend]

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(
                f"{type(self).__name__} expects a time-major tensor [T, B, ...], got shape {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard to {self.v_reset}"
        return (
            f"v_threshold={self.v_threshold}, reset={reset}, surrogate={self.surrogate.name}"
            f"(alpha={self.surrogate.alpha}), detach_reset={self.detach_reset}, backend={self.backend}"
        )


class LIF(_IntegrateFireBase):
    r"""Multi-step leaky integrate-and-fire neuron (spikingjelly ``MultiStepLIFNode`` semantics).

    Args:
        tau: membrane time constant (2.0 in every official model).
        v_threshold: firing threshold (1.0; attention neurons use 0.5).
        v_reset: hard-reset potential, or ``None`` for a soft reset.
        surrogate: surrogate-gradient name or object (``"sigmoid"``, alpha 4, is the official default).
        alpha: surrogate sharpness; ``None`` keeps the surrogate's default.
        detach_reset: detach the reset path from the graph.
        decay_input: charge ``H = V + (X - V)/tau`` (True) or ``H = V (1 - 1/tau) + X`` (False).
        backend: name in :data:`BACKENDS`.

    Shape:
        ``x: [T, B, ...]`` input current -> spikes of the same shape.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate: str | Surrogate = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
        decay_input: bool = True,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1 for a leaky neuron, got {tau}")
        super().__init__(
            v_threshold=v_threshold,
            v_reset=v_reset,
            surrogate=surrogate,
            alpha=alpha,
            detach_reset=detach_reset,
            backend=backend,
        )
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._kernel()(
            x,
            tau=self.tau,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
            decay_input=self.decay_input,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class IF(_IntegrateFireBase):
    """Multi-step integrate-and-fire neuron without leak: ``H = V + X``. Shape ``[T, B, ...]`` -> same."""

    _kind = "if"

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate: str | Surrogate = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold,
            v_reset=v_reset,
            surrogate=surrogate,
            alpha=alpha,
            detach_reset=detach_reset,
            backend=backend,
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._kernel()(
            x,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
        )


class ParametricLIF(_IntegrateFireBase):
    """Multi-step parametric LIF (spikingjelly ``MultiStepParametricLIFNode``): learnable ``1/tau = sigmoid(w)``.

    The parameter is named ``w`` (as in official checkpoints) and starts at ``-log(init_tau - 1)``, so that
    ``init_tau = 2`` gives ``w = 0``. Shape ``[T, B, ...]`` -> same.
    """

    _kind = "plif"

    def __init__(
        self,
        init_tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate: str | Surrogate = "sigmoid",
        alpha: float | None = None,
        detach_reset: bool = True,
        decay_input: bool = True,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold,
            v_reset=v_reset,
            surrogate=surrogate,
            alpha=alpha,
            detach_reset=detach_reset,
            backend=backend,
        )
        if init_tau <= 1.0:
            raise ValueError(f"init_tau must be > 1, got {init_tau}")
        self.decay_input = bool(decay_input)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._kernel()(
            x,
            self.w.to(x.dtype),
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
            decay_input=self.decay_input,
        )

    @property
    def tau(self) -> float:
        return float(1.0 / self.w.detach().sigmoid())
