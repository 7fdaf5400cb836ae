"""Spiking neurons and surrogate gradients.

Every neuron module subclasses :class:`Neuron`; ``output * neuron.spike_scale`` is the integer number of spikes
per element. Neurons take time-major tensors ``[T, B, ...]`` and are stateless across calls.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from .lif import (
    BACKENDS,
    DEFAULT_BACKEND,
    IF_BACKENDS,
    PLIF_BACKENDS,
    IF,
    LIF,
    Neuron,
    ParametricLIF,
    if_multistep,
    lif_multistep,
    multistep_neuron,
    plif_multistep,
    register_backend,
)
from .multispike import IELIF, MultiSpike, binary_to_levels, expand_to_binary, quantize_levels
from .surrogate import SURROGATES, Surrogate, get_surrogate, heaviside
from .kernels import available_backends, set_backend  # registers the fused back ends

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
    "Surrogate",
    "SURROGATES",
    "get_surrogate",
    "heaviside",
    "get_spike_layer",
    "SPIKE_LAYERS",
    "set_backend",
    "available_backends",
    "MultiSpike",
    "IELIF",
    "quantize_levels",
    "expand_to_binary",
    "binary_to_levels",
]

# Names accepted wherever a configuration gives a neuron type as a string.
SPIKE_LAYERS: dict[str, type[Neuron]] = {
    "lif": LIF,
    "plif": ParametricLIF,
    "if": IF,
    "multispike": MultiSpike,
    "ielif": IELIF,
}


def get_spike_layer(name: str, **defaults) -> Callable[..., Neuron]:
    """Factory for a neuron type named in a configuration (``"lif"``, ``"plif"``, ``"if"``).

    The returned callable builds a fresh module each call; keyword arguments given at the call site override
    ``defaults``. ``get_spike_layer("plif", init_tau=2.0)(v_threshold=0.5)``.
    """
    try:
        cls = SPIKE_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown spike layer {name!r}; known: {', '.join(sorted(SPIKE_LAYERS))}") from None
    return partial(cls, **defaults)
