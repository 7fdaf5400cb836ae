"""``forward_intermediates`` of the finished families: one return type for detection / segmentation heads.

Every model returns a list of time-major tensors, feature maps ``[T, B, C, H, W]`` or tokens ``[T, B, N, C]``, ordered
from the input side; the last one is ``forward_features`` (laid on its grid where the features are tokens).
"""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st

FAMILIES = ("spikformer", "sdt", "statten", "qkformer", "sdt_v3")


def _kind(name: str) -> tuple[str, str]:
    """(model class, input kind) of a variant: one variant per pair is enough, the others share the code path."""
    info = st.model_info(name)
    with torch.device("meta"):
        cls = type(st.create_model(name, **info.tiny_overrides)).__name__
    return cls, info.input_kind


_BY_KIND: dict[tuple[str, str], str] = {}
for _name in st.list_models(task="classification"):
    if st.model_info(_name).family in FAMILIES:
        _BY_KIND.setdefault(_kind(_name), _name)
MODELS = sorted(_BY_KIND.values())


def _tiny(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    info = st.model_info(name)
    model = st.create_model(name, **info.tiny_overrides).double().eval()
    size = info.tiny_overrides.get("img_size", info.img_size)
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(0)
    if info.input_kind == "events":
        x = torch.poisson(torch.full((model.T, 2, info.in_chans, h, w), 0.5, dtype=torch.float64), generator=g)
    else:
        x = 2 * torch.randn(2, info.in_chans, h, w, dtype=torch.float64, generator=g)
    return model, x


def test_every_finished_model_class_is_covered():
    classes = {cls for cls, _ in _BY_KIND}
    expected = {"Spikformer", "SpikeDrivenTransformer", "STAtten", "QKFormer", "ESpikeFormer", "ESpikeFormerLarge"}
    assert classes >= expected


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_return_type(name):
    model, x = _tiny(name)
    with torch.no_grad():
        feats = model.forward_intermediates(x)
        last = model.forward_features(x)
    assert isinstance(feats, list) and feats and all(isinstance(f, torch.Tensor) for f in feats)
    T, B = model.T, 2
    for f in feats:
        assert f.dim() in (4, 5), f"{name}: intermediate of shape {tuple(f.shape)}"
        assert f.shape[:2] == (T, B), f"{name}: not time-major [T, B, ...]: {tuple(f.shape)}"
        assert torch.isfinite(f).all()
    maps = [f for f in feats if f.dim() == 5]
    # a pyramid never grows: spatial size non-increasing from the input side
    sizes = [f.shape[-2] * f.shape[-1] for f in maps]
    assert sizes == sorted(sizes, reverse=True)
    # the last intermediate is forward_features (tokens [T, B, C, N] of the E-SpikeFormer large model laid on the grid)
    if last.shape != feats[-1].shape:
        assert last.dim() == 4 and feats[-1].dim() == 5
        assert torch.equal(feats[-1].flatten(3), last)
    else:
        assert torch.equal(feats[-1], last)
    # spikformer tokens: [T, B, N, C] with C = num_features; maps: [T, B, C, H, W] with C = num_features last
    if feats[-1].dim() == 4:
        assert feats[-1].shape[-1] == model.num_features
    else:
        assert feats[-1].shape[2] == model.num_features


@pytest.mark.parametrize("name", ["qkformer_10_384", "sdt_v3_t", "sdt_v3_83m"])
def test_multi_scale_backbones_give_a_pyramid(name):
    model, x = _tiny(name)
    with torch.no_grad():
        feats = model.forward_intermediates(x)
    assert len(feats) >= 3 and all(f.dim() == 5 for f in feats)
    assert len({f.shape[-1] for f in feats}) >= 3, [tuple(f.shape) for f in feats]
    # the intermediates drive a head: gradients reach the input layer
    model.train()
    sum(f.mean() for f in model.forward_intermediates(x)).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
