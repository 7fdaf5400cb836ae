"""DyTr-SNN's dynamic neurons (our reading, neurons/dynamic.py): each kind against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from spiking_transformers.neurons import LIF, DynamicNeuron, MixedDynamicNeuron


def _run(kind, xs, **params):
    x = torch.tensor(xs, dtype=torch.float64).view(-1, 1)
    return DynamicNeuron(kind, **params)(x).view(-1).tolist()


def test_lif_kind_is_the_library_lif():
    x = torch.randn(7, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    assert torch.equal(DynamicNeuron("lif")(x), LIF()(x))


def test_alif_threshold_rises_after_a_spike():
    # tau 2, threshold 1, beta 0.5, rho 0.9. Input 2.5 every step:
    # t0: h = 0 + 2.5/2 = 1.25 >= 1 -> spike; v = 0; u = 1.
    # t1: h = 1.25; threshold 1 + 0.5*1 = 1.5 -> no spike; v = 1.25; u = 0.9.
    # t2: h = 1.25 + (2.5 - 1.25)/2 = 1.875; threshold 1.45 -> spike; v = 0; u = 0.81 + 1 = 1.81.
    # t3: h = 1.25; threshold 1.905 -> no spike.
    assert _run("alif", [2.5] * 4) == [1.0, 0.0, 1.0, 0.0]
    # a plain LIF fires on every step here: the adaptation is what removed the spikes
    assert _run("lif", [2.5] * 4) == [1.0, 1.0, 1.0, 1.0]


def test_resonate_and_fire_rotates_input_into_the_membrane():
    # b = 0, omega = pi/2, dt = 1: r = 1, c = 0, s = 1. One input pulse x0 = 1.5 into u:
    # t0: g = 1.5, h = 0 -> no spike; u = 1.5, v = 0.
    # t1: g = -v = 0, h = u = 1.5 >= 1 -> spike; both reset to 0.
    # t2, t3: silent.
    assert _run("rf", [1.5, 0, 0, 0], b=0.0, omega=math.pi / 2) == [0.0, 1.0, 0.0, 0.0]
    # omega = pi: h = r(s u + c v) with s = 0 -> the pulse never reaches the membrane (phase matters)
    assert _run("rf", [1.5, 0, 0, 0], b=0.0, omega=math.pi) == [0.0, 0.0, 0.0, 0.0]
    # a damped version (b = -1: r = e^-1 = 0.368) of the first case stays below threshold
    assert _run("rf", [1.5, 0, 0, 0], b=-1.0, omega=math.pi / 2) == [0.0, 0.0, 0.0, 0.0]


def test_izhikevich_hand_computed():
    # a = 0.02, b = 0.2, c = -65, d = 8, dt = 1, gain 10, threshold 30. v0 = -65, u0 = -13.
    # quadratic part at v = -65: 0.04*4225 - 325 + 140 = -16; + 13 (-u) = -3.
    # input x = 0.3 (current 3): h0 = -65 + (-3 + 3) = -65, no spike; u1 = -13 + 0.02*(0.2*-65 + 13) = -13.
    # So x = 0.3 holds the neuron at rest forever:
    assert _run("izhikevich", [0.3] * 5) == [0.0] * 5
    # a strong current (x = 10, current 100): h0 = -65 - 3 + 100 = 32 >= 30 -> spike at once; v = -65, u = -13 + 8 = -5
    # t1: h = -65 + (-16 + 5 + 100) = 24 -> no spike; t2: v = 24: 23.04 + 120 + 140 + u(-5 + 0.02(0.2*-65+5) = -5.16)
    #     -> h = 24 + 283.04 + 5.16 + 100 = 412.2 -> spike.
    assert _run("izhikevich", [10.0] * 3) == [1.0, 0.0, 1.0]


def test_surrogate_gradient_flows_through_every_kind():
    for kind in ("lif", "alif", "rf", "izhikevich"):
        x = (torch.rand(6, 4, 8, generator=torch.Generator().manual_seed(1)) * 3).requires_grad_()
        DynamicNeuron(kind)(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, kind


def test_mixed_population_splits_channels_by_kind():
    x = torch.randn(5, 2, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    mixed = MixedDynamicNeuron(("lif", "rf", "alif"))
    out = mixed(x)
    # groups of 4, 3, 3 channels
    assert torch.equal(out[..., :4], DynamicNeuron("lif")(x[..., :4]))
    assert torch.equal(out[..., 4:7], DynamicNeuron("rf")(x[..., 4:7]))
    assert torch.equal(out[..., 7:], DynamicNeuron("alif")(x[..., 7:]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown dynamic neuron kind 'hh'"):
        DynamicNeuron("hh")
    with pytest.raises(ValueError, match=r"takes no parameter\(s\) \['omega'\]"):
        DynamicNeuron("lif", omega=1.0)
    with pytest.raises(ValueError, match="time-major"):
        DynamicNeuron("rf")(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="at least that many channels"):
        MixedDynamicNeuron()(torch.zeros(2, 1, 3))
