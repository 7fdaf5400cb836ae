"""Generic tests over the whole registry (timm's test_models.py idea), each model at its tiny configuration."""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.models import SpikingModel, count_parameters
from spiking_transformers.neurons import Neuron

MODELS = st.list_models(task="classification")  # the generic classifier tests


def tiny(name: str) -> tuple[SpikingModel, torch.Tensor]:
    info = st.model_info(name)
    overrides = dict(info.tiny_overrides)
    model = st.create_model(name, **overrides).double()
    in_chans = overrides.get("in_chans", info.in_chans)
    size = overrides.get("img_size", info.img_size)
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(0)
    if info.input_kind == "events":
        x = torch.poisson(torch.full((model.T, 2, in_chans, h, w), 0.5, dtype=torch.float64), generator=g)
    else:
        x = torch.randn(2, in_chans, h, w, dtype=torch.float64, generator=g)
    return model, x


def test_registry_is_not_empty_and_names_are_unique():
    assert len(MODELS) == len(set(MODELS)) > 0


@pytest.mark.parametrize("name", MODELS)
def test_model_info_is_complete(name):
    info = st.model_info(name)
    assert info.name == name and info.family and info.paper.title and info.paper.year >= 2018
    assert info.input_kind in ("image", "events") and info.default_T >= 1 and info.num_classes > 1
    assert info.tiny_overrides, f"{name} registers no tiny_overrides"
    assert info.params and info.params > 0
    if info.official_params is not None:
        assert info.params == info.official_params - info.official_unused_params
        # Within 0.5 % of the official total, unless the official model's own dead parameters (which we leave
        # out) are more than that: Spikformer's DVS file carries an unused position embedding and LayerNorm (0.73 %).
        bound = max(0.005 * info.official_params, info.official_unused_params)
        assert abs(info.params - info.official_params) <= bound


@pytest.mark.parametrize("name", MODELS)
def test_tiny_model_forward_backward(name):
    model, x = tiny(name)
    assert isinstance(model, SpikingModel)
    model.train()
    # the registered default T, untouched by tiny overrides unless they set T
    levels: dict[str, float] = {}

    def hook(mod, _inp, out, name=None):
        scaled = out.detach() * mod.spike_scale
        assert torch.equal(scaled, scaled.round()), f"{name}: non-integer spike counts"
        lo = mod.min_level  # 0, or -1 for a ternary neuron (spike count |output|)
        assert scaled.min() >= lo and scaled.max() <= mod.max_level, f"{name}: spikes outside [{lo}, {mod.max_level}]"
        levels[name] = float(scaled.max())

    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
        for n, m in model.named_modules()
        if isinstance(m, Neuron)
    ]
    out = model(x)
    for h in handles:
        h.remove()
    B = x.shape[1] if x.dim() == 5 else x.shape[0]
    assert out.shape == (B, model.num_classes)
    assert torch.isfinite(out).all()
    assert levels, "no Neuron module ran in forward"
    (out * torch.randn_like(out)).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if no_grad and hasattr(model, "forward_distill"):
        # training-only second heads (STMixer's SML side heads) are used by forward_distill, not by forward
        sum((o * torch.randn_like(o)).sum() for o in model.forward_distill(x)).backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters that forward (or forward_distill) never uses: {no_grad[:5]}"
    assert count_parameters(model) > 0


@pytest.mark.parametrize("name", MODELS)
def test_tiny_model_is_stateless_and_batch_independent_in_eval(name):
    model, x = tiny(name)
    model.eval()
    with torch.no_grad():
        first = model(x)
        second = model(x)
        assert torch.equal(first, second), "two identical forwards differ: leaked state"
        one = model(x[:, :1] if x.dim() == 5 else x[:1])
        torch.testing.assert_close(one[0], first[0], rtol=1e-9, atol=1e-12)
        per_step = model.forward_timesteps(x)
        assert per_step.shape == (model.T, *first.shape)
        torch.testing.assert_close(per_step.mean(0), first, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier(name):
    model, x = tiny(name)
    model.reset_classifier(3)
    model.eval()
    with torch.no_grad():
        assert model(x).shape[-1] == 3
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape[-1] == model.num_features


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'nope_1_2'"):
        st.create_model("nope_1_2")
