"""QKFormer: parity with the official CIFAR model, parameter counts of every variant, the ImageNet and DVS layouts
at tiny size, converters and the official-kwargs builders."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

import spiking_transformers as st
from spiking_transformers.layers.qk_attention import QKChannelAttention, QKTokenAttention
from spiking_transformers.models.qkformer import (
    _CIFAR_RENAMES,
    _DVS_RENAMES,
    QKFormer,
    QKFormerSSA,
    rename_official,
)

from _official_counts import check_official_param_count
from _parity import check_parity
from conftest import official_fixture

VARIANTS = [
    "qkformer_10_384",
    "qkformer_10_512",
    "qkformer_10_768",
    "qkformer_4_384_cifar10",
    "qkformer_4_384_cifar100",
    "qkformer_cifar10dvs",
    "qkformer_dvs128gesture",
]


def test_all_variants_registered():
    assert sorted(st.list_models("qkformer*")) == sorted(VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_matches_official(name):
    info, official = check_official_param_count(name)
    assert info.lineage == "spikformer" and info.spike_driven is False
    assert info.paper.commit == official["commit"]


def test_parity_cifar_fixture():
    fixture = official_fixture("qkformer_cifar_small")
    report = check_parity("qkformer", fixture, neuron_name=partial(rename_official, renames=_CIFAR_RENAMES))
    print(
        f"\nqkformer_cifar_small: eval rel err {report.eval_rel_err:.3e}, train rel err {report.train_rel_err:.3e}, "
        f"max grad rel err {report.grad_max_rel_err:.3e} over {report.n_grads} tensors"
    )


def test_ssa_proj_quirk_is_what_makes_parity():
    # Without the official folded-T*B output neuron the fixture's spike counts differ (guards the quirk's purpose).
    fixture = official_fixture("qkformer_cifar_small")
    model = st.from_official("qkformer", fixture["meta"]["kwargs"]).double()
    st.load_official_state_dict(model, fixture["state_dict"])
    model.eval()
    with torch.no_grad():
        quirk = model(fixture["input"])
        for m in model.modules():
            if isinstance(m, QKFormerSSA):
                m.proj_over_batch = False
        per_sample = model(fixture["input"])
        single = model(fixture["input"][:1])
    assert torch.allclose(quirk, fixture["output_eval"], rtol=0, atol=1e-9 * fixture["output_eval"].abs().max())
    assert not torch.allclose(per_sample, quirk)
    torch.testing.assert_close(single[0], per_sample[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["qkformer_10_384", "qkformer_cifar10dvs", "qkformer_dvs128gesture"])
def test_tiny_variants_run(name):
    info = st.model_info(name)
    model = st.create_model(name, **info.tiny_overrides)
    size, chans = info.tiny_overrides.get("img_size", info.img_size), info.in_chans
    if info.input_kind == "events":
        x = torch.poisson(torch.full((model.T, 2, chans, size, size), 0.5))
        with pytest.raises(ValueError, match="event-data model"):
            model(x[0])
    else:
        x = torch.randn(2, chans, size, size)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    feats = model.forward_intermediates(x)
    assert len(feats) == len(info.tiny_overrides.get("depths", model.depths))
    assert [f.shape[2] for f in feats] == list(model.dims)


def test_imagenet_layout_and_official_keys():
    model = st.from_official(
        "qkformer_imagenet",
        dict(T=1, img_size_h=64, img_size_w=64, patch_size=16, embed_dims=32, num_heads=2, mlp_ratios=4,
             in_channels=3, num_classes=5, qkv_bias=False, norm_layer=partial(nn.LayerNorm, eps=1e-6), depths=4,
             sr_ratios=1),
    )  # fmt: skip
    assert model.depths == (1, 2, 1) and model.dims == (8, 16, 32)
    # official key layout: stage1/2 'tssa', stage3 'attn', MLP fc1/fc2, init embed proj/proj1/proj2 + proj_res
    sd = model.state_dict()
    official = {k.replace(".attn.", ".tssa.") if k.startswith(("stage1", "stage2")) else k: v for k, v in sd.items()}
    assert "patch_embed1.proj2_conv.weight" in official and "stage3.0.attn.v_conv.weight" in official
    assert "stage1.0.tssa.q_conv.weight" in official and "stage2.1.mlp.fc2_bn.running_var" in official
    st.load_official_state_dict(model, official)
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 5)
    # init embedding: 64 -> 16 px; stage embeds: 8, 4
    assert [f.shape[-1] for f in model.forward_intermediates(x)] == [16, 8, 4]


def test_dvs_converter_renames():
    assert rename_official("patch_embed2.proj_conv.weight", _DVS_RENAMES) == "patch_embed2.proj3_conv.weight"
    assert rename_official("patch_embed1.proj_conv.weight", _DVS_RENAMES) == "patch_embed1.proj_conv.weight"
    assert rename_official("patch_embed2.proj_res_bn.bias", _DVS_RENAMES) == "patch_embed2.proj_res_bn.bias"
    assert rename_official("stage2.0.ssa.proj_lif", _DVS_RENAMES) == "stage2.0.attn.proj_lif"
    assert rename_official("stage1.0.mlp.mlp2_bn.weight", _DVS_RENAMES) == "stage1.0.mlp.fc2_bn.weight"
    model = st.from_official(
        "qkformer_dvs", dict(embed_dims=32, num_heads=16, mlp_ratios=1, in_channels=2, num_classes=10, depths=4)
    )
    assert model.input_kind == "events" and model.dims == (16, 32)
    assert model.patch_embed1.proj_res_conv.stride == (4, 4)
    with pytest.raises(Exception, match="unknown to the 'qkformer_dvs' converter"):
        st.convert_official_state_dict("qkformer_dvs", {"pos_embed": torch.zeros(1)})


def test_official_builders_reject_bad_kwargs():
    with pytest.raises(TypeError):
        st.from_official("qkformer", dict(embed_dims=64, depths=3, mlp_ratios=4, bogus=1))
    with pytest.raises(TypeError, match="embed_dims must be an int"):
        st.from_official("qkformer", dict(depths=3, mlp_ratios=4))
    with pytest.raises(ValueError, match="pretrained"):
        st.from_official("qkformer", dict(pretrained=True, embed_dims=64, depths=3, mlp_ratios=4))
    with pytest.raises(ValueError, match="square"):
        st.from_official("qkformer_imagenet", dict(img_size_h=64, img_size_w=32, embed_dims=64, num_heads=2,
                                                   mlp_ratios=4, depths=4))  # fmt: skip


def test_qk_attention_masks_by_hand():
    torch.manual_seed(0)
    attn = QKTokenAttention(4, 2).double().eval()
    x = (torch.rand(2, 1, 4, 3, 3, dtype=torch.float64) > 0.5).double()
    y = attn(x)
    assert y.shape == x.shape and set(y.unique().tolist()) <= {0.0, 1.0}
    ch = QKChannelAttention(4, 2).double().eval()
    assert ch(x).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        QKTokenAttention(6, 4)
    with pytest.raises(ValueError, match="unknown attention"):
        QKFormer(embed_dim=32, depths=(1, 1), num_heads=2, attn_layers=("qkta", "nope"), embed_layout="cifar")
    # qkca is selectable per stage and trains
    model = QKFormer(
        embed_dim=32, depths=(1, 1), num_heads=2, attn_layers=("qkca", "ssa"), embed_layout="cifar", T=2,
        img_size=16, num_classes=3,
    )  # fmt: skip
    model(torch.randn(2, 3, 16, 16)).sum().backward()
