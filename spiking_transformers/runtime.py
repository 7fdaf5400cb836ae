"""Process-wide settings that make CPU training and inference faster without changing any result.

:func:`tune_cpu_allocator`: PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves large requests
(above a threshold that it raises on its own up to 32 MB) with a fresh ``mmap`` and returns them to the system on
``free``; a spiking transformer's step allocates and frees hundreds of such tensors (a Spikformer-4-384 training
step at batch 32 has 100 MB activations), so every step pays for zero-filled page faults on all of them again.
Keeping large blocks in the heap lets the next step reuse them. Measured on the 2-CPU benchmark machine
(``spiking-transformers bench``, median of 3, idle): Spikformer-4-384 training step, batch 32, 9.4 s -> 7.6 s at
4.04 -> 4.16 GB peak RSS; eval forward, batch 64, 7.5 s -> 6.2 s. The cost: freed memory stays in the process
(resident-set size plateaus at its high-water mark plus some fragmentation, bounded: a loop of 600 identical
40 MB alloc/free cycles settled at 240 MB of free heap).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

__all__ = ["tune_cpu_allocator", "release_freed_memory", "OPT_OUT_ENV", "cpu_flags", "bf16_refusal", "bf16_autocast", "BF16_FLAGS"]

# Set to "0" to leave the C allocator as it is (e.g. to compare, or when memory must go back to the system).
OPT_OUT_ENV = "SPIKING_TRANSFORMERS_TUNE_MALLOC"

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1
_applied: bool | None = None


def _user_configured() -> bool:
    # A threshold the user set through the environment wins over ours.
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")


def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in glibc's heap for reuse instead of unmapping them or trimming the heap
    (``mallopt(M_MMAP_THRESHOLD)`` and ``mallopt(M_TRIM_THRESHOLD)``).

    Idempotent and process-wide. Does nothing (returns False) off Linux/glibc, when the environment variable
    ``SPIKING_TRANSFORMERS_TUNE_MALLOC=0`` is set, or when the user set ``MALLOC_MMAP_THRESHOLD_`` /
    ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold`` themselves. The ``train``, ``eval`` and ``bench`` commands call
    it; library users may call it once at start-up.

    Returns:
        True when the threshold was set by this call or an earlier one.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _INT_MAX))
    if _applied and "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        # An explicit mmap threshold freezes glibc's trim threshold at 128 KB, so the top of the heap would go back to
        # the system after most steps and fault in afresh on the next one (measured: 7.26 -> 6.77 s per Spikformer
        # step, 4.11 -> 3.80 GB peak RSS with the cpp back end).
        mallopt(_M_TRIM_THRESHOLD, _INT_MAX)
    return _applied


def _glibc_mallopt() -> Any:
    """glibc's ``mallopt`` as a ctypes function, or ``None`` where the allocator may not be touched: opted out
    (``SPIKING_TRANSFORMERS_TUNE_MALLOC=0``), thresholds set by the user through the environment, not Linux, not
    glibc (musl has no ``mallopt``)."""
    if os.environ.get(OPT_OUT_ENV, "1") == "0" or _user_configured() or not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def release_freed_memory(threshold: int = 128 * 1024) -> bool:
    """The opposite of :func:`tune_cpu_allocator`, for the memory mode (``set_grad_checkpointing``): serve every
    allocation above ``threshold`` bytes with its own ``mmap`` and give it back on ``free``, and trim the heap.

    glibc's default is not that: after the first large ``free`` it raises its mmap threshold (up to 32 MB) on its
    own, after which tensors come from the heap, whose freed holes stay resident. With activation checkpointing the
    recompute's allocations interleave with the kept ones and those holes add up: a Spikformer-4-384 step at batch
    32 in memory mode peaked at 2.1+ GB RSS with the default, 1.0-1.1 GB with the threshold fixed at 128 KB (the live
    peak). The cost is a page fault per fresh page every step (slower steps; see docs/performance.md).

    Does nothing (returns False) off glibc, under ``SPIKING_TRANSFORMERS_TUNE_MALLOC=0`` or where the user set the
    thresholds through the environment. Not to be combined with :func:`tune_cpu_allocator` in one process (the
    first call wins: both are process-wide).
    """
    global _applied
    if _applied is not None:
        return False
    _applied = False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))  # a fixed threshold: glibc no longer raises it
    if ok and "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        mallopt(_M_TRIM_THRESHOLD, int(threshold))
    return ok


# --------------------------------------------------------------------------------------------------------------------
# Opt-in bfloat16 on the CPU

#: CPU flags (``/proc/cpuinfo``) with native bfloat16 arithmetic: AVX-512 BF16 dot products, AMX tiles. Without one of
#: them oneDNN emulates bfloat16 through float32 conversions, which is slower than float32, not faster.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (first processor); empty where there is no such file."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_refusal(flags: set[str] | None = None) -> str | None:
    """``None`` where the CPU computes bfloat16 natively (:data:`BF16_FLAGS`), else the one-line reason to refuse."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "bf16 refused: cannot read this CPU's feature flags (/proc/cpuinfo), so avx512_bf16 / amx_bf16 is unknown"
    if any(f in flags for f in BF16_FLAGS):
        return None
    return (f"bf16 refused: this CPU has neither avx512_bf16 nor amx_bf16 (bfloat16 would be emulated, slower than "
            f"float32); has {'avx512f' if 'avx512f' in flags else 'avx2' if 'avx2' in flags else 'neither avx2'}")


def bf16_autocast(flags: set[str] | None = None):
    """``torch.autocast("cpu", torch.bfloat16)`` where the CPU has native bfloat16; raises ``RuntimeError`` (one line,
    naming the missing flag) elsewhere. Convolutions, linear layers and matmuls run in bfloat16, the rest in float32
    (spike drift of that mode: ``docs/precision.md``)."""
    reason = bf16_refusal(flags)
    if reason is not None:
        raise RuntimeError(reason)
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
