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
from .plastic import ChannelParametricLIF, TernaryLIF, ternary_lif_multistep
from .surrogate import SURROGATES, Surrogate, get_surrogate, heaviside
from .dynamic import DYNAMIC_KINDS, DynamicNeuron, MixedDynamicNeuron  # DyTr-SNN (speech)
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
    "SpikeFactory",
    "DEFAULT_SPIKE_LAYER",
    "get_spike_layer",
    "resolve_spike_layer",
    "SPIKE_LAYERS",
    "set_backend",
    "available_backends",
    "MultiSpike",
    "IELIF",
    "quantize_levels",
    "expand_to_binary",
    "binary_to_levels",
    "TernaryLIF",
    "ternary_lif_multistep",
    "ChannelParametricLIF",
    "DynamicNeuron",
    "MixedDynamicNeuron",
    "DYNAMIC_KINDS",
]

# The one neuron-factory type of the library: called with keyword overrides (``v_threshold=0.5``), it returns a fresh
# Neuron. Every block takes its neurons as ``spike_layer: SpikeFactory``.
SpikeFactory = Callable[..., Neuron]
# The default neuron of every block: spikingjelly's MultiStepLIFNode as the official models set it (tau 2, threshold
# 1, hard reset to 0, detached reset, sigmoid surrogate with alpha 4).
DEFAULT_SPIKE_LAYER: SpikeFactory = LIF

# Names accepted wherever a configuration gives a neuron type as a string.
SPIKE_LAYERS: dict[str, type[Neuron]] = {
    "lif": LIF,
    "plif": ParametricLIF,
    "if": IF,
    "multispike": MultiSpike,
    "ielif": IELIF,
    "ternary": TernaryLIF,
}


def get_spike_layer(name: str, **defaults) -> SpikeFactory:
    """Factory for a neuron type named in a configuration (``"lif"``, ``"plif"``, ``"if"``).

    The returned callable builds a fresh module each call; keyword arguments given at the call site override
    ``defaults``. ``get_spike_layer("plif", init_tau=2.0)(v_threshold=0.5)``.
    """
    try:
        cls = SPIKE_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown spike layer {name!r}; known: {', '.join(sorted(SPIKE_LAYERS))}") from None
    return partial(cls, **defaults)


def resolve_spike_layer(spike_layer: str | SpikeFactory | None) -> SpikeFactory:
    """A neuron factory from a configuration value: a name of :data:`SPIKE_LAYERS` (``"lif"``, ``"plif"``, ...) with
    its default arguments, a factory (returned unchanged), or ``None`` (:data:`DEFAULT_SPIKE_LAYER`)."""
    if spike_layer is None:
        return DEFAULT_SPIKE_LAYER
    return get_spike_layer(spike_layer) if isinstance(spike_layer, str) else spike_layer
