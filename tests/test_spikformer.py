"""Spikformer: parity with the official fixtures, parameter counts, converters and non-official sizes."""

from __future__ import annotations

import pytest
import torch
from _official_counts import check_official_param_count, official_counts
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.models._official import OfficialCheckpointError
from spiking_transformers.models.spikformer import Spikformer

# Spikformer's own variants (other families, e.g. TIM's spikformer_tim_*, build on it under the same prefix)
VARIANTS = [n for n in st.list_models("spikformer*") if st.model_info(n).family == "spikformer"]

# Parameter counts the paper reports (millions), from the spec's table 1(d); DVS rows give none.
PAPER_PARAMS_M = {
    "spikformer_4_384_cifar10": 9.32,
    "spikformer_4_384_cifar100": 9.32,
    "spikformer_4_256_cifar10": 4.15,
    "spikformer_2_384_cifar10": 5.76,
    "spikformer_8_384": 16.81,
    "spikformer_8_512": 29.68,
    "spikformer_10_512": 36.01,
    "spikformer_8_768": 66.34,
}


def _report(name: str, r) -> None:
    print(f"\n{name}: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
          f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors")


def test_parity_cifar_fixture():
    r = check_parity("spikformer", official_fixture("spikformer_cifar_small"))
    _report("spikformer_cifar_small", r)


def test_parity_cifar10dvs_fixture():
    # Official input is [B, T, 2, 128, 128]; ours is time-major.
    r = check_parity(
        "spikformer_dvs", official_fixture("spikformer_cifar10dvs_small"), prepare_input=lambda x: x.transpose(0, 1)
    )
    _report("spikformer_cifar10dvs_small", r)


def test_registry_lists_every_paper_variant():
    assert set(VARIANTS) >= set(PAPER_PARAMS_M) | {"spikformer_2_256_cifar10dvs", "spikformer_2_256_dvs128gesture"}


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_matches_official(name):
    # The DVS model's unused pos_embed and norm alone are 0.73% of its parameters; the others stay within 0.5%.
    bound = 0.008 if st.model_info(name).input_kind == "events" else 0.005
    info, entry = check_official_param_count(name, bound=bound)
    # The unused tensors, counted independently from the official constructor's kwargs.
    kw = entry["kwargs"]
    dim, depth = kw["embed_dims"], kw["depths"]
    unused = depth * 2 * 2 * dim  # norm1, norm2
    if info.input_kind == "events":
        unused += (128 // kw["patch_size"]) ** 2 * dim + 2 * dim  # DVS pos_embed (1, 64, D) and norm
    assert info.official_unused_params == unused
    if name in PAPER_PARAMS_M:
        assert abs(info.params / 1e6 - PAPER_PARAMS_M[name]) <= 0.005 * PAPER_PARAMS_M[name]


def test_variant_equals_official_builder_on_param_counts_kwargs():
    # The registered variant is the model the official constructor builds with the param_counts.json kwargs.
    models = official_counts()
    pairs = [
        ("spikformer_4_384_cifar10", "spikformer"),
        ("spikformer_8_768", "spikformer_imagenet"),
        ("spikformer_2_256_dvs128gesture", "spikformer_dvs"),
    ]
    for name, family in pairs:
        info = st.model_info(name)
        with torch.device("meta"):
            ours = st.from_official(family, models[info.official_config]["kwargs"])
            variant = st.create_model(name)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in variant.state_dict().items()
        }
        same = ("T", "input_kind", "num_patches")
        assert [getattr(ours, a) for a in same] == [getattr(variant, a) for a in same]
        assert ours.patch_embed.patch_size == variant.patch_embed.patch_size == (4 if family == "spikformer" else 16)


def test_converter_rejects_foreign_keys():
    sd = official_fixture("spikformer_cifar_small")["state_dict"]
    foreign = dict(sd, **{"block.0.attn.talking_heads.weight": torch.zeros(4, 4, 1)})
    with pytest.raises(OfficialCheckpointError, match="talking_heads"):
        st.convert_official_state_dict("spikformer", foreign)
    # A CIFAR (nn.Linear) checkpoint is not an ImageNet/DVS (conv) checkpoint, and the reverse.
    with pytest.raises(OfficialCheckpointError, match="unknown"):
        st.convert_official_state_dict("spikformer_imagenet", sd)
    dvs = official_fixture("spikformer_cifar10dvs_small")["state_dict"]
    with pytest.raises(OfficialCheckpointError, match="unknown"):
        st.convert_official_state_dict("spikformer", dvs)
    # Unused official tensors are dropped explicitly, never passed on.
    converted = st.convert_official_state_dict("spikformer_dvs", dvs)
    assert not any(k.startswith(("pos_embed", "norm.")) or ".norm" in k for k in converted)


def test_imagenet_converter_reshapes_conv_weights():
    # No ImageNet fixture: write a fake official state dict from a small native model (Conv2d MLP, Conv1d attention).
    kwargs = dict(img_size_h=64, img_size_w=64, embed_dims=32, num_heads=2, depths=1, num_classes=5)
    model = st.from_official("spikformer_imagenet", kwargs)
    official = {}
    for key, value in model.state_dict().items():
        if key.endswith("_linear.weight"):
            value = value[..., None, None] if ".mlp." in key else value[..., None]
        official[key.replace("_linear.", "_conv.")] = value.clone()
    official["block.0.norm1.weight"] = torch.ones(32)
    official["block.0.norm2.bias"] = torch.zeros(32)
    fresh = st.from_official("spikformer_imagenet", kwargs)
    st.load_official_state_dict(fresh, official)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_official_builders_check_their_arguments():
    with pytest.raises(TypeError, match="unexpected keyword"):
        st.from_official("spikformer_dvs", dict(embed_dim=64))
    with pytest.raises(TypeError, match="embed_dims"):
        st.from_official("spikformer", dict(embed_dims=[64, 128], num_heads=4, mlp_ratios=4, depths=2))
    with pytest.raises(ValueError, match="weights"):
        st.from_official("spikformer_imagenet", dict(pretrained=True))
    with pytest.raises(ValueError, match="divisible"):
        st.from_official("spikformer", dict(embed_dims=64, num_heads=3, mlp_ratios=4, depths=1))


def test_attention_product_order_is_exact_in_float64():
    # (Q K^T) V and Q (K^T V) of binary matrices are the same integers: the ImageNet order changes no output.
    torch.manual_seed(1)
    a = Spikformer(embed_dim=32, depth=1, num_heads=2, T=2, kv_first=False).double().eval()
    b = Spikformer(embed_dim=32, depth=1, num_heads=2, T=2, kv_first=True).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64) * 3
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("size", [64, (48, 80)])
def test_dvs_model_runs_at_non_official_sizes(size):
    model = st.create_model("spikformer_2_256_dvs128gesture", img_size=size, embed_dim=32, num_heads=2, depth=1)
    h, w = (size, size) if isinstance(size, int) else size
    assert model.num_patches == (h // 16) * (w // 16)
    x = torch.poisson(torch.full((3, 2, 2, h, w), 0.5))
    out = model(x)
    assert out.shape == (2, 11)
    feats = model.forward_features(x)
    assert feats.shape == (3, 2, model.num_patches, 32)
    out.sum().backward()
    with pytest.raises(ValueError, match="time-major"):
        model(x[0])


def test_imagenet_takes_t_as_an_argument():
    model = st.create_model("spikformer_8_512", T=2, img_size=64, embed_dim=32, num_heads=2, depth=1).eval()
    with torch.no_grad():
        assert model.forward_timesteps(torch.randn(1, 3, 64, 64)).shape == (2, 1, 1000)
