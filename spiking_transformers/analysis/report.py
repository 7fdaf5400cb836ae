"""Reports of :class:`~.analyze.EnergyReport` s: a terminal table, JSON, and PNG figures; a comparison of models.

The figures (:func:`plot_report`, :func:`plot_comparison`) are drawn by :mod:`.plots` and need matplotlib (the
``plot`` extra); everything else needs only the standard library.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

from .analyze import EnergyReport
from .plots import plot_comparison, plot_report
from .plots import pyplot as _pyplot  # noqa: F401  (the older name of plots.pyplot)

__all__ = [
    "format_report",
    "format_comparison",
    "write_json",
    "plot_report",
    "plot_comparison",
    "human",
    "human_energy",
]


def human(x: float) -> str:
    """``1234567 -> '1.23M'``."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def human_energy(pj: float) -> str:
    """Energy given in picojoules, printed in the largest fitting unit (``'7.73 mJ'``)."""
    if pj == 0:
        return "0 J"
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def format_report(report: EnergyReport, *, all_neurons: bool = False) -> str:
    """The terminal report: notes, the per-layer table, totals, firing rates per block, and the audit."""
    lines = [f"model {report.model}: {report.params / 1e6:.2f}M parameters, T={report.T}, "
             f"{report.samples} sample(s) in {report.batches} batch(es); counts per sample"]
    lines += [f"  {n}" for n in report.notes]
    lines.append(f"  energy: {report.table.name}, E_MAC={report.table.e_mac_pj} pJ, E_AC={report.table.e_ac_pj} pJ "
                 f"({report.table.source.split(':')[0]})")
    lines.append("")
    header = ("layer", "op", "input", "FLOPs", "fr", "ACs", "MACs", "SOPs(fr*T*FLOPs)", "energy")
    rows = []
    for r in report.layers:
        rows.append((
            ("* " if r.encoding else "") + r.key,
            r.op,
            r.input_label,
            human(r.dense_flops),
            f"{r.firing_rate:.3f}" if r.input_kind != "real" else "-",
            human(r.acs),
            human(r.macs),
            human(r.paper_sops) if not r.encoding and r.input_kind != "real" else "-",
            human_energy(r.energy_pj),
        ))
    lines += _table(header, rows, (False, False, False, True, True, True, True, True, True))
    lines.append("(* encoding layer: sees the analog input, excluded from the audit; FLOPs cover all T steps)")
    t = report.totals
    lines.append("")
    lines.append(f"total: ACs {human(t['acs'])}, MACs {human(t['macs'])}, dense FLOPs {human(t['dense_flops'])} "
                 f"(ANN, one step: {human(t['ann_flops'])}), mean firing rate {t['firing_rate']:.4f}")
    lines.append(f"energy (measured, events counted):   {human_energy(t['energy_pj'])}")
    lines.append(f"energy (paper: E_MAC*FLOPs_enc + E_AC*sum fr*T*FLOPs): {human_energy(t['energy_paper_pj'])} "
                 f"(SOPs {human(t['sops_paper'])})")
    lines.append(f"energy (equivalent ANN, all MACs):   {human_energy(t['energy_ann_pj'])}  "
                 f"-> ANN / SNN = {t['ann_to_snn_ratio']:.2f}x")
    if "energy_memory_pj" in t:
        lines.append(f"memory access (separate): {human_energy(t['energy_memory_pj'])} "
                     f"({human(t['memory_weight_reads'])} weight reads, "
                     f"{human(t['memory_membrane_accesses'])} membrane accesses)")
    lines.append("")
    if report.block_rates:
        lines.append("firing rate per block: " + ", ".join(f"{b} {r:.3f}" for b, r in report.block_rates.items()))
    if all_neurons and report.neurons:
        lines.append("")
        nrows = [(n.name, n.type, str(n.max_level), f"{n.firing_rate:.4f}", f"{n.nonzero_rate:.4f}",
                  " ".join(f"{v:.3f}" for v in n.rate_per_step)) for n in report.neurons]
        lines += _table(("neuron", "type", "levels", "fr", "nonzero", "fr per step"), nrows,
                        (False, False, True, True, True, False))
    lines.append("")
    lines.append(f"audit: {report.audit.explain()}")
    if report.audit.real_operands:
        real_ops = ", ".join(report.audit.real_operands)
        lines.append(f"  (spike-driven, but with a real-valued dynamic operand: {real_ops})")
    return "\n".join(lines)


def _compare_rows(reports: Sequence[EnergyReport]) -> list[tuple[str, list[str]]]:
    def col(f) -> list[str]:
        return [f(r) for r in reports]

    return [
        ("params", col(lambda r: f"{r.params / 1e6:.2f}M")),
        ("T", col(lambda r: str(r.T))),
        ("verdict", col(lambda r: r.audit.verdict)),
        ("firing rate", col(lambda r: f"{r.totals['firing_rate']:.4f}")),
        ("ANN FLOPs (1 step)", col(lambda r: human(r.totals["ann_flops"]))),
        ("ACs", col(lambda r: human(r.totals["acs"]))),
        ("MACs", col(lambda r: human(r.totals["macs"]))),
        ("SOPs (fr*T*FLOPs)", col(lambda r: human(r.totals["sops_paper"]))),
        ("energy measured", col(lambda r: human_energy(r.totals["energy_pj"]))),
        ("energy paper conv.", col(lambda r: human_energy(r.totals["energy_paper_pj"]))),
        ("energy ANN", col(lambda r: human_energy(r.totals["energy_ann_pj"]))),
        ("ANN / SNN", col(lambda r: f"{r.totals['ann_to_snn_ratio']:.2f}x")),
        *(
            [("memory access", col(lambda r: human_energy(r.totals.get("energy_memory_pj", 0.0))))]
            if any("energy_memory_pj" in r.totals for r in reports) else []
        ),
    ]


def format_comparison(reports: Sequence[EnergyReport]) -> str:
    """Several models side by side (one column each), per sample."""
    header = ("", *(r.model for r in reports))
    rows = [(name, *vals) for name, vals in _compare_rows(reports)]
    lines = _table(header, rows, (False, *([True] * len(reports))))
    notes = sorted({n for r in reports for n in r.notes})
    return "\n".join(lines + [f"  {n}" for n in notes])


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], reports: EnergyReport | Sequence[EnergyReport]) -> None:
    """Write one report (an object) or several (``{"models": [...]}``) as JSON."""
    if isinstance(reports, EnergyReport):
        data: Any = reports.to_dict()
    else:
        data = {"models": [r.to_dict() for r in reports]}
    with open(path, "w") as f:
        json.dump(_to_jsonable(data), f, indent=1)
        f.write("\n")
