"""Firing rates of every neuron module, streamed over any number of batches with exact averaging.

Neurons are found by type (:class:`spiking_transformers.neurons.Neuron`), so any model built from the library's
neurons works. ``output * spike_scale`` is the number of spikes per element; the firing rate of a neuron module is

    fr = (total spikes) / (total elements),  elements = T × B × (neurons of the layer),

i.e. the mean number of spikes a neuron emits per time step (for a multi-level neuron, the mean integer level:
the E-SpikeFormer / QSD convention). Totals are summed over all batches before dividing, so batches of different
sizes are weighted exactly (no per-batch averaging, no division by the number of batches minus one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..neurons import Neuron

__all__ = ["NeuronStats", "FiringRateMonitor", "block_of"]


def block_of(name: str) -> str:
    """Block a module belongs to: its path up to the first numeric index (``block.3.attn.q_lif`` -> ``block.3``,
    ``stages.1.blocks.0.x`` -> ``stages.1``), or its first component (``patch_embed.proj_lif`` -> ``patch_embed``)."""
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0] if parts and parts[0] else "(root)"


@dataclass
class NeuronStats:
    """Running totals of one neuron module.

    Attributes:
        name: qualified module name.
        type: class name.
        spike_scale: ``output * spike_scale`` = spikes per element.
        max_level: largest number of spikes per element and step the neuron can emit.
        spikes: total spikes.
        nonzero: elements that carried at least one spike.
        elements: total elements (all time steps, all samples).
        calls: forward calls.
        spikes_per_step / elements_per_step: totals per time step (index = step).
        max_seen: largest spike count seen in one element.
    """

    name: str
    type: str
    spike_scale: float
    max_level: int
    spikes: float = 0.0
    nonzero: int = 0
    elements: int = 0
    calls: int = 0
    spikes_per_step: list[float] = field(default_factory=list)
    elements_per_step: list[int] = field(default_factory=list)
    max_seen: int = 0

    @property
    def firing_rate(self) -> float:
        return self.spikes / self.elements if self.elements else 0.0

    @property
    def nonzero_rate(self) -> float:
        return self.nonzero / self.elements if self.elements else 0.0

    @property
    def rate_per_step(self) -> list[float]:
        return [s / e if e else 0.0 for s, e in zip(self.spikes_per_step, self.elements_per_step)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "block": block_of(self.name),
            "spike_scale": self.spike_scale,
            "max_level": self.max_level,
            "firing_rate": self.firing_rate,
            "nonzero_rate": self.nonzero_rate,
            "rate_per_step": self.rate_per_step,
            "spikes": self.spikes,
            "elements": self.elements,
            "max_seen": self.max_seen,
        }


class FiringRateMonitor:
    """Forward hooks on every :class:`Neuron` of a model that accumulate spike counts.

    Usage::

        with FiringRateMonitor(model) as mon:
            for x in batches:
                model(x)
        mon.rates()           # {neuron name: firing rate}
        mon.block_rates()     # {block: firing rate}

    Args:
        model: the model to watch.
        block_fn: maps a neuron's name to its block (default :func:`block_of`).
        time_major: neuron outputs are ``[T, B, ...]`` (the library's convention): per-step rates use axis 0.
    """

    def __init__(self, model: nn.Module, block_fn: Callable[[str], str] = block_of, time_major: bool = True) -> None:
        self.model = model
        self.block_fn = block_fn
        self.time_major = time_major
        self.stats: dict[str, NeuronStats] = {}
        for name, m in model.named_modules():
            if isinstance(m, Neuron):
                self.stats[name] = NeuronStats(name, type(m).__name__, float(m.spike_scale), int(m.max_level))
        self._handles: list[Any] = []

    def __enter__(self) -> "FiringRateMonitor":
        for name, m in self.model.named_modules():
            if name in self.stats:
                # prepend: run before any other hook of the neuron (e.g. the op counter's), on the raw output.
                self._handles.append(m.register_forward_hook(self._hook(self.stats[name]), prepend=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, st: NeuronStats) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not isinstance(output, Tensor):
                return
            with torch.no_grad():
                counts = (output.detach().to(torch.float64) * st.spike_scale).round().abs()
                st.calls += 1
                st.spikes += float(counts.sum())
                st.nonzero += int(torch.count_nonzero(counts))
                st.elements += counts.numel()
                if counts.numel():
                    st.max_seen = max(st.max_seen, int(counts.max()))
                if self.time_major and counts.dim() >= 1:
                    per = counts.reshape(counts.shape[0], -1)
                    sums = per.sum(1).tolist()
                    for t, s in enumerate(sums):
                        if t >= len(st.spikes_per_step):
                            st.spikes_per_step.append(0.0)
                            st.elements_per_step.append(0)
                        st.spikes_per_step[t] += s
                        st.elements_per_step[t] += per.shape[1]

        return hook

    def rates(self) -> dict[str, float]:
        """Firing rate of every neuron module that ran."""
        return {n: s.firing_rate for n, s in self.stats.items() if s.elements}

    def block_rates(self) -> dict[str, float]:
        """Firing rate per block: total spikes over total elements of the block's neurons."""
        spikes: dict[str, float] = {}
        elems: dict[str, int] = {}
        for n, s in self.stats.items():
            if not s.elements:
                continue
            b = self.block_fn(n)
            spikes[b] = spikes.get(b, 0.0) + s.spikes
            elems[b] = elems.get(b, 0) + s.elements
        return {b: spikes[b] / elems[b] for b in spikes}

    def totals(self) -> tuple[float, int]:
        """Total spikes and total neuron elements of the whole model (to sum over ranks before dividing)."""
        return sum(s.spikes for s in self.stats.values()), sum(s.elements for s in self.stats.values())

    def overall_rate(self) -> float:
        """Total spikes over total neuron elements of the whole model."""
        e = sum(s.elements for s in self.stats.values())
        return sum(s.spikes for s in self.stats.values()) / e if e else 0.0
