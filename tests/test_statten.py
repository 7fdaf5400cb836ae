"""STAtten: parity with the official fixture, the time grouping against a plain reference, chunk-size errors,
parameter counts, official options."""

from __future__ import annotations

import pytest
import torch
from _official_counts import check_official_param_count, official_counts
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.layers.ops import folded, merge_heads, split_heads
from spiking_transformers.layers.sdt_blocks import SpikeDrivenSelfAttention
from spiking_transformers.models.sdt import SpikeDrivenTransformer
from spiking_transformers.models.statten import STAtten, SpatioTemporalAttention
from spiking_transformers.neurons import LIF, ParametricLIF

VARIANTS = st.list_models("statten_*")


def test_parity_cifar_fixture():
    r = check_parity("statten", official_fixture("statten_cifar_small"))
    print(
        f"\nstatten_cifar_small: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
        f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors"
    )


def _reference_attention(attn: SpatioTemporalAttention, x: torch.Tensor) -> torch.Tensor:
    """The same attention written with explicit loops over groups and time steps (no chunk reshapes)."""
    T, B, C, H, W = x.shape
    c, h = attn.chunk_size, attn.num_heads
    s = attn.shortcut_lif(x)
    pool = attn.erode

    def branch(n: str) -> torch.Tensor:
        conv, bn, lif = (getattr(attn, f"{n}_{part}") for part in ("conv", "bn", "lif"))
        return split_heads(pool(lif(folded(s, conv, bn))), h)

    q, k, v = branch("q"), branch("k"), branch("v")
    scale = 1 / (H * H * c) if attn.dvs_mode else 1 / H
    out = torch.empty_like(q)
    for g in range(T // c):
        steps = range(g * c, (g + 1) * c)
        kv = sum(k[t].transpose(-2, -1) @ v[t] for t in steps) * scale  # [B, h, d, d]
        for t in steps:
            out[t] = q[t] @ kv
    y = attn.attn_lif(merge_heads(out, H, W))
    if attn.dvs_mode:
        p = pool(s)
        y = y * p + p
    return folded(y, attn.proj_conv, attn.proj_bn)


def _firing_attention(**kwargs) -> SpatioTemporalAttention:
    attn = SpatioTemporalAttention(32, 4, **kwargs).double().eval()
    for name in "qkv":
        torch.nn.init.normal_(getattr(attn, f"{name}_conv").weight, std=0.5)  # the input reaches Q, K, V
        getattr(attn, f"{name}_bn").bias.data.fill_(1.0)
    return attn


@pytest.mark.parametrize("dvs_mode", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 2, 4])
def test_time_grouping_matches_loop_reference(chunk_size, dvs_mode):
    attn = _firing_attention(chunk_size=chunk_size, dvs_mode=dvs_mode)
    x = 3 * torch.randn(4, 2, 32, 4, 4, dtype=torch.float64)
    rates = []
    handle = attn.attn_lif.register_forward_hook(lambda m, i, o: rates.append(float(o.mean())))
    with torch.no_grad():
        out = attn(x)
    handle.remove()
    assert 0 < rates[0] < 1, "the attention neuron must fire for the comparison to mean something"
    with torch.no_grad():
        torch.testing.assert_close(out, _reference_attention(attn, x), rtol=1e-12, atol=1e-12)


def test_queries_see_later_steps_of_their_group_only():
    # Neurons are causal in time, the attention is not within a group: changing step 3 changes step 2 (same group
    # of chunk 2) and leaves steps 0-1 (the other group) exactly alone.
    attn = _firing_attention(chunk_size=2)
    x = 3 * torch.randn(4, 2, 32, 4, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[3] = 3 * torch.randn(2, 32, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        a, b = attn(x), attn(x2)
    assert torch.equal(a[:2], b[:2])
    assert not torch.equal(a[2], b[2])


def test_chunk_size_must_divide_T():
    with pytest.raises(ValueError, match="divide T=4"):
        STAtten(T=4, chunk_size=3, embed_dim=32, depth=1, num_heads=4, img_size=32, num_classes=10)
    with pytest.raises(ValueError, match="divide"):
        st.create_model("statten_2_256_cifar10dvs_t10", chunk_size=4)
    with pytest.raises(ValueError, match="divide"):
        st.from_official("statten", dict(official_fixture("statten_cifar_small")["meta"]["kwargs"], chunk_size=3))
    model = STAtten(T=4, chunk_size=2, embed_dim=32, depth=1, num_heads=4, img_size=32, num_classes=10)
    with pytest.raises(ValueError, match="does not divide the number of time steps T=3"):
        model(torch.randn(3, 1, 3, 32, 32))  # event-style input with another T


def test_official_attention_modes_and_plif():
    kwargs = official_fixture("statten_cifar_small")["meta"]["kwargs"]
    sdt_mode = st.from_official("statten", dict(kwargs, attention_mode="SDT"))
    assert type(sdt_mode) is SpikeDrivenTransformer and isinstance(sdt_mode.block[0].attn, SpikeDrivenSelfAttention)
    with pytest.raises(NotImplementedError):
        st.from_official("statten", dict(kwargs, attention_mode="SDT", dvs_mode=True))
    with pytest.raises(ValueError, match="attention_mode"):
        st.from_official("statten", dict(kwargs, attention_mode="T_STAtten"))
    with pytest.raises(TypeError):
        st.from_official("statten", dict(kwargs, get_embed=False))  # an SDT V1 kwarg the STAtten constructor lacks

    # PLIF: tokenizer, MLP and head neurons are parametric, the attention's stay LIF (as upstream).
    plif = st.from_official("statten", dict(kwargs, spike_mode="plif")).double()
    assert isinstance(plif.block[0].attn.q_lif, LIF) and isinstance(plif.block[0].mlp.fc1_lif, ParametricLIF)
    sd = dict(official_fixture("statten_cifar_small")["state_dict"])
    names = [f"patch_embed.proj_lif{s}" for s in ("", "1", "2", "3")] + ["patch_embed.rpe_lif", "head_lif"]
    names += [f"block.{i}.mlp.fc{j}_lif" for i in range(2) for j in (1, 2)]
    sd.update({f"{n}.w": torch.tensor(0.1 * i, dtype=torch.float64) for i, n in enumerate(names)})
    st.load_official_state_dict(plif, sd)
    assert float(plif.head_lif.w.detach()) == pytest.approx(0.5)


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_matches_official(name):
    info, entry = check_official_param_count(name)
    assert info.official_unused_params == entry["kwargs"]["depths"] * entry["kwargs"]["num_heads"] ** 2
    with torch.device("meta"):
        official = st.from_official("statten", entry["kwargs"])
        ours = st.create_model(name)
    assert sum(p.numel() for p in official.parameters()) == info.params
    assert ours.chunk_size == entry["kwargs"]["chunk_size"] and ours.T == entry["kwargs"]["T"]
    assert ours.dvs_mode == entry["kwargs"]["dvs_mode"]


def test_every_official_statten_config_is_registered():
    registered = {st.model_info(n).official_config for n in VARIANTS}
    assert {k for k in official_counts() if k.startswith("statten/")} <= registered
    assert all(st.model_info(n).lineage == "sdt" for n in VARIANTS)
