"""Firing rates, synaptic-operation counting, the energy model, the spike-driven audit, and reports.

``analyze(model, batches)`` does it all for any model built from the library's neurons; the pieces
(:class:`SynapticOpCounter`, :class:`FiringRateMonitor`, :class:`EnergyTable`, :func:`audit`) can be used alone.
"""

from .analyze import EnergyReport, LayerRow, analyze, bn_batch_statistics
from .audit import VERDICTS, AuditResult, audit
from .energy import HOROWITZ_45NM, EnergyTable, energy_pj
from .firing import FiringRateMonitor, NeuronStats, block_of
from .ops import KINDS, OperandKind, OpRecord, SynapticOpCounter, classify
from .precision import PrecisionReport, PrecisionResult, compare_precision

__all__ = [
    "analyze",
    "EnergyReport",
    "LayerRow",
    "bn_batch_statistics",
    "SynapticOpCounter",
    "OpRecord",
    "OperandKind",
    "KINDS",
    "classify",
    "FiringRateMonitor",
    "NeuronStats",
    "block_of",
    "EnergyTable",
    "HOROWITZ_45NM",
    "energy_pj",
    "audit",
    "AuditResult",
    "VERDICTS",
    "compare_precision",
    "PrecisionReport",
    "PrecisionResult",
]
