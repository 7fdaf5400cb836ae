"""BatchNorm folding for inference: the same logits, no BatchNorm left."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spiking_transformers.export.fold_bn import find_conv_bn_pairs, fold_bn
from spiking_transformers.models import create_model, model_info


def _randomise_bn(model: nn.Module) -> None:
    """Give every BN non-trivial statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)


@pytest.mark.parametrize("name", ["spikformer_4_384_cifar10", "sdt_2_512_cifar10"])
def test_fold_bn_keeps_logits_in_float64(name):
    torch.manual_seed(0)
    model = create_model(name, **model_info(name).tiny_overrides).double()
    _randomise_bn(model)
    model.eval()
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64) * 2
    with torch.no_grad():
        ref = model(x)
    folded = fold_bn(model, x)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert len(folded.folded_bn_pairs) == n_bn > 0
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    with torch.no_grad():
        out = folded(x)
    assert float((out - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
    assert model.training is False and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original kept


def test_fold_bn_keeps_training_model_untouched_and_default_example():
    model = create_model("spikformer_4_384_cifar10", depth=1, embed_dim=32, num_heads=2, T=2)
    _randomise_bn(model)
    model.train()
    folded = fold_bn(model)  # default example input from img_size / first conv
    assert model.training and not folded.training
    assert all(not p.requires_grad for p in folded.parameters())


def test_pairing_skips_bn_not_fed_by_a_layer():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    model.eval()
    pairs = find_conv_bn_pairs(model, torch.rand(1, 2, 6, 6))
    assert pairs == [("3", "4")]
    folded = fold_bn(model, torch.rand(1, 2, 6, 6))
    assert isinstance(folded[4], nn.Identity) and isinstance(folded[2], nn.BatchNorm2d)
