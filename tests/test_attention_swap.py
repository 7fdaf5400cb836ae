"""The attention contract: every registered attention on both backbones, the layout adapter, the registry lookup."""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.layers import SDSA, SpikeDrivenSelfAttention, SpikingSelfAttention, attend
from spiking_transformers.layers.attention import (
    attention_info,
    backbone_options,
    create_attention,
    list_attentions,
    map_to_tokens,
    resolve_attention,
    tokens_to_map,
)
from spiking_transformers.neurons import LIF

# Tiny configurations of the two backbones the issue names: T=2 so that STAtten's default chunk (2) divides it;
# 16 x 16 input gives N = 16 tokens = C / heads, which TIM's per-token convolution needs.
TINY = dict(depth=1, embed_dim=32, num_heads=2, T=2, num_classes=5, img_size=16)
BACKBONES = {"sdt_2_256_cifar10": TINY, "spikformer_4_256_cifar10": TINY}
IMG = (2, 3, 16, 16)
NATIVE = {"sdt_2_256_cifar10": "sdsa", "spikformer_4_256_cifar10": "ssa"}


def test_the_named_attentions_are_registered():
    names = set(list_attentions())
    assert {"ssa", "sdsa", "statten", "qk_token", "qk_channel"} <= names
    for name in names:
        info = attention_info(name)
        assert info.name == name and info.description and info.paper
    assert attention_info("sdsa").spike_driven is True and attention_info("ssa").spike_driven is False
    with pytest.raises(ValueError, match="unknown attention 'nope'"):
        resolve_attention("nope")


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("attn", list_attentions())
def test_every_attention_on_both_backbones(backbone, attn):
    torch.manual_seed(0)
    model = st.create_model(backbone, attn=attn, **BACKBONES[backbone])
    assert model.attn_name == attn
    assert isinstance(model.block[0].attn, attention_info(attn).build)
    x = torch.randn(*IMG)
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.block[0].attn.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), f"{attn}: the attention takes no part in the loss"
    assert model.forward_timesteps(x).shape == (2, 2, 5)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_naming_the_native_attention_changes_nothing(backbone):
    cfg = BACKBONES[backbone]
    torch.manual_seed(0)
    default = st.create_model(backbone, **cfg).double().eval()
    torch.manual_seed(0)
    named = st.create_model(backbone, attn=NATIVE[backbone], **cfg).double().eval()
    assert default.state_dict().keys() == named.state_dict().keys()
    x = torch.randn(*IMG, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(default(x), named(x))


def test_swapped_attention_keeps_the_backbone_keys():
    # The attention sits at block.{i}.attn whatever it is; only its own submodules differ.
    model = st.create_model("sdt_2_256_cifar10", attn="ssa", **BACKBONES["sdt_2_256_cifar10"])
    keys = set(model.state_dict())
    assert "block.0.attn.q_linear.weight" in keys and "block.0.mlp.fc1_conv.weight" in keys
    model = st.create_model("spikformer_4_256_cifar10", attn="sdsa", **BACKBONES["spikformer_4_256_cifar10"])
    keys = set(model.state_dict())
    assert "block.0.attn.q_conv.weight" in keys and "block.0.mlp.fc1_linear.weight" in keys


def test_attention_options_reach_the_attention():
    model = st.create_model(
        "spikformer_4_256_cifar10", attn="statten", attn_options=dict(chunk_size=1), **BACKBONES["spikformer_4_256_cifar10"]
    )
    assert model.block[0].attn.chunk_size == 1
    with pytest.raises(TypeError):
        st.create_model("sdt_2_256_cifar10", attn="ssa", attn_options=dict(nope=1), **BACKBONES["sdt_2_256_cifar10"])


def test_dvs_mode_needs_an_attention_that_has_it():
    with pytest.raises(ValueError, match="dvs_mode=True needs an attention with a dvs_mode option.*'ssa' has none"):
        st.create_model("sdt_2_256_cifar10", attn="ssa", dvs_mode=True, **TINY)
    model = st.create_model("sdt_2_256_cifar10", attn="statten", dvs_mode=True, **TINY)
    assert model.block[0].attn.dvs_mode


def test_map_attention_under_the_token_contract_equals_its_map_forward():
    torch.manual_seed(0)
    attn = create_attention("sdsa", 16, 4, spike_layer=LIF).double().eval()
    assert isinstance(attn, SpikeDrivenSelfAttention) and attn.native_layout == "map"
    fmap = 3 * torch.randn(2, 3, 16, 4, 5, dtype=torch.float64)  # [T, B, C, H, W]
    tokens = map_to_tokens(fmap)  # [T, B, 20, 16]
    assert tokens.shape == (2, 3, 20, 16)
    assert torch.equal(tokens_to_map(tokens, (4, 5)), fmap)
    with torch.no_grad():
        by_map = SpikeDrivenSelfAttention.forward(attn, fmap)
        assert torch.equal(attn(fmap, layout="map"), by_map)
        assert torch.equal(tokens_to_map(attn(tokens, (4, 5)), (4, 5)), by_map)
        assert torch.equal(tokens_to_map(attend(attn, tokens, layout="tokens", grid=(4, 5)), (4, 5)), by_map)
        assert torch.equal(attend(attn, fmap, layout="map"), by_map)
    with pytest.raises(ValueError, match="takes tokens"):
        attn(fmap)
    with pytest.raises(ValueError, match="grid"):
        tokens_to_map(tokens, (3, 5))


def test_token_attention_on_a_map_backbone_sees_row_major_tokens():
    torch.manual_seed(0)
    attn = SpikingSelfAttention(16, 4).double().eval()
    fmap = 3 * torch.randn(2, 3, 16, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = tokens_to_map(attn(map_to_tokens(fmap)), (4, 5))
        assert torch.equal(attend(attn, fmap, layout="map"), expected)
    with pytest.raises(ValueError, match="layout"):
        attend(attn, fmap, layout="nope")


def test_statten_token_contract_uses_the_grid():
    # The scale is 1 / H: tokens are read on the grid the backbone passes, or as the documented N x 1 column.
    torch.manual_seed(0)
    attn = create_attention("statten", 16, 4, spike_layer=LIF).double().eval()
    tokens = 3 * torch.randn(2, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        for grid in ((4, 4), (2, 8), None):
            expected = map_to_tokens(attn(tokens_to_map(tokens, grid), layout="map"))
            assert torch.equal(attn(tokens, grid), expected)


def test_every_attention_maps_tokens_to_tokens():
    x = (torch.rand(2, 3, 16, 32) > 0.5).float()  # [T, B, N, C] spikes
    for name in list_attentions():
        build = attention_info(name).build
        options = dict(spike_layer=LIF, **backbone_options(build, num_tokens=16))
        attn = create_attention(name, 32, 2, **options)
        y = attn(x)
        assert y.shape == x.shape, name
    assert SDSA is attention_info("sdsa").build


def test_backbone_options_fill_only_named_parameters():
    def build(dim, num_heads, *, spike_layer=LIF, num_tokens=None):
        return torch.nn.Identity()

    assert backbone_options(build, num_tokens=7, other=1) == {"num_tokens": 7}
    assert backbone_options(SpikingSelfAttention, num_tokens=7) == {}
    model = st.create_model("spikformer_4_256_cifar10", attn=build, **TINY)
    assert model.attn_name == "build" and isinstance(model.block[0].attn, torch.nn.Identity)


@pytest.mark.parametrize("attn", ["qk_token", "qk_channel", "sdsa", "statten"])
def test_qkformer_stages_take_registered_attentions(attn):
    # QKFormer's own names (qkta, qkca, ssa: its feature-map SSA with conv projections) come first; any other
    # registered name is looked up in the registry.
    from spiking_transformers.models.qkformer import QKFormer

    model = QKFormer(
        embed_dim=32, depths=(1, 1), num_heads=2, attn_layers=(attn, "ssa"), embed_layout="cifar", T=2, img_size=16,
        num_classes=3,
    )  # fmt: skip
    assert isinstance(model.stage1[0].attn, attention_info(attn).build)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3)
    out.sum().backward()
