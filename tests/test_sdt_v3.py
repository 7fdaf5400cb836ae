"""E-SpikeFormer (SDT V3): official parity, parameter counts, official kwargs, and binary-expanded inference."""

from __future__ import annotations

import pytest
import torch
from _official_counts import check_official_param_count
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.export.binary_expansion import SpikeTrain, binary_expanded, run_binary_expanded
from spiking_transformers.models import count_parameters
from spiking_transformers.models.sdt_v3 import ESpikeFormer, ESpikeFormerLarge
from spiking_transformers.neurons.multispike import MultiSpike

FIXTURES = {"sdt_v3_base": "sdtv3_base_small", "sdt_v3_large": "sdtv3_large_small"}
VARIANTS = ["sdt_v3_t", "sdt_v3_s", "sdt_v3_m", "sdt_v3_l", "sdt_v3_83m", "sdt_v3_83m_kd", "sdt_v3_171m",
            "sdt_v3_171m_kd", "sdt_v3_171m_kd_1x8"]


def _loaded(family: str) -> tuple[torch.nn.Module, dict]:
    fx = official_fixture(FIXTURES[family])
    model = st.from_official(family, fx["meta"]["kwargs"]).double()
    st.load_official_state_dict(model, fx["state_dict"])
    return model.eval(), fx


@pytest.mark.parametrize("family", sorted(FIXTURES))
def test_official_parity(family):
    report = check_parity(family, official_fixture(FIXTURES[family]))
    print(f"\n{FIXTURES[family]}: eval rel err {report.eval_rel_err:.3e}, train rel err {report.train_rel_err:.3e}, "
          f"max grad rel err {report.grad_max_rel_err:.3e} over {report.n_grads} gradients, "
          f"{len(report.spike_counts)} neuron modules with exact integer-level counts")


def test_param_counts_match_official():
    assert set(VARIANTS) == set(st.list_models("sdt_v3_*"))
    for name in VARIANTS:
        info, _ = check_official_param_count(name)
        assert info.family == "sdt_v3" and info.lineage == "sdt_v2" and not info.spike_driven
        assert info.paper.repo == "BICLab/Spike-Driven-Transformer-V3" and info.paper.year == 2025


def test_official_kwargs_of_the_factories_build_the_registered_models():
    with torch.device("meta"):
        base = st.from_official("sdt_v3_base", dict(img_size_h=224, img_size_w=224, patch_size=16,
                                                    embed_dim=[32, 64, 128, 192], num_heads=8, mlp_ratios=4,
                                                    in_channels=3, num_classes=1000, qkv_bias=False,
                                                    norm_layer="partial(nn.LayerNorm, eps=1e-6)", depths=8,
                                                    sr_ratios=1))
        large = st.from_official("sdt_v3_large", dict(T=1, choice="large", img_size_h=32, img_size_w=32,
                                                      patch_size=16, embed_dim=[196, 384, 768], num_heads=8,
                                                      mlp_ratios=4, in_channels=3, num_classes=1000, qkv_bias=False,
                                                      norm_layer="partial", depths=12, kd=True))
    assert count_parameters(base) == st.model_info("sdt_v3_s").params
    assert count_parameters(large) == st.model_info("sdt_v3_171m_kd").params


def test_official_kwargs_errors():
    with pytest.raises(TypeError):
        st.from_official("sdt_v3_base", dict(embed_dim=[8, 16, 32, 48], num_heads=8, mlp_ratios=4, bogus=1))
    with pytest.raises(ValueError):
        st.from_official("sdt_v3_base", dict(embed_dim=[8, 16, 32], num_heads=8, mlp_ratios=4))
    with pytest.raises(ValueError):  # class default: head_kd on embed_dim[-1]=640 but features are 512
        st.from_official("sdt_v3_large", {})
    with pytest.raises(ValueError):
        st.from_official("sdt_v3_large", dict(embed_dim=[16, 32, 64], kd=True, nb_classes=10, num_classes=5))


def test_large_1x4_and_1x8_weights_both_load():
    fx = official_fixture("sdtv3_large_small")
    outs = {}
    for D in (4, 8):
        model = st.from_official("sdt_v3_large", {**fx["meta"]["kwargs"], "max_level": D}).double()
        st.load_official_state_dict(model, fx["state_dict"])
        levels = {m.max_level for m in model.modules() if isinstance(m, MultiSpike)}
        assert levels == {D}
        with torch.no_grad():
            outs[D] = model.eval()(fx["input"])
    assert float((outs[4] - fx["output_eval"]).abs().max()) <= 1e-9 * float(fx["output_eval"].abs().max())
    assert not torch.allclose(outs[4], outs[8])  # 8 levels change the computation
    with torch.device("meta"):
        m8 = st.create_model("sdt_v3_171m_kd_1x8")
    assert {m.max_level for m in m8.modules() if isinstance(m, MultiSpike)} == {8}


def test_base_time_semantics_t_repeats_the_same_computation():
    model, fx = _loaded("sdt_v3_base")
    assert model.T == 1
    with torch.no_grad():
        per_step = model.forward_timesteps(torch.stack([fx["input"]] * 3))
    assert per_step.shape == (3, 2, 10)
    for t in range(3):
        assert torch.allclose(per_step[t], fx["output_eval"], rtol=0, atol=1e-12)


def test_kd_head_forward_distill_and_reset_classifier():
    model = ESpikeFormerLarge(num_classes=7, embed_dim=(16, 32, 64), depth=1, num_heads=2, kd=True).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    model.eval()
    cls, kd = model.forward_distill(x)
    assert torch.allclose(model(x), (cls + kd) / 2, rtol=0, atol=1e-14)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.head_kd.out_features == 5
    with pytest.raises(RuntimeError):
        ESpikeFormerLarge(embed_dim=(16, 32, 64), depth=1, num_heads=2).forward_distill(x)


@pytest.mark.parametrize("family", sorted(FIXTURES))
def test_binary_expansion_gives_the_integer_models_logits(family):
    model, fx = _loaded(family)
    with torch.no_grad():
        ref = model(fx["input"])
    out, report = run_binary_expanded(model, fx["input"])
    err = float((out - ref).abs().max() / ref.abs().max())
    print(f"\n{FIXTURES[family]}: binary-expanded vs integer logits rel err {err:.3e}; "
          f"{report.total_events} binary events over {len(report.neurons)} neuron modules")
    assert err <= 1e-12
    assert torch.allclose(out, fx["output_eval"], rtol=0, atol=1e-12 * float(ref.abs().max()))
    # binary events per neuron == the official integer-level spike counts
    assert {k: v.events for k, v in report.neurons.items()} == {k: int(v) for k, v in fx["spike_counts"].items()}
    assert all(sum(v.per_step) == v.events and v.virtual_steps == 4 for v in report.neurons.values())
    # every conv/linear that consumed a spike train saw binary steps only; both attention products are expanded
    assert report.calls and all(c.op == "matmul" or c.binary_only for c in report.calls)
    assert any(c.op == "matmul" and c.binary_only for c in report.calls)
    # neurons are restored
    assert not any(type(m).__name__ == "ExpandingNeuron" for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(fx["input"]), ref)


@pytest.mark.parametrize("order", ["first", "last"])
def test_binary_expansion_tiny_kd_model_with_8_levels(order):
    torch.manual_seed(1)
    model = ESpikeFormerLarge(num_classes=5, embed_dim=(16, 32, 64), depth=1, num_heads=2, kd=True, max_level=8,
                              layer_scale_init=0.5).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    out, report = run_binary_expanded(model, x, order=order)
    assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-12
    assert report.neurons["lif"].virtual_steps == 8 and any(c.op == "linear" for c in report.calls)


def test_spike_train_is_binary_and_sums_to_the_activation():
    model = ESpikeFormer(num_classes=3, embed_dim=(8, 16, 32, 48), depths=(1, 1), num_heads=2).double().eval()
    seen = []
    with binary_expanded(model) as report:
        handle = model.block3[0].attn.q_spike.register_forward_hook(lambda m, i, o: seen.append(o))
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
        handle.remove()
    train = seen[0]
    assert isinstance(train, SpikeTrain) and len(train.steps) == 4
    assert all(torch.equal(s, (s == 1).to(s.dtype)) for s in train.steps)
    assert train.events() == report.neurons["block3.0.attn.q_spike"].events
    assert "block3.0.attn.q_spike" in report.table()
