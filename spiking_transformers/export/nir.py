r"""NIR export (the Neuromorphic Intermediate Representation, ``nir`` 1.0) of the parts of a model NIR can express.

NIR's nodes are per-time-step maps (affine, linear, convolution, sum/average pooling, flatten) and neurons (LIF, IF,
LI, ...); an edge carries one activation and several edges into one node are summed. What it cannot express is a
product of two activations (spiking self-attention's ``Q K^T V``), max pooling, and element-wise functions other than
those. So a whole spiking transformer is refused, while its expressible parts (a spiking MLP, a convolutional spiking
stem without max pooling, the convolutional part of a hybrid) export.

How the graph is found: the module runs once on an example ``[T, B, ...]`` while forward hooks record every leaf
module call (conv, linear, BatchNorm, neuron, pooling, flatten) and a ``TorchFunctionMode`` records every other
operation on the activations. Layout operations that only fold or split the leading time/batch axes (``reshape``,
``view``, ``flatten``, ``contiguous``, ...) pass through; the sum of two activations becomes two edges into the next
node; anything else is refused with one line naming the module it happens in and the operation it needs.

Neurons map as follows (dt = 1): our LIF charge ``H = V + (X - V) / tau`` is NIR's ``tau dv/dt = (v_leak - v) + r I``
with ``r = 1, v_leak = 0`` (``decay_input=False``: ``r = tau``); IF is ``nir.IF`` with ``r = 1``; both with the hard
reset value as ``v_reset`` and our threshold, fired on ``>=``. Soft reset (subtract the threshold) has no NIR form and
is refused. Parametric LIF exports its current ``tau = 1 / sigmoid(w)``. BatchNorm is folded into the conv/linear
before it (an unpaired BatchNorm is refused). The surrogate gradient plays no part at inference.

:func:`nir_to_module` builds the graph back through ``nirtorch`` with single-step modules of the same maths, and
:func:`run_nir` runs it over time, so a round trip can be checked against the original module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..neurons import IF, LIF, Neuron, ParametricLIF
from .fold_bn import fold_bn
from .onnx import require_export_packages

__all__ = ["NirUnsupportedError", "NirExport", "to_nir", "export_nir", "nir_to_module", "run_nir"]


class NirUnsupportedError(ValueError):
    """The module holds something NIR cannot express (names the module and the operation)."""


@dataclass
class NirExport:
    path: Path
    nodes: int
    edges: int
    T: int


_LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten,
           nn.Identity, nn.Dropout, Neuron)
# Operations that keep every sample's elements in order (they fold/split leading axes or copy).
_LAYOUT = {"reshape", "view", "flatten", "contiguous", "unflatten", "clone", "to", "float", "double",
           "detach", "dropout", "identity", "unsqueeze", "squeeze"}
_SUM = {"add", "__add__", "__radd__", "add_"}
_IGNORED = {"size", "dim", "__get__", "numel", "shape", "__len__", "data_ptr", "untyped_storage", "is_contiguous",
            "stride", "requires_grad_", "__format__", "__repr__", "__bool__", "__eq__", "__ne__", "_is_view",
            "__setstate__", "dtype", "device", "is_floating_point", "type"}


def _name_of(func: Any) -> str:
    return getattr(func, "__name__", str(func)).lower()


class _Recorder(TorchFunctionMode):
    """Follows activations through one forward: which node produced each tensor, and what cannot be expressed."""

    def __init__(self, owner: "_GraphBuilder") -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.owner.inside_leaf:
            return out
        name = _name_of(func)
        tracked = [a for a in _flat(args) if isinstance(a, Tensor) and self.owner.source(a) is not None]
        if not tracked or name in _IGNORED or not isinstance(out, Tensor):
            return out
        if name in _LAYOUT or (name in ("permute", "transpose") and self.owner.swaps_time_batch(args)):
            self.owner.alias(out, tracked[0])
            if self.owner.is_permuted(tracked[0]):
                self.owner.permuted[id(out)] = self.owner.permuted[id(tracked[0])]
        elif name in ("permute", "transpose", "t", "mt"):
            # An axis permutation has no NIR node; it is reported only if the permuted activation reaches a node
            # or the output, so that attention is refused for its product, not for the transpose before it.
            self.owner.alias(out, tracked[0])
            self.owner.permuted[id(out)] = self.owner.where()
        elif name in _SUM and len(tracked) == 2 and all(isinstance(a, Tensor) for a in args[:2]):
            self.owner.summed(out, tracked)
        else:
            what = "a product of two activations" if len(tracked) > 1 else f"the operation {name!r}"
            raise NirUnsupportedError(
                f"{self.owner.where()}: needs {what} ({name}), which NIR cannot express"
            )
        return out


def _flat(args: Any):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


class _GraphBuilder:
    def __init__(self, root: nn.Module, T: int, B: int) -> None:
        self.root, self.T, self.B = root, T, B
        self.names = {m: n for n, m in root.named_modules()}
        self.producers: dict[int, list[str]] = {}  # id(tensor) -> node names whose outputs it carries (summed)
        self.keep: list[Tensor] = []  # keep tracked tensors alive so their ids stay unique
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.stack: list[str] = []
        self.inside_leaf = False
        self.counter = 0
        self.permuted: dict[int, str] = {}  # id(tensor) -> where an axis permutation made it

    def is_permuted(self, t: Tensor) -> bool:
        return id(t) in self.permuted

    def check_not_permuted(self, t: Tensor, where: str) -> None:
        if self.is_permuted(t):
            raise NirUnsupportedError(f"{self.permuted[id(t)]}: needs an axis permutation (transpose) before "
                                      f"{where}, which NIR cannot express")

    def where(self) -> str:
        path = self.stack[-1] if self.stack else ""
        return f"module {path or type(self.root).__name__!r}"

    def source(self, t: Tensor) -> list[str] | None:
        return self.producers.get(id(t))

    def track(self, t: Tensor, sources: list[str]) -> None:
        self.producers[id(t)] = sources
        self.keep.append(t)

    def alias(self, out: Tensor, src: Tensor) -> None:
        self.track(out, self.source(src))

    def summed(self, out: Tensor, srcs: list[Tensor]) -> None:
        self.track(out, [s for t in srcs for s in self.source(t)])

    def swaps_time_batch(self, args: Any) -> bool:
        dims = [a for a in _flat(args[1:]) if isinstance(a, int)]
        return sorted(dims[:2]) == [0, 1] and len(dims) in (2, 5) and (len(dims) == 2 or dims[2:] == [2, 3, 4])

    def sample_shape(self, t: Tensor) -> tuple[int, ...]:
        if t.dim() >= 2 and t.shape[0] == self.T and t.shape[1] == self.B:
            return tuple(t.shape[2:])
        if t.dim() >= 1 and t.shape[0] % (self.T * self.B) == 0:
            # time and batch folded into the leading axis, possibly with tokens too ([T*B*N, C] rows)
            k = t.shape[0] // (self.T * self.B)
            return tuple(t.shape[1:]) if k == 1 else (k, *t.shape[1:])
        raise NirUnsupportedError(f"{self.where()}: activation of shape {tuple(t.shape)} is not [T, B, ...] "
                                  f"or [T*B, ...] with T = {self.T}, B = {self.B}")

    def add_node(self, name: str, node: Any, inputs: list[str]) -> str:
        self.nodes[name] = node
        for src in inputs:
            self.edges.append((src, name))
        return name


def _neuron_node(module: Neuron, shape: tuple[int, ...], where: str):
    import nir

    def full(v: float) -> np.ndarray:
        return np.full(shape, v, dtype=np.float32)

    if not isinstance(module, (LIF, IF, ParametricLIF)):
        raise NirUnsupportedError(f"{where}: neuron {type(module).__name__} has no NIR form (multi-level spikes)")
    if module.v_reset is None:
        raise NirUnsupportedError(f"{where}: soft reset (subtract the threshold) has no NIR form")
    if isinstance(module, IF):
        return nir.IF(r=full(1.0), v_threshold=full(module.v_threshold), v_reset=full(module.v_reset))
    tau = module.tau
    r = 1.0 if module.decay_input else tau
    if module.v_reset != 0.0 and module.decay_input:
        # our charge leaks towards v_reset: NIR's v_leak
        return nir.LIF(tau=full(tau), r=full(r), v_leak=full(module.v_reset), v_threshold=full(module.v_threshold),
                       v_reset=full(module.v_reset))
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(module.v_threshold),
                   v_reset=full(module.v_reset))


def _layer_node(module: nn.Module, inp: Tensor, builder: _GraphBuilder, where: str):
    import nir

    if isinstance(module, nn.Linear):
        w = module.weight.detach().cpu().numpy()
        if module.bias is None:
            return nir.Linear(weight=w)
        return nir.Affine(weight=w, bias=module.bias.detach().cpu().numpy())
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise NirUnsupportedError(f"{where}: padding mode {module.padding_mode!r} has no NIR form")
        bias = module.bias.detach().cpu().numpy() if module.bias is not None else np.zeros(module.out_channels)
        shape = builder.sample_shape(inp)
        return nir.Conv2d(input_shape=tuple(shape[-2:]), weight=module.weight.detach().cpu().numpy(),
                          stride=module.stride, padding=module.padding, dilation=module.dilation,
                          groups=module.groups, bias=bias)
    if isinstance(module, nn.AvgPool2d):
        if module.padding not in (0, (0, 0)) or module.ceil_mode:
            raise NirUnsupportedError(f"{where}: padded or ceil-mode average pooling has no NIR form")
        k = module.kernel_size
        s = module.stride if module.stride is not None else k
        return nir.AvgPool2d(kernel_size=np.array(_pair(k)), stride=np.array(_pair(s)), padding=np.array([0, 0]))
    if isinstance(module, nn.Flatten):
        shape = builder.sample_shape(inp)
        # our flatten runs on [T*B, ...]: its dims count from the folded batch axis, NIR's from the sample
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=module.start_dim - 1,
                           end_dim=module.end_dim if module.end_dim < 0 else module.end_dim - 1)
    if isinstance(module, nn.MaxPool2d):
        raise NirUnsupportedError(f"{where}: max pooling has no NIR node (NIR has sum and average pooling)")
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        raise NirUnsupportedError(f"{where}: a BatchNorm not fed directly by a conv/linear cannot be folded")
    return None  # Identity / Dropout: pass-through


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def to_nir(module: nn.Module, example: Tensor):
    """Build the NIR graph of ``module`` (``[T, B, ...] -> [T, B, ...]``), or raise :class:`NirUnsupportedError`.

    Args:
        module: a spiking module of the library (time-major input), e.g. a spiking MLP or a convolutional stem.
        example: an input ``[T, B, ...]`` (float); BatchNorm is folded with it and the graph is recorded on it.
    """
    require_export_packages("nir")
    import nir

    if example.dim() < 3:
        raise ValueError(f"example must be time-major [T, B, ...], got shape {tuple(example.shape)}")
    T, B = int(example.shape[0]), int(example.shape[1])
    # BatchNorm folding runs the model with its own example; it needs a model-level forward, so the sub-module is
    # folded with the given example (fold_bn only needs a callable module and an input).
    model = module.eval()
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules()):
        model = fold_bn(model, example)
    builder = _GraphBuilder(model, T, B)
    builder.nodes["input"] = nir.Input(input_type={"input": np.array(builder.sample_shape(example))})
    builder.track(example, ["input"])
    handles = []

    def pre(mod: nn.Module, args: tuple) -> None:
        builder.stack.append(builder.names.get(mod, ""))
        if isinstance(mod, _LEAVES):
            builder.inside_leaf = True

    def post(mod: nn.Module, args: tuple, out: Any) -> None:
        where = f"module {builder.stack[-1]!r}"
        builder.stack.pop()
        if not isinstance(mod, _LEAVES):
            return
        builder.inside_leaf = False
        inp = args[0]
        src = builder.source(inp)
        if src is None:
            return
        builder.check_not_permuted(inp, where)
        if isinstance(mod, Neuron):
            node = _neuron_node(mod, builder.sample_shape(out), where)
        else:
            node = _layer_node(mod, inp, builder, where)
        if node is None:
            builder.track(out, src)
            return
        builder.counter += 1
        name = builder.add_node(builder.names[mod] or f"node{builder.counter}", node, src)
        builder.track(out, [name])

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad(), _Recorder(builder):
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, Tensor) or builder.source(out) is None:
        raise NirUnsupportedError("the module's output does not come from the recorded graph")
    builder.check_not_permuted(out, "the output")
    builder.nodes["output"] = nir.Output(output_type={"output": np.array(builder.sample_shape(out))})
    for src in builder.source(out):
        builder.edges.append((src, "output"))
    try:
        return nir.NIRGraph(nodes=builder.nodes, edges=builder.edges)
    except ValueError:
        if not _token_wise(builder.nodes):
            raise
    # A token-wise graph (affine maps on the last axis and neurons only) maps each C-vector of a [N, C] sample on its
    # own: written as the graph of one vector, which NIR types exactly; the metadata says to apply it per token.
    return nir.NIRGraph(nodes=_per_vector(builder.nodes), edges=builder.edges,
                        metadata={"apply_per": "token: one C-vector; a [N, C] sample is N independent vectors"})


def _token_wise(nodes: dict[str, Any]) -> bool:
    import nir

    return all(isinstance(n, (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.LIF, nir.IF)) for n in nodes.values())


def _per_vector(nodes: dict[str, Any]) -> dict[str, Any]:
    """The nodes of a token-wise graph rewritten for one vector (neuron parameters are uniform over tokens)."""
    import nir

    def last(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        return a.reshape(-1, a.shape[-1])[0].copy()

    out: dict[str, Any] = {}
    for name, n in nodes.items():
        if isinstance(n, nir.Input):
            out[name] = nir.Input(input_type={k: np.array(v[-1:]) for k, v in n.input_type.items()})
        elif isinstance(n, nir.Output):
            out[name] = nir.Output(output_type={k: np.array(v[-1:]) for k, v in n.output_type.items()})
        elif isinstance(n, nir.LIF):
            out[name] = nir.LIF(tau=last(n.tau), r=last(n.r), v_leak=last(n.v_leak), v_threshold=last(n.v_threshold),
                                v_reset=last(n.v_reset))
        elif isinstance(n, nir.IF):
            out[name] = nir.IF(r=last(n.r), v_threshold=last(n.v_threshold), v_reset=last(n.v_reset))
        else:
            out[name] = n
    return out


def export_nir(module: nn.Module, example: Tensor, path: str | os.PathLike[str]) -> NirExport:
    """Write the NIR graph of ``module`` to ``path`` (HDF5, ``nir.write``); see :func:`to_nir`."""
    require_export_packages("nir")
    import nir

    graph = to_nir(module, example)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return NirExport(path, len(graph.nodes), len(graph.edges), int(example.shape[0]))


class _StepNeuron(nn.Module):
    """One time step of a NIR LIF / IF node with our operation order (stateful, as nirtorch calls it)."""

    def __init__(self, node: Any, dtype: torch.dtype) -> None:
        super().__init__()
        import nir

        def t(a: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(a), dtype=dtype)

        self.leaky = isinstance(node, nir.LIF)
        self.register_buffer("v_threshold", t(node.v_threshold))
        self.register_buffer("v_reset", t(node.v_reset if node.v_reset is not None else np.zeros_like(node.r)))
        self.register_buffer("r", t(node.r))
        if self.leaky:
            self.register_buffer("tau", t(node.tau))
            self.register_buffer("v_leak", t(node.v_leak))

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.v_reset.expand_as(x) if state is None else state
        if self.leaky:
            # r == 1: H = V + (X - (V - v_leak)) / tau (our decay_input charge); r == tau: H = V (1 - 1/tau) + X
            if bool((self.r == 1).all()):
                h = v + (x - v) / self.tau if bool((self.v_leak == 0).all()) else v + (x - (v - self.v_leak)) / self.tau
            else:
                h = v * (1.0 - 1.0 / self.tau) + x * (self.r / self.tau)
        else:
            h = v + self.r * x
        s = (h >= self.v_threshold).to(x.dtype)
        v = (1.0 - s) * h + s * self.v_reset
        return s, v


def nir_to_module(graph: Any, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The NIR graph as a single-step torch module through ``nirtorch`` (``(x_t, state) -> (y_t, state)``)."""
    require_export_packages("nir", "nirtorch")
    import nir
    import nirtorch

    def affine(node: Any) -> nn.Module:
        w = torch.as_tensor(node.weight, dtype=dtype)
        m = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine)).to(dtype)
        m.weight.data.copy_(w)
        if isinstance(node, nir.Affine):
            m.bias.data.copy_(torch.as_tensor(node.bias, dtype=dtype))
        return m

    def conv(node: Any) -> nn.Module:
        w = torch.as_tensor(node.weight, dtype=dtype)
        m = nn.Conv2d(w.shape[1] * node.groups, w.shape[0], tuple(w.shape[2:]), stride=node.stride,
                      padding=node.padding, dilation=node.dilation, groups=node.groups).to(dtype)
        m.weight.data.copy_(w)
        m.bias.data.copy_(torch.as_tensor(node.bias, dtype=dtype))
        return m

    node_map = {
        nir.Affine: affine,
        nir.Linear: affine,
        nir.Conv2d: conv,
        nir.LIF: lambda node: _StepNeuron(node, dtype),
        nir.IF: lambda node: _StepNeuron(node, dtype),
    }
    return nirtorch.nir_to_torch(graph, node_map, dtype=dtype)


def run_nir(step_module: nn.Module, x: Tensor) -> Tensor:
    """Run a module from :func:`nir_to_module` over ``x: [T, B, ...]``; returns ``[T, B, ...]``."""
    state = None
    outs = []
    for t in range(x.shape[0]):
        y, state = step_module(x[t], state) if state is not None else step_module(x[t])
        outs.append(y)
    return torch.stack(outs)
