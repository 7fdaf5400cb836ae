"""Spike2Former (our reading of the spec; no official reference): neuron, shapes, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from spiking_transformers.models.spike2former import (
    NILIF,
    SPIKE2FORMER_ADE20K_KWARGS,
    SPIKE2FORMER_TINY_KWARGS,
    Spike2Former,
    semantic_inference,
    semantic_loss,
    spike2former_sdtv2_ade20k,
)
from spiking_transformers.neurons import MultiSpike
from spiking_transformers.neurons.lif import Neuron


def test_nilif_single_step_is_multispike8():
    x = torch.randn(1, 5, 7) * 4
    n = NILIF(8)
    assert isinstance(n, Neuron) and n.spike_scale == 8 and n.max_level == 8
    torch.testing.assert_close(n(x), MultiSpike(max_level=8)(x), rtol=0, atol=0)


def test_nilif_soft_reset_by_emitted_integer():
    # v1 = 2.7 -> k = 3, v = -0.3; v2 = -0.3 + 1.6 = 1.3 -> k = 1, v = 0.3; v3 = 0.3 + 9.9 = 10.2 -> k = 8 (clamp)
    x = torch.tensor([[2.7], [1.6], [9.9]], dtype=torch.float64)
    out = NILIF(8)(x)
    torch.testing.assert_close(out * 8, torch.tensor([[3.0], [1.0], [8.0]], dtype=torch.float64))


def test_nilif_gradient_window():
    x = torch.tensor([[-1.0, 4.0, 12.0]], requires_grad=True)
    NILIF(8)(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 1 / 8, 0.0]]))


def test_neurons_are_ni_with_right_scales():
    m = Spike2Former(**SPIKE2FORMER_TINY_KWARGS)
    neurons = [mod for mod in m.modules() if isinstance(mod, Neuron)]
    backbone = [n for n in m.backbone.modules() if isinstance(n, Neuron)]
    decoder = [n for n in m.layers.modules() if isinstance(n, Neuron)]
    assert backbone and all(isinstance(n, NILIF) and n.spike_scale == 8 for n in backbone)
    assert decoder and all(isinstance(n, MultiSpike) and n.spike_scale == 4 for n in decoder)
    assert len(neurons) > len(backbone) + len(decoder)  # pixel decoder and heads have neurons too


def test_tiny_forward_shapes_and_backward():
    torch.manual_seed(0)
    K = SPIKE2FORMER_TINY_KWARGS["num_classes"]
    m = Spike2Former(**SPIKE2FORMER_TINY_KWARGS)
    x = torch.randn(2, 3, 48, 64)  # non-square
    cls, masks = m.forward_masks(x)
    assert cls.shape == (2, 8, K + 1) and masks.shape == (2, 8, 12, 16)
    scores = m(x)
    assert scores.shape == (2, K, 48, 64) and (scores >= 0).all()
    loss = semantic_loss(scores, torch.randint(0, K, (2, 48, 64)))
    loss.backward()
    assert torch.isfinite(loss)
    for name in ("backbone.downsample1_1.encode_conv.weight", "query_feat", "cls_embed.weight", "w"):
        p = dict(m.named_parameters()).get(name)
        if p is not None:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert m.cls_embed.weight.grad.abs().sum() > 0 and m.query_feat.grad.abs().sum() > 0


def test_semantic_inference_hand_checked():
    # one query, K = 2: softmax([0, log 3, 0]) = [.2, .6, .2]; sigmoid(0) = .5 -> scores [.1, .3]
    cls = torch.tensor([[[0.0, torch.log(torch.tensor(3.0)), 0.0]]])
    masks = torch.zeros(1, 1, 1, 1)
    torch.testing.assert_close(semantic_inference(cls, masks).flatten(), torch.tensor([0.1, 0.3]))


def test_semantic_loss_is_ce_on_normalised_scores():
    s = torch.tensor([0.1, 0.3]).view(1, 2, 1, 1)
    torch.testing.assert_close(semantic_loss(s, torch.tensor([[[1]]])), -torch.log(torch.tensor(0.75)), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="disagree"):
        semantic_loss(s, torch.zeros(1, 2, 2, dtype=torch.long))
    # vanishing scores are no way out: they cost log K, not 0
    torch.testing.assert_close(semantic_loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)),
                               torch.log(torch.tensor(4.0)))


def test_bad_input_errors():
    m = Spike2Former(**SPIKE2FORMER_TINY_KWARGS)
    with pytest.raises(ValueError, match="multiples of 16"):
        m(torch.randn(1, 3, 40, 64))
    with pytest.raises(ValueError, match="input channels"):
        m(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="num_heads"):
        Spike2Former(**{**SPIKE2FORMER_TINY_KWARGS, "heads": 3})


def test_paper_config_builds_on_meta():
    with torch.device("meta"):
        m = spike2former_sdtv2_ade20k()
    assert m.num_classes == SPIKE2FORMER_ADE20K_KWARGS["num_classes"] == 150
    assert m.query_feat.shape == (100, 256) and len(m.layers) == 6 and len(m.pixel_decoder.encoder) == 6
    assert m.cls_embed.out_features == 151
