"""TIM (Spikformer with the Temporal Interaction Module): parity with the official fixture, thresholds from the state
dict, the N == C/heads requirement, the TIM recurrence, the registered attention, parameter counts, audit verdict."""

from __future__ import annotations

import json
import time

import pytest
import torch
from _official_counts import check_official_param_count
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.layers.attention import attention_info, create_attention
from spiking_transformers.layers.attention.tim import BrainCogLIF, MembraneState, TemporalInteraction, TIMSelfAttention
from spiking_transformers.models import get_official_family
from spiking_transformers.models.tim import SpikformerTIM
from spiking_transformers.neurons import LIF

VARIANTS = st.list_models("spikformer_tim_*")


def _events_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1).contiguous()  # official [B, T, C, H, W] -> ours [T, B, C, H, W]


def test_parity_dvs_fixture():
    r = check_parity("tim", official_fixture("tim_dvs_small", folder="wave2"), prepare_input=_events_first)
    print(
        f"\ntim_dvs_small: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
        f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors"
    )


def test_thresholds_come_from_the_state_dict():
    fx = official_fixture("tim_dvs_small", folder="wave2")
    model = st.from_official("tim", fx["meta"]["kwargs"]).double()
    # The distributed code: every neuron at 1.0.
    assert {float(m.threshold) for m in model.modules() if isinstance(m, BrainCogLIF)} == {1.0}
    st.load_official_state_dict(model, fx["state_dict"])
    attn = model.block[1].attn
    assert float(attn.TIM.in_lif.threshold) == pytest.approx(0.3, abs=0) and float(attn.TIM.out_lif.threshold) == 0.5
    assert float(attn.attn_lif.threshold) == 0.5 and float(attn.q_lif.threshold) == 1.0
    # A checkpoint with other values is followed too.
    sd = dict(fx["state_dict"], **{"block.0.attn.q_lif.threshold": torch.tensor(0.7, dtype=torch.float64)})
    st.load_official_state_dict(model, sd)
    assert float(model.block[0].attn.q_lif.threshold) == 0.7
    # The res_lif scalars and LayerNorms of the official file are dropped, nothing else.
    family = get_official_family("tim")
    dropped = [k for k in fx["state_dict"] if family.is_unused(k)]
    assert sorted({k.split(".", 2)[-1] for k in dropped}) == [
        "attn.res_lif.act_fun.alpha", "attn.res_lif.threshold", "norm1.bias", "norm1.weight", "norm2.bias",
        "norm2.weight",
    ]  # fmt: skip


def test_registered_variants_use_the_intended_thresholds():
    model = st.create_model("spikformer_tim_2_256_cifar10dvs", **st.model_info(VARIANTS[0]).tiny_overrides)
    attn = model.block[0].attn
    assert float(attn.TIM.in_lif.threshold) == pytest.approx(0.3) and float(attn.TIM.out_lif.threshold) == 0.5
    assert float(attn.attn_lif.threshold) == 0.5 and float(attn.k_lif.threshold) == 1.0


def test_distributed_thresholds_silence_the_tim_output_neuron():
    """The README's reading: with threshold 1.0 the TIM output neuron cannot fire in 10 steps (its input is at most 1
    and the membrane only moves halfway towards it), whatever the queries and the conv do."""
    tim = TemporalInteraction(16, thresholds=(1.0, 1.0)).double()
    torch.nn.init.normal_(tim.interactor.weight, std=3.0)  # drive the input neuron hard
    q = torch.ones(10, 2, 4, 16, 16, dtype=torch.float64)
    counts = []
    tim.out_lif.register_forward_hook(lambda m, i, o: counts.append(float(o.detach().sum())))
    tim.in_lif.register_forward_hook(lambda m, i, o: counts.append(-float(o.detach().sum())))
    out = tim(q)
    assert any(c < 0 for c in counts), "the input neuron must fire for the check to mean something"
    assert all(c <= 0 for c in counts) and torch.equal(out[1:], torch.zeros_like(out[1:]))
    # With the intended 0.5 it fires.
    tim2 = TemporalInteraction(16).double()
    thresholds = {"in_lif.threshold": torch.tensor(0.3), "out_lif.threshold": torch.tensor(0.5)}
    tim2.load_state_dict({**tim.state_dict(), **thresholds})
    assert tim2(q)[1:].sum() > 0


def test_tim_recurrence_matches_a_hand_written_loop():
    torch.manual_seed(0)
    tim = TemporalInteraction(8).double()
    torch.nn.init.normal_(tim.interactor.weight, std=0.5)
    q = (torch.rand(5, 2, 3, 8, 6, dtype=torch.float64) < 0.4).double()
    out = tim(q)
    # Reference: explicit membranes, MyNode equations.
    y, v_in, v_out, ref = q[0], 0.0, 0.0, [q[0]]
    for t in range(1, 5):
        z = torch.nn.functional.conv1d(y.flatten(0, 1), tim.interactor.weight, tim.interactor.bias, padding=2)
        h = v_in + (z.reshape(y.shape) - v_in) / 2
        s_in = (h >= 0.3).double()
        v_in = h * (1 - s_in)
        h = v_out + (s_in * 0.5 + q[t] * 0.5 - v_out) / 2
        s_out = (h >= 0.5).double()
        v_out = h * (1 - s_out)
        y = s_out
        ref.append(y)
    assert torch.equal(out, torch.stack(ref))
    assert torch.equal(out[0], q[0]) and 0 < out[1:].mean() < 1


def test_gradient_flows_through_time_only_along_the_tim_recurrence():
    neuron = BrainCogLIF(v_threshold=0.5)
    x = torch.full((3, 4), 0.8, dtype=torch.float64, requires_grad=True)
    out = neuron(x)
    (g,) = torch.autograd.grad(out[2].sum(), x)
    assert torch.equal(g[:2], torch.zeros_like(g[:2])) and g[2].abs().sum() > 0  # mem_detach: no temporal path
    # single-step mode with explicit state equals the multi-step call
    state = MembraneState()
    steps = torch.stack([neuron(x[t], state) for t in range(3)])
    assert torch.equal(steps, out)
    # TIM's own recurrence does carry gradient back in time: the last output depends on the first query.
    tim = TemporalInteraction(4).double()
    torch.nn.init.normal_(tim.interactor.weight, std=2.0)
    q = (torch.rand(4, 1, 1, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    q.requires_grad_(True)
    (gq,) = torch.autograd.grad(tim(q)[-1].sum(), q)
    assert gq[0].abs().sum() > 0


def test_n_must_equal_channels_per_head():
    with pytest.raises(ValueError, match=r"N == C/heads.*N = 16 tokens.*C/heads = 64/8 = 8"):
        SpikformerTIM(embed_dim=64, num_heads=8, depth=1, img_size=64)
    with pytest.raises(ValueError, match=r"N == C/heads"):
        st.create_model("spikformer_tim_2_256_cifar10dvs", img_size=128)  # 64 tokens, C/heads = 16
    attn = TIMSelfAttention(64, 4)  # C/heads = 16
    with pytest.raises(ValueError, match=r"C/heads = 16 channels.*N = 9 tokens"):
        attn(torch.zeros(2, 1, 9, 64))
    kwargs = dict(official_fixture("tim_dvs_small", folder="wave2")["meta"]["kwargs"], img_size_h=128, img_size_w=128)
    with pytest.raises(ValueError, match="N = 64 tokens"):
        st.from_official("tim", kwargs)


def test_tim_attention_is_registered_and_runs_on_another_neuron():
    info = attention_info("tim")
    assert info.reference == "official" and info.spike_driven is False
    attn = create_attention("tim", 32, 2, spike_layer=LIF).double()  # C/heads = 16 tokens
    for name in "qkv":
        getattr(attn, f"{name}_bn").bias.data.fill_(1.5)
    x = (torch.rand(4, 2, 16, 32, dtype=torch.float64) < 0.5).double()
    y = attn(x)
    assert y.shape == x.shape and set(y.unique().tolist()) <= {0.0, 1.0}
    assert isinstance(attn.q_lif, LIF) and isinstance(attn.TIM.in_lif, BrainCogLIF)


def test_ucf_variant_pools_frames_to_64():
    model = st.create_model("spikformer_tim_2_256_ucf101dvs", embed_dim=32, num_heads=2, depth=1, T=2).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 2, 96, 128)).shape == (1, 101)
    with pytest.raises(ValueError, match="time-major"):
        model(torch.rand(1, 2, 64, 64))


@pytest.mark.parametrize("name", VARIANTS)
def test_param_counts(name):
    check_official_param_count(name)


def test_audit_verdict_matches_the_registry():
    from spiking_transformers.analysis import analyze

    info = st.model_info("spikformer_tim_2_256_cifar10dvs")
    model = st.create_model(info.name, **info.tiny_overrides)
    x = torch.poisson(torch.full((model.T, 2, 2, 16, 16), 0.5), generator=torch.Generator().manual_seed(0))
    r = analyze(model, [x], batch_stats=True)
    assert (r.audit.verdict == "spike-driven") == info.spike_driven, r.audit.explain()
    assert r.audit.verdict == "integer-driven"  # spike-element-wise shortcut
    assert "block.0.attn.TIM.interactor" not in r.audit.integer  # TIM's conv sees binary spikes


@pytest.mark.slow
def test_tim_learns_synthetic_events(tmp_path, capsys):
    """Spikformer-TIM (1 block, width 64, 4 heads, 4x4 = 16 tokens from 16x16 frames via patch_size 4, T=4) on the
    bundled synthetic events: well above chance (10 %)."""
    from spiking_transformers.cli import main

    start = time.time()
    rc = main(["train", "--recipe", "tim_synthetic_events", "--threads", "1", "--no-progress", "--no-tensorboard",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    with capsys.disabled():
        print(f"\nTIM on synthetic-events: test top-1 {metrics['test_top1']:.2f}% in {time.time() - start:.0f} s")
    assert metrics["test_top1"] > 60.0
