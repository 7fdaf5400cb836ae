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
    semantic_targets,
    set_criterion,
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
    torch.testing.assert_close(semantic_loss(s, torch.tensor([[[1]]])), -torch.log(torch.tensor(0.75)), atol=1e-5,
                               rtol=0)
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


def test_every_neuron_fires_in_tiny_config():
    # regression: with the paper's attention constants at 64 x 64 the attention-output neurons were all silent
    # (the queries never saw the image) and the mask MLP was silent too
    torch.manual_seed(0)
    m = Spike2Former(**SPIKE2FORMER_TINY_KWARGS)
    rates = {}
    for name, mod in m.named_modules():
        if isinstance(mod, Neuron):
            mod.register_forward_hook(
                lambda mod, i, o, name=name: rates.__setitem__(name, float((o > 0).float().mean())))
    m(torch.randn(4, 3, 64, 64))
    assert len(rates) > 40
    silent = [n for n, r in rates.items() if r < 0.01]
    assert not silent, silent


def test_semantic_targets_one_segment_per_class():
    lab = torch.tensor([[[0, 2], [255, 2]]])
    (cls, masks), = semantic_targets(lab, 4)
    assert cls.tolist() == [0, 2]
    assert masks.tolist() == [[[1, 0], [0, 0]], [[0, 1], [0, 1]]]


def test_set_criterion_matches_the_right_query():
    # two queries, K = 2, one image with classes 0 (left column) and 1 (right column); query 1 predicts the left
    # mask and class 0, query 0 the right mask and class 1: the matching must pair them crosswise, and the loss of
    # the good assignment must be lower than that of the swapped predictions
    lab = torch.tensor([[[0, 1], [0, 1]]])
    big = 8.0
    left = torch.tensor([[big, -big], [big, -big]])
    cls = torch.tensor([[[-big, big, -big], [big, -big, -big]]])
    masks = torch.stack([-left, left])[None]  # query 0: right, query 1: left
    good = set_criterion([(cls, masks)], lab, 2)
    bad = set_criterion([(cls, masks.flip(1))], lab, 2)
    assert good < 0.05 and bad > 1.0, (good, bad)
    # deep supervision sums the outputs
    torch.testing.assert_close(set_criterion([(cls, masks), (cls, masks.flip(1))], lab, 2), good + bad)
    with pytest.raises(ValueError, match="labels must be"):
        set_criterion([(cls, masks)], lab[0], 2)


def test_set_loss_reaches_backbone_and_queries():
    torch.manual_seed(0)
    m = Spike2Former(**SPIKE2FORMER_TINY_KWARGS)
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, SPIKE2FORMER_TINY_KWARGS["num_classes"], (2, 64, 64))
    outs = m.forward_all(x)
    assert len(outs) == SPIKE2FORMER_TINY_KWARGS["dec_layers"] + 1
    m.loss(x, y).backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    for name in ("backbone.downsample1_1.encode_conv.weight", "query_feat", "query_pos", "cls_embed.weight", "w",
                 "mask_embed.fc.0.weight", "pixel_decoder.mask_feature.layer.weight"):
        g = grads[name]
        assert g is not None and 0 < float(g.norm()) < 1e4, (name, g if g is None else float(g.norm()))
