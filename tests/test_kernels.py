"""Every neuron back end against the torch reference: identical spikes, gradients to rounding."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from spiking_transformers.neurons import (
    BACKENDS,
    IF,
    LIF,
    SURROGATES,
    ParametricLIF,
    get_surrogate,
    if_multistep,
    lif_multistep,
    plif_multistep,
    set_backend,
)
from spiking_transformers.neurons.lif import DEFAULT_BACKEND, IF_BACKENDS, PLIF_BACKENDS

# The "cpp" back end compiles a C++ extension on first use (about a minute of one core, then cached), so its cases
# are slow tests; without a compiler it falls back to "fused" (tested below without compiling).
COMPILED = {"cpp"}


# "traced" is forward-only (the fewest graph operators, for ONNX export): its own tests below.
FORWARD_ONLY = {"traced"}


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in COMPILED else n for n in sorted(names)
            if n != "torch" and n not in FORWARD_ONLY]


OTHER_BACKENDS = _params(BACKENDS)
SETTINGS = [
    dict(),
    dict(detach_reset=False),
    dict(v_reset=None),
    dict(v_reset=None, detach_reset=False),
    dict(decay_input=False),
    dict(v_reset=-0.3, detach_reset=False),
    dict(surrogate="atan", tau=3.0, v_threshold=0.5),
]


def make_input(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 40, dtype=dtype, generator=g) * 2
    x[0, 0, :8] = 2.0  # first-step membranes exactly at threshold (H = X / 2 = 1)
    x[:, 1, :4] = 0.0
    return x


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backend_matches_reference(backend, kwargs, dtype):
    x = make_input(dtype)
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = lif_multistep(x_ref, **kwargs)
    new = BACKENDS[backend](x_new, **kwargs)
    assert torch.equal(ref, new), "spikes differ"
    w = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    (ref * w).sum().backward()
    (new * w).sum().backward()
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(x_new.grad, x_ref.grad, rtol=0, atol=tol * float(x_ref.grad.abs().max()))


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backend_inference_without_grad(backend):
    x = make_input(torch.float32)
    with torch.no_grad():
        assert torch.equal(BACKENDS[backend](x), lif_multistep(x))


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_formula_equals_autograd_backward(name):
    sg = get_surrogate(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    torch.testing.assert_close(sg.grad(x), sg.derivative(x), rtol=1e-14, atol=1e-15)


IF_SETTINGS = [
    dict(),
    dict(detach_reset=False),
    dict(v_reset=None),
    dict(v_reset=None, detach_reset=False),
    dict(v_reset=-0.3, detach_reset=False, surrogate="atan", v_threshold=0.5),
]
PLIF_SETTINGS = IF_SETTINGS + [dict(decay_input=False), dict(decay_input=False, v_reset=-0.3)]


def _tol(dtype: torch.dtype) -> float:
    return 1e-13 if dtype == torch.float64 else 1e-6


def _assert_grad_close(new: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    torch.testing.assert_close(new, ref, rtol=0, atol=_tol(dtype) * max(float(ref.abs().max()), 1e-30))


@pytest.mark.parametrize("backend", _params(IF_BACKENDS))
@pytest.mark.parametrize("kwargs", IF_SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_if_backend_matches_reference(backend, kwargs, dtype):
    x = make_input(dtype) * 0.7
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = if_multistep(x_ref, **kwargs)
    new = IF_BACKENDS[backend](x_new, **kwargs)
    assert torch.equal(ref, new), "spikes differ"
    w = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    (ref * w).sum().backward()
    (new * w).sum().backward()
    _assert_grad_close(x_new.grad, x_ref.grad, dtype)


@pytest.mark.parametrize("backend", _params(PLIF_BACKENDS))
@pytest.mark.parametrize("kwargs", PLIF_SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("w0", [0.0, -0.8])
def test_plif_backend_matches_reference(backend, kwargs, dtype, w0):
    x = make_input(dtype)
    x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w_ref = torch.tensor(w0, dtype=dtype, requires_grad=True)
    w_new = torch.tensor(w0, dtype=dtype, requires_grad=True)
    ref = plif_multistep(x_ref, w_ref, **kwargs)
    new = PLIF_BACKENDS[backend](x_new, w_new, **kwargs)
    assert torch.equal(ref, new), "spikes differ"
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    (ref * g).sum().backward()
    (new * g).sum().backward()
    _assert_grad_close(x_new.grad, x_ref.grad, dtype)
    # dL/dw is a sum over every element and step: allow rounding of that many terms
    torch.testing.assert_close(w_new.grad, w_ref.grad, rtol=_tol(dtype) * 10, atol=_tol(dtype))


@pytest.mark.parametrize("backend", _params(PLIF_BACKENDS))
def test_plif_backend_input_without_grad_still_trains_w(backend):
    x = make_input(torch.float64)
    w_ref = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    w_new = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    plif_multistep(x, w_ref).sum().backward()
    PLIF_BACKENDS[backend](x, w_new).sum().backward()
    torch.testing.assert_close(w_new.grad, w_ref.grad, rtol=1e-12, atol=1e-14)


def test_fused_inference_matches_for_every_neuron():
    x = make_input(torch.float32)
    with torch.no_grad():
        assert torch.equal(IF_BACKENDS["fused"](x * 0.5), if_multistep(x * 0.5))
        w = torch.tensor(0.4)
        assert torch.equal(PLIF_BACKENDS["fused"](x, w), plif_multistep(x, w))


def test_set_backend_switches_if_and_plif_modules():
    model = torch.nn.Sequential(LIF(), IF(v_threshold=0.5), ParametricLIF(init_tau=3.0))
    assert all(m.backend == DEFAULT_BACKEND == "fused" for m in model)  # new neurons use the fused kernel
    x = make_input(torch.float32)
    ref = model(x)
    state = copy.deepcopy(model.state_dict())
    assert set_backend(model, "torch") == 3
    assert all(m.backend == "torch" for m in model)
    assert model.state_dict().keys() == state.keys()
    assert torch.equal(model(x), ref)
    clone = copy.deepcopy(model)
    assert torch.equal(clone(x), ref)
    assert set_backend(model, "fused") == 3
    assert torch.equal(model(x), ref)
    with pytest.raises(ValueError, match="unknown neuron back end"):
        IF(backend="nope")


def test_neurons_pickle_with_their_surrogate_and_backend():
    model = torch.nn.Sequential(LIF(surrogate="atan"), IF(backend="torch"), ParametricLIF())
    clone = pickle.loads(pickle.dumps(model))
    x = make_input(torch.float32)
    assert torch.equal(clone(x), model(x))
    assert clone[0].surrogate.name == "atan" and clone[1].backend == "torch"


def test_cpp_backend_falls_back_to_fused_when_it_cannot_build(monkeypatch):
    from spiking_transformers.neurons.kernels import cpp

    monkeypatch.setattr(cpp, "_state", {"module": None, "failed": None})
    monkeypatch.setattr(cpp, "cpp_available", lambda: False)
    x = make_input(torch.float32).requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="could not be compiled"):
        out = cpp.lif_multistep_cpp(x, v_threshold=0.5)
    assert torch.equal(out, lif_multistep(x, v_threshold=0.5))
    out.sum().backward()  # the fused autograd function ran
    assert x.grad is not None
    assert torch.equal(cpp.if_multistep_cpp(x.detach()), if_multistep(x.detach()))  # warned once only


def test_set_backend_switches_every_lif():
    model = torch.nn.Sequential(LIF(), torch.nn.Sequential(LIF(v_threshold=0.5)))
    assert set_backend(model, "fused") == 2
    assert all(m.backend == "fused" for m in model.modules() if isinstance(m, LIF))
    with pytest.raises(ValueError, match="unknown neuron back end"):
        set_backend(model, "nope")


# ---------------------------------------------------------------------------------------------------------------------
# Layers that save integer-valued (spike) inputs as uint8

from spiking_transformers.neurons.kernels.spike_ops import (  # noqa: E402
    SpikeSavingConv2d,
    SpikeSavingLinear,
    compact_spike_saves,
)


def _spikes(*shape: int, dtype=torch.float64, top: int = 1) -> torch.Tensor:
    return torch.randint(0, top + 1, shape, generator=torch.Generator().manual_seed(5)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("top", [1, 3])
@pytest.mark.parametrize(
    "layer",
    [
        lambda: torch.nn.Linear(12, 7),
        lambda: torch.nn.Linear(12, 7, bias=False),
        lambda: torch.nn.Conv2d(12, 7, 1),
        lambda: torch.nn.Conv2d(12, 6, 3, 1, 1, bias=False),
        lambda: torch.nn.Conv2d(12, 6, 3, 2, 1, groups=2),
        lambda: torch.nn.MaxPool2d(3, 2, 1),
    ],
    ids=["linear", "linear-nobias", "conv1x1", "conv3x3", "conv3x3-s2-g2", "maxpool"],
)
def test_spike_saving_layers_match_plain(layer, top, dtype):
    plain = layer().to(dtype)
    compact = copy.deepcopy(plain)
    assert compact_spike_saves(compact) == 1
    shape = (2, 5, 12) if isinstance(plain, torch.nn.Linear) else (3, 12, 7, 6)
    x = _spikes(*shape, dtype=dtype, top=top)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = plain(xa), compact(xb)
    assert torch.equal(ya, yb)
    g = torch.randn(ya.shape, dtype=dtype, generator=torch.Generator().manual_seed(6))
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    for a, b in [(xa.grad, xb.grad)] + [(p.grad, q.grad) for p, q in zip(plain.parameters(), compact.parameters())]:
        torch.testing.assert_close(b, a, rtol=tol, atol=tol * float(a.abs().max()))


def test_spike_saving_layer_saves_uint8_and_falls_back_on_real_input():
    lin = SpikeSavingLinear(8, 4)
    x = _spikes(3, 8, dtype=torch.float32)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t.dtype) or t, lambda t: t):
        lin(x).sum().backward()
    assert torch.uint8 in seen
    assert seen.count(torch.float32) == 1  # only the weight
    real = torch.randn(3, 8)
    torch.testing.assert_close(lin(real), torch.nn.functional.linear(real, lin.weight, lin.bias), rtol=0, atol=0)
    conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    compact_spike_saves(conv)
    assert isinstance(conv, SpikeSavingConv2d)
    assert compact_spike_saves(conv, restore=True) == 1 and type(conv) is torch.nn.Conv2d


def test_fused_and_compact_spikformer_matches_reference():
    from spiking_transformers.models import create_model

    torch.manual_seed(0)
    ref = create_model("spikformer_4_384_cifar10", depth=1, embed_dim=32, num_heads=2, T=2).double()
    new = copy.deepcopy(ref)
    set_backend(new, "fused")
    compact_spike_saves(new)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    ya, yb = ref(x), new(x)
    assert torch.equal(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    # A bias followed by training-mode BatchNorm has an exactly zero gradient; what autograd returns there is
    # rounding noise, so the tolerance is relative to the largest gradient of the model.
    scale = max(float(p.grad.abs().max()) for p in ref.parameters())
    for (name, p), q in zip(ref.named_parameters(), new.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12 * scale, msg=name)


@pytest.mark.parametrize("op", ["matmul", "matmul-real-b", "mul", "mul-broadcast"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spike_matmul_and_mul_match_plain(op, dtype):
    from spiking_transformers.neurons.kernels.spike_ops import spike_matmul, spike_mul

    a = _spikes(2, 3, 5, 4, dtype=dtype)
    b = _spikes(2, 3, 4, 6, dtype=dtype, top=3)
    if op == "matmul-real-b":
        b = torch.randn(2, 3, 4, 6, dtype=dtype)
    if op.startswith("mul"):
        b = _spikes(2, 3, 5, 4, dtype=dtype) if op == "mul" else _spikes(2, 3, 1, 4, dtype=dtype, top=5)
    fn, plain = (spike_matmul, torch.matmul) if op.startswith("matmul") else (spike_mul, torch.mul)
    a1, b1 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    a2, b2 = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y1, y2 = plain(a1, b1), fn(a2, b2)
    assert torch.equal(y1, y2)
    g = torch.randn(y1.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    for p, q in ((a1.grad, a2.grad), (b1.grad, b2.grad)):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol * float(p.abs().max()))


# ---------------------------------------------------------------------------------------------------------------------
# The compiled back end on inputs that span several blocks and threads, and its one-pass uint8 pack


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(v_reset=None, detach_reset=False),
        dict(decay_input=False, v_reset=-0.3),
        dict(surrogate="erf", tau=3.0),
    ],
    ids=["default", "soft", "no-decay-rest", "erf"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpp_large_input_and_strided_grad_match_reference(kwargs, dtype):
    """N = 3 * 16411 elements per step: several 512-element blocks with a ragged last one, split over two threads;
    the incoming gradient is a transposed (non-contiguous) view."""
    from spiking_transformers.neurons.kernels.cpp import load_extension, loaded_extension

    if load_extension() is None:
        pytest.skip("the extension cannot be built here; the fallback is covered above")
    assert loaded_extension() is not None
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(7)
        x = torch.randn(4, 3, 16411, dtype=dtype, generator=g) * 2
        x_ref, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ref = lif_multistep(x_ref, **kwargs)
        new = BACKENDS["cpp"](x_new, **kwargs)
        assert torch.equal(ref, new), "spikes differ"
        with torch.no_grad():
            assert torch.equal(BACKENDS["cpp"](x, **kwargs), ref)
        w = torch.randn(4, 16411, 3, dtype=dtype, generator=g)
        (ref.transpose(1, 2) * w).sum().backward()
        (new.transpose(1, 2) * w).sum().backward()
        _assert_grad_close(x_new.grad, x_ref.grad, dtype)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpp_pack_uint8_checks_and_packs_in_one_pass(dtype):
    from spiking_transformers.neurons.kernels.cpp import load_extension, pack_uint8_if_integral
    from spiking_transformers.neurons.kernels.spike_ops import as_uint8_if_integral

    if load_extension() is None:
        pytest.skip("the extension cannot be built here")
    ints = torch.randint(0, 256, (3, 70001), generator=torch.Generator().manual_seed(8)).to(dtype)
    ints[0, 5] = -0.0  # an integer (zero): packs
    packed = pack_uint8_if_integral(ints)
    assert packed is not None and packed.dtype == torch.uint8 and torch.equal(packed.to(dtype), ints)
    assert torch.equal(as_uint8_if_integral(ints), packed)  # spike_ops uses the compiled pack once it is loaded
    t = ints.t()  # a dense, non-contiguous layout is kept
    pt = pack_uint8_if_integral(t)
    assert pt.stride() == t.stride() and torch.equal(pt.to(dtype), t)
    strided = ints[:, ::2]  # not dense: packed from a contiguous copy
    assert torch.equal(pack_uint8_if_integral(strided).to(dtype), strided)
    for pos, bad in [((2, 70000), 0.5), ((1, 3), 256.0), ((0, 0), -1.0), ((2, 123), float("nan")),
                     ((1, 40000), float("inf"))]:
        x = ints.clone()
        x[pos] = bad
        assert pack_uint8_if_integral(x) is None, (pos, bad)
    assert pack_uint8_if_integral(torch.empty(0, dtype=dtype)).numel() == 0


@pytest.mark.parametrize("kind", ["lif", "if", "plif"])
@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_traced_backend_spikes_equal_reference(kind, kwargs, dtype):
    x = make_input(dtype)
    table = {"lif": BACKENDS, "if": IF_BACKENDS, "plif": PLIF_BACKENDS}[kind]
    kw = dict(kwargs)
    if kind != "lif":
        kw.pop("tau", None)
    if kind == "if":
        kw.pop("decay_input", None)
    args = (x, torch.tensor(-0.8, dtype=dtype)) if kind == "plif" else (x,)
    with torch.no_grad():
        assert torch.equal(table["traced"](*args, **kw), table["torch"](*args, **kw))


def test_traced_backend_refuses_to_train():
    x = make_input(torch.float32).requires_grad_(True)
    with pytest.raises(ValueError, match="forward-only"):
        BACKENDS["traced"](x)
