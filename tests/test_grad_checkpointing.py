"""Memory mode: ``set_grad_checkpointing(True)`` keeps official parity (outputs, spikes, gradients), moves the
BatchNorm running statistics exactly once per step, fires neuron hooks once, and really keeps less for backward."""

from __future__ import annotations

import pytest
import torch
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.neurons import Neuron

CASES = [
    ("spikformer", "spikformer_cifar_small", dict()),
    ("spikformer_dvs", "spikformer_cifar10dvs_small", dict(prepare_input=lambda x: x.transpose(0, 1))),
    ("sdt", "sdt_cifar_small", dict()),
    ("sdt", "sdt_cifar10dvs_small", dict(prepare_input=lambda x: x.transpose(0, 1).contiguous(), per_timestep=True)),
]


def _on(model: torch.nn.Module) -> None:
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing


@pytest.mark.parametrize("family,fixture,opts", CASES, ids=[c[1] for c in CASES])
def test_official_parity_with_checkpointing(family, fixture, opts):
    r = check_parity(family, official_fixture(fixture), post_build=_on, **opts)
    print(f"\n{fixture} (checkpointing): train rel err {r.train_rel_err:.3e}, "
          f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors")


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return st.create_model(name, **st.model_info(name).tiny_overrides)


def _step(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, int]]:
    """One train forward + backward; returns logits, gradients and how often each neuron hook fired."""
    calls: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
        for n, m in model.named_modules() if isinstance(m, Neuron)
    ]
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.square().sum().backward()
    for h in handles:
        h.remove()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}, calls


@pytest.mark.parametrize("name", ["spikformer_4_384_cifar10", "sdt_2_512_cifar10"])
def test_same_step_running_stats_and_hooks(name):
    if name not in st.list_models():
        pytest.fail(f"{name} is not registered")
    plain, ckpt = _tiny(name), _tiny(name)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 4
    for _ in range(2):  # twice: the second step starts from moved running statistics
        out_p, g_p, calls_p = _step(plain, x)
        out_c, g_c, calls_c = _step(ckpt, x)
        assert torch.equal(out_p, out_c)
        assert g_p.keys() == g_c.keys()
        for k in g_p:
            assert torch.equal(g_p[k], g_c[k]), k
        # every neuron fired its hooks once per forward, not again in the recompute
        assert calls_p == calls_c and set(calls_p.values()) == {1}
    sd_p, sd_c = plain.state_dict(), ckpt.state_dict()
    moved = 0
    for k in sd_p:  # running_mean / running_var / num_batches_tracked: one update per step, bit for bit
        assert torch.equal(sd_p[k], sd_c[k]), k
        moved += k.endswith("num_batches_tracked") and int(sd_p[k]) == 2
    assert moved > 0


def test_keeps_less_for_backward():
    """Bytes autograd keeps at the end of the forward (saved-tensor hooks): the mode must keep far fewer."""

    def saved_bytes(model: torch.nn.Module) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(torch.rand(4, 3, 32, 32))
        out.sum().backward()
        return total

    torch.manual_seed(0)
    model = st.create_model("spikformer_4_384_cifar10", depth=2, embed_dim=64, num_heads=4, T=2)
    plain = saved_bytes(model)
    model.set_grad_checkpointing(True)
    ckpt = saved_bytes(model)
    assert ckpt < plain / 4, (plain, ckpt)


def test_off_in_eval_is_plain():
    model = _tiny("spikformer_4_384_cifar10").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model.set_grad_checkpointing(True)
        assert torch.equal(model(x), ref)


def test_train_flag_reaches_the_model():
    from spiking_transformers.cli import build_parser
    from spiking_transformers.commands.train import config_from_args
    from spiking_transformers.training import TrainConfig
    from spiking_transformers.training.trainer import Trainer

    args = build_parser().parse_args(["train", "--model", "spikformer_4_384_cifar10", "--grad-checkpointing"])
    assert config_from_args(args).grad_checkpointing is True
    assert config_from_args(build_parser().parse_args(["train"])).grad_checkpointing is False

    data = torch.utils.data.TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    cfg = TrainConfig(grad_checkpointing=True, batch_size=4, device="cpu", progress=False, tensorboard=False)
    model = _tiny("spikformer_4_384_cifar10")
    Trainer(model, cfg, data, data)
    assert model.grad_checkpointing is True

    class NoMode(torch.nn.Module):
        num_classes = 10

        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="set_grad_checkpointing"):
        Trainer(NoMode(), cfg, data, data)
