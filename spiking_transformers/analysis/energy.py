"""The energy model: one cited, replaceable table of constants, and the energy of counted operations.

Every paper of the lineage uses the 45 nm CMOS figures of Horowitz (ISSCC 2014) for 32-bit floating point:
a multiply costs 3.7 pJ and an add 0.9 pJ, so

    E_MAC = 3.7 + 0.9 = 4.6 pJ,   E_AC = 0.9 pJ.

Memory access is optional and reported separately (the papers leave it out). The same table gives a 32-bit read
from an 8 kB SRAM as 5 pJ. Our convention for it: each weight of a synaptic layer is read once per time step and
sample, and each neuron's membrane potential is read and written once per time step (2 accesses per element).
There is no cache hierarchy, and no reuse across the batch.

To use other constants, pass your own :class:`EnergyTable`, e.g.
``EnergyTable("my 22 nm", e_mac_pj=1.0, e_ac_pj=0.2, e_mem_pj=2.0, source="...")``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EnergyTable", "HOROWITZ_45NM", "PJ", "energy_pj"]

PJ = 1e-12  # joules per picojoule


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation, in picojoules.

    Attributes:
        name: short description (technology, precision).
        e_mac_pj: one multiply-accumulate.
        e_ac_pj: one accumulate (an addition triggered by a spike).
        e_mem_pj: one 32-bit memory access (weights and membrane state); ``None`` leaves memory out.
        source: citation.
    """

    name: str
    e_mac_pj: float
    e_ac_pj: float
    e_mem_pj: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


HOROWITZ_45NM = EnergyTable(
    name="45 nm CMOS, 32-bit float",
    e_mac_pj=4.6,
    e_ac_pj=0.9,
    e_mem_pj=5.0,
    source=(
        "M. Horowitz, 'Computing's energy problem (and what we can do about it)', IEEE ISSCC 2014, pp. 10-14: "
        "fp32 mult 3.7 pJ + add 0.9 pJ = MAC 4.6 pJ; fp32 add 0.9 pJ = AC; 32-bit SRAM (8 kB) read 5 pJ"
    ),
)


def energy_pj(macs: float, acs: float, table: EnergyTable = HOROWITZ_45NM) -> float:
    """Compute energy in picojoules: ``E_MAC · MACs + E_AC · ACs``."""
    return table.e_mac_pj * macs + table.e_ac_pj * acs
