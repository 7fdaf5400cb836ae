"""STNet (CVPR 2022, event-based tracking): parity with the official fixture ``wave2/stnet_small`` and unit tests.

The fixture is not a classifier (``tests/_parity.py``'s ``check_parity`` does not apply): the model is called as
``model(**inputs)`` and returns 8 tensors (4 per search frame). This file does the same recipe: eval spike counts
(exact), eval outputs and train outputs (relative 1e-9), every stored gradient (relative 1e-8 with the README's
absolute floor 1e-6 * max |grad|), and the set of parameters that receive a gradient.

Spike-count mapping (documented): the official neurons are not modules; the fixture records them per call as
``'<call>/basemodel.convK'`` (call ``z`` = template, ``x1`` / ``x2`` = search frames). Ours are the Neuron modules
``basemodel.neuronK`` (the neuron after ``basemodel.convK``), each called once per call, in the order z, x1, x2.
"""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.models import count_parameters
from spiking_transformers.models.stnet import (
    STNet,
    STNetNeuron,
    ThresholdCell,
    build_official,
    entropy_threshold,
    snn_out_size,
)
from spiking_transformers.neurons import Neuron

from _parity import GRAD_TOL, LOGIT_TOL
from conftest import official_fixture

CALLS = ("z", "x1", "x2")


def official_neuron_name(call_index: int, ours: str) -> str:
    """Our ``basemodel.neuronK`` at its n-th call -> the fixture's ``'<call>/basemodel.convK'``."""
    assert ours.startswith("basemodel.neuron"), ours
    return f"{CALLS[call_index]}/basemodel.conv{ours[len('basemodel.neuron'):]}"


def output_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative error over the finite reference entries; non-finite entries (exp overflow of the box branch in the
    eval forward) must match exactly (same infinities)."""
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    ours = ours.detach()
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(ours), finite), "non-finite entries differ"
    assert torch.equal(ours[~finite], ref[~finite]), "infinite entries differ"
    return float((ours[finite] - ref[finite]).abs().max() / ref[finite].abs().max())


@pytest.fixture(scope="module")
def fixture() -> dict:
    return official_fixture("stnet_small", folder="wave2")


def build(fx: dict, **overrides) -> STNet:
    model = st.from_official("stnet", fx["meta"]["kwargs"]).double()
    for k, v in overrides.items():
        setattr(model, k, v)
    st.load_official_state_dict(model, fx["state_dict"])
    return model


def inputs(fx: dict) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.float64) for k, v in fx["input"].items()}


def run_with_counts(model: STNet, x: dict) -> tuple[list[torch.Tensor], dict[str, int], list[float]]:
    """Forward with per-call spike counts (fixture names) and the three dynamic thresholds (from the Swin outputs)."""
    counts: dict[str, int] = {}
    calls: dict[str, int] = {}
    thresholds: list[float] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, Neuron):

            def hook(mod, _inp, out, name=name):
                n = calls.get(name, 0)
                calls[name] = n + 1
                value = float((out.detach() * mod.spike_scale).sum())
                assert value == round(value)
                counts[official_neuron_name(n, name)] = int(value)

            handles.append(module.register_forward_hook(hook))
    handles.append(model.transfor.register_forward_hook(
        lambda _m, _i, out: thresholds.append(float(entropy_threshold(out)))))
    try:
        out = model(**x)
    finally:
        for h in handles:
            h.remove()
    return out, counts, thresholds


def grad_errors(model: STNet, fx: dict) -> dict[str, float]:
    ref = dict(fx["grads_all"])
    g_max = max(float(g.abs().max()) for g in ref.values())
    converted = st.convert_official_state_dict("stnet", ref, strict=False)
    params = dict(model.named_parameters())
    errs = {}
    for key, g in converted.items():
        assert key in params, f"gradient of {key!r} has no parameter in our model"
        ours = params[key].grad
        assert ours is not None, f"{key}: official gradient exists, ours is None"
        errs[key] = float((ours - g).abs().max() / max(float(g.abs().max()), 1e-6 * g_max))
    with_grad = {k for k, p in params.items() if p.grad is not None}
    assert with_grad == set(converted), (
        f"parameters with a gradient differ: only ours {sorted(with_grad - set(converted))[:5]}, "
        f"only official {sorted(set(converted) - with_grad)[:5]}"
    )
    return errs


def train_backward(model: STNet, fx: dict) -> list[torch.Tensor]:
    st.load_official_state_dict(model, fx["state_dict"])
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(**inputs(fx))
    sum((o * w).sum() for o, w in zip(out, fx["loss_weight"])).backward()
    return out


def test_stnet_parity_with_official_fixture(fixture):
    fx = fixture
    meta = fx["meta"]
    model = build(fx)
    model.eval()
    with torch.no_grad():
        out, counts, thresholds = run_with_counts(model, inputs(fx))
    expected = {k: int(v) for k, v in fx["spike_counts"].items()}
    assert set(counts) == set(expected)
    wrong = {k: (counts[k], expected[k]) for k in expected if counts[k] != expected[k]}
    assert not wrong, f"spike counts differ (ours, official): {wrong}"
    for call, thr in zip(CALLS, thresholds):
        assert thr == pytest.approx(meta["thresholds_eval"][call], rel=1e-12, abs=0)
    assert len(out) == len(fx["output_eval"]) == 8
    for i, (o, r) in enumerate(zip(out, fx["output_eval"])):
        err = output_rel_err(o, r)
        assert err <= LOGIT_TOL, f"eval output {meta['outputs'][i]}: relative error {err:.3e}"

    out = train_backward(model, fx)
    for i, (o, r) in enumerate(zip(out, fx["output_train"])):
        err = output_rel_err(o, r)
        assert err <= LOGIT_TOL, f"train output {meta['outputs'][i]}: relative error {err:.3e}"
    errs = grad_errors(model, fx)
    worst = max(errs, key=errs.get)
    assert errs[worst] <= GRAD_TOL, f"gradient of {worst}: relative error {errs[worst]:.3e} > {GRAD_TOL}"
    for key in fx["grads"]:  # the three named gradients are among those checked
        assert key in errs


def test_stnet_official_gradient_quirks_are_needed(fixture):
    """Each emulated quirk matters: with per-call backward thresholds (instead of the global read at backward time)
    the gradients leave the tolerance, so the parity test could fail."""
    model = build(fixture, shared_backward_threshold=False)
    train_backward(model, fixture)
    errs = grad_errors(model, fixture)
    assert max(errs.values()) > GRAD_TOL


def test_neuron_strict_threshold_reset_and_surrogate():
    neuron = STNetNeuron(float32_spike_grad=False)
    # U1 = 0.3 exactly at the threshold: no spike (strict); U2 = 0.2*0.3 + 0.5 = 0.56 > 0.3: spike;
    # U3 = 0.2*0.56*(1-1) + 0.1 = 0.1 (hard reset by the factor 1 - S).
    current = torch.tensor([[0.3], [0.5], [0.1]], dtype=torch.float64, requires_grad=True)
    mems: list[torch.Tensor] = []
    spikes = neuron(current, threshold=0.3, membranes=mems)
    assert spikes.squeeze(1).tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(torch.stack(mems).squeeze(1), torch.tensor([0.3, 0.56, 0.1], dtype=torch.float64))
    # Reset is not detached: d U3 / d I2 = 0.2 * (1 - S2) - 0.2 * U2 * dS2/dU2 = 0 - 0.2 * 0.56 * 1 (|0.56-0.3| < 0.5)
    mems[2].sum().backward()
    assert current.grad[1].item() == pytest.approx(-0.2 * 0.56)
    # Outside the window |U - theta| >= 0.5 the surrogate is zero: U = 1.0 with theta 0.3.
    x = torch.tensor([[1.0]], dtype=torch.float64, requires_grad=True)
    neuron(x, threshold=0.3).sum().backward()
    assert x.grad.item() == 0.0


def test_neuron_backward_reads_the_cell_at_backward_time():
    neuron = STNetNeuron(float32_spike_grad=False)
    x = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    cell = ThresholdCell(0.3)
    out = neuron(x, threshold=0.3, cell=cell)
    cell.value = torch.tensor(-0.5, dtype=torch.float64)  # a later call's threshold: |0.5 + 0.5| >= 0.5
    out.sum().backward()
    assert x.grad.item() == 0.0


def test_float32_spike_gradient_rounding():
    neuron = STNetNeuron(float32_spike_grad=True)
    x = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([[1 / 3]], dtype=torch.float64)
    neuron(x, threshold=0.3).backward(g)
    assert x.grad.item() == float(torch.tensor(1 / 3, dtype=torch.float32))
    assert x.grad.item() != 1 / 3


def test_entropy_threshold_of_a_constant_map_gives_no_nan_only_when_not_constant():
    f = torch.rand(2, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    thr = entropy_threshold(f)
    assert thr.dim() == 0 and torch.isfinite(thr)
    # same value for a batch permutation (a batch-level scalar)
    assert float(entropy_threshold(f.flip(0))) == pytest.approx(float(thr), rel=1e-12)


# A configuration unlike the fixture's (held-out style): other widths, window size, pretrain size, crop sizes, batch.
HELD_OUT = dict(
    SwinTransformer=dict(pretrain_img_size=168, embed_dim=8, depths=[2, 2], num_heads=[2, 2], window_size=6,
                         drop_path_rate=0.0),
    DenseboxHead=dict(total_stride=8, score_size=10, x_size=187, num_conv3x3=3, head_conv_bn=[False, False, True],
                      head_width=16),
    SiamTrack=dict(head_width=16),
    snn_channels=[4, 8, 16],
)


def test_general_constructor_other_sizes():
    torch.manual_seed(0)
    model = st.from_official("stnet", HELD_OUT).double()
    assert snn_out_size(187)[-1] == 168 // 8 - 2 == 19 and snn_out_size(67)[-1] == (19 - 13) // 2 + 1 == 4
    g = torch.Generator().manual_seed(1)
    z = torch.randint(0, 256, (2, 5, 3, 3, 67, 67), generator=g).double()
    x = torch.randint(0, 256, (2, 2, 5, 3, 3, 187, 187), generator=g).double()
    model.eval()
    with torch.no_grad():
        out = model(z[0], z[1], x[0], x[1])
    assert [tuple(o.shape) for o in out] == [(3, 100, 1), (3, 100, 4), (3, 100, 1), (3, 100, 1)] * 2
    score, box, cls, ctr = out[:4]
    torch.testing.assert_close(score, cls * ctr)
    # frame 2 starts from frame 1's state: a fresh track() call on frame 2 alone differs
    with torch.no_grad():
        kernels = model.template(z[0], z[1])
        fresh = model.track(x[0][1], x[1][1], None, kernels)[0]
    assert not torch.equal(fresh, out[4])


def test_clear_errors():
    with pytest.raises(ValueError, match="head_width"):
        st.from_official("stnet", dict(HELD_OUT, SiamTrack=dict(head_width=8)))
    with pytest.raises(TypeError, match="unexpected"):
        st.from_official("stnet", dict(HELD_OUT, DenseboxHead=dict(HELD_OUT["DenseboxHead"], bogus=1)))
    model = st.from_official("stnet", HELD_OUT).double()
    z = torch.zeros(5, 1, 3, 67, 67, dtype=torch.float64)
    with pytest.raises(ValueError, match="x_pos / x_neg"):
        model(z, z, z, z)
    x = torch.zeros(1, 5, 1, 3, 171, 171, dtype=torch.float64)  # wrong search size for P = 168
    with pytest.raises(ValueError, match="differ"):
        model(z, z, x, x)


def test_official_parameter_count():
    """Official FE240 model: 20,534,919 parameters, of which 394,178 are never used (left out here)."""
    with torch.device("meta"):
        model = build_official(SwinTransformer=dict(pretrain_img_size=280))
    assert count_parameters(model) == 20_534_919 - 394_178
    parts = {p: count_parameters(getattr(model, p)) for p in ("basemodel", "transfor", "atten", "head")}
    assert parts == {
        "basemodel": 12_714_626 - 131_328 - 2,  # fuse_snn_transfor, thre_w
        "transfor": 1_639_647 - 192,  # norm0
        "atten": 275_218 - 262_656,  # conv_cat
        "head": 3_543_060,
    }
    assert sum(count_parameters(getattr(model, n)) for n in ("c_z_k", "r_z_k", "c_x", "r_x")) == 2_362_368


def test_registered_fe240_variant():
    from spiking_transformers.models.stnet import STNET_TINY_KWARGS, stnet_fe240

    with torch.device("meta"):
        model = stnet_fe240()
    assert count_parameters(model) == 20_534_919 - 394_178
    assert model.head.score_size == 17 and model.head.x_size == 303 and model.transfor.pretrain_img_size == 280
    if "stnet_fe240" in st.list_models():  # once the registry knows tasks (ModelInfo.task)
        info = st.model_info("stnet_fe240")
        assert info.task == "tracking" and info.input_kind == "events"
        assert info.params == info.official_params - info.official_unused_params
    tiny = stnet_fe240(**STNET_TINY_KWARGS)
    assert tiny.head.score_size == 9


def test_firing_rate_monitor_sees_the_stnet_neurons(fixture):
    """The library's firing-rate analysis works on STNet: its rates are the fixture's (eval forward)."""
    from spiking_transformers.analysis.firing import FiringRateMonitor

    model = build(fixture).eval()
    with FiringRateMonitor(model) as mon, torch.no_grad():
        model(**inputs(fixture))
    rates = mon.rates()
    assert set(rates) == {"basemodel.neuron1", "basemodel.neuron2", "basemodel.neuron3"}
    # pooled over the three calls: total spikes / total elements of that layer
    meta = fixture["meta"]
    for k in (1, 2, 3):
        spikes = sum(fixture["spike_counts"][f"{c}/basemodel.conv{k}"] for c in CALLS)
        keys = [f"{c}/basemodel.conv{k}" for c in CALLS]
        elems = sum(fixture["spike_counts"][key] / meta["firing_rates_eval"][key] for key in keys)
        assert rates[f"basemodel.neuron{k}"] == pytest.approx(spikes / elems, rel=1e-9)


def test_energy_analysis_takes_the_tracker_inputs_as_analog_pixels(fixture):
    """`analyze` takes the tracker's named inputs; its 8-bit pixel inputs are analog: the layers that take them
    multiply (a pixel of value 200 is not 200 additions)."""
    from spiking_transformers.analysis import analyze

    model = build(fixture).eval()
    z, x = model.crop_sizes()
    assert (z, x) == (fixture["input"]["z_pos"].shape[-1], fixture["input"]["x_pos"].shape[-1])
    example = model.example_inputs(2, generator=torch.Generator().manual_seed(0))
    assert set(example) == {"z_pos", "z_neg", "x_pos", "x_neg"} and model.batch_size_of(example) == 2
    report = analyze(model, [inputs(fixture)], batch_stats=False)
    assert report.samples == model.batch_size_of(inputs(fixture))
    conv1 = next(r for r in report.layers if r.key == "basemodel.conv1")
    assert conv1.input_kind == "real" and conv1.acs == 0 and conv1.macs > 0
    conv2 = next(r for r in report.layers if r.key == "basemodel.conv2")
    assert conv2.input_kind == "binary" and 0 < conv2.acs < conv2.dense_flops  # spikes of neuron1
    assert report.audit.verdict == "not purely spiking"  # its Swin branch runs on real values, as the official one


def test_energy_command_runs_on_the_tracker(capsys):
    from spiking_transformers.cli import main

    assert main(["energy", "stnet_fe240", "--tiny", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "STNet.example_inputs" in out and "basemodel.conv2" in out and "binary" in out
