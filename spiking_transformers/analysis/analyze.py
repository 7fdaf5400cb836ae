"""One call that runs a model over batches and returns operations, firing rates, energy and the audit.

``analyze(model, batches)`` needs no model-specific code: it counts synaptic operations with
:class:`~.ops.SynapticOpCounter`, records firing rates with :class:`~.firing.FiringRateMonitor`, prices them with
an :class:`~.energy.EnergyTable`, and audits the inputs with :func:`~.audit.audit`. Every number in the result is
*per sample* (summed over the ``T`` time steps of one input), averaged exactly over all samples seen.

Conventions reported side by side:

* **measured**: ACs counted from the actual spike events (an integer ``k`` counts ``k``), MACs on the dense FLOPs of
  operations whose inputs are all real (the encoding layer, and anything after a real-valued path), as executed
  (a static image repeated over ``T`` steps runs the encoding layer ``T`` times).
* **paper** (§0.3 of the lineage spec): ``E = E_MAC · FLOPs(encoding) + E_AC · Σ_l fr_l · T · FLOPs_l``, where
  ``FLOPs`` is the ANN count of one time step, ``fr_l`` the mean spike count per element of layer ``l``'s input,
  and the encoding layer is counted once when the input is a static image repeated over time. Other real-input
  layers are counted as MACs here too (what syops-style counters do).
* **ANN**: every operation as a MAC on the FLOPs of one time step (the same network without time or spikes).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from torch import Tensor, nn

from ..layers import batch_axis
from .audit import AuditResult, audit
from .energy import HOROWITZ_45NM, EnergyTable
from .firing import FiringRateMonitor, NeuronStats
from .ops import OpRecord, SynapticOpCounter, kind_label

__all__ = ["EnergyReport", "LayerRow", "analyze", "bn_batch_statistics"]


@dataclass(frozen=True)
class LayerRow:
    """One synaptic operation site, per sample.

    Attributes:
        key, module, module_type, op: see :class:`~.ops.OpRecord`.
        input_kind: kind of the driving input (``binary``, ``multi-level``, ``integer``, ``real``).
        input_max_level: largest spike count seen in one element of the driving input.
        operand_kinds: kind of each operand (``weight`` for a parameter).
        dense_flops: dense multiply-adds (all time steps).
        firing_rate: mean spike count per element of the driving input.
        acs, macs: measured accumulates and multiply-accumulates.
        paper_sops: ``fr × T × FLOPs``.
        energy_pj: ``E_MAC · macs + E_AC · acs``.
        encoding: the encoding layer.
    """

    key: str
    module: str
    module_type: str
    op: str
    input_kind: str
    input_max_level: int
    operand_kinds: tuple[str, ...]
    dense_flops: float
    firing_rate: float
    acs: float
    macs: float
    paper_sops: float
    energy_pj: float
    encoding: bool

    @property
    def input_label(self) -> str:
        return kind_label(self.input_kind, self.input_max_level)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["operand_kinds"] = list(self.operand_kinds)
        return d


@dataclass
class EnergyReport:
    """Result of :func:`analyze`; every count is per sample.

    Attributes:
        model: model name.
        T: time steps.
        samples: samples analysed.
        batches: batches analysed.
        static_input: the inputs were static images repeated over ``T`` (affects the paper convention).
        table: the energy constants used.
        layers: one :class:`LayerRow` per synaptic operation site, in execution order.
        neurons: firing statistics per neuron module.
        audit: the spike-driven audit.
        totals: totals (see :meth:`to_dict`).
        notes: free-text lines shown with the report (checkpoint, data, conventions).
    """

    model: str
    T: int
    samples: int
    batches: int
    static_input: bool
    table: EnergyTable
    layers: list[LayerRow]
    neurons: list[NeuronStats]
    audit: AuditResult
    totals: dict[str, float]
    params: int = 0
    notes: list[str] = field(default_factory=list)
    block_rates: dict[str, float] = field(default_factory=dict)

    def by_op_type(self) -> dict[str, dict[str, float]]:
        """Energy (pJ) per operation type (``encoding`` apart), SNN measured and ANN equivalent."""
        out: dict[str, dict[str, float]] = {}
        for row in self.layers:
            kind = "encoding" if row.encoding else row.op
            d = out.setdefault(kind, {"snn_pj": 0.0, "ann_pj": 0.0, "acs": 0.0, "macs": 0.0, "dense_flops": 0.0})
            d["snn_pj"] += row.energy_pj
            d["ann_pj"] += self.table.e_mac_pj * row.dense_flops / self.T
            d["acs"] += row.acs
            d["macs"] += row.macs
            d["dense_flops"] += row.dense_flops
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "T": self.T,
            "samples": self.samples,
            "batches": self.batches,
            "static_input": self.static_input,
            "energy_table": self.table.to_dict(),
            "notes": list(self.notes),
            "totals": dict(self.totals),
            "audit": self.audit.to_dict(),
            "layers": [r.to_dict() for r in self.layers],
            "by_op_type": self.by_op_type(),
            "neurons": [n.to_dict() for n in self.neurons],
            "blocks": dict(self.block_rates),
        }


@contextmanager
def bn_batch_statistics(model: nn.Module) -> Iterator[None]:
    """Let every BatchNorm normalise with the statistics of the current batch, without changing its buffers.

    Useful for a model as initialised, whose running statistics (mean 0, variance 1) are not those of its
    activations. Momentum is set to 0 so the running statistics stay as they were; everything is restored after.
    """
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nbt = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
            saved.append((m, m.training, m.momentum, nbt))
            m.train()
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, training, momentum, nbt in saved:
            m.train(training)
            m.momentum = momentum
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)


def _batch_size(x: Tensor, model: nn.Module, batch_dim: int | None) -> int:
    if batch_dim is not None:
        return int(x.shape[batch_dim])
    return int(x.shape[batch_axis(x, getattr(model, "input_kind", "image"))])


def analyze(
    model: nn.Module,
    batches: Iterable[Tensor | tuple | list],
    *,
    table: EnergyTable = HOROWITZ_45NM,
    name: str | None = None,
    batch_dim: int | None = None,
    batch_stats: bool = False,
    memory: bool = False,
) -> EnergyReport:
    """Run ``model`` in eval mode over ``batches`` and measure operations, firing rates and energy.

    Args:
        model: any module built from the library's neurons.
        batches: inputs; a tuple or list is taken as ``(input, target, ...)`` and only its first item is used.
            Library models take ``[B, C, H, W]`` images or time-major ``[T, B, C, H, W]`` frames; a dict is passed
            as keyword arguments (models with several inputs, e.g. STNet; they count samples with
            ``batch_size_of(inputs)``).
        table: energy constants (default: 45 nm, Horowitz 2014).
        name: model name in the report (default: ``model.model_name`` or the class name).
        batch_dim: axis of the batch in the input (default: from ``model.input_kind``, see
            :func:`~spiking_transformers.layers.batch_axis`).
        batch_stats: normalise BatchNorm with batch statistics (see :func:`bn_batch_statistics`).
        memory: add the memory-access energy (weights and membrane state) to the totals, reported separately.

    Returns:
        an :class:`EnergyReport`, every count per sample.
    """
    was_training = model.training
    model.eval()
    monitor = FiringRateMonitor(model)
    counter = SynapticOpCounter(model)
    samples = n_batches = 0
    static = True
    try:
        with bn_batch_statistics(model) if batch_stats else _null(), monitor, counter:
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if isinstance(x, Mapping):  # several named inputs (a tracker's template and search frames)
                    if not hasattr(model, "batch_size_of"):
                        raise ValueError(f"{type(model).__name__} got a dict of inputs ({', '.join(x)}) but has no "
                                         "batch_size_of(inputs) to count its samples")
                    samples += int(model.batch_size_of(x))
                    static = False
                else:
                    samples += _batch_size(x, model, batch_dim)
                    static = static and x.dim() == 4 and int(getattr(model, "T", 1)) > 1
                n_batches += 1
                counter.forward(x)
    finally:
        model.train(was_training)
    if samples == 0:
        raise ValueError("analyze() got no batches")
    T = _time_steps(model, monitor)
    return _build_report(
        model, name, counter.records.values(), monitor, table, samples, n_batches, T, static, memory
    )


@contextmanager
def _null() -> Iterator[None]:
    yield


def _time_steps(model: nn.Module, monitor: FiringRateMonitor) -> int:
    T = getattr(model, "T", None)
    if isinstance(T, int) and T > 0:
        return T
    steps = [len(s.spikes_per_step) for s in monitor.stats.values() if s.elements]
    return max(steps) if steps else 1


def _build_report(
    model: nn.Module,
    name: str | None,
    records: Iterable[OpRecord],
    monitor: FiringRateMonitor,
    table: EnergyTable,
    samples: int,
    n_batches: int,
    T: int,
    static: bool,
    memory: bool,
) -> EnergyReport:
    recs = sorted(records, key=lambda r: r.order)
    rows = []
    for r in recs:
        rows.append(
            LayerRow(
                key=r.key,
                module=r.module,
                module_type=r.module_type,
                op=r.op,
                input_kind=r.driver_kind,
                input_max_level=r.driver_max_level,
                operand_kinds=tuple(r.operand_kinds),
                dense_flops=r.dense_flops / samples,
                firing_rate=r.firing_rate,
                acs=r.acs / samples,
                macs=r.macs / samples,
                paper_sops=r.paper_sops / samples,
                energy_pj=(table.e_mac_pj * r.macs + table.e_ac_pj * r.acs) / samples,
                encoding=r.encoding,
            )
        )
    dense = sum(r.dense_flops for r in rows)
    acs = sum(r.acs for r in rows)
    macs = sum(r.macs for r in rows)
    enc_flops = sum(r.dense_flops for r in rows if r.encoding)
    enc_paper = enc_flops / T if static else enc_flops
    paper_sops = sum(r.paper_sops for r in rows if not r.encoding and r.input_kind != "real")
    paper_macs = sum(r.dense_flops for r in rows if not r.encoding and r.input_kind == "real")
    energy = table.e_mac_pj * macs + table.e_ac_pj * acs
    paper_energy = table.e_mac_pj * (enc_paper + paper_macs) + table.e_ac_pj * paper_sops
    ann_energy = table.e_mac_pj * dense / T
    totals: dict[str, float] = {
        "dense_flops": dense,
        "ann_flops": dense / T,
        "acs": acs,
        "macs": macs,
        "sops_paper": paper_sops,
        "encoding_flops_paper": enc_paper,
        "energy_pj": energy,
        "energy_paper_pj": paper_energy,
        "energy_ann_pj": ann_energy,
        "ann_to_snn_ratio": ann_energy / energy if energy else float("inf"),
        "firing_rate": monitor.overall_rate(),
    }
    if memory:
        if table.e_mem_pj is None:
            raise ValueError(f"energy table {table.name!r} has no memory-access cost (e_mem_pj)")
        weight_reads = sum(r.weight_elements for r in recs) * T
        membrane = 2.0 * sum(s.elements for s in monitor.stats.values()) / samples
        totals["memory_weight_reads"] = float(weight_reads)
        totals["memory_membrane_accesses"] = membrane
        totals["energy_memory_pj"] = table.e_mem_pj * (weight_reads + membrane)
    params = sum(p.numel() for p in model.parameters())
    return EnergyReport(
        model=name or getattr(model, "model_name", None) or type(model).__name__,
        T=T,
        samples=samples,
        batches=n_batches,
        static_input=static,
        table=table,
        layers=rows,
        neurons=[s for s in monitor.stats.values() if s.elements],
        audit=audit(recs),
        totals=totals,
        params=params,
        block_rates=monitor.block_rates(),
    )

