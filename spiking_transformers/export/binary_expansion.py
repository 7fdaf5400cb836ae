r"""Integer training, spike-driven inference: run a multi-level-neuron model in its purely binary form.

E-SpikeFormer (SDT V3) and QSD-Transformer train with neurons that emit an integer ``k in {0..D}`` per element
(divided by a normaliser ``n``). At inference each ``k`` is emitted as ``k`` binary spikes over ``D`` *virtual* time
steps, and every synaptic layer (conv, linear, the attention matmuls) is applied to each binary step and summed.
Synaptic layers are linear in each spiking operand, so

.. math::
    W \cdot \frac{k}{n} + b = \frac{1}{n} \sum_{\tau=1}^{D} W \cdot s_\tau + b, \qquad
    \sum_\tau s_\tau = k, \; s_\tau \in \{0, 1\},

and a product of two spiking operands (attention) expands into the ``D^2`` products of binary steps. The binary
form therefore gives the integer model's logits exactly (up to floating-point summation order).

How it works here, for any model: :func:`binary_expanded` swaps every multi-level neuron module
(``Neuron`` with ``max_level > 1``) for an :class:`ExpandingNeuron` that returns a :class:`SpikeTrain`: the
``D`` binary tensors of the spike train, with the shape of the original activation. A ``SpikeTrain`` moves through
the model's reshapes/transposes/padding per virtual step; a synaptic op that receives it (``F.conv1d/2d/3d``,
``F.linear``, ``@``/``matmul``/``bmm``) runs once per binary step and sums (bias added once, ``1/n`` applied to the
sum); any other op (BatchNorm, residual add, pooling, means) sees the equivalent dense value ``sum(steps) / n``
(which is where a real-valued membrane appears, as on hardware). Every binary event is counted per neuron module
and every synaptic call is logged with the kind of its operands, so the report shows which layers are purely
binary-driven.

Example::

    logits, report = run_binary_expanded(model.eval().double(), x)
    print(report.table())
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons.lif import Neuron
from ..neurons.multispike import expand_to_binary

__all__ = [
    "SpikeTrain",
    "ExpandingNeuron",
    "NeuronEvents",
    "SynapticCall",
    "ExpansionReport",
    "binary_expanded",
    "run_binary_expanded",
]

# Ops that only move elements (linear, applied per virtual step, keeping the spike train).
_LAYOUT_METHODS = frozenset(
    {"reshape", "view", "flatten", "unflatten", "transpose", "permute", "contiguous", "unsqueeze", "squeeze",
     "expand", "movedim", "clone", "__getitem__", "t", "mT", "swapaxes", "narrow", "roll"}
)
_LAYOUT_FUNCS = {
    torch.reshape, torch.flatten, torch.transpose, torch.permute, torch.unsqueeze, torch.squeeze, torch.movedim,
    torch.clone, torch.narrow, torch.roll, torch.swapaxes,
}
_SPLIT_METHODS = frozenset({"chunk", "split", "unbind", "tensor_split"})
_WEIGHT_OPS = {F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv3d: "conv3d", F.linear: "linear"}
_MATMULS = {torch.matmul, Tensor.matmul, Tensor.__matmul__, Tensor.__rmatmul__, torch.bmm, Tensor.bmm}


@dataclass
class SynapticCall:
    """One synaptic op that received a spike train: ``op`` name, operand kinds (``"binary"`` for a spike train,
    ``"dense"`` otherwise, e.g. real or integer values), and the binary events it consumed."""

    op: str
    operands: tuple[str, ...]
    events: int

    @property
    def binary_only(self) -> bool:
        # weights are not operands here: a conv/linear on a spike train is binary-driven
        return all(k == "binary" for k in self.operands)


@dataclass
class NeuronEvents:
    """Binary spike events of one multi-level neuron module over its ``D`` virtual steps (summed over calls).

    Attributes:
        events: total binary spikes (= the integer level sum = ``output * spike_scale`` summed).
        elements: activation elements (per real time step and batch sample, summed over calls).
        virtual_steps: ``D``.
        per_step: events in each virtual step ``[D]``.
    """

    events: int = 0
    elements: int = 0
    virtual_steps: int = 0
    per_step: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Binary firing rate: events per element per virtual step."""
        return self.events / max(1, self.elements * self.virtual_steps)


@dataclass
class ExpansionReport:
    """Per-neuron binary events and the log of synaptic calls of one expanded run."""

    neurons: dict[str, NeuronEvents] = field(default_factory=dict)
    calls: list[SynapticCall] = field(default_factory=list)

    @property
    def total_events(self) -> int:
        return sum(n.events for n in self.neurons.values())

    def table(self) -> str:
        """A plain-text table: neuron, D, elements, binary events, rate."""
        rows = [f"{'neuron':<48} {'D':>2} {'elements':>10} {'events':>10} {'rate':>7}"]
        for name, ev in self.neurons.items():
            rows.append(f"{name:<48} {ev.virtual_steps:>2} {ev.elements:>10} {ev.events:>10} {ev.rate:>7.4f}")
        rows.append(f"{'total':<48} {'':>2} {'':>10} {self.total_events:>10}")
        return "\n".join(rows)


class SpikeTrain:
    """A multi-level activation held as its binary spike train: ``steps[tau]`` (``D`` tensors of 0/1, each with the
    activation's shape) and the normaliser ``norm``; its value is ``sum(steps) / norm``.

    Tensor-like (``__torch_function__``): layout ops act per step, synaptic ops run per step and sum, anything
    else sees :meth:`dense`. ``log`` (optional) receives a :class:`SynapticCall` per synaptic op.
    """

    def __init__(self, steps: list[Tensor], norm: float, log: list[SynapticCall] | None = None) -> None:
        if not steps:
            raise ValueError("a spike train needs at least one step")
        self.steps = steps
        self.norm = float(norm)
        self.log = log

    # -- tensor-like surface -------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.steps[0].shape

    @property
    def dtype(self) -> torch.dtype:
        return self.steps[0].dtype

    @property
    def device(self) -> torch.device:
        return self.steps[0].device

    @property
    def ndim(self) -> int:
        return self.steps[0].dim()

    def dim(self) -> int:
        return self.steps[0].dim()

    def size(self, d: int | None = None):
        return self.steps[0].size() if d is None else self.steps[0].size(d)

    def numel(self) -> int:
        return self.steps[0].numel()

    def __len__(self) -> int:
        return len(self.steps[0])

    def dense(self) -> Tensor:
        """The equivalent multi-level value ``sum(steps) / norm``."""
        total = self.steps[0]
        for s in self.steps[1:]:
            total = total + s
        return total / self.norm

    def events(self) -> int:
        return int(sum(float(s.sum()) for s in self.steps))

    def _map(self, fn: Callable[[Tensor], Tensor]) -> SpikeTrain:
        return SpikeTrain([fn(s) for s in self.steps], self.norm, self.log)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("steps", "norm", "log"):
            raise AttributeError(name)
        if name in _LAYOUT_METHODS:
            return lambda *a, **k: self._map(lambda s: getattr(s, name)(*a, **k))
        if name in _SPLIT_METHODS:

            def split(*a: Any, **k: Any) -> tuple[SpikeTrain, ...]:
                parts = [getattr(s, name)(*a, **k) for s in self.steps]
                return tuple(SpikeTrain(list(p), self.norm, self.log) for p in zip(*parts))

            return split
        if name == "matmul":
            return lambda other: _matmul(self, other, self.log)
        return getattr(self.dense(), name)

    def __getitem__(self, idx: Any) -> SpikeTrain:
        return self._map(lambda s: s[idx])

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, other, self.log)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(other, self, self.log)

    def __add__(self, o: Any) -> Tensor:
        return self.dense() + _dense(o)

    __radd__ = __add__

    def __sub__(self, o: Any) -> Tensor:
        return self.dense() - _dense(o)

    def __rsub__(self, o: Any) -> Tensor:
        return _dense(o) - self.dense()

    def __mul__(self, o: Any) -> Tensor:
        return self.dense() * _dense(o)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Tensor:
        return self.dense() / _dense(o)

    def __neg__(self) -> Tensor:
        return -self.dense()

    def __repr__(self) -> str:
        return f"SpikeTrain(D={len(self.steps)}, shape={tuple(self.shape)}, norm={self.norm:g})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _WEIGHT_OPS and isinstance(args[0], SpikeTrain) and not _has_train((args[1:], kwargs)):
            return _weight_op(func, _WEIGHT_OPS[func], args, kwargs)
        if func in _MATMULS and len(args) == 2 and not kwargs:
            a, b = args
            if func is Tensor.__rmatmul__:
                a, b = b, a
            log = next(x.log for x in (a, b) if isinstance(x, SpikeTrain))
            return _matmul(a, b, log)
        if func in _LAYOUT_FUNCS and isinstance(args[0], SpikeTrain) and not _has_train((args[1:], kwargs)):
            return args[0]._map(lambda s: func(s, *args[1:], **kwargs))
        if func is F.pad and isinstance(args[0], SpikeTrain) and _zero_pad(args, kwargs):
            return args[0]._map(lambda s: F.pad(s, *args[1:], **kwargs))
        return func(*_dense_tree(args), **_dense_tree(kwargs))


def _dense(x: Any) -> Any:
    return x.dense() if isinstance(x, SpikeTrain) else x


def _dense_tree(x: Any) -> Any:
    if isinstance(x, SpikeTrain):
        return x.dense()
    if isinstance(x, (list, tuple)):
        return type(x)(_dense_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: _dense_tree(v) for k, v in x.items()}
    return x


def _has_train(x: Any) -> bool:
    if isinstance(x, SpikeTrain):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_train(v) for v in x)
    if isinstance(x, dict):
        return any(_has_train(v) for v in x.values())
    return False


def _zero_pad(args: tuple, kwargs: dict) -> bool:
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    value = kwargs.get("value", args[3] if len(args) > 3 else None)
    return mode == "constant" and not value


def _weight_op(func: Callable, name: str, args: tuple, kwargs: dict) -> Tensor:
    """``func(train, weight, bias, ...)`` = ``sum_tau func(step_tau, weight) / norm + bias``."""
    train: SpikeTrain = args[0]
    args, kwargs = list(args[1:]), dict(kwargs)
    bias = kwargs.pop("bias", None)
    if len(args) >= 2:
        bias, args[1] = args[1], None
    out = None
    for s in train.steps:
        y = func(s, *args, **kwargs)
        out = y if out is None else out + y
    assert out is not None
    out = out / train.norm
    if bias is not None:
        # conv: bias per output channel (dim 1); linear: per last dim
        out = out + (bias if name == "linear" else bias.view(1, -1, *([1] * (out.dim() - 2))))
    if train.log is not None:
        train.log.append(SynapticCall(name, ("binary",), train.events()))
    return out


def _matmul(a: Any, b: Any, log: list[SynapticCall] | None) -> Tensor:
    """Product with one or two spike-train operands, expanded over their binary steps."""
    a_steps = a.steps if isinstance(a, SpikeTrain) else [a]
    b_steps = b.steps if isinstance(b, SpikeTrain) else [b]
    out = None
    for sa in a_steps:
        for sb in b_steps:
            y = torch.matmul(sa, sb)
            out = y if out is None else out + y
    assert out is not None
    scale = (a.norm if isinstance(a, SpikeTrain) else 1.0) * (b.norm if isinstance(b, SpikeTrain) else 1.0)
    if log is not None:
        kinds = tuple("binary" if isinstance(x, SpikeTrain) else "dense" for x in (a, b))
        events = sum(x.events() for x in (a, b) if isinstance(x, SpikeTrain))
        log.append(SynapticCall("matmul", kinds, events))
    return out / scale


class ExpandingNeuron(nn.Module):
    """Wraps a multi-level neuron: computes its integer levels and returns them as a :class:`SpikeTrain` over
    ``max_level`` virtual steps, recording the binary events in ``record``. Not a ``Neuron`` itself (its output
    is not a tensor)."""

    def __init__(self, neuron: Neuron, record: NeuronEvents, log: list[SynapticCall], order: str = "first") -> None:
        super().__init__()
        self.neuron = neuron
        self.record = record
        self.log = log
        self.order = order

    def forward(self, x: Any) -> SpikeTrain:
        n = self.neuron
        levels = torch.round(n(_dense(x)) * n.spike_scale)
        steps = expand_to_binary(levels, n.max_level, order=self.order)
        per_step = [int(v) for v in steps.flatten(1).sum(1).tolist()]
        rec = self.record
        rec.virtual_steps = n.max_level
        rec.elements += levels.numel()
        rec.events += sum(per_step)
        rec.per_step = [a + b for a, b in zip(rec.per_step, per_step)] if rec.per_step else per_step
        return SpikeTrain(list(steps.unbind(0)), n.spike_scale, self.log)


def _multilevel_neurons(model: nn.Module) -> list[tuple[str, Neuron]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Neuron) and m.max_level > 1]


@contextlib.contextmanager
def binary_expanded(model: nn.Module, *, order: str = "first") -> Iterator[ExpansionReport]:
    """Within the block, every multi-level neuron of ``model`` emits binary spike trains over its ``max_level``
    virtual steps and synaptic ops consume them step by step. Yields the :class:`ExpansionReport` that the
    forward passes fill in; the original neurons are restored on exit. Binary neurons are left alone.

    Args:
        model: any model whose multi-level neurons are :class:`~spiking_transformers.neurons.Neuron` modules.
        order: placement of the ``k`` spikes among the ``D`` steps (``"first"`` or ``"last"``; sums are equal).
    """
    report = ExpansionReport()
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    modules = dict(model.named_modules())
    try:
        for name, neuron in _multilevel_neurons(model):
            parent_name, _, attr = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            if not name:
                raise ValueError("the model itself is a neuron; nothing to expand into")
            report.neurons[name] = NeuronEvents()
            parent._modules[attr] = ExpandingNeuron(neuron, report.neurons[name], report.calls, order)
            swapped.append((parent, attr, neuron))
        yield report
    finally:
        for parent, attr, neuron in swapped:
            parent._modules[attr] = neuron


def run_binary_expanded(model: nn.Module, x: Tensor, *, order: str = "first") -> tuple[Tensor, ExpansionReport]:
    """Run ``model(x)`` in the binary-expanded form (no gradients); returns ``(output, report)``.

    In eval mode the output equals ``model(x)`` up to floating-point summation order.
    """
    with torch.no_grad(), binary_expanded(model, order=order) as report:
        out = model(x)
    return out, report
