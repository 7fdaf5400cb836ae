"""Neurons and surrogates: hand-computed dynamics, surrogate backward vs autograd, statelessness, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from spiking_transformers.neurons import (
    IF,
    LIF,
    SURROGATES,
    Neuron,
    ParametricLIF,
    get_spike_layer,
    get_surrogate,
    lif_multistep,
)


def constant_input(value: float, T: int = 4) -> torch.Tensor:
    return torch.full((T, 1, 1), value, dtype=torch.float64)


def test_lif_hand_computed_hard_reset():
    # tau 2: H1 = 0.75 (no spike), H2 = 0.75 + 0.375 = 1.125 (spike, V -> 0), then the cycle repeats.
    s = LIF()(constant_input(1.5))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_lif_fires_on_equality_and_attention_threshold():
    # A first step with X = 2 V_th gives H = V_th exactly: spikingjelly fires on H - V_th >= 0.
    assert LIF()(constant_input(2.0, T=1)).item() == 1.0
    assert LIF(v_threshold=0.5)(constant_input(1.0, T=1)).item() == 1.0
    assert LIF(v_threshold=0.5)(constant_input(0.999, T=1)).item() == 0.0


def test_lif_soft_reset_keeps_the_excess():
    s = LIF(v_reset=None)(constant_input(1.5))
    # H: 0.75, 1.125 (spike, V = 0.125), 0.8125, 1.15625 (spike)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    s = LIF(v_reset=None)(constant_input(1.9, T=3))
    # H: 0.95, 1.425 (spike, V=0.425), 1.1625 (spike): a hard reset would give 0.95 at step 3 instead.
    assert s.flatten().tolist() == [0.0, 1.0, 1.0]
    assert LIF()(constant_input(1.9, T=3)).flatten().tolist() == [0.0, 1.0, 0.0]


def test_lif_non_decaying_input_and_reset_potential():
    # decay_input False: H = V (1 - 1/tau) + X; X = 0.6: 0.6, 0.9, 1.05 (spike)
    s = LIF(decay_input=False)(constant_input(0.6, T=3))
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]
    # v_reset -0.5: rest at -0.5, H = V + (X - (V - v_reset)) / tau; X = 3 -> H1 = -0.5 + 3/2 = 1.0 (spike, back
    # to -0.5), and again. X = 2.5 -> H1 = 0.75, H2 = 0.75 + (2.5 - 1.25)/2 = 1.375 (spike).
    assert LIF(v_reset=-0.5)(constant_input(3.0, T=2)).flatten().tolist() == [1.0, 1.0]
    assert LIF(v_reset=-0.5)(constant_input(2.5, T=2)).flatten().tolist() == [0.0, 1.0]


def test_if_integrates_without_leak():
    s = IF()(constant_input(0.4, T=6))
    # V: 0.4, 0.8, 1.2 (spike -> 0), 0.4, 0.8, 1.2 (spike)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_plif_at_init_equals_lif_and_learns_tau():
    x = torch.randn(6, 3, 5, dtype=torch.float64) * 2
    plif = ParametricLIF(init_tau=2.0).double()
    assert plif.w.item() == 0.0 and plif.tau == pytest.approx(2.0)
    assert torch.equal(plif(x), LIF()(x))
    x.requires_grad_(True)
    plif(x).sum().backward()
    assert plif.w.grad is not None and plif.w.grad.abs().item() > 0


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_backward_matches_autograd_of_primitive(name):
    sg = get_surrogate(name)
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)
    if name == "rectangle":  # the box edges are where the primitive's derivative is undefined
        x = x[(x.abs() - sg.alpha / 2).abs() > 1e-6]
    x = x.requires_grad_(True)
    (expected,) = torch.autograd.grad(sg.primitive(x, sg.alpha).sum(), x)
    torch.testing.assert_close(sg.derivative(x), expected, rtol=1e-12, atol=1e-12)
    # the forward is the exact Heaviside step, firing on equality
    assert torch.equal(sg(x.detach()), (x.detach() >= 0).double())


def test_sigmoid_default_is_the_official_alpha_4():
    sg = get_surrogate("sigmoid")
    assert sg.alpha == 4.0
    assert sg.derivative(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(1.0)  # alpha/4


def _lif_straight_through(x, tau, v_th, surrogate, detach_reset):
    """An independent LIF: Heaviside forward with the primitive's derivative grafted in (straight-through)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        z = h - v_th
        p = surrogate.primitive(z, surrogate.alpha)
        s = (z >= 0).to(x.dtype) + (p - p.detach())
        sr = s.detach() if detach_reset else s
        v = h * (1 - sr)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("surrogate", ["sigmoid", "atan"])
def test_lif_gradient_equals_independent_straight_through_version(detach_reset, surrogate):
    torch.manual_seed(1)
    x = (torch.randn(5, 2, 7, dtype=torch.float64) * 1.5).requires_grad_(True)
    w = torch.randn(5, 2, 7, dtype=torch.float64)
    sg = get_surrogate(surrogate)
    ours = lif_multistep(x, tau=2.0, v_threshold=1.0, surrogate=sg, detach_reset=detach_reset)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), x)
    ref = _lif_straight_through(x, 2.0, 1.0, sg, detach_reset)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    assert torch.equal(ours.detach(), ref.detach())
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-14)


def test_detach_reset_changes_the_gradient():
    torch.manual_seed(2)
    x = (torch.randn(6, 4, 8, dtype=torch.float64) * 2).requires_grad_(True)
    (g1,) = torch.autograd.grad(lif_multistep(x, detach_reset=True).sum(), x)
    (g2,) = torch.autograd.grad(lif_multistep(x, detach_reset=False).sum(), x)
    assert not torch.allclose(g1, g2)


def test_neurons_are_stateless_across_calls():
    lif = LIF()
    x = torch.randn(4, 3, 10) * 3
    first = lif(x)
    lif(torch.randn(4, 3, 10) * 5)  # a different batch in between must leave no trace
    assert torch.equal(lif(x), first)
    assert set(first.unique().tolist()) <= {0.0, 1.0}


def test_every_neuron_is_a_binary_neuron_subclass():
    for module in (LIF(), IF(), ParametricLIF(), get_spike_layer("plif")(v_threshold=0.5)):
        assert isinstance(module, Neuron)
        assert module.spike_scale == 1.0 and module.max_level == 1 and module.is_binary
    assert get_spike_layer("lif", tau=3.0)(v_threshold=0.5).tau == 3.0


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="time-major"):
        LIF()(torch.randn(5))
    with pytest.raises(ValueError, match="unknown surrogate 'nope'"):
        LIF(surrogate="nope")
    with pytest.raises(ValueError, match="unknown neuron back end"):
        LIF(backend="nope")
    with pytest.raises(ValueError, match="unknown spike layer"):
        get_spike_layer("relu")
    with pytest.raises(ValueError, match="tau must be > 1"):
        LIF(tau=0.5)
    with pytest.raises(ValueError, match="v_reset"):
        LIF(v_reset=2.0)


def test_float32_and_float64_agree_on_clear_spikes():
    x = torch.randn(4, 2, 16, dtype=torch.float64) * 3
    s64 = LIF()(x)
    s32 = LIF()(x.float())
    assert s32.dtype == torch.float32
    # far from threshold the two precisions must agree (exact ties aside)
    assert (s64.float() != s32).float().mean().item() < 0.01
    assert math.isclose(float(s64.sum()), float(s32.sum()), abs_tol=2)
