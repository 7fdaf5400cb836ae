"""The Triton neuron back end against the torch reference, run in Triton's CPU interpreter (and compiled on a GPU).

The kernels are jit-wrapped on first use in the mode the environment asks for, so setting ``TRITON_INTERPRET=1``
per test (``monkeypatch``) is enough to run them interpreted on CPU tensors; nothing is set for other test modules.
Spikes must be identical to the reference and input gradients equal to rounding (1e-6 of the largest gradient in
float32, 1e-12 in float64). The ``gpu`` tests (excluded by default, skipped without CUDA) check the compiled kernels
the same way, against the reference on the GPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("triton")

from spiking_transformers.neurons import IF, LIF, ParametricLIF, if_multistep, lif_multistep, set_backend  # noqa: E402
from spiking_transformers.neurons.kernels import triton_lif  # noqa: E402
from spiking_transformers.neurons.lif import BACKENDS, IF_BACKENDS, PLIF_BACKENDS  # noqa: E402
from spiking_transformers.neurons.surrogate import SURROGATES  # noqa: E402

# Reset / charge variants (as tests/test_kernels.py) and every surrogate with the default neuron.
SETTINGS = [
    dict(),
    dict(detach_reset=False),
    dict(v_reset=None),
    dict(v_reset=None, detach_reset=False),
    dict(decay_input=False),
    dict(decay_input=False, v_reset=-0.3, tau=3.0),
    dict(v_reset=-0.3, detach_reset=False),
    dict(tau=3.0, v_threshold=0.5),
] + [dict(surrogate=name, detach_reset=False) for name in sorted(SURROGATES) if name != "sigmoid"]
IF_SETTINGS = [dict(), dict(v_reset=None, detach_reset=False), dict(v_reset=-0.3, detach_reset=False, surrogate="atan")]
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def _ids(kwargs: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


def make_input(dtype: torch.dtype, device: str = "cpu", n: int = 1100) -> torch.Tensor:
    """``[6, n]`` currents; ``n`` over one 1024-element block, so two programs run and the mask is exercised."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, n, dtype=torch.float64, generator=g) * 2
    x[0, :8] = 2.0  # membranes exactly at threshold at the first step (H = X / 2 = 1): fires on equality
    x[:, 8:12] = 0.0
    return x.to(dtype=dtype, device=device)


def check_against_reference(ref_fn, new_fn, x: torch.Tensor, kwargs: dict, tol: float) -> None:
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = ref_fn(x_ref, **kwargs)
    new = new_fn(x_new, **kwargs)
    assert new.dtype == x.dtype and new.shape == x.shape
    assert torch.equal(ref, new), f"spikes differ at {(ref != new).sum().item()} of {ref.numel()} elements"
    assert 0 < ref.sum() < ref.numel()  # the case is not trivial
    w = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).to(x)
    (ref * w).sum().backward()
    (new * w).sum().backward()
    scale = float(x_ref.grad.abs().max())
    assert scale > 0
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=0, atol=tol * scale)


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_lif.interpreting()


# ---------------------------------------------------------------------------------------------------------------------
# Interpreter (CPU)


@pytest.mark.parametrize("kwargs", SETTINGS, ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lif_matches_reference(interpret, kwargs, dtype):
    check_against_reference(lif_multistep, triton_lif.lif_multistep_triton, make_input(dtype), kwargs, TOL[dtype])


@pytest.mark.parametrize("kwargs", IF_SETTINGS, ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_if_matches_reference(interpret, kwargs, dtype):
    x = make_input(dtype) * 0.5
    check_against_reference(if_multistep, triton_lif.if_multistep_triton, x, kwargs, TOL[dtype])


def test_float32_rounding_is_the_reference_one(interpret):
    """Second-step membranes aimed at the threshold (tau = 3 divides inexactly), so that which elements fire depends
    on every rounding: the kernel must match the reference where a reciprocal multiplication does not."""
    n = 20000
    x0 = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 1.5 - 0.5  # H0 < 1: silent
    v0 = x0 / 3
    x = torch.stack([x0, 3 * (1 - v0) + v0]).float()  # H1 = 1 in exact arithmetic
    with torch.no_grad():
        ref = lif_multistep(x, tau=3.0)
        assert 0.1 * n < ref[1].sum() < 0.9 * n  # both outcomes are common: the case is sensitive
        assert torch.equal(triton_lif.lif_multistep_triton(x, tau=3.0), ref)
        v = x[0] / 3
        by_reciprocal = (v + (x[1] - v) * float(1 / torch.tensor(3.0))) >= 1.0
        assert not torch.equal(by_reciprocal.float(), ref[1])  # the check tells the two apart


def test_multidim_noncontiguous_input_and_inference(interpret):
    x = make_input(torch.float32, n=2 * 3 * 5 * 7).reshape(6, 2, 3, 5, 7).transpose(3, 4)  # [T, B, C, W, H] view
    with torch.no_grad():
        out = triton_lif.lif_multistep_triton(x)
    assert out.grad_fn is None and out.shape == x.shape
    assert torch.equal(out, lif_multistep(x))
    check_against_reference(lif_multistep, triton_lif.lif_multistep_triton, x, {}, TOL[torch.float32])


def test_saves_only_the_membrane(interpret):
    x = make_input(torch.float32).requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        triton_lif.lif_multistep_triton(x)
    assert len(saved) == 1 and saved[0].shape == x.shape


def test_half_precision_rounds_like_the_reference(interpret):
    """float16: float32 maths rounded after every operation gives the reference's fp16 spikes.

    (bfloat16 takes the same code path but Triton's interpreter truncates float32 -> bfloat16 casts instead of
    rounding to nearest, so its exactness is checked on a GPU only, in test_gpu_bfloat16_autocast_spikes.)
    """
    x = make_input(torch.float16, n=4000)
    for kwargs in (dict(), dict(v_reset=None), dict(decay_input=False, tau=3.0)):
        x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ref, new = lif_multistep(x_ref, **kwargs), triton_lif.lif_multistep_triton(x_new, **kwargs)
        assert new.dtype == torch.float16 and torch.equal(ref, new)
        ref.sum().backward()
        new.sum().backward()
        assert x_new.grad.dtype == torch.float16
        # the reference rounds every backward operation to fp16, the kernel computes in float32: fp16-level agreement
        torch.testing.assert_close(x_new.grad.float(), x_ref.grad.float(), rtol=0,
                                   atol=4e-3 * float(x_ref.grad.abs().max()))


def test_modules_and_set_backend(interpret):
    torch.manual_seed(0)
    model = torch.nn.Sequential(LIF(), IF(v_reset=None), ParametricLIF())
    reference = torch.nn.Sequential(LIF(backend="torch"), IF(v_reset=None, backend="torch"),
                                    ParametricLIF(backend="torch"))
    assert set_backend(model, "triton") == 3
    x = make_input(torch.float64).reshape(6, 2, 550)
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref, new = reference(x_ref), model(x_new)
    assert torch.equal(ref, new)
    ref.sum().backward()
    new.sum().backward()
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=0, atol=1e-12 * float(x_ref.grad.abs().max()))
    torch.testing.assert_close(model[2].w.grad, reference[2].w.grad, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Registration and the CPU fallback (no interpreter)


def test_registered_in_every_table():
    assert BACKENDS["triton"] is triton_lif.lif_multistep_triton
    assert IF_BACKENDS["triton"] is triton_lif.if_multistep_triton
    # the w gradient is a reduction: PLIF runs fused, and says so (kernels/__init__.py: _plif_stand_in)
    assert PLIF_BACKENDS["triton"].__name__ == "plif_multistep_triton_runs_fused"


def test_cpu_tensor_falls_back_to_fused_with_one_warning(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(triton_lif, "_warned", set())
    monkeypatch.setattr(triton_lif, "_launch_forward", None)  # must not be reached
    x = make_input(torch.float32)
    with pytest.warns(RuntimeWarning, match="'fused'"):
        out = triton_lif.lif_multistep_triton(x)
    assert torch.equal(out, lif_multistep(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once already
        assert torch.equal(triton_lif.if_multistep_triton(x), if_multistep(x))
    check_against_reference(lif_multistep, triton_lif.lif_multistep_triton, x, dict(v_reset=None), 1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Compiled kernels on a GPU

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kwargs", SETTINGS, ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_lif_matches_reference(kwargs, dtype):
    x = make_input(dtype, "cuda", n=300_000)
    check_against_reference(lif_multistep, triton_lif.lif_multistep_triton, x, kwargs, TOL[dtype])


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kwargs", IF_SETTINGS, ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_if_matches_reference(kwargs, dtype):
    x = make_input(dtype, "cuda", n=300_000) * 0.5
    check_against_reference(if_multistep, triton_lif.if_multistep_triton, x, kwargs, TOL[dtype])


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kwargs", [dict(), dict(v_reset=None), dict(decay_input=False, tau=3.0)], ids=_ids)
def test_gpu_half_precision_spikes(dtype, kwargs):
    x = make_input(dtype, "cuda", n=300_000)
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref, new = lif_multistep(x_ref, **kwargs), triton_lif.lif_multistep_triton(x_new, **kwargs)
    assert torch.equal(ref, new), f"spikes differ at {(ref != new).sum().item()} elements"
    ref.sum().backward()
    new.sum().backward()
    atol = (3e-2 if dtype == torch.bfloat16 else 4e-3) * float(x_ref.grad.abs().max())
    torch.testing.assert_close(x_new.grad.float(), x_ref.grad.float(), rtol=0, atol=atol)


@pytest.mark.gpu
@cuda
def test_gpu_bfloat16_autocast_spikes():
    """A LIF after a linear layer under bf16 autocast: the same spikes with every back end."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 256).cuda()
    x = torch.randn(4, 32, 64, device="cuda")
    outs = {}
    for backend in ("torch", "fused", "triton"):
        neuron = LIF(backend=backend)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outs[backend] = neuron(lin(x))
    assert outs["triton"].dtype == torch.bfloat16
    assert torch.equal(outs["torch"], outs["triton"]) and torch.equal(outs["fused"], outs["triton"])


@pytest.mark.gpu
@cuda
def test_gpu_large_tensor_inference():
    x = torch.randn(4, 32, 384, 56, 56, device="cuda") * 2
    with torch.no_grad():
        assert torch.equal(triton_lif.lif_multistep_triton(x), lif_multistep(x))
        assert torch.equal(triton_lif.if_multistep_triton(x, v_reset=None), if_multistep(x, v_reset=None))
