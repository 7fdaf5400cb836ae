"""Multi-level neurons (E-SpikeFormer SFA, V3 large, QSD IE-LIF) and the integer-to-binary expansion."""

from __future__ import annotations

import pytest
import torch

from spiking_transformers.neurons import Neuron
from spiking_transformers.neurons.multispike import (
    IELIF,
    MultiSpike,
    binary_to_levels,
    expand_to_binary,
    quantize_levels,
)

D64 = torch.float64


def _grid() -> torch.Tensor:
    # below, at and between every level, exact .5 ties, the clamp edges and beyond
    return torch.tensor([-1.0, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 3.49, 3.5, 3.51, 4.0, 4.5, 7.5, 8.0, 9.0],
                        dtype=D64)


def test_base_levels_round_half_to_even():
    x = _grid()
    out = MultiSpike()(x)
    expected = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4], dtype=D64)  # 0.5->0, 1.5->2, 2.5->2
    assert torch.equal(out * 4, expected)
    assert torch.equal(out, expected / 4)


def test_half_up_levels():
    x = _grid()
    out = MultiSpike(rounding="half_up", grad_window="open")(x)
    expected = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4], dtype=D64)  # 0.5->1, 2.5->3
    assert torch.equal(out * 4, expected)


def test_ties_differ_only_at_exact_half():
    x = torch.arange(0, 4, 0.5, dtype=D64)
    even = quantize_levels(x, 4, rounding="half_even")
    up = quantize_levels(x, 4, rounding="half_up")
    tie = x.frac() == 0.5
    assert torch.equal(even[~tie], up[~tie])
    assert torch.equal(up[tie], torch.floor(x[tie]) + 1)
    assert torch.equal(even[tie], torch.round(x[tie]))  # to even
    nudged = x[tie] + 1e-12
    assert torch.equal(quantize_levels(nudged, 4, rounding="half_even"), quantize_levels(nudged, 4, rounding="half_up"))


def test_head_norm_one_gives_integers():
    n = MultiSpike(norm=1)
    out = n(torch.tensor([0.6, 2.2, 9.0], dtype=D64))
    assert torch.equal(out, torch.tensor([1.0, 2.0, 4.0], dtype=D64))
    assert n.spike_scale == 1.0 and n.max_level == 4


def test_max_level_is_a_constructor_argument():
    x = torch.linspace(-1, 10, 45, dtype=D64)
    n8 = MultiSpike(max_level=8, rounding="half_up", grad_window="open")
    out = n8(x)
    assert n8.max_level == 8 and n8.spike_scale == 8.0
    assert float(out.max()) * 8 == 8.0
    assert torch.equal(out * 8, torch.floor(torch.clamp(x, 0, 8) + 0.5))
    assert isinstance(n8, Neuron) and not n8.is_binary


def _grad(neuron: MultiSpike, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    neuron(x).sum().backward()
    return x.grad


def test_ste_gradient_base_closed_window():
    # official Quant: identity for min <= x <= max (inclusive), then / Norm
    x = _grid()
    g = _grad(MultiSpike(), x)
    expected = ((x >= 0) & (x <= 4)).to(D64) / 4
    assert torch.equal(g, expected)


def test_ste_gradient_large_open_window():
    # official multispike: grad * (0 < x) * (x < lens), then / norm
    x = _grid()
    g = _grad(MultiSpike(rounding="half_up", grad_window="open"), x)
    assert torch.equal(g, ((x > 0) & (x < 4)).to(D64) / 4)
    g8 = _grad(MultiSpike(max_level=8, rounding="half_up", grad_window="open"), x)
    assert torch.equal(g8, ((x > 0) & (x < 8)).to(D64) / 8)


def test_qsd_ielif_forward_and_gradient():
    x = _grid() / 4
    n = IELIF()
    out = n(x)
    assert torch.equal(out, torch.floor(torch.clamp(4 * x, 0, 4) + 0.5) / 4)
    assert torch.equal(_grad(n, x), ((4 * x > 0) & (4 * x < 4)).to(D64))  # 4 * 1/4
    att = IELIF(norm=2)
    assert torch.equal(att(x), torch.floor(torch.clamp(4 * x, 0, 4) + 0.5) / 2)
    assert torch.equal(_grad(att, x), 2 * ((4 * x > 0) & (4 * x < 4)).to(D64))
    assert att.spike_scale == 2.0 and att.max_level == 4
    # first level fires at x >= 0.125 (not 0.5 as in V3 base)
    assert float(n(torch.tensor(0.125, dtype=D64))) == 0.25 and float(n(torch.tensor(0.1249, dtype=D64))) == 0.0


def test_output_times_spike_scale_is_integer_in_range():
    x = torch.randn(3, 2, 5, 7, dtype=D64) * 3
    for n in (MultiSpike(), MultiSpike(max_level=8, norm=8), IELIF(), IELIF(norm=2), MultiSpike(norm=1)):
        k = n(x) * n.spike_scale
        assert torch.equal(k, k.round()) and k.min() >= 0 and k.max() <= n.max_level


def test_invalid_arguments():
    with pytest.raises(ValueError):
        MultiSpike(rounding="nearest")
    with pytest.raises(ValueError):
        MultiSpike(grad_window="half")
    with pytest.raises(ValueError):
        MultiSpike(max_level=0)
    with pytest.raises(ValueError):
        MultiSpike(norm=0)


@pytest.mark.parametrize("order", ["first", "last"])
@pytest.mark.parametrize("D", [1, 4, 8])
def test_expand_to_binary(order, D):
    levels = torch.randint(0, D + 1, (2, 3, 5)).to(D64)
    spikes = expand_to_binary(levels, D, order=order)
    assert spikes.shape == (D, 2, 3, 5) and spikes.dtype == D64
    assert torch.equal(spikes, (spikes == 1).to(D64))
    assert torch.equal(binary_to_levels(spikes), levels)
    # "first": spikes in steps 0..k-1, i.e. non-increasing over steps; "last": non-decreasing
    diffs = spikes[1:] - spikes[:-1]
    assert bool((diffs <= 0).all()) if order == "first" else bool((diffs >= 0).all())


def test_expand_to_binary_rejects_bad_levels():
    with pytest.raises(ValueError):
        expand_to_binary(torch.tensor([0.5]), 4)
    with pytest.raises(ValueError):
        expand_to_binary(torch.tensor([5.0]), 4)
    with pytest.raises(ValueError):
        expand_to_binary(torch.tensor([1.0]), 4, order="middle")
