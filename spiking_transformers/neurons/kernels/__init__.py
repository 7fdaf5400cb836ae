"""Faster implementations of the same neurons, chosen from tables of back ends.

``"torch"`` is the reference (``neurons/lif.py``). ``"fused"`` runs all T steps in one autograd node (see
:mod:`.fused`); ``"cpp"`` does the same in a compiled C++ loop (see :mod:`.cpp`; PLIF uses ``"fused"``). Every
back end is tested against the reference, forward and backward (``tests/test_kernels.py``).

Tables: :data:`~spiking_transformers.neurons.lif.BACKENDS` for LIF (signature of ``lif_multistep``),
:data:`IF_BACKENDS` (``if_multistep``) and :data:`PLIF_BACKENDS` (``plif_multistep``). :func:`set_backend` switches
every neuron of a model that has a form in the chosen back end.

``lif.py``'s :class:`~spiking_transformers.neurons.lif.IF` and :class:`~spiking_transformers.neurons.lif.ParametricLIF`
have no ``backend`` attribute of their own (yet), so :func:`set_backend` gives such a module the class
:class:`SwitchableIF` / :class:`SwitchableParametricLIF`: a subclass with the same parameters, state-dict keys and
maths that dispatches through the table. Switching back to ``"torch"`` restores the plain class.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..lif import BACKENDS, IF, LIF, ParametricLIF, if_multistep, plif_multistep, register_backend
from .cpp import if_multistep_cpp, lif_multistep_cpp
from .fused import if_multistep_fused, lif_multistep_fused, plif_multistep_fused

__all__ = [
    "lif_multistep_fused",
    "if_multistep_fused",
    "plif_multistep_fused",
    "IF_BACKENDS",
    "PLIF_BACKENDS",
    "SwitchableIF",
    "SwitchableParametricLIF",
    "set_backend",
    "available_backends",
]

if "fused" not in BACKENDS:
    register_backend("fused", lif_multistep_fused)
if "cpp" not in BACKENDS:
    # Compiled on first use, not here; falls back to "fused" (with one warning) where it cannot be built.
    register_backend("cpp", lif_multistep_cpp)

# name -> function with the signature of ``if_multistep`` / ``plif_multistep``.
IF_BACKENDS: dict[str, Callable[..., Tensor]] = {
    "torch": if_multistep,
    "fused": if_multistep_fused,
    "cpp": if_multistep_cpp,
}
# PLIF has no C++ form (its w gradient is a reduction): "cpp" runs the fused one, so set_backend switches it too.
PLIF_BACKENDS: dict[str, Callable[..., Tensor]] = {
    "torch": plif_multistep,
    "fused": plif_multistep_fused,
    "cpp": plif_multistep_fused,
}


class SwitchableIF(IF):
    """:class:`~spiking_transformers.neurons.lif.IF` whose maths comes from :data:`IF_BACKENDS` ``[self.backend]``."""

    backend: str = "torch"

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return IF_BACKENDS[self.backend](
            x,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
        )

    def extra_repr(self) -> str:
        return f"backend={self.backend}, " + super().extra_repr()


class SwitchableParametricLIF(ParametricLIF):
    """:class:`~spiking_transformers.neurons.lif.ParametricLIF` dispatching through :data:`PLIF_BACKENDS`."""

    backend: str = "torch"

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return PLIF_BACKENDS[self.backend](
            x,
            self.w.to(x.dtype),
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
            decay_input=self.decay_input,
        )

    def extra_repr(self) -> str:
        return f"backend={self.backend}, " + super().extra_repr()


# plain class -> (switchable subclass, its table)
_SWITCHABLE: dict[type[nn.Module], tuple[type[nn.Module], dict[str, Callable[..., Tensor]]]] = {
    IF: (SwitchableIF, IF_BACKENDS),
    ParametricLIF: (SwitchableParametricLIF, PLIF_BACKENDS),
}


def available_backends() -> list[str]:
    """Names usable with :func:`set_backend` (every LIF back end)."""
    return sorted(BACKENDS)


def set_backend(model: nn.Module, backend: str) -> int:
    """Switch every neuron of ``model`` that has a form in ``backend``; returns how many modules were switched.

    LIF modules (and subclasses) get ``module.backend = backend``. Exact :class:`IF` / :class:`ParametricLIF`
    modules (or their switchable subclasses) are switched when the back end has an IF / PLIF form, and left alone
    otherwise. Other neuron types (multi-level neurons, ...) are never touched.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown neuron back end {backend!r}; available: {', '.join(available_backends())}")
    n = 0
    for module in model.modules():
        if isinstance(module, LIF):
            module.backend = backend
            n += 1
            continue
        for plain, (switchable, table) in _SWITCHABLE.items():
            if type(module) in (plain, switchable) and backend in table:
                if backend == "torch":
                    module.__class__ = plain
                    module.__dict__.pop("backend", None)
                else:
                    module.__class__ = switchable
                    module.backend = backend
                n += 1
    return n
