"""Neurons added for the paper-only mechanisms (ternary LIF for A²OS²A, per-channel parametric LIF for DISTA), and the
five attentions on both host backbones."""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.neurons import (
    IF,
    LIF,
    ChannelParametricLIF,
    Neuron,
    ParametricLIF,
    TernaryLIF,
    get_spike_layer,
    ternary_lif_multistep,
)

MECHANISMS = ("dista", "stformer", "semm", "a2os2a", "xnor")


def test_ternary_lif_hand_example():
    # tau 2, thresholds +-1, H = V + (X - V) / 2, fired elements reset to 0:
    # t0: H = 1 -> +1 (V=0); t1: H = -1 -> -1 (V=0); t2: H = 0.25 -> 0; t3: H = 0.375 -> 0; t4: H = -1.3125 -> -1
    x = torch.tensor([2.0, -2.0, 0.5, 0.5, -3.0], dtype=torch.float64).reshape(5, 1)
    assert TernaryLIF()(x).flatten().tolist() == [1.0, -1.0, 0.0, 0.0, -1.0]
    assert TernaryLIF.min_level == -1 and TernaryLIF.max_level == 1 and TernaryLIF.spike_scale == 1.0
    assert get_spike_layer("ternary")().__class__ is TernaryLIF


def test_ternary_lif_is_odd_and_its_gradient_symmetric():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 3, 8, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    y = ternary_lif_multistep(x)
    assert torch.equal(ternary_lif_multistep(-x.detach()), -y.detach())  # odd: s(-x) = -s(x)
    (gx,) = torch.autograd.grad(y.sum(), x)
    xn = (-x.detach()).requires_grad_(True)
    (gn,) = torch.autograd.grad(ternary_lif_multistep(xn).sum(), xn)
    torch.testing.assert_close(gx, gn)  # d/dx of an odd function's sum is even
    assert gx.abs().sum() > 0
    with pytest.raises(ValueError, match="v_threshold must be > 0"):
        TernaryLIF(v_threshold=0.0)


def test_ternary_lif_positive_side_is_a_lif_until_the_negative_threshold():
    # with inputs that never reach -V_th the ternary neuron is the library's LIF
    x = torch.rand(5, 4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    assert torch.equal(TernaryLIF()(x), LIF(backend="torch")(x))


def test_existing_neurons_keep_min_level_zero():
    for cls in (LIF, IF, ParametricLIF):
        assert cls.min_level == 0 and issubclass(cls, Neuron)


def test_channel_plif_equals_layer_plif_with_equal_taus_and_per_channel_otherwise():
    x = torch.randn(5, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    ch = ChannelParametricLIF(4, init_tau=3.0).double()
    layer = ParametricLIF(init_tau=3.0, backend="torch").double()
    assert torch.equal(ch(x), layer(x))
    with torch.no_grad():
        ch.w.copy_(torch.tensor([-1.0, 0.0, 0.5, 2.0]))
    out = ch(x)
    for c in range(4):
        ref = ParametricLIF(backend="torch").double()
        with torch.no_grad():
            ref.w.fill_(float(ch.w[c]))
        assert torch.equal(out[..., c], ref(x[..., c]))
    torch.testing.assert_close(ch.tau, 1.0 / torch.sigmoid(ch.w.detach()))


def test_channel_plif_on_feature_maps_and_its_gradient():
    x = (torch.randn(4, 2, 3, 5, 5, dtype=torch.float64) * 2).requires_grad_(True)
    n = ChannelParametricLIF(3, channel_dim=2).double()
    n(x).sum().backward()
    assert n.w.grad is not None and n.w.grad.shape == (3,) and x.grad is not None
    with pytest.raises(ValueError, match="expected 3 channels on axis 2"):
        n(torch.randn(4, 2, 5, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="must not be the time"):
        ChannelParametricLIF(3, channel_dim=1)


@pytest.mark.parametrize("backbone", ["spikformer_4_384_cifar10", "sdt_2_256_cifar10"])
@pytest.mark.parametrize("attn", MECHANISMS)
def test_each_mechanism_runs_on_both_backbones(backbone, attn):
    tiny = dict(st.model_info(backbone).tiny_overrides)
    model = st.create_model(backbone, attn=attn, **tiny).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if ".attn." in n)
