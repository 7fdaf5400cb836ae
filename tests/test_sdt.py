"""Spike-driven Transformer V1: parity with the official fixtures, PLIF checkpoints, parameter counts, options."""

from __future__ import annotations

import pytest
import torch
from _official_counts import check_official_param_count, official_counts
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.models._official import OfficialCheckpointError
from spiking_transformers.models.sdt import SpikeDrivenTransformer, parse_pooling_stat
from spiking_transformers.neurons import LIF, ParametricLIF

VARIANTS = [n for n in st.list_models("sdt_*") if st.model_info(n).family == "sdt"]


def _report(name: str, r) -> None:
    print(
        f"\n{name}: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
        f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors"
    )


def test_parity_cifar_fixture():
    _report("sdt_cifar_small", check_parity("sdt", official_fixture("sdt_cifar_small")))


def test_parity_cifar10dvs_tet_erode_fixture():
    # Official input is [B, T, C, H, W] (the model transposes it); the TET model returns per-step logits [T, B, K].
    r = check_parity(
        "sdt",
        official_fixture("sdt_cifar10dvs_small"),
        prepare_input=lambda x: x.transpose(0, 1).contiguous(),
        per_timestep=True,
    )
    _report("sdt_cifar10dvs_small", r)


def _official_plif_state_dict(fixture: dict, depth: int) -> dict[str, torch.Tensor]:
    """An official-style PLIF checkpoint: the LIF fixture's keys plus one ``w`` per official neuron, unused ones
    (attn_lif, rpe_lif) included, with distinct values."""
    sd = dict(fixture["state_dict"])
    neurons = [f"patch_embed.proj_lif{s}" for s in ("", "1", "2", "3")] + ["patch_embed.rpe_lif", "head_lif"]
    for i in range(depth):
        neurons += [f"block.{i}.attn.{n}_lif" for n in ("q", "k", "v", "attn", "talking_heads", "shortcut")]
        neurons += [f"block.{i}.mlp.fc1_lif", f"block.{i}.mlp.fc2_lif"]
    for j, name in enumerate(neurons):
        sd[f"{name}.w"] = torch.tensor(-0.5 + 0.05 * j, dtype=torch.float64)
    return sd


def test_plif_build_and_load_official_state_dict():
    fixture = official_fixture("sdt_cifar_small")
    kwargs = dict(fixture["meta"]["kwargs"], spike_mode="plif")
    model = st.from_official("sdt", kwargs).double()
    sd = _official_plif_state_dict(fixture, depth=kwargs["depths"])
    st.load_official_state_dict(model, sd)
    neurons = dict(model.named_modules())
    assert isinstance(neurons["block.1.attn.talking_heads_lif"], ParametricLIF)
    assert neurons["block.1.attn.talking_heads_lif"].v_threshold == 0.5
    params = dict(model.named_parameters())
    for key in ("head_lif.w", "patch_embed.proj_lif3.w", "block.0.attn.talking_heads_lif.w", "block.1.mlp.fc2_lif.w"):
        assert torch.equal(params[key], sd[key]), key
    # the unused official neurons are dropped explicitly, never loaded
    dropped = set(sd) - set(st.convert_official_state_dict("sdt", sd))
    assert dropped == {"patch_embed.rpe_lif.w", "block.0.attn.attn_lif.w", "block.1.attn.attn_lif.w",
                       "block.0.attn.talking_heads.weight", "block.1.attn.talking_heads.weight"}
    model.eval()
    with torch.no_grad():
        out = model(fixture["input"])
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # 4 tokenizer + 5 attention + 2 MLP neurons per block + head: every one learnable
    assert sum(1 for k in params if k.endswith(".w")) == 4 + 7 * kwargs["depths"] + 1


def test_converter_rejects_foreign_keys_and_builder_rejects_unknown_kwargs():
    fixture = official_fixture("sdt_cifar_small")
    with pytest.raises(OfficialCheckpointError):
        st.convert_official_state_dict("sdt", {**fixture["state_dict"], "block.0.attn.qkv.weight": torch.zeros(1)})
    with pytest.raises(TypeError):
        st.from_official("sdt", dict(fixture["meta"]["kwargs"], embed_dim=64))
    with pytest.raises(ValueError, match="pooling_stat"):
        st.from_official("sdt", dict(fixture["meta"]["kwargs"], pooling_stat="011"))
    with pytest.raises(ValueError, match="spike_mode"):
        st.from_official("sdt", dict(fixture["meta"]["kwargs"], spike_mode="alif"))
    assert parse_pooling_stat("0111") == (False, True, True, True)


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_matches_official(name):
    info, entry = check_official_param_count(name)
    # the unused talking_heads Conv1d: heads^2 weights per block
    assert info.official_unused_params == entry["kwargs"]["depths"] * entry["kwargs"]["num_heads"] ** 2
    # the registered variant is the model the official kwargs build
    with torch.device("meta"):
        official = st.from_official("sdt", entry["kwargs"])
    assert sum(p.numel() for p in official.parameters()) == info.params
    assert info.default_T == entry["kwargs"]["T"] and info.num_classes == entry["kwargs"]["num_classes"]


def test_every_official_sdt_config_is_registered():
    registered = {st.model_info(n).official_config for n in VARIANTS}
    assert {k for k in official_counts() if k.startswith("sdt_v1/")} <= registered


def test_time_steps_events_and_grid():
    model = SpikeDrivenTransformer(
        num_classes=5, img_size=32, in_chans=2, T=3, embed_dim=32, depth=1, num_heads=4,
        pool_stages=(False, False, True, True), dvs_mode=True, input_kind="events",
    ).double()
    assert model.grid_size == (8, 8)
    x = torch.rand(3, 2, 2, 32, 32, dtype=torch.float64).round()
    per_step = model.forward_timesteps(x)
    assert per_step.shape == (3, 2, 5)
    torch.testing.assert_close(model(x), per_step.mean(0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="time-major"):
        model(x[0])
    feats = model.forward_intermediates(x)
    assert len(feats) == 2 and feats[-1].shape == (3, 2, 32, 8, 8)
    model.reset_classifier(0)
    assert model(x).shape == (2, 32)


def test_imagenet_variant_structure():
    with torch.device("meta"):
        model = st.create_model("sdt_8_384")
    assert model.grid_size == (14, 14) and model.T == 4 and model.num_features == 384
    assert isinstance(model.head_lif, LIF) and len(model.block) == 8
    assert not any("talking_heads." in k or "attn_lif" in k for k in model.state_dict())
