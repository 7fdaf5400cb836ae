"""The pieces made one of each by the re-cut of layers/: neuron factory, batch axis, firing monitor, module paths."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import spiking_transformers.layers as layers
from spiking_transformers import training
from spiking_transformers.analysis.firing import FiringRateMonitor
from spiking_transformers.layers import MSDownsampling, SpikformerBlock, batch_axis
from spiking_transformers.neurons import (
    DEFAULT_SPIKE_LAYER,
    IF,
    LIF,
    ParametricLIF,
    SpikeFactory,
    resolve_spike_layer,
)


def test_one_neuron_factory_type_and_default():
    assert layers.SpikeLayer is SpikeFactory is layers.SpikeFactory
    assert DEFAULT_SPIKE_LAYER is LIF and resolve_spike_layer(None) is LIF
    assert resolve_spike_layer(IF) is IF
    plif = resolve_spike_layer("plif")
    assert isinstance(plif, functools.partial) and isinstance(plif(v_threshold=0.5), ParametricLIF)
    with pytest.raises(ValueError, match="unknown spike layer 'nope'"):
        resolve_spike_layer("nope")
    # The blocks' default is that one default.
    block = SpikformerBlock(16, 2)
    assert type(block.attn.q_lif) is LIF and block.attn.attn_lif.v_threshold == 0.5


def test_old_module_paths_re_export_the_same_objects():
    from spiking_transformers.layers import metaformer, qk_attention, sdt_blocks, spikformer_blocks

    for old in (spikformer_blocks, sdt_blocks, metaformer, qk_attention):
        for name in layers.__all__:
            assert getattr(old, name) is getattr(layers, name), (old.__name__, name)


def test_batch_axis_follows_the_declared_input_kind():
    img, frames = torch.zeros(2, 3, 8, 8), torch.zeros(4, 2, 3, 8, 8)
    assert batch_axis(img) == 0 and batch_axis(frames) == 1
    assert batch_axis(frames, "events") == 1
    with pytest.raises(ValueError, match="event-data model takes time-major"):
        batch_axis(img, "events")
    with pytest.raises(ValueError, match=r"image model takes \[B, C, H, W\]"):
        batch_axis(torch.zeros(3, 8), "image")
    with pytest.raises(ValueError, match="input_kind"):
        batch_axis(img, "video")


def test_one_firing_rate_monitor_with_totals():
    assert training.FiringRateMonitor is FiringRateMonitor
    net = nn.Sequential(LIF(), LIF(v_threshold=0.5))
    x = torch.tensor([[[0.4], [2.0]], [[0.9], [0.1]]])  # [T=2, B=2, 1]
    with FiringRateMonitor(net) as mon, torch.no_grad():
        net(x)
    spikes, elements = mon.totals()
    assert elements == 8
    assert spikes == sum(s.spikes for s in mon.stats.values())
    assert mon.overall_rate() == spikes / elements


def test_v3_and_v2_share_the_down_sampling_layer():
    v2 = MSDownsampling(3, 8, kernel_size=3, stride=2, padding=1, spike_layer=LIF)
    v3 = MSDownsampling(3, 8, kernel_size=3, stride=2, padding=1, spike_layer=LIF, neuron_name="encode_spike")
    assert isinstance(v2.encode_lif, LIF) and isinstance(v3.encode_spike, LIF) and not hasattr(v3, "encode_lif")
    v3.load_state_dict(v2.state_dict())
    x = torch.randn(2, 1, 3, 8, 8)
    assert torch.equal(v2(x), v3(x))
    stem = MSDownsampling(3, 8, kernel_size=3, stride=2, padding=1, spike_layer=None)
    assert stem.neuron_name is None and stem(x).shape == (2, 1, 8, 4, 4)
