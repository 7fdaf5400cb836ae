"""Faster implementations of the same neurons, registered in the back-end tables of ``neurons/lif.py``.

``"torch"`` is the step-by-step reference. ``"fused"`` (the default) runs all T steps in one autograd node (see
:mod:`.fused`); ``"cpp"`` does the same in a compiled C++ loop (see :mod:`.cpp`; compiled on first use; PLIF has no compiled form
and runs the fused one, with a warning the first time); ``"triton"`` runs LIF and IF in Triton GPU kernels where triton is installed (see :mod:`.triton_lif`).
Every back end is tested against the reference, forward and backward (``tests/test_kernels.py``).
Every IF / LIF / parametric-LIF module takes ``backend=``; :func:`set_backend` switches a whole model.
"""

from __future__ import annotations

import warnings

from torch import nn

from ..lif import BACKENDS, IF_BACKENDS, PLIF_BACKENDS, _IntegrateFireBase, _TABLES, register_backend
from .bn_spike import bn_spike, set_bn_fusion
from .cpp import if_multistep_cpp, lif_multistep_cpp
from .fused import if_multistep_fused, lif_multistep_fused, plif_multistep_fused
from .traced import if_multistep_traced, lif_multistep_traced, plif_multistep_traced

__all__ = [
    "lif_multistep_fused",
    "if_multistep_fused",
    "plif_multistep_fused",
    "BACKENDS",
    "IF_BACKENDS",
    "PLIF_BACKENDS",
    "set_backend",
    "available_backends",
    "bn_spike",
    "set_bn_fusion",
]

for _kind, _name, _fn in (
    ("lif", "fused", lif_multistep_fused),
    ("if", "fused", if_multistep_fused),
    ("plif", "fused", plif_multistep_fused),
    # compiled on first use, not here; falls back to "fused" (with one warning) where it cannot be built
    ("lif", "cpp", lif_multistep_cpp),
    ("if", "cpp", if_multistep_cpp),
    # forward only, the fewest graph operators: what ONNX export traces (export/onnx.py, kernels/traced.py)
    ("lif", "traced", lif_multistep_traced),
    ("if", "traced", if_multistep_traced),
    ("plif", "traced", plif_multistep_traced),
):
    if _name not in _TABLES[_kind]:
        register_backend(_name, _fn, kind=_kind)



def _plif_stand_in(name: str):
    """PLIF's ``w`` gradient is a reduction with no C++/Triton form: ``name`` runs the fused kernel, and says so once.

    Registered (rather than refused) so that ``set_backend(model, "cpp")`` still switches a model's LIF neurons; the
    warning tells the user that the PLIF ones run ``fused`` (identical numbers, the fused speed).
    """
    warned = False

    def plif_multistep(*args, **kwargs):
        nonlocal warned
        if not warned:
            warned = True
            warnings.warn(f"ParametricLIF has no {name!r} kernel: its neurons run the 'fused' back end instead "
                          "(same results; other neurons use the back end asked for)", RuntimeWarning, stacklevel=2)
        return plif_multistep_fused(*args, **kwargs)

    plif_multistep.__name__ = f"plif_multistep_{name}_runs_fused"
    return plif_multistep


if "cpp" not in _TABLES["plif"]:
    register_backend("cpp", _plif_stand_in("cpp"), kind="plif")

# The Triton GPU back end, where triton is installed; on CPU tensors it warns once and runs "fused" (see .triton_lif).
try:
    from .triton_lif import if_multistep_triton, lif_multistep_triton
except ImportError:
    pass
else:
    for _kind, _fn in (("lif", lif_multistep_triton), ("if", if_multistep_triton), ("plif", _plif_stand_in("triton"))):
        if "triton" not in _TABLES[_kind]:
            register_backend("triton", _fn, kind=_kind)


def available_backends() -> list[str]:
    """Names usable with :func:`set_backend` (every LIF back end)."""
    return sorted(BACKENDS)


def set_backend(model: nn.Module, backend: str) -> int:
    """Switch every IF / LIF / parametric-LIF neuron of ``model`` to ``backend``; returns how many were switched.

    Other neuron types (multi-level neurons, ...) have no back ends and are left alone.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown neuron back end {backend!r}; available: {', '.join(available_backends())}")
    n = 0
    for module in model.modules():
        if isinstance(module, _IntegrateFireBase) and backend in _TABLES[module._kind]:
            module.backend = backend
            n += 1
    return n
