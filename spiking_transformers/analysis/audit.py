"""The spike-driven audit: what each synaptic layer takes as input, and a verdict for the model.

Verdicts, from strictest to weakest (the encoding layer, i.e. the first synaptic operation, which sees the analog
input, is left out):

* ``spike-driven``: every synaptic operation is driven by binary spikes (SDT V1, V2: membrane shortcut);
* ``multi-level``: some are driven by integers emitted by multi-level neurons, none by other integers or reals
  (E-SpikeFormer, QSD; spike-driven again once each integer is expanded into binary spikes over D virtual steps);
* ``integer-driven``: some are driven by integers that no neuron emitted, e.g. sums of spike tensors from a
  spike-element-wise shortcut (Spikformer's blocks), and none by reals;
* ``not purely spiking``: some operation has only real-valued activation operands (MACs after the encoding).

An operation whose real input is an *affine function of spikes* (a synaptic layer on spikes followed only by BN,
bias, padding, scaling or sums, and no neuron: SDT V2's separable conv ``dwconv -> pwconv2``, RepConv, V3-large's
two-layer projections) is listed under ``fusible``, not ``real``: at inference it folds into the layer before it,
which takes spikes. It still counts as MACs in the measured energy, as the code executes it.

The input kind of an operation is that of its driving operand (see :mod:`.ops`). An operation that multiplies a
spike tensor by a real activation (a real dynamic weight, e.g. an attention map with a non-integer scale) is
still spike-driven, but the real operand is listed under ``real_operands`` so that it can be seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .ops import OpRecord

__all__ = ["AuditResult", "audit", "VERDICTS"]

VERDICTS = ("spike-driven", "multi-level", "integer-driven", "not purely spiking")


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`audit`.

    Attributes:
        verdict: one of :data:`VERDICTS`.
        encoding: keys of the encoding operation(s), excluded from the verdict.
        binary / multi_level / integer / real: keys of the operations whose driving input has that kind.
        fusible: operations on an affine function of spikes (fold into the previous layer); not in the verdict.
        real_operands: operations with a real-valued activation operand besides a spike driver.
        max_levels: largest spike count seen per integer-driven operation.
    """

    verdict: str
    encoding: list[str] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)
    multi_level: list[str] = field(default_factory=list)
    integer: list[str] = field(default_factory=list)
    real: list[str] = field(default_factory=list)
    fusible: list[str] = field(default_factory=list)
    real_operands: list[str] = field(default_factory=list)
    max_levels: dict[str, int] = field(default_factory=dict)

    @property
    def spike_driven(self) -> bool:
        return self.verdict == "spike-driven"

    def explain(self, limit: int = 6) -> str:
        """One line: the verdict and the layers responsible for it."""

        def names(keys: list[str]) -> str:
            more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        if self.verdict == "spike-driven":
            why = "every synaptic operation after the encoding takes binary spikes"
        elif self.verdict == "multi-level":
            why = f"{len(self.multi_level)} operation(s) take multi-level neuron outputs: {names(self.multi_level)}"
        elif self.verdict == "integer-driven":
            why = f"{len(self.integer)} operation(s) take integers (sums of spikes): {names(self.integer)}"
        else:
            why = f"{len(self.real)} operation(s) take real values: {names(self.real)}"
        enc = f"; encoding excluded: {names(self.encoding)}" if self.encoding else ""
        fus = (f"; {len(self.fusible)} operation(s) on a linear function of spikes fold into the layer before "
               f"(no neuron between): {names(self.fusible)}") if self.fusible else ""
        return f"{self.verdict}: {why}{enc}{fus}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "explanation": self.explain(limit=1000),
            "encoding": self.encoding,
            "binary": self.binary,
            "multi_level": self.multi_level,
            "integer": self.integer,
            "real": self.real,
            "fusible": self.fusible,
            "real_operands": self.real_operands,
            "max_levels": self.max_levels,
        }


def audit(records: Iterable[OpRecord]) -> AuditResult:
    """Classify each synaptic operation by its driving input and give the model's verdict.

    Args:
        records: the counter's :class:`OpRecord` s (``SynapticOpCounter.records.values()``).
    """
    groups: dict[str, list[str]] = {k: [] for k in ("binary", "multi-level", "integer", "real", "fusible")}
    encoding: list[str] = []
    real_operands: list[str] = []
    max_levels: dict[str, int] = {}
    for rec in sorted(records, key=lambda r: r.order):
        if rec.encoding:
            encoding.append(rec.key)
            continue
        groups["fusible" if rec.driver_kind == "real" and rec.fusible else rec.driver_kind].append(rec.key)
        if rec.driver_kind in ("multi-level", "integer"):
            max_levels[rec.key] = rec.driver_max_level
        if rec.driver_kind != "real" and "real" in rec.operand_kinds:
            real_operands.append(rec.key)
    if groups["real"]:
        verdict = "not purely spiking"
    elif groups["integer"]:
        verdict = "integer-driven"
    elif groups["multi-level"]:
        verdict = "multi-level"
    else:
        verdict = "spike-driven"
    return AuditResult(
        verdict=verdict,
        encoding=encoding,
        binary=groups["binary"],
        multi_level=groups["multi-level"],
        integer=groups["integer"],
        real=groups["real"],
        fusible=groups["fusible"],
        real_operands=real_operands,
        max_levels=max_levels,
    )
