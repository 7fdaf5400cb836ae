"""Parity with the official implementations, run against the fixtures of ../shared/fixtures/official.

One function, :func:`check_parity`, does the whole recipe of the fixtures' README: build with ``from_official``,
load the official state dict, compare eval spike counts (exact, before anything else), eval logits (relative 1e-9),
train logits (1e-9) and every stored gradient (relative 1e-8 with the README's absolute floor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

import spiking_transformers as st
from spiking_transformers.neurons import Neuron

LOGIT_TOL = 1e-9
GRAD_TOL = 1e-8


@dataclass
class ParityReport:
    eval_rel_err: float
    train_rel_err: float
    grad_max_rel_err: float
    n_grads: int
    spike_counts: dict[str, int] = field(default_factory=dict)


def rel_err(ours: Tensor, ref: Tensor) -> float:
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    return float((ours.detach() - ref).abs().max() / ref.abs().max())


def count_spikes(model: nn.Module, x: Tensor, run: Callable[[Tensor], Tensor]) -> tuple[Tensor, dict[str, int]]:
    """Run ``run(x)`` and return its output with the integer spike count of every Neuron module."""
    counts: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, Neuron):

            def hook(mod, _inp, out, name=name):
                counts[name] = counts.get(name, 0.0) + float((out.detach() * mod.spike_scale).sum())

            handles.append(module.register_forward_hook(hook))
    try:
        out = run(x)
    finally:
        for h in handles:
            h.remove()
    as_int = {}
    for name, value in counts.items():
        assert abs(value - round(value)) < 1e-6, f"{name}: spike count {value} is not an integer"
        as_int[name] = int(round(value))
    return out, as_int


def check_parity(
    family: str,
    fixture: dict,
    *,
    prepare_input: Callable[[Tensor], Tensor] = lambda x: x,
    per_timestep: bool = False,
    neuron_name: Callable[[str], str] = lambda official: official,
    post_build: Callable[[nn.Module], None] | None = None,
) -> ParityReport:
    """Compare our model with an official fixture; raises AssertionError naming the first difference.

    Args:
        family: ``from_official`` family.
        fixture: the loaded fixture dict.
        prepare_input: official input layout -> ours (e.g. ``[B, T, ...] -> [T, B, ...]``).
        per_timestep: the official model returns per-step logits ``[T, B, K]`` (TET): use ``forward_timesteps``.
        neuron_name: official neuron module name -> ours.
        post_build: changes the fixture made after construction (e.g. ``model.T = 4``).
    """
    meta = fixture["meta"]
    model = st.from_official(family, meta["kwargs"])
    if post_build is not None:
        post_build(model)
    model = model.double()
    st.load_official_state_dict(model, fixture["state_dict"])
    x = prepare_input(fixture["input"])
    run = (lambda m: m.forward_timesteps) if per_timestep else (lambda m: m.forward)

    # Eval: spike counts first (a flipped spike explains everything after it), then logits.
    model.eval()
    with torch.no_grad():
        out_eval, counts = count_spikes(model, x, run(model))
    expected = {neuron_name(k): int(v) for k, v in fixture["spike_counts"].items()}
    assert set(counts) == set(expected), (
        f"neuron modules differ: only ours {sorted(set(counts) - set(expected))}, "
        f"only official {sorted(set(expected) - set(counts))}"
    )
    wrong = {k: (counts[k], expected[k]) for k in expected if counts[k] != expected[k]}
    assert not wrong, f"spike counts differ (ours, official): {wrong}"
    eval_err = rel_err(out_eval, fixture["output_eval"])
    assert eval_err <= LOGIT_TOL, f"eval logits: relative error {eval_err:.3e} > {LOGIT_TOL}"

    # Train: reload (BN running stats moved in no way during eval, but be exact), forward, weighted-sum backward.
    st.load_official_state_dict(model, fixture["state_dict"])
    model.train()
    model.zero_grad(set_to_none=True)
    out_train = run(model)(x)
    train_err = rel_err(out_train, fixture["output_train"])
    assert train_err <= LOGIT_TOL, f"train logits: relative error {train_err:.3e} > {LOGIT_TOL}"
    (out_train * fixture["loss_weight"]).sum().backward()

    ref_grads = dict(fixture.get("grads_all") or fixture["grads"])
    g_max = max(float(g.abs().max()) for g in ref_grads.values())
    converted = st.convert_official_state_dict(family, ref_grads, strict=False)
    params = dict(model.named_parameters())
    worst = 0.0
    for key, ref in converted.items():
        assert key in params, f"gradient of {key!r} has no parameter in our model"
        grad = params[key].grad
        assert grad is not None, f"{key}: official gradient exists, ours is None"
        err = float((grad - ref).abs().max() / max(float(ref.abs().max()), 1e-6 * g_max))
        assert err <= GRAD_TOL, f"gradient of {key}: relative error {err:.3e} > {GRAD_TOL}"
        worst = max(worst, err)
    if fixture.get("grads_all"):
        with_grad = {k for k, p in params.items() if p.grad is not None}
        assert with_grad == set(converted), (
            f"parameters with a gradient differ: only ours {sorted(with_grad - set(converted))[:5]}, "
            f"only official {sorted(set(converted) - with_grad)[:5]}"
        )
    return ParityReport(eval_err, train_err, worst, len(converted), counts)
