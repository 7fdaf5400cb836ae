"""Opt-in bfloat16: refused with one line naming the missing flag on a CPU without native bfloat16, run elsewhere.

Honest on both kinds of CPU: the refusal is asserted only where this CPU lacks the flags, the run only where it has
them; the flag logic itself is checked on given flag sets."""

from __future__ import annotations

import argparse

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.commands.bench import add_arguments, config_from_args
from spiking_transformers.runtime import BF16_FLAGS, bf16_autocast, bf16_refusal, cpu_flags

HAS_BF16 = any(f in cpu_flags() for f in BF16_FLAGS)


def test_flag_logic():
    assert bf16_refusal({"avx2", "avx512f", "avx512_bf16"}) is None
    assert bf16_refusal({"avx2", "amx_bf16", "amx_tile"}) is None
    reason = bf16_refusal({"avx", "avx2", "fma"})
    assert reason is not None and "\n" not in reason and "avx512_bf16" in reason and "amx_bf16" in reason
    assert "cannot read" in bf16_refusal(set())


def _bench_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(["spikformer_4_384_cifar10", "--tiny", *argv])


@pytest.mark.skipif(HAS_BF16, reason="this CPU has native bfloat16: the run path is tested instead")
def test_refused_without_native_bf16():
    with pytest.raises(RuntimeError, match="avx512_bf16") as e:
        bf16_autocast()
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="--bf16: bf16 refused"):
        config_from_args(_bench_args("--bf16"))
    assert config_from_args(_bench_args())["bf16"] is False


@pytest.mark.skipif(not HAS_BF16, reason="this CPU lacks avx512_bf16 / amx_bf16: the refusal is tested instead")
def test_runs_with_native_bf16():
    assert config_from_args(_bench_args("--bf16"))["bf16"] is True
    torch.manual_seed(0)
    model = st.create_model("spikformer_4_384_cifar10", **st.model_info("spikformer_4_384_cifar10").tiny_overrides)
    with bf16_autocast():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out.float()).all()
