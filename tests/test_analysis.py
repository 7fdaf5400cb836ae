"""Exact counts of the analysis tools on small hand-built networks (binary, integer, multi-level and real inputs)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from spiking_transformers.analysis import (
    HOROWITZ_45NM,
    EnergyTable,
    FiringRateMonitor,
    SynapticOpCounter,
    analyze,
    block_of,
    classify,
)
from spiking_transformers.analysis.report import format_comparison, format_report, plot_report, write_json
from spiking_transformers.layers._shapes import TimeDistributed
from spiking_transformers.neurons import LIF, Neuron

T, B = 2, 5


def _const_conv(weights: list[float], bias: bool = False) -> TimeDistributed:
    """1x1 conv 1 -> len(weights) channels with the given weights: a known input current per channel."""
    conv = nn.Conv2d(1, len(weights), 1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights).view(-1, 1, 1, 1))
        if bias:
            conv.bias.zero_()
    return TimeDistributed(conv)


class ConvLifLinear(nn.Module):
    """conv 1x1 (encoding) -> LIF -> linear. Channel 0 gets current 3 (a LIF with tau 2 fires every step: H = 1.5),
    channel 1 gets 0 (never fires), so exactly half the neurons fire at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _const_conv([2.0, 0.0])
        self.lif = LIF()
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: Tensor) -> Tensor:  # x: [T, B, 1, 4, 4]
        return self.fc(self.lif(self.conv(x)).flatten(2))


def test_conv_lif_linear_exact_counts():
    net = ConvLifLinear()
    x = torch.full((T, B, 1, 4, 4), 1.5)  # real input (not an integer): the encoding conv is MACs
    r = analyze(net, [x])
    assert r.samples == B and r.T == T
    conv, fc = r.layers
    assert conv.key == "conv.0" and conv.encoding and conv.input_kind == "real"
    assert conv.macs == T * 2 * 16 * 1 and conv.acs == 0  # per sample: T * C_out * H * W * C_in * k^2
    assert fc.key == "fc" and fc.op == "linear" and fc.input_kind == "binary" and not fc.encoding
    assert fc.dense_flops == T * 32 * 3
    assert fc.acs == T * 16 * 3  # 16 spikes per step per sample, fan-out 3
    assert fc.firing_rate == pytest.approx(0.5)
    assert fc.paper_sops == pytest.approx(0.5 * fc.dense_flops)
    assert r.totals["energy_pj"] == pytest.approx(4.6 * conv.macs + 0.9 * fc.acs)
    # paper convention: the encoding FLOPs count as MACs; the input was time-major, so all T steps count
    assert r.totals["energy_paper_pj"] == pytest.approx(4.6 * conv.dense_flops + 0.9 * fc.paper_sops)
    assert r.totals["energy_ann_pj"] == pytest.approx(4.6 * (conv.dense_flops + fc.dense_flops) / T)
    assert r.audit.verdict == "spike-driven" and r.audit.encoding == ["conv.0"]
    (lif,) = r.neurons
    assert lif.firing_rate == 0.5 and lif.rate_per_step == [0.5, 0.5] and lif.elements == T * B * 32


class BorderConv(nn.Module):
    """LIF on the raw input, then a 3x3 conv: one spike in a corner reaches only 4 output positions."""

    def __init__(self, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.lif = LIF()
        self.conv = TimeDistributed(nn.Conv2d(2, 4, 3, stride=stride, padding=1, groups=groups, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.lif(x))


@pytest.mark.parametrize(
    "stride,groups,expected",
    [
        (1, 1, 4 * 4),  # corner spike: 2x2 output positions x 4 output channels
        (2, 1, 1 * 4),  # stride 2 on 5x5: the corner tap reaches only output (0, 0)
        (1, 2, 4 * 2),  # 2 groups: the spike's group has 2 output channels
    ],
)
def test_conv_events_respect_borders_stride_groups(stride, groups, expected):
    x = torch.zeros(1, 1, 2, 5, 5)
    x[..., 0, 0, 0] = 3.0  # channel 0, top-left corner: fires
    r = analyze(BorderConv(stride, groups), [x], batch_dim=1)
    (conv,) = r.layers
    assert conv.input_kind == "binary" and conv.acs == expected and conv.macs == 0
    out_hw = 25 if stride == 1 else 9
    assert conv.dense_flops == 4 * out_hw * (2 // groups) * 9


class SEWNet(nn.Module):
    """Spike-element-wise residual: the sum of two spike tensors (values 0..2) feeds ``fc2``: integer-driven."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(6, 6)
        self.lif0 = LIF()
        self.fc1 = nn.Linear(6, 6)
        self.lif1 = LIF()
        self.fc2 = nn.Linear(6, 3)

    def stream(self, x: Tensor) -> Tensor:
        s = self.lif0(self.enc(x))
        return s + self.lif1(self.fc1(s))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.stream(x))


def test_sew_residual_is_integer_driven_with_exact_counts():
    torch.manual_seed(1)
    net = SEWNet()
    with torch.no_grad():
        net.fc1.weight.copy_(torch.eye(6) * 3)  # lif1 copies lif0's spikes: the sum takes the value 2
        net.fc1.bias.zero_()
    x = torch.randn(T, B, 6) * 3
    r = analyze(net, [x], batch_dim=1)
    rows = {row.key: row for row in r.layers}
    with torch.no_grad():
        y = net.stream(x)
    assert y.max() == 2
    assert rows["fc2"].input_kind == "integer" and rows["fc2"].input_max_level == 2
    assert rows["fc2"].acs == pytest.approx(float(y.sum()) * 3 / B)  # a 2 counts as two spikes
    assert rows["fc1"].input_kind == "binary"
    assert r.audit.verdict == "integer-driven" and r.audit.integer == ["fc2"]
    assert r.audit.max_levels == {"fc2": 2}


def test_sew_integer_kind_does_not_depend_on_activity():
    net = SEWNet()
    x = torch.zeros(T, B, 6)  # nothing fires: the stream is structurally 0..2, whatever this batch holds
    with torch.no_grad():
        net.enc.bias.fill_(-5.0)
    r = analyze(net, [x], batch_dim=1)
    assert {row.key: row.input_kind for row in r.layers}["fc2"] == "integer"
    assert r.totals["acs"] == 0
    assert r.audit.verdict == "integer-driven"


class MSNet(nn.Module):
    """Membrane shortcut: the stream is real, every branch starts with a neuron: spike-driven."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(6, 8)
        self.lif1 = LIF()
        self.fc1 = nn.Linear(8, 8)
        self.bn1 = TimeDistributed(nn.BatchNorm1d(8))
        self.lif2 = LIF()
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        u = self.enc(x)
        u = u + self.bn1(self.fc1(self.lif1(u)))
        return self.head(self.lif2(u))


def test_membrane_shortcut_is_spike_driven():
    r = analyze(MSNet(), [torch.randn(T, B, 6) * 4], batch_dim=1)
    kinds = {row.key: row.input_kind for row in r.layers}
    assert kinds == {"enc": "real", "fc1": "binary", "head": "binary"}
    assert r.audit.verdict == "spike-driven" and r.audit.encoding == ["enc"]
    assert r.totals["macs"] == T * 6 * 8  # only the encoding


class RealPath(nn.Module):
    """``fc2`` takes an affine function of spikes (fc1 then BN, no neuron): it folds into fc1. ``fc3`` takes the
    output of a LayerNorm of it (not affine in the spikes): real, so the model is not purely spiking."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(6, 8)
        self.lif = LIF()
        self.fc1 = nn.Linear(8, 8)
        self.bn = TimeDistributed(nn.BatchNorm1d(8))
        self.fc2 = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.fc3 = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc2(self.bn(self.fc1(self.lif(self.enc(x)))))
        return self.fc3(self.norm(h))


def test_real_valued_path_is_not_purely_spiking():
    r = analyze(RealPath(), [torch.randn(T, B, 6) * 4], batch_dim=1)
    rows = {row.key: row for row in r.layers}
    assert rows["fc2"].input_kind == "real" and rows["fc3"].input_kind == "real"
    assert rows["fc3"].macs == rows["fc3"].dense_flops == T * 8 * 2 and rows["fc3"].acs == 0
    assert r.audit.verdict == "not purely spiking"
    assert r.audit.real == ["fc3"] and r.audit.fusible == ["fc2"]
    assert "fc3" in r.audit.explain()


class Attention(nn.Module):
    """Spikformer-style ``((Q K^T) * 0.125) V`` and SDT-style masks ``Q * sum_N(K * V)`` on spike tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.q_lif, self.k_lif, self.v_lif, self.m_lif = LIF(), LIF(), LIF(), LIF(v_threshold=0.5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # x: [T, B, 3, N, d]
        q, k, v = self.q_lif(x[:, :, 0]), self.k_lif(x[:, :, 1]), self.v_lif(x[:, :, 2])
        attn = (q @ k.transpose(-2, -1)) * 0.125  # integers times a constant: still integer counts
        y = attn @ v
        mask = self.m_lif((k * v).sum(dim=-2, keepdim=True))
        return y, q * mask


def test_attention_products_of_spike_tensors():
    torch.manual_seed(3)
    N, d = 6, 4
    x = (torch.rand(T, B, 3, N, d) < 0.4).float() * 3.0  # an input of 3 makes the LIF fire at once
    net = Attention()
    r = analyze(net, [x], batch_dim=1)
    rows = {row.key: row for row in r.layers}
    assert list(rows) == ["matmul0", "matmul1", "mask0", "mask1"]  # functional ops of the root module
    q, k, v = ((x[:, :, i] > 0).float() for i in range(3))  # the spikes (an input of 3 fires at once)
    qk, av, kv, qm = rows["matmul0"], rows["matmul1"], rows["mask0"], rows["mask1"]
    # Q K^T: both binary, driven by Q (left), fan-out N (columns of K^T)
    assert qk.op == "matmul" and qk.input_kind == "binary" and qk.acs == pytest.approx(float(q.sum()) * N / B)
    assert qk.dense_flops == T * N * d * N
    # (Q K^T * 0.125) V: the attention map is an integer (<= d) tensor; V (binary) drives, fan-out d
    assert av.operand_kinds == ("integer", "binary") and av.input_kind == "binary"
    assert av.acs == pytest.approx(float(v.sum()) * N / B)
    # K * V: element-wise, driven by K; Q * mask: mask broadcast over the N tokens, Q drives
    assert kv.op == "mask" and kv.acs == pytest.approx(float(k.sum()) / B) and kv.dense_flops == T * N * d
    assert qm.acs == pytest.approx(float(q.sum()) / B)
    assert r.audit.verdict == "spike-driven"


class MultiSpike(Neuron):
    """A 4-level neuron normalised by 4 (QSD style): ``round(clamp(x, 0, 4)) / 4``."""

    spike_scale = 4.0
    max_level = 4

    def forward(self, x: Tensor) -> Tensor:
        return torch.round(x.clamp(0, 4)) / 4


class MultiLevelNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(5, 7)
        self.act = MultiSpike()
        self.fc = nn.Linear(7, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.act(self.enc(x)))


def test_multi_level_neuron_counts_levels_as_spikes():
    net = MultiLevelNet()
    x = torch.randn(1, B, 5) * 4
    r = analyze(net, [x], batch_dim=1)
    fc = {row.key: row for row in r.layers}["fc"]
    with torch.no_grad():
        levels = net.act(net.enc(x)) * 4
    assert fc.input_kind == "multi-level" and fc.input_max_level == 4
    assert fc.acs == pytest.approx(float(levels.sum()) * 2 / B)
    assert r.audit.verdict == "multi-level" and r.audit.multi_level == ["fc"]
    (act,) = r.neurons
    assert act.firing_rate == pytest.approx(float(levels.mean()))  # the mean integer level (V3 / QSD convention)


def test_firing_rates_average_exactly_over_uneven_batches():
    torch.manual_seed(0)
    net = SEWNet()
    batches = [torch.randn(T, n, 6) * 3 for n in (1, 2, 4)]
    with FiringRateMonitor(net) as mon, torch.no_grad():
        for xb in batches:
            net(xb)
    with torch.no_grad():
        s0 = net.lif0(net.enc(torch.cat(batches, dim=1)))
    assert mon.rates()["lif0"] == float(s0.sum()) / s0.numel()  # exact: totals, not a mean of means
    assert mon.stats["lif0"].elements == T * 7 * 6
    r = analyze(net, batches, batch_dim=1)
    assert r.samples == 7 and r.batches == 3
    whole = analyze(net, [torch.cat(batches, dim=1)], batch_dim=1)
    assert r.totals["acs"] == pytest.approx(whole.totals["acs"])
    assert r.block_rates == pytest.approx(whole.block_rates)


def test_neuron_internals_are_not_counted():
    # the LIF's reset multiplies two activations ((1 - s) * h); it must not appear as a mask
    net = ConvLifLinear()
    counter = SynapticOpCounter(net)
    with counter:
        counter.forward(torch.randn(T, B, 1, 4, 4))
    assert [r.op for r in counter.records.values()] == ["conv", "linear"]


def test_classify_by_quantum_and_bound():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert classify(x, 0.25).kind == "integer" and classify(x, 0.25).max_level == 4
    assert classify(x, 0.25, neuron=True).kind == "multi-level"
    assert classify(torch.tensor([0.0, 1.0]), 1.0, bound=2.0).kind == "integer"  # structurally 0..2
    assert classify(torch.tensor([0.0, 1.0]), 1.0).kind == "binary"
    assert classify(torch.tensor([0.3, 1.0]), None).kind == "real"
    assert classify(torch.tensor([0.0, 2.0, 3.0]), None).kind == "integer"  # by value, q = 1


def test_block_of():
    assert block_of("block.3.attn.q_lif") == "block.3"
    assert block_of("patch_embed.proj_lif") == "patch_embed"
    assert block_of("stages.1.blocks.0.lif") == "stages.1"


def test_energy_table_is_replaceable_and_memory_is_separate():
    net = ConvLifLinear()
    x = torch.full((T, B, 1, 4, 4), 1.5)
    table = EnergyTable("test", e_mac_pj=1.0, e_ac_pj=0.5, e_mem_pj=2.0, source="unit test")
    r = analyze(net, [x], table=table, memory=True)
    conv, fc = r.layers
    assert r.totals["energy_pj"] == pytest.approx(conv.macs + 0.5 * fc.acs)
    weight_reads = (2 * 1 + 32 * 3) * T  # each weight read once per time step
    membrane = 2 * T * 32  # read + write per neuron and step
    assert r.totals["energy_memory_pj"] == pytest.approx(2.0 * (weight_reads + membrane))
    assert HOROWITZ_45NM.e_mac_pj == 4.6 and HOROWITZ_45NM.e_ac_pj == 0.9 and "Horowitz" in HOROWITZ_45NM.source


def test_batch_statistics_leave_the_model_unchanged():
    net = MSNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    analyze(net, [torch.randn(T, B, 6)], batch_dim=1, batch_stats=True)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training  # restored


def test_reports_table_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    r1 = analyze(ConvLifLinear(), [torch.full((T, B, 1, 4, 4), 1.5)], name="a")
    r2 = analyze(MSNet(), [torch.randn(T, B, 6)], batch_dim=1, name="b")
    text = format_report(r1, all_neurons=True)
    assert "fc" in text and "spike-driven" in text and "* conv.0" in text
    assert "ANN / SNN" in format_comparison([r1, r2])
    write_json(tmp_path / "r.json", r1)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["audit"]["verdict"] == "spike-driven" and data["layers"][1]["acs"] == r1.layers[1].acs
    write_json(tmp_path / "c.json", [r1, r2])
    assert [m["model"] for m in json.loads((tmp_path / "c.json").read_text())["models"]] == ["a", "b"]
    plot_report(r1, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_transposed_conv_events():
    class Up(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = LIF()
            self.up = TimeDistributed(nn.ConvTranspose2d(2, 3, 2, stride=2, bias=False))

        def forward(self, x: Tensor) -> Tensor:
            return self.up(self.lif(x))

    x = torch.zeros(1, 1, 2, 3, 3)
    x[..., 1, 1, 2] = 3.0  # one spike
    (up,) = analyze(Up(), [x], batch_dim=1).layers
    assert up.acs == 3 * 4  # every tap (2x2) of every output channel: no border crops a stride-2 transposed conv
    assert up.dense_flops == 2 * 9 * 3 * 4  # input elements x C_out x k^2
