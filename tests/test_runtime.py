"""tune_cpu_allocator: large freed blocks stay in glibc's heap (checked with mallinfo2 in fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc only"
)

# Allocates a 64 MB tensor and prints whether glibc served it with mmap (mallinfo2's mmapped bytes grew).
_PROBE = r"""
import ctypes, sys, torch
from spiking_transformers.runtime import tune_cpu_allocator
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = tune_cpu_allocator() if sys.argv[1] == "tune" else False
before = libc.mallinfo2().hblkhd
x = torch.empty(16 * 2**20)
grew = libc.mallinfo2().hblkhd - before
print(applied, grew >= x.numel() * 4)
"""


def _probe(mode: str, **env: str) -> tuple[str, str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    full_env.pop("SPIKING_TRANSFORMERS_TUNE_MALLOC", None)
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=full_env,
                         check=True).stdout.split()
    return out[0], out[1]


def test_plain_glibc_maps_a_large_tensor():
    assert _probe("plain") == ("False", "True")


def test_tuned_allocator_serves_it_from_the_heap():
    assert _probe("tune") == ("True", "False")


def test_opt_out_and_user_setting_are_respected():
    assert _probe("tune", SPIKING_TRANSFORMERS_TUNE_MALLOC="0") == ("False", "True")
    # the user's own threshold wins: tune_cpu_allocator leaves it (here a small one, so the tensor is mapped)
    assert _probe("tune", MALLOC_MMAP_THRESHOLD_="65536") == ("False", "True")
