"""Every neuron back end against the torch reference: identical spikes, gradients to rounding."""

from __future__ import annotations

import pytest
import torch

from spiking_transformers.neurons import BACKENDS, LIF, SURROGATES, get_surrogate, lif_multistep, set_backend

OTHER_BACKENDS = sorted(b for b in BACKENDS if b != "torch")
SETTINGS = [
    dict(),
    dict(detach_reset=False),
    dict(v_reset=None),
    dict(v_reset=None, detach_reset=False),
    dict(decay_input=False),
    dict(v_reset=-0.3, detach_reset=False),
    dict(surrogate="atan", tau=3.0, v_threshold=0.5),
]


def make_input(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 40, dtype=dtype, generator=g) * 2
    x[0, 0, :8] = 2.0  # first-step membranes exactly at threshold (H = X / 2 = 1)
    x[:, 1, :4] = 0.0
    return x


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backend_matches_reference(backend, kwargs, dtype):
    x = make_input(dtype)
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = lif_multistep(x_ref, **kwargs)
    new = BACKENDS[backend](x_new, **kwargs)
    assert torch.equal(ref, new), "spikes differ"
    w = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    (ref * w).sum().backward()
    (new * w).sum().backward()
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=0, atol=tol * float(x_ref.grad.abs().max()))


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backend_inference_without_grad(backend):
    x = make_input(torch.float32)
    with torch.no_grad():
        assert torch.equal(BACKENDS[backend](x), lif_multistep(x))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_formula_equals_autograd_backward(name):
    sg = get_surrogate(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    torch.testing.assert_close(sg.grad(x), sg.derivative(x), rtol=1e-14, atol=1e-15)


def test_set_backend_switches_every_lif():
    model = torch.nn.Sequential(LIF(), torch.nn.Sequential(LIF(v_threshold=0.5)))
    assert set_backend(model, "fused") == 2
    assert all(m.backend == "fused" for m in model.modules() if isinstance(m, LIF))
    with pytest.raises(ValueError, match="unknown neuron back end"):
        set_backend(model, "nope")
