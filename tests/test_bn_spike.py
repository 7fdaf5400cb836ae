"""BatchNorm + neuron fusion (neurons/kernels/bn_spike.py): fused and plain computations agree.

Spikes and running statistics must be bit-identical, gradients equal to rounding; the fusion must actually happen
where it is allowed (and save less), and fall back to the plain modules everywhere else.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

import spiking_transformers as st
from spiking_transformers.layers.sdt_blocks import MSMLP
from spiking_transformers.neurons.kernels import set_backend
from spiking_transformers.neurons.kernels.bn_spike import BN_FUSION_DEFAULT, bn_spike, can_fuse_bn_spike, set_bn_fusion
from spiking_transformers.neurons.lif import IF, LIF, ParametricLIF
from spiking_transformers.analysis.firing import FiringRateMonitor

TOL = {torch.float64: 1e-12, torch.float32: 1e-6}
T, B = 4, 3
FUSED_NODE = "_BNSpikeBackward"


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _make(layout: str, dtype: torch.dtype, **bn_kwargs) -> tuple[nn.Module, tuple[int, ...], tuple[int, ...]]:
    """A BatchNorm with non-trivial affine parameters, its (folded) input shape and the neuron's input shape."""
    if layout == "folded2d":  # conv output [T*B, C, H, W] -> neuron over [T, B, C, H, W]
        bn, x_shape, shape = nn.BatchNorm2d(6, **bn_kwargs), (T * B, 6, 5, 4), (T, B, 6, 5, 4)
    else:  # linear_bn_spike rows [T*B*N, C] -> neuron over [T, B, N, C]
        bn, x_shape, shape = nn.BatchNorm1d(6, **bn_kwargs), (T * B * 7, 6), (T, B, 7, 6)
    bn = bn.to(dtype)
    if bn.affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 1.0)
    return bn, x_shape, shape


def _run_both(bn: nn.Module, neuron: nn.Module, x: Tensor, shape: tuple[int, ...], steps: int = 1):
    """``steps`` forward + backward passes fused and plain on copies; returns the two copies and the last outputs."""
    bn_f, neu_f = copy.deepcopy(bn), copy.deepcopy(neuron)
    bn_p, neu_p = copy.deepcopy(bn), copy.deepcopy(neuron)
    set_bn_fusion(neu_p, False)
    out = {}
    for step in range(steps):
        xs = x * (1.0 + 0.25 * step)
        x_f, x_p = xs.detach().clone().requires_grad_(), xs.detach().clone().requires_grad_()
        assert can_fuse_bn_spike(x_f, bn_f, neu_f) and not can_fuse_bn_spike(x_p, bn_p, neu_p)
        s_f, s_p = bn_spike(x_f, bn_f, neu_f, shape), bn_spike(x_p, bn_p, neu_p, shape)
        assert type(s_f.grad_fn).__name__ == FUSED_NODE and type(s_p.grad_fn).__name__ != FUSED_NODE
        g = torch.randn_like(s_f)
        (s_f * g).sum().backward()
        (s_p * g).sum().backward()
        out = dict(s_f=s_f, s_p=s_p, x_f=x_f, x_p=x_p)
    return (bn_f, neu_f), (bn_p, neu_p), out


def _assert_same(fused, plain, out, dtype) -> None:
    (bn_f, neu_f), (bn_p, neu_p) = fused, plain
    assert torch.equal(out["s_f"], out["s_p"])
    assert out["s_p"].sum() > 0 and (out["s_p"] == 0).any()  # both regimes occur, so the test can fail
    for name, b_f in bn_f.named_buffers():
        assert torch.equal(b_f, dict(bn_p.named_buffers())[name]), name
    tol = TOL[dtype]
    assert _rel(out["x_f"].grad, out["x_p"].grad) <= tol
    assert _rel(bn_f.weight.grad, bn_p.weight.grad) <= tol
    assert _rel(bn_f.bias.grad, bn_p.bias.grad) <= tol
    if isinstance(neu_p, ParametricLIF):
        assert neu_p.w.grad is not None and neu_p.w.grad != 0
        assert _rel(neu_f.w.grad, neu_p.w.grad) <= tol


NEURONS = {
    "lif": lambda **kw: LIF(**kw),
    "lif_no_decay_input": lambda **kw: LIF(tau=3.0, decay_input=False, **kw),
    "if": lambda **kw: IF(**kw),
    "plif": lambda **kw: ParametricLIF(init_tau=3.0, **kw),
}
RESETS = {"hard0": 0.0, "hard_neg": -0.3, "soft": None}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", sorted(NEURONS))
@pytest.mark.parametrize("reset", sorted(RESETS))
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("layout", ["folded2d", "rows"])
def test_fused_equals_plain(dtype, kind, reset, detach_reset, layout):
    bn, x_shape, shape = _make(layout, dtype)
    neuron = NEURONS[kind](v_reset=RESETS[reset], detach_reset=detach_reset).to(dtype)
    x = torch.randn(x_shape, dtype=dtype) * 2.0 + 0.3
    fused, plain, out = _run_both(bn, neuron, x, shape)
    _assert_same(fused, plain, out, dtype)


@pytest.mark.parametrize("momentum", [None, 0.1, 0.5])
@pytest.mark.parametrize("track", [True, False])
def test_running_statistics_over_steps(momentum, track):
    bn, x_shape, shape = _make("folded2d", torch.float64, momentum=momentum, track_running_stats=track)
    x = torch.randn(x_shape, dtype=torch.float64) * 1.5
    fused, plain, out = _run_both(bn, LIF().double(), x, shape, steps=3)
    _assert_same(fused, plain, out, torch.float64)
    if track:
        assert int(fused[0].num_batches_tracked) == 3
        assert not torch.equal(fused[0].running_mean, bn.running_mean)  # the statistics did move


def test_only_the_input_is_saved():
    """The fused node keeps the BN input (plus per-channel vectors), not a membrane of the same size."""
    bn, x_shape, shape = _make("rows", torch.float32)
    x = torch.randn(x_shape, requires_grad=True)

    def saved_bytes(fuse: bool) -> int:
        neuron = LIF()
        set_bn_fusion(neuron, fuse)
        total = [0]

        def pack(t: Tensor) -> Tensor:
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            bn_spike(x, copy.deepcopy(bn), neuron, shape)
        return total[0]

    big = x.numel() * x.element_size()
    fused, plain = saved_bytes(True), saved_bytes(False)
    assert big <= fused < big + 1024
    assert plain >= 2 * big


def test_fallbacks_use_the_modules():
    bn, x_shape, shape = _make("folded2d", torch.float32)
    x = torch.randn(x_shape, requires_grad=True)
    calls = []
    cases = {
        "eval": lambda b, n: b.eval(),
        "torch back end": lambda b, n: setattr(n, "backend", "torch"),
        "switched off": lambda b, n: set_bn_fusion(n, False),
        "no affine": None,
        "bn hook": lambda b, n: b.register_forward_hook(lambda *a: calls.append("bn")),
    }
    for name, change in cases.items():
        if name == "no affine":
            b, _, _ = _make("folded2d", torch.float32, affine=False)
        else:
            b = copy.deepcopy(bn)
        n = LIF()
        if change is not None:
            change(b, n)
        assert not can_fuse_bn_spike(x, b, n), name
        ref_b = copy.deepcopy(b)
        out = bn_spike(x, b, n, shape)
        assert type(out.grad_fn).__name__ != FUSED_NODE, name
        assert calls == (["bn"] if name == "bn hook" else []), name  # the BN module's hook fired
        assert torch.equal(out, LIF()(ref_b(x).reshape(shape))), name
        calls.clear()
    # no gradient needed anywhere: the plain path (inference kernels, nothing saved)
    with torch.no_grad():
        assert not can_fuse_bn_spike(x, bn, LIF())
    assert not can_fuse_bn_spike(x.detach(), nn.BatchNorm2d(6).requires_grad_(False), LIF())
    assert can_fuse_bn_spike(x.detach(), nn.BatchNorm2d(6), LIF())  # the BN parameters still need gradients
    # off the CPU nn.BatchNorm may run another kernel (cuDNN): the plain path
    assert not can_fuse_bn_spike(torch.empty(x_shape, device="meta", requires_grad=True), nn.BatchNorm2d(6), LIF())
    assert BN_FUSION_DEFAULT is True


def test_neuron_hooks_see_the_spikes():
    """The neuron is still called through __call__: forward hooks fire with the returned spikes."""
    bn, x_shape, shape = _make("rows", torch.float32)
    x = torch.randn(x_shape, requires_grad=True)
    neuron, seen = LIF(), []
    neuron.register_forward_hook(lambda m, args, out: seen.append(out))
    s = bn_spike(x, bn, neuron, shape)
    assert type(s.grad_fn).__name__ == FUSED_NODE
    assert len(seen) == 1 and seen[0] is s and s.shape == shape
    assert "forward" not in vars(neuron)  # the temporary forward is gone


def _count_fused_nodes(out: Tensor) -> int:
    seen, stack, n = set(), [out.grad_fn], 0
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        n += type(fn).__name__ == FUSED_NODE
        stack.extend(f for f, _ in fn.next_functions)
    return n


# depth 1: Spikformer fuses 4 SPS stages + rpe, q/k/v/proj, fc1/fc2 = 11; SDT 3 SPS stages, q/k/v, fc1_bn->fc2_lif = 7
MODELS = {"spikformer_4_384_cifar10": 11, "sdt_2_512_cifar10": 7}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_model_on_off(name, dtype):
    m_on = st.create_model(name, depth=1, embed_dim=32, num_heads=2, T=2).to(dtype).train()
    m_off = copy.deepcopy(m_on)
    assert set_bn_fusion(m_off, False) > 0
    x = torch.randn(4, 3, 32, 32, dtype=dtype)
    with FiringRateMonitor(m_on) as mon_on, FiringRateMonitor(m_off) as mon_off:
        out_on, out_off = m_on(x), m_off(x)
    assert _count_fused_nodes(out_on) == MODELS[name] and _count_fused_nodes(out_off) == 0
    assert torch.equal(out_on, out_off)
    assert mon_on.rates() == mon_off.rates() and len(mon_on.rates()) > MODELS[name]
    out_on.square().sum().backward()
    out_off.square().sum().backward()
    for (pname, p_on), p_off in zip(m_on.named_parameters(), m_off.parameters()):
        assert (p_on.grad is None) == (p_off.grad is None), pname
        if p_off.grad is not None and p_off.grad.abs().max() > 0:
            assert _rel(p_on.grad, p_off.grad) <= TOL[dtype], pname
    for (bname, b_on), b_off in zip(m_on.named_buffers(), m_off.buffers()):
        assert torch.equal(b_on, b_off), bname
    assert m_on.state_dict().keys() == m_off.state_dict().keys()
    m_on.eval()
    with torch.no_grad():
        assert torch.equal(m_on(x), m_off.eval()(x))


def test_switch_and_plif_model():
    m = st.create_model("sdt_2_512_cifar10", depth=1, embed_dim=32, num_heads=2, T=2)
    neurons = [n for n in m.modules() if isinstance(n, (LIF, IF, ParametricLIF))]
    assert BN_FUSION_DEFAULT and all(getattr(n, "fuse_bn", BN_FUSION_DEFAULT) for n in neurons)
    assert set_bn_fusion(m, False) == len(neurons) > 0
    assert all(not n.fuse_bn for n in neurons)
    m_on = st.create_model("sdt_2_512_cifar10", depth=1, embed_dim=32, num_heads=2, T=2, spike_layer="plif").double()
    m_off = copy.deepcopy(m_on)
    set_bn_fusion(m_off, False)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    out_on, out_off = m_on(x), m_off(x)
    assert _count_fused_nodes(out_on) == MODELS["sdt_2_512_cifar10"]
    assert torch.equal(out_on, out_off)
    out_on.sum().backward()
    out_off.sum().backward()
    for (pname, p_on), p_off in zip(m_on.named_parameters(), m_off.parameters()):
        if p_off.grad is not None and p_off.grad.abs().max() > 0:
            assert _rel(p_on.grad, p_off.grad) <= 1e-12, pname


def test_msmlp_inner_shortcut_unchanged():
    """hidden == dim: the official inner shortcut sits between fc1_bn and fc2_lif, so nothing fuses there."""
    mlp = MSMLP(8, 8).double()
    ref = copy.deepcopy(mlp)
    set_bn_fusion(ref, False)
    x = torch.randn(2, 3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.equal(mlp(x), ref(x))


@pytest.mark.slow  # compiles the extension on first use, as the cpp cases of test_kernels.py
def test_cpp_back_end_when_available():
    """With the compiled back end the fused node gives the same."""
    from spiking_transformers.neurons.kernels.cpp import cpp_available

    if not cpp_available():
        pytest.skip("no C++ compiler: 'cpp' runs the fused implementation, covered above")
    bn, x_shape, shape = _make("folded2d", torch.float32)
    neuron = LIF()
    set_backend(neuron, "cpp")
    fused, plain, out = _run_both(bn, neuron, torch.randn(x_shape) * 2.0, shape)
    _assert_same(fused, plain, out, torch.float32)
