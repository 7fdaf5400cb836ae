"""The five mechanisms published without code (DISTA, STFormer, SEMM, A²OS²A, α-XNOR): each against a small example
computed by hand from its paper's equations, the energy audit of their products, and their neurons."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import spiking_transformers as st
from spiking_transformers.analysis import SynapticOpCounter, analyze, audit
from spiking_transformers.layers.attention import attention_info, create_attention
from spiking_transformers.layers.attention.a2os2a import A2OS2A
from spiking_transformers.layers.attention.dista import DISTAAttention, denoise_attention
from spiking_transformers.layers.attention.semm import ExpertsMixtureAttention, ExpertsMixtureMlp
from spiking_transformers.layers.attention.ssa import SpikingSelfAttention
from spiking_transformers.layers.attention.stformer import STFormerAttention
from spiking_transformers.layers.attention.xnor import (
    AlphaXNORAttention,
    alpha_xnor_similarity,
    alpha_xnor_similarity_elementwise,
)
from spiking_transformers.models.paper_mechanisms import AUDIT_VERDICTS
from spiking_transformers.neurons import LIF, lif_multistep

FAMILIES = ("dista", "stformer", "semm", "a2os2a", "xnor")


def spikes(*shape: int, p: float = 0.4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) < p).double()


def loud(module: torch.nn.Module, scale: float = 3.0, shift: float = 1.0) -> torch.nn.Module:
    """Eval mode, float64, linear/conv weights scaled up and BatchNorm shifted up so that the neurons of a small
    example fire."""
    module = module.double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale / p[0].numel() ** 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.bias.fill_(shift)
    return module


def heads(x: torch.Tensor, h: int) -> torch.Tensor:
    T, B, N, C = x.shape
    return x.reshape(T, B, N, h, C // h).transpose(2, 3)


def lin_bn(x: torch.Tensor, linear: torch.nn.Linear, bn: torch.nn.BatchNorm1d) -> torch.Tensor:
    """Eval-mode Linear + BatchNorm written out."""
    z = x @ linear.weight.T + (linear.bias if linear.bias is not None else 0)
    return (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


# --------------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", FAMILIES)
def test_attentions_are_registered_as_paper_reconstructions(name):
    info = attention_info(name)
    assert info.reference == "paper" and info.paper and info.description


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_variants_say_they_are_paper_reconstructions(family):
    names = st.list_models(f"{family}_*")
    assert names, f"no registered {family} variant"
    for name in names:
        info = st.model_info(name)
        assert info.family == family and info.official_family is None and info.official_params is None
        assert info.notes.startswith("reference: paper") and "[paper" in info.notes and "[our reading]" in info.notes


# --------------------------------------------------------------------------------------------------- α-XNOR


def test_alpha_xnor_hand_example():
    q = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    k = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    # row 0: spike match at 0 (1), silence match at 2 (a); row 1: no spike match, no silence match
    expected = torch.tensor([[1.0 + 0.5, 0.0]])
    torch.testing.assert_close(alpha_xnor_similarity(q, k, 0.5), expected)
    torch.testing.assert_close(alpha_xnor_similarity_elementwise(q, k, 0.5), expected)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9])
def test_alpha_xnor_matrix_form_equals_elementwise_definition(alpha):
    q, k = spikes(2, 3, 5, 16, p=0.2, seed=1), spikes(2, 3, 7, 16, p=0.3, seed=2)
    torch.testing.assert_close(alpha_xnor_similarity(q, k, alpha), alpha_xnor_similarity_elementwise(q, k, alpha),
                               rtol=0, atol=1e-12)
    if alpha == 0.0:
        assert torch.equal(alpha_xnor_similarity(q, k, 0.0), q @ k.transpose(-2, -1))  # plain SSA similarity


def test_alpha_xnor_per_head_alpha_broadcasts():
    q, k = spikes(1, 3, 4, 8, seed=3), spikes(1, 3, 4, 8, seed=4)
    alpha = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64).reshape(3, 1, 1)
    s = alpha_xnor_similarity(q, k, alpha)
    for h in range(3):
        torch.testing.assert_close(s[:, h], alpha_xnor_similarity_elementwise(q[:, h], k[:, h], float(alpha[h])))


def test_alpha_xnor_attention_with_alpha_zero_is_ssa():
    torch.manual_seed(0)
    ssa = loud(SpikingSelfAttention(32, 4, attn_scale=0.5))
    xnor = AlphaXNORAttention(32, 4, alpha=0.0, attn_scale=0.5).double().eval()
    xnor.load_state_dict(ssa.state_dict())
    x = spikes(3, 2, 9, 32, seed=5)
    out = ssa(x)
    assert out.sum() > 0
    assert torch.equal(xnor(x), out)
    other = AlphaXNORAttention(32, 4, alpha=0.5, attn_scale=0.5).double().eval()
    other.load_state_dict(ssa.state_dict())
    assert not torch.equal(other(x), out)  # matching silences change the map


def test_alpha_xnor_learnable_per_head_alpha_gets_a_gradient():
    m = AlphaXNORAttention(32, 4, alpha=0.5, learnable_alpha=True, per_head=True).double()
    assert m.alpha.shape == (4, 1, 1)
    m(spikes(2, 2, 9, 32, seed=6) * 3).sum().backward()
    assert m.alpha.grad is not None
    with pytest.raises(ValueError, match="alpha must lie in"):
        AlphaXNORAttention(32, 4, alpha=1.0)


# --------------------------------------------------------------------------------------------------- A²OS²A


def _a2os2a_qkv(m: A2OS2A, x: torch.Tensor):
    return m._branch("q", x), m._branch("k", x), m._branch("v", x)


def test_a2os2a_operand_types_and_addition_only_products():
    m = loud(A2OS2A(16, 2))
    x = spikes(2, 1, 5, 16, seed=7) + spikes(2, 1, 5, 16, seed=8)  # an integer SEW stream
    q, k, v = _a2os2a_qkv(m, x)
    assert set(q.unique().tolist()) <= {0.0, 1.0} and (k >= 0).all() and set(v.unique().tolist()) == {-1.0, 0.0, 1.0}
    # the products computed with additions only: S[n, m] adds the K entries Q's spikes select, O adds / subtracts
    # the S entries V's ternary spikes select
    S = torch.zeros(*q.shape[:-1], k.shape[-2], dtype=torch.float64)
    O = torch.zeros_like(v)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in q.shape[:3]]).tolist():
        qi, ki, vi = q[tuple(idx)], k[tuple(idx)], v[tuple(idx)]
        for n in range(qi.shape[0]):
            for j in range(ki.shape[0]):
                S[tuple(idx)][n, j] = sum(ki[j, i] for i in range(qi.shape[1]) if qi[n, i] == 1)
            for c in range(vi.shape[1]):
                plus = sum(S[tuple(idx)][n, j] for j in range(vi.shape[0]) if vi[j, c] == 1)
                minus = sum(S[tuple(idx)][n, j] for j in range(vi.shape[0]) if vi[j, c] == -1)
                O[tuple(idx)][n, c] = plus - minus
    torch.testing.assert_close((q @ k.transpose(-2, -1)) @ v, O, rtol=1e-12, atol=1e-12)
    # and the module's output is the projection of that O
    T, B, h, N, d = O.shape
    o = O.transpose(2, 3).reshape(T, B, N, h * d)
    ref = lif_multistep(lin_bn(o, m.proj_linear, m.proj_bn))
    assert torch.equal(m(x), ref)


def test_a2os2a_audit_no_multiply_on_spike_or_ternary_operands():
    tiny = {**st.model_info("a2os2a_4_384_cifar10").tiny_overrides, "T": 4}
    model = st.create_model("a2os2a_4_384_cifar10", **tiny).double()
    # batch statistics in BatchNorm so that an untrained model fires
    report = analyze(model, [torch.randn(4, 3, 32, 32, dtype=torch.float64)], batch_stats=True)
    attn_products = [r for r in report.layers if ".attn:" in r.key and r.op == "matmul"]
    assert len(attn_products) == 2, [r.key for r in attn_products]  # Q K^T and S V
    for r in attn_products:
        assert r.macs == 0 and r.acs > 0 and r.input_kind == "binary", r
    qk, sv = attn_products
    assert qk.operand_kinds == ("binary", "real") and sv.operand_kinds == ("real", "binary")
    # every multiply-accumulate after the encoding has only real operands (the projection of O), never a spike
    for r in report.layers:
        if r.macs and not r.encoding:
            assert r.input_kind == "real" and "binary" not in r.operand_kinds, r
    assert report.audit.verdict == AUDIT_VERDICTS["a2os2a"][0]
    assert any(k.endswith("attn.proj_linear") for k in report.audit.real)
    assert attention_info("a2os2a").spike_driven is False


def test_a2os2a_options_and_errors():
    m = A2OS2A(16, 2, q_kind="ternary", k_kind="relu", v_kind="binary", attn_neuron=True).double()
    assert m(spikes(2, 1, 4, 16)).shape == (2, 1, 4, 16)
    with pytest.raises(ValueError, match="v_kind must be one of"):
        A2OS2A(16, 2, v_kind="analog")
    with pytest.raises(ValueError, match="at most one of Q, K, V may be ReLU"):
        A2OS2A(16, 2, q_kind="relu", k_kind="relu")


# --------------------------------------------------------------------------------------------------- SEMM


def test_semm_routers_binary_and_mix_an_integer_in_0_m():
    m = loud(ExpertsMixtureAttention(32, 4, num_experts=4), scale=4.0)
    x = spikes(3, 2, 9, 32, seed=9) + spikes(3, 2, 9, 32, seed=10)
    r, e = m.route(x), m.experts(x)
    assert r.shape == (3, 2, 9, 4) and set(r.unique().tolist()) == {0.0, 1.0}
    assert e.shape == (3, 2, 4, 9, 32) and set(e.unique().tolist()) == {0.0, 1.0}
    y = m.mix(x)
    assert torch.equal(y, y.round()) and y.min() >= 0 and y.max() <= 4 and y.max() >= 2
    # the hand sum over experts: Y[t, b, n, c] = sum_i R[t, b, n, i] * E_i[t, b, n, c]
    explicit = sum(r[..., i:i + 1] * e[:, :, i] for i in range(4))
    assert torch.equal(y, explicit)
    # expert i is SN_0.5(0.125 (Q_i K^T) V) with shared K, V
    q = lif_multistep(lin_bn(x, m.q_linear, m.q_bn)).reshape(3, 2, 9, 4, 8)
    k = lif_multistep(lin_bn(x, m.k_linear, m.k_bn))
    v = lif_multistep(lin_bn(x, m.v_linear, m.v_bn))
    for i in range(4):
        ref = lif_multistep(0.125 * (q[..., i, :] @ k.transpose(-2, -1)) @ v, v_threshold=0.5)
        assert torch.equal(e[:, :, i], ref)


def test_semm_small_values_and_experts_default_to_heads():
    m = ExpertsMixtureAttention(32, 4, v_dim="small").double()
    assert m.num_experts == 4 and m.expert_dim == 8 and m.proj_linear.in_features == 8
    assert m(spikes(2, 1, 4, 32)).shape == (2, 1, 4, 32)
    with pytest.raises(ValueError, match="not divisible by num_experts"):
        ExpertsMixtureAttention(30, 4)


def test_semm_mlp_router_gates_hidden_channels():
    m = loud(ExpertsMixtureMlp(8, 16), scale=4.0)
    x = spikes(2, 1, 6, 8, seed=11) * 2
    h = lif_multistep(lin_bn(x, m.fc1_linear, m.fc1_bn))
    r = m.route(h[..., :8], grid=(2, 3))
    assert r.shape == (2, 1, 6, 8) and set(r.unique().tolist()) <= {0.0, 1.0} and r.sum() > 0
    ref = lif_multistep(lin_bn(r * h[..., 8:], m.fc2_linear, m.fc2_bn))
    assert torch.equal(m(x, grid=(2, 3)), ref)
    with pytest.raises(ValueError, match="not a square grid"):
        m(x)


# --------------------------------------------------------------------------------------------------- DISTA


def _explicit_window(q, k, v, h, window, mode, theta, per_lag=False):
    T = q.shape[0]
    C = q.shape[-1]
    qh = heads(q, h)
    out = torch.zeros_like(qh)
    for t in range(T):
        for lag in range(window + 1):
            if t - lag < 0:
                continue
            kk = k[..., lag * C:(lag + 1) * C] if per_lag else k
            vv = v[..., lag * C:(lag + 1) * C] if per_lag else v
            a = qh[t] @ heads(kk, h)[t - lag].transpose(-2, -1)
            if mode == "threshold":
                a = a * (a > theta)
            elif mode == "relu":
                a = torch.clamp(a - theta, min=0)
            out[t] += a @ heads(vv, h)[t - lag]
    return out


@pytest.mark.parametrize("mode,theta,window,per_lag", [("threshold", 1.0, 2, False), ("relu", 0.5, 1, False),
                                                        ("none", 0.0, 3, False), ("threshold", 0.0, 2, True)])
def test_dista_window_attention_equals_explicit_sum_over_lags(mode, theta, window, per_lag):
    m = DISTAAttention(16, 2, window=window, denoise=mode, theta=theta, per_lag_kv=per_lag).double()
    T, width = 5, 16 * (window + 1 if per_lag else 1)
    q = spikes(T, 2, 6, 16, p=0.5, seed=12)
    k, v = spikes(T, 2, 6, width, p=0.5, seed=13), spikes(T, 2, 6, width, p=0.5, seed=14)
    got = m.window_sum(q, k, v)
    assert torch.equal(got, _explicit_window(q, k, v, 2, window, mode, theta, per_lag))
    assert got.abs().sum() > 0


def test_dista_hand_example_one_token_one_channel():
    m = DISTAAttention(1, 1, window=1, denoise="none").double()
    q = torch.tensor([1.0, 1.0, 0.0]).reshape(3, 1, 1, 1)
    k = torch.tensor([1.0, 0.0, 1.0]).reshape(3, 1, 1, 1)
    v = torch.tensor([1.0, 1.0, 1.0]).reshape(3, 1, 1, 1)
    # t=0: q0 k0 v0 = 1; t=1: q1 k1 v1 + q1 k0 v0 = 0 + 1; t=2: q2 = 0
    assert m.window_sum(q, k, v).flatten().tolist() == [1.0, 1.0, 0.0]


def test_dista_window_zero_without_denoiser_is_ssa():
    ssa = loud(SpikingSelfAttention(32, 4, attn_scale=0.5))
    dista = DISTAAttention(32, 4, window=0, denoise="none", attn_scale=0.5).double().eval()
    dista.load_state_dict(ssa.state_dict())
    x = spikes(3, 2, 9, 32, seed=15)
    out = ssa(x)
    assert out.sum() > 0 and torch.equal(dista(x), out)


def test_dista_denoiser_and_per_channel_tau():
    a = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert denoise_attention(a, "threshold", 1.0).tolist() == [0.0, 0.0, 2.0, 3.0]
    assert denoise_attention(a, "relu", 1.0).tolist() == [0.0, 0.0, 1.0, 2.0]
    m = DISTAAttention(16, 2, tau_per_channel=True).double()
    assert m.q_lif.w.shape == (16,) and m.attn_lif.v_threshold == 0.5
    m(spikes(3, 1, 4, 16, seed=16) * 2).sum().backward()
    with pytest.raises(ValueError, match="denoise must be one of"):
        DISTAAttention(16, 2, denoise="softmax")


# --------------------------------------------------------------------------------------------------- STFormer


def test_stformer_against_an_explicit_computation():
    torch.manual_seed(0)
    m = loud(STFormerAttention(8, 2, spatial_kernel=3, spatial_depth=2), scale=3.0)
    T, B, Hg, Wg, C = 3, 1, 2, 3, 8
    x = spikes(T, B, Hg * Wg, C, seed=17) + spikes(T, B, Hg * Wg, C, seed=18)
    fmap = x.transpose(2, 3).reshape(T, B, C, Hg, Wg)

    def bn(z, mod, axis):  # eval BatchNorm on channel axis
        shape = [1] * z.dim()
        shape[axis] = -1
        r = lambda p: p.reshape(shape)  # noqa: E731
        return (z - r(mod.running_mean)) / torch.sqrt(r(mod.running_var) + mod.eps) * r(mod.weight) + r(mod.bias)

    # temporal core: depth-wise 3x3x3 correlation over (t, y, x), zero padding, written as a sum over kernel taps
    w = m.temporal_conv.weight  # [C, 1, 3, 3, 3]
    padded = F.pad(fmap, (1, 1, 1, 1, 0, 0, 0, 0, 0, 0))
    padded = torch.cat([torch.zeros_like(padded[:1]), padded, torch.zeros_like(padded[:1])])
    z = torch.zeros_like(fmap)
    for dt in range(3):
        for dy in range(3):
            for dx in range(3):
                tap = w[:, 0, dt, dy, dx].reshape(1, 1, C, 1, 1)
                z += tap * padded[dt:dt + T, :, :, dy:dy + Hg, dx:dx + Wg]
    temporal = lif_multistep(bn(z, m.temporal_bn, 2))
    assert torch.equal(m.temporal_core(fmap), temporal)
    # spatial core: two depth-wise 3x3 conv-BN-LIF layers, plus the input
    s = fmap
    for conv, norm in zip(m.spatial_conv, m.spatial_bn):
        s = lif_multistep(bn(F.conv2d(s.flatten(0, 1), conv.weight, padding=1, groups=C).unflatten(0, (T, B)), norm, 2))
    spatial = fmap + s
    # spike-guided attention: Q from the spatial features, K and V from the temporal ones
    tok = lambda f: f.flatten(3).transpose(2, 3)  # noqa: E731
    q = heads(lif_multistep(lin_bn(tok(spatial), m.q_linear, m.q_bn)), 2)
    k = heads(lif_multistep(lin_bn(tok(temporal), m.k_linear, m.k_bn)), 2)
    v = heads(lif_multistep(lin_bn(tok(temporal), m.v_linear, m.v_bn)), 2)
    y = ((q @ k.transpose(-2, -1)) @ v) * 0.125
    y = lif_multistep(y.transpose(2, 3).reshape(T, B, Hg * Wg, C), v_threshold=0.5)
    ref = lif_multistep(lin_bn(y, m.proj_linear, m.proj_bn))
    out = m(x, (Hg, Wg))
    assert out.sum() > 0 and torch.equal(out, ref)
    assert torch.equal(m(fmap, layout="map"), ref.transpose(2, 3).reshape(T, B, C, Hg, Wg))
    with pytest.raises(ValueError, match="not a square grid"):
        m(x)


# --------------------------------------------------------------------------------------------------- audits


@pytest.mark.parametrize("family", FAMILIES)
def test_model_audit_verdict_is_the_recorded_one(family):
    name = st.list_models(f"{family}_*_cifar10")[0]
    info = st.model_info(name)
    model = st.create_model(name, **{**info.tiny_overrides, "T": 4}).double()
    report = analyze(model, [torch.randn(4, 3, 32, 32, dtype=torch.float64)], batch_stats=True)
    verdict, why = AUDIT_VERDICTS[family]
    assert report.audit.verdict == verdict, report.audit.explain()
    assert verdict in info.notes and why in info.notes
    assert info.spike_driven is (verdict == "spike-driven")


@pytest.mark.parametrize("name", FAMILIES)
def test_attention_registry_spike_driven_matches_its_audit_on_spike_input(name):
    torch.manual_seed(0)
    m = loud(create_attention(name, 16, 2), scale=3.0)

    class Wrap(torch.nn.Module):
        """A binary encoding layer first (excluded from the verdict), then the attention on its spikes."""

        def __init__(self):
            super().__init__()
            self.enc, self.lif, self.attn = torch.nn.Linear(16, 16), LIF(), m

        def forward(self, x):
            s = self.lif(self.enc(x))
            return self.attn(s, (3, 3)) if getattr(self.attn, "native_layout", "tokens") == "map" else self.attn(s)

    net = Wrap().double().eval()
    counter = SynapticOpCounter(net)
    with counter:
        counter.forward(torch.randn(2, 2, 9, 16, dtype=torch.float64) * 3)
    verdict = audit(counter.records.values()).verdict
    assert (verdict == "spike-driven") is attention_info(name).spike_driven, (name, verdict)
