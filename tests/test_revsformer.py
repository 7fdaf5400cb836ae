"""RevSFormer: parity with the official fixture (reversible and plain backward), the reversible backward against plain
autograd, reconstruction of block inputs, activation memory independent of depth, parameter counts, audit verdict."""

from __future__ import annotations

import json
import time

import pytest
import torch
from _official_counts import check_official_param_count
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.models.revsformer import RevSFormer

VARIANTS = st.list_models("revsformer_*")


@pytest.mark.parametrize("reversible", [True, False])
def test_parity_cifar_fixture(reversible):
    r = check_parity(
        "revsformer",
        official_fixture("revsformer_cifar_small", folder="wave2"),
        post_build=lambda m: setattr(m, "reversible", reversible),
    )
    print(
        f"\nrevsformer_cifar_small (reversible={reversible}): eval rel err {r.eval_rel_err:.3e}, train rel err "
        f"{r.train_rel_err:.3e}, max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors"
    )


def _firing_model(depth: int = 3, **kwargs) -> RevSFormer:
    torch.manual_seed(0)
    model = RevSFormer(num_classes=5, img_size=16, embed_dim=32, depth=depth, num_heads=2, T=2, **kwargs).double()
    for m in model.modules():  # make the attention and MLP neurons fire
        if isinstance(m, torch.nn.BatchNorm1d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, 0.3, 0.3)
    return model.train()


def _grads(model: RevSFormer, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * w).sum().backward()
    return out.detach(), {"input": x.grad, **{k: p.grad for k, p in model.named_parameters()}}


def test_reversible_backward_equals_plain_autograd():
    model = _firing_model()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    w = torch.randn(2, 5, dtype=torch.float64)
    model.reversible = False
    out_plain, g_plain = _grads(model, x, w)
    model.load_state_dict(sd)
    model.reversible = True
    out_rev, g_rev = _grads(model, x, w)
    assert torch.equal(out_plain, out_rev)
    assert set(g_plain) == set(g_rev) and all(g is not None for g in g_rev.values())
    g_max = max(float(g.abs().max()) for g in g_plain.values())
    for k in g_plain:
        err = float((g_rev[k] - g_plain[k]).abs().max()) / max(float(g_plain[k].abs().max()), 1e-6 * g_max)
        assert err < 1e-8, f"{k}: {err:.2e}"


def test_blocks_are_inverted_from_their_outputs():
    model = _firing_model(depth=2)
    z = torch.randn(2, 2, 4, 64, dtype=torch.float64)  # [T, B, N, 2D]
    with torch.no_grad():
        for blk in model.block.reversible_blocks:
            y = blk(z)
            torch.testing.assert_close(blk.inverse(y), z, rtol=0, atol=1e-12)
            z = y


def test_parameter_gradients_without_input_gradient():
    # A frozen tokenizer: the reversible function still gives the blocks' parameters their gradients.
    model = _firing_model(depth=2)
    model.patch_embed.requires_grad_(False)
    model(torch.randn(2, 3, 16, 16, dtype=torch.float64)).sum().backward()
    assert all(p.grad is not None for p in model.block.parameters())


def _saved_bytes(model: RevSFormer, x: torch.Tensor) -> int:
    """Bytes of every tensor autograd keeps for backward during one forward pass."""
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return total[0]


def test_activation_memory_does_not_grow_with_depth():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    saved = {}
    for reversible in (True, False):
        for depth in (1, 4):
            model = _firing_model(depth=depth)
            model.reversible = reversible
            saved[reversible, depth] = _saved_bytes(model, x)
    assert saved[True, 1] == saved[True, 4], saved
    assert saved[False, 4] > saved[False, 1] + 2 * (saved[False, 1] - saved[True, 1]), saved


@pytest.mark.parametrize("recompute", [True, False])
def test_recomputation_and_bn_running_statistics(recompute):
    model = _firing_model(depth=1, recompute_bn_stats=recompute)
    plain = _firing_model(depth=1, reversible=False)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    model(x).sum().backward()
    plain(x).sum().backward()
    bn, bn_plain = model.block.reversible_blocks[0].g_block.mlp1_bn, plain.block.reversible_blocks[0].g_block.mlp1_bn
    assert int(bn.num_batches_tracked) == (2 if recompute else 1)  # the official backward updates them twice
    if not recompute:
        assert torch.equal(bn.running_mean, bn_plain.running_mean)


def test_official_kwargs():
    kwargs = official_fixture("revsformer_cifar_small", folder="wave2")["meta"]["kwargs"]
    with pytest.raises(TypeError, match="unexpected keyword"):
        st.from_official("revsformer", dict(kwargs, dim=64))
    with pytest.raises(ValueError, match="pretrained"):
        st.from_official("revsformer", dict(kwargs, pretrained=True))
    model = st.from_official("revsformer", dict(kwargs, patch_size=16))  # the CIFAR file always pools twice
    assert model.num_patches == 64 and model.num_features == 128


@pytest.mark.parametrize("name", VARIANTS)
def test_param_counts(name):
    check_official_param_count(name)


def test_audit_verdict_matches_the_registry():
    from spiking_transformers.analysis import analyze

    info = st.model_info("revsformer_2_384_cifar10")
    model = st.create_model(info.name, **info.tiny_overrides)
    r = analyze(model, [torch.randn(2, 3, 16, 16)], batch_stats=True)
    assert (r.audit.verdict == "spike-driven") == info.spike_driven, r.audit.explain()
    assert info.spike_driven


@pytest.mark.slow
def test_revsformer_learns_digits(tmp_path, capsys):
    """RevSFormer-2-64 (patch 2: 4x4 tokens from the 8x8 digits, T=4) trained with the reversible backward on the
    bundled digits: well above chance (10 %)."""
    from spiking_transformers.cli import main

    start = time.time()
    rc = main(["train", "--recipe", "revsformer_digits", "--threads", "1", "--no-progress", "--no-tensorboard",
               "--out", str(tmp_path / "run")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    with capsys.disabled():
        print(f"\nRevSFormer on digits: test top-1 {metrics['test_top1']:.2f}% in {time.time() - start:.0f} s")
    assert metrics["test_top1"] > 80.0
