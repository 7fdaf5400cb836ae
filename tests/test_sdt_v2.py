"""Meta-SpikeFormer (SDT V2): parity with the official fixture, parameter counts, official builder, converter."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from conftest import FIXTURES, official_fixture
from _parity import check_parity

import spiking_transformers as st
from spiking_transformers.models._official import OfficialCheckpointError
from spiking_transformers.models.sdt_v2 import MetaSpikeFormer, build_official_sdt_v2
from spiking_transformers.neurons.lif import Neuron

VARIANTS = st.list_models("sdt_v2*")
TINY = dict(embed_dim=(16, 32, 64, 80), num_heads=2, depths=(1, 1), num_classes=10, T=2)


def test_parity_sdtv2_fixture():
    # The fixture sets model.T = 4 after construction, as main_finetune.py does with --time_steps.
    r = check_parity("sdt_v2", official_fixture("sdtv2_small"), post_build=lambda m: setattr(m, "T", 4))
    print(f"\nsdtv2_small: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
          f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors")


def test_registry_has_paper_sizes_and_kd():
    assert {"sdt_v2_15m", "sdt_v2_31m", "sdt_v2_55m", "sdt_v2_31m_kd", "sdt_v2_55m_kd"} <= set(VARIANTS)
    info = st.model_info("sdt_v2_55m_kd")
    assert info.spike_driven and info.lineage == "sdt" and info.default_T == 4 and info.reported_top1 == 80.0
    assert info.paper.repo == "BICLab/Spike-Driven-Transformer-V2" and info.paper.commit.startswith("35f245f4f79a")


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_matches_official(name):
    info = st.model_info(name)
    entry = json.loads((FIXTURES / "param_counts.json").read_text())["models"][info.official_config]
    assert info.official_params == entry["params"]
    assert info.official_unused_params == 0
    assert info.params == entry["params"] - info.official_unused_params
    assert bool(entry["kwargs"].get("kd")) == name.endswith("_kd")


def test_official_builder_kwargs():
    kw = dict(official_fixture("sdtv2_small")["meta"]["kwargs"])
    model = st.from_official("sdt_v2", kw)
    assert isinstance(model, MetaSpikeFormer) and model.T == 1 and len(model.block3) == 6 and len(model.block4) == 2
    with pytest.raises(TypeError):
        build_official_sdt_v2(**kw, not_an_official_kwarg=1)
    with pytest.raises(ValueError, match="mlp_ratios"):
        build_official_sdt_v2(**{**kw, "mlp_ratios": [4, 4, 4]})
    with pytest.raises(ValueError, match="embed_dim"):
        build_official_sdt_v2(**{**kw, "embed_dim": [16, 32, 64]})


# The official Spiking_vit_MetaFormer constructor: keyword, default (its defaults do not build there either).
OFFICIAL_SIGNATURE = dict(
    img_size_h=128, img_size_w=128, patch_size=16, in_channels=2, num_classes=11, embed_dim=(64, 128, 256),
    num_heads=(1, 2, 4), mlp_ratios=(4, 4, 4), qkv_bias=False, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
    drop_path_rate=0.0, norm_layer=None, depths=(6, 8, 6), sr_ratios=(8, 4, 2), kd=False,
)  # fmt: skip


def test_official_builder_signature():
    params = inspect.signature(build_official_sdt_v2).parameters
    assert {n: p.default for n, p in params.items()} == OFFICIAL_SIGNATURE
    assert list(params) == list(OFFICIAL_SIGNATURE)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())


def test_converter_rejects_foreign_keys():
    sd = {"patch_embed.proj_conv.weight": torch.zeros(1)}
    with pytest.raises(OfficialCheckpointError):
        st.convert_official_state_dict("sdt_v2", sd)


def test_kd_heads_and_time_steps():
    model = MetaSpikeFormer(**TINY, kd=True)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        out = model(x)
        cls, kd = model.forward_distill(x)
        steps = model.forward_timesteps(x)
    assert out.shape == (2, 10) and steps.shape == (2, 2, 10)
    torch.testing.assert_close(out, (cls + kd) / 2)
    torch.testing.assert_close(steps.mean(0), out)
    model.reset_classifier(5)
    assert model.head.out_features == 5 and model.head_kd.out_features == 5
    with pytest.raises(RuntimeError):
        MetaSpikeFormer(**TINY).forward_distill(x)


def test_tiny_forward_backward_binary_and_stateless():
    model = st.create_model("sdt_v2_15m", **TINY)
    x = torch.randn(2, 3, 32, 32)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in model.modules() if isinstance(m, Neuron)]
    out = model(x)
    for h in hooks:
        h.remove()
    assert all(set(torch.unique(s).tolist()) <= {0.0, 1.0} for s in seen)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    feats = model.forward_intermediates(x)
    assert [f.shape[2:] for f in feats] == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (80, 2, 2)]
