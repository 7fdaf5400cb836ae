r"""Synaptic-operation counting at the operator level, with a :class:`~torch.utils._python_dispatch.TorchDispatchMode`.

:class:`SynapticOpCounter` sees every aten operator a model runs. It counts the *synaptic* ones, i.e. those that
multiply-and-accumulate an activation with something else:

* ``convolution`` (every Conv1d/2d/3d, transposed too),
* ``mm`` / ``addmm`` / ``bmm`` / ``baddbmm`` (``nn.Linear``, ``torch.matmul``, ``einsum``, attention products),
* ``mul`` of two activation tensors (the element-wise spike masks of spike-driven attention, e.g. SDT's
  ``Q ⊙ SN(Σ_N K ⊙ V)``; a multiplication by a parameter, such as a layer scale, is not synaptic).

Operations inside a :class:`~spiking_transformers.neurons.Neuron` module (the membrane update) are never counted.

**Operands.** Every tensor that derives from the model input is an *activation*; anything else (parameters, and
tensors computed only from parameters, such as quantised weights) is a *weight*. Each activation operand gets a
kind: ``binary`` (spike counts in {0, 1}), ``multi-level`` (integers emitted by a multi-level neuron),
``integer`` (other integers, such as the sum of two spike tensors in a spike-element-wise residual) or ``real``.
Integers are recognised *up to a constant factor*: the counter follows a quantum ``q`` through the graph (a neuron
output is ``q = 1 / spike_scale``; a sum keeps ``q``; a product of two quantised tensors multiplies the quanta; a
multiplication by a constant scales it; a mean divides it by the number of elements averaged) and checks the
values, so ``count = x / q`` is the exact number of spikes an element carries (an integer ``k`` counts as ``k``
spikes, the convention of E-SpikeFormer and QSD). ``(Q Kᵀ) · 0.125`` is therefore an integer tensor, and a spike
rate averaged over tokens is an integer count divided by the number of tokens.

**AC or MAC.** Each operation is *driven* by its most spike-like activation operand (binary < multi-level <
integer < real; the left operand on a tie). If the driver is a spike tensor (binary or integer), the operation is
made of accumulates: ``ACs = Σ_events count × fan-out``, counted exactly from the actual non-zero events (for a
convolution: the number of weight taps each event reaches inside the output, borders and stride included). The
other operand (a weight, or an activation used as a dynamic weight, e.g. ``KᵀV`` in ``Q (KᵀV)``) is read densely.
If every activation operand is real, the operation is ``MACs = dense FLOPs``. Dense FLOPs are the multiply-adds of
the equivalent dense operation (conv: ``out_elems · C_in/groups · k``; mm: ``M·K·N``; mask: ``out_elems``); bias
additions are not counted (the papers' convention).

Ambiguity and our reading: for a product of two binary tensors one could also count coincidences (both spikes
present), as SpikingJelly's ``SynOpCounter`` does. We count the events of the left operand times the fan-out,
which is what the papers' ``fr(Q) · FLOPs`` convention counts; the two agree in expectation only when the right
operand is dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

from ..neurons import Neuron

__all__ = [
    "KINDS",
    "OperandKind",
    "OpRecord",
    "SynapticOpCounter",
    "classify",
    "kind_label",
]

aten = torch.ops.aten

# Ordered from most to least spike-like; the driver of an operation is the operand earliest in this order.
KINDS = ("binary", "multi-level", "integer", "real")
_RANK = {k: i for i, k in enumerate(KINDS)}

# Relative and absolute slack when checking that x / q is an integer (a mean of spikes divides by n in floating
# point; multiplying back gives the count only up to rounding).
_ATOL = 1e-3
_RTOL = 1e-5


@dataclass(frozen=True)
class _Meta:
    """What the counter knows about an activation tensor.

    ``q``: the tensor is ``q ×`` an integer tensor (``None`` if unknown). ``bound``: the largest count
    ``|x / q|`` it can hold by construction (a binary neuron's output 1, a multi-level neuron's ``max_level``, the sum
    of two binary tensors 2; ``None`` if unknown), so that the kind of a tensor does not depend on the values one
    batch happens to hold. ``neuron``: it is a neuron output moved around without arithmetic (view, pooling,
    concatenation), so its integers are the neuron's levels. ``linear``: it is an affine function of spike tensors
    only (a synaptic layer on spikes followed by BN, bias, padding, scaling or sums), so a synaptic layer applied to
    it can be folded into the layer that produced it.
    """

    q: float | None
    bound: float | None = None
    neuron: bool = False
    linear: bool = False
    analog: bool = False  # a model input declared analog: real whatever its values look like


def _lin(m: _Meta | None) -> bool:
    """``m`` describes a spike tensor or an affine function of spike tensors."""
    return m is not None and (m.q is not None or m.linear)


_REAL = _Meta(None)
_ANALOG = _Meta(None, analog=True)


@dataclass(frozen=True)
class OperandKind:
    """Kind of one activation operand.

    Attributes:
        kind: one of :data:`KINDS`.
        max_level: largest spike count of one element (1 for binary, 0 for real).
        counts: spike counts ``|x / q|`` (``None`` for a real operand).
    """

    kind: str
    max_level: int
    counts: Tensor | None = field(default=None, repr=False, compare=False)


def _is_integral(c: Tensor) -> bool:
    return bool(((c - c.round()).abs() <= _ATOL + _RTOL * c.abs()).all())


def classify(
    x: Tensor,
    q: float | None,
    *,
    bound: float | None = None,
    neuron: bool = False,
    fallback: Iterable[float] = (1.0,),
) -> OperandKind:
    """Kind of activation ``x`` given its tracked quantum ``q`` (tried first) and fallback quanta.

    Args:
        x: the activation tensor (any shape).
        q: quantum tracked through the graph, or ``None``.
        bound: largest count the tensor can hold by construction (with ``q``); decides binary versus integer when
            given, whatever the values of this batch. ``None``: decided by the values seen.
        neuron: ``x`` is a neuron's output (its integers are the neuron's levels: ``multi-level``, not ``integer``).
        fallback: quanta to try when ``q`` is unknown or does not fit the values (``1.0`` and ``1 / spike_scale``
            of the model's neurons); the kind is then decided by the values seen.

    Returns:
        the :class:`OperandKind`, with the spike counts; ``max_level`` is the bound when known, else the largest
        count seen.
    """
    if not x.is_floating_point():
        x = x.to(torch.float32)
    tried = [q] if q is not None else []
    for cand in tried + [c for c in fallback if c != q]:
        if cand is None or cand <= 0 or not math.isfinite(cand):
            continue
        c = x / cand
        if not bool(torch.isfinite(c).all()) or not _is_integral(c):
            continue
        counts = c.round().abs()
        top = int(counts.max().item()) if counts.numel() else 0
        if cand == q and bound is not None:
            top = max(top, int(round(bound)))
        if top <= 1:
            return OperandKind("binary", 1, counts)
        # A tracked neuron output keeps its "multi-level" nature only under its own quantum.
        kind = "multi-level" if (neuron and cand == q) else "integer"
        return OperandKind(kind, top, counts)
    return OperandKind("real", 0, None)


def kind_label(kind: str, max_level: int) -> str:
    """Short label for tables: ``binary``, ``ml<=4``, ``int<=2``, ``real``."""
    if kind == "multi-level":
        return f"ml<={max_level}"
    if kind == "integer":
        return f"int<={max_level}"
    return kind


@dataclass
class OpRecord:
    """Counts of one synaptic operation site, summed over every call (all batches, all time steps).

    Attributes:
        key: unique site name, ``module`` for the single op of a leaf layer (``block.0.mlp.fc1_conv``), else
            ``module:op<i>`` (``block.0.attn:matmul0``; ``op<i>`` for the root module).
        module: qualified name of the innermost module that ran the op (``""`` for the root).
        module_type: that module's class name.
        op: ``conv``, ``linear`` (activation × weight mm), ``matmul`` (activation × activation) or ``mask``
            (element-wise activation × activation).
        order: position of the site's first call in the forward pass.
        calls: number of calls.
        dense_flops: multiply-adds of the equivalent dense operations.
        acs: accumulates counted from events (driver is a spike tensor).
        macs: multiply-accumulates (driver is real).
        driver_kind / driver_max_level: worst kind of the driving operand seen over all calls.
        operand_kinds: kind of each of the two operands (``weight`` for non-activations), worst seen.
        driver_events: sum of the driver's spike counts.
        driver_nonzero: non-zero elements of the driver.
        driver_elements: elements of the driver.
        paper_sops: ``fr × dense FLOPs`` with ``fr = driver_events / driver_elements`` per call (the papers'
            ``fr × T × FLOPs``; 0 for a real driver).
        weight_elements: elements of the weight operand read per call (0 if both operands are activations).
        encoding: the site is the model's first synaptic operation (it sees the analog input).
        fusible: a real-driven site whose input is an affine function of spikes (consecutive linear layers with no
            neuron between them, e.g. a separable or re-parameterisable conv): it folds into the layer before it.
    """

    key: str
    module: str
    module_type: str
    op: str
    order: int
    calls: int = 0
    dense_flops: int = 0
    acs: int = 0
    macs: int = 0
    driver_kind: str = "binary"
    driver_max_level: int = 0
    operand_kinds: list[str] = field(default_factory=lambda: ["binary", "binary"])
    driver_events: float = 0.0
    driver_nonzero: int = 0
    driver_elements: int = 0
    paper_sops: float = 0.0
    weight_elements: int = 0
    encoding: bool = False
    fusible: bool = False

    @property
    def firing_rate(self) -> float:
        """Mean spike count per element of the driving operand (0 for a real driver)."""
        if self.driver_kind == "real" or not self.driver_elements:
            return 0.0
        return self.driver_events / self.driver_elements

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "module": self.module,
            "module_type": self.module_type,
            "op": self.op,
            "calls": self.calls,
            "dense_flops": self.dense_flops,
            "acs": self.acs,
            "macs": self.macs,
            "input_kind": self.driver_kind,
            "input_max_level": self.driver_max_level,
            "operand_kinds": list(self.operand_kinds),
            "firing_rate": self.firing_rate,
            "nonzero_rate": self.driver_nonzero / self.driver_elements if self.driver_elements else 0.0,
            "paper_sops": self.paper_sops,
            "weight_elements": self.weight_elements,
            "encoding": self.encoding,
            "fusible": self.fusible,
        }


# --- rules that propagate the quantum through non-synaptic operators --------------------------------------------

# Data movement: the output holds the input's values (a subset, a copy, a new layout); linear in the input.
_MOVE = {
    "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "t", "expand", "clone",
    "contiguous", "slice", "select", "unsqueeze", "squeeze", "flatten", "unflatten", "_to_copy", "to", "detach",
    "alias", "lift_fresh", "as_strided", "unfold", "index", "index_select", "gather", "repeat", "roll", "flip",
    "narrow", "split", "split_with_sizes", "unbind", "chunk", "upsample_nearest1d", "upsample_nearest2d",
    "upsample_nearest3d", "_upsample_nearest_exact2d", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "neg",
    "copy", "movedim", "swapaxes", "view_as", "expand_as", "im2col", "col2im", "diagonal",
}
# Keep integers integers (same quantum) but are not linear.
_NONLINEAR_SAME = {
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "abs", "relu",
    "masked_fill", "clamp", "clamp_min", "clamp_max", "hardtanh",
}
_CONCAT = {"cat", "stack"}
_SELECT = {"where", "maximum", "minimum", "max", "min"}
_ADD = {"add", "sub", "rsub"}
_SUM = {"sum", "cumsum"}
_MEAN = {"mean", "avg_pool1d", "avg_pool2d", "avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
         "adaptive_avg_pool1d"}
_BATCH_NORM = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
               "batch_norm", "_batch_norm_impl_index", "cudnn_batch_norm", "miopen_batch_norm"}
# Take only the shape (or nothing) of their input: the output is a constant, not an activation.
_FACTORY = {"ones_like", "zeros_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
            "new_zeros", "new_ones", "new_empty", "new_full", "empty_strided", "bernoulli"}
_SYNAPTIC = {"convolution", "mm", "addmm", "bmm", "baddbmm"}
_COMPARE = {"ge", "gt", "le", "lt", "eq", "ne", "logical_and", "logical_or", "logical_not", "logical_xor",
            "heaviside", "bitwise_and", "bitwise_or"}
_ROUND = {"round", "floor", "ceil", "trunc", "sign"}


def _tensors(tree: Any) -> list[Tensor]:
    out: list[Tensor] = []
    if isinstance(tree, Tensor):
        out.append(tree)
    elif isinstance(tree, (list, tuple)):
        for t in tree:
            out.extend(_tensors(t))
    elif isinstance(tree, dict):
        for t in tree.values():
            out.extend(_tensors(t))
    return out


def _join(ms: list[_Meta], add: bool = False) -> tuple[float | None, float | None]:
    """Common quantum and bound of tensors concatenated (``add=False``: the largest bound) or added (the bounds
    add up). The quantum is the smallest one, if every other is an integer multiple of it."""
    qs = [m.q for m in ms]
    if not qs or any(q is None for q in qs):
        return None, None
    small = min(qs)  # type: ignore[type-var]
    bounds = []
    for m in ms:
        r = m.q / small  # type: ignore[operator]
        if abs(r - round(r)) > 1e-6:
            return None, None
        bounds.append(None if m.bound is None else m.bound * round(r))
    if any(b is None for b in bounds):
        return small, None
    return small, (sum(bounds) if add else max(bounds))  # type: ignore[arg-type]


def _prod(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a * b


def _scalar(a: Any) -> float | None:
    if isinstance(a, bool):
        return float(a)
    if isinstance(a, (int, float)):
        return float(a)
    return None


class SynapticOpCounter(TorchDispatchMode):
    """Count synaptic operations of a model, per site, over any number of forward passes.

    Usage::

        counter = SynapticOpCounter(model)
        with counter:                      # installs module hooks and the dispatch mode
            for x in batches:
                counter.forward(x)         # marks x as the analog input, runs model(x) without grad
        counter.records                    # {key: OpRecord}, in execution order

    Args:
        model: any module built from the library's neurons (``spiking_transformers.neurons.Neuron``).

    Notes:
        The counter must be active (``with counter:``) while the model runs. Only tensors marked with
        :meth:`mark_input` (done by :meth:`forward`) and what derives from them are activations.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.records: dict[str, OpRecord] = {}
        self._meta: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self._stack: list[tuple[str, nn.Module, dict[str, int]]] = []
        self._in_neuron = 0
        self._handles: list[Any] = []
        self._first_key: str | None = None
        self._encoding_keys: set[str] = set()
        self._names = {m: n for n, m in model.named_modules()}
        scales = {float(m.spike_scale) for m in model.modules() if isinstance(m, Neuron)}
        # Quanta to try by value when the graph lost track: plain integers, then each neuron's level size.
        self._fallback = [1.0] + sorted({1.0 / s for s in scales if s > 0 and s != 1.0})

    # --- module tracking -------------------------------------------------------------------------------------

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        self._stack.append((self._names.get(module, "?"), module, {}))
        if isinstance(module, Neuron):
            self._in_neuron += 1

    def _post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(module, Neuron):
            self._in_neuron -= 1
            if isinstance(output, Tensor):
                scale = float(module.spike_scale)
                self._meta[output] = _Meta(1.0 / scale if scale > 0 else None, float(module.max_level), neuron=True)
        # Pop up to and including this module (robust to a module whose forward raised earlier).
        while self._stack:
            _, m, _ = self._stack.pop()
            if m is module:
                break

    def __enter__(self) -> "SynapticOpCounter":
        for module in self._names:
            self._handles.append(module.register_forward_pre_hook(self._pre_hook))
            self._handles.append(module.register_forward_hook(self._post_hook))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._stack.clear()
        self._in_neuron = 0
        return super().__exit__(*exc)

    def mark_input(self, x: Tensor) -> Tensor:
        """Mark ``x`` as the model's input: everything computed from it is an activation.

        Its kind is read from its values (event counts are integers, images real) unless the model declares
        ``analog_input = True``: STNet's event images are 8-bit pixel intensities, which the first layers multiply
        (counting a pixel of value 200 as 200 additions would be wrong).
        """
        self._meta[x] = _ANALOG if getattr(self.model, "analog_input", False) else _REAL
        return x

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Any:
        """Run ``model(x)`` (``model(**x)`` for a dict of named inputs) without grad, every input marked as the
        model's; starts a new forward (encoding detection)."""
        self._first_key = None
        self._stack.clear()
        self._in_neuron = 0
        with torch.no_grad():
            if isinstance(x, Mapping):
                for value in x.values():
                    self.mark_input(value)
                return self.model(**x)
            self.mark_input(x)
            return self.model(x)

    @property
    def encoding_keys(self) -> set[str]:
        """Keys of the sites that were the first synaptic operation of a forward pass."""
        return set(self._encoding_keys)

    # --- dispatch ----------------------------------------------------------------------------------------------

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._in_neuron:
            return out  # membrane arithmetic; the neuron's post-hook tags its output
        name = func.overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
        if base in _FACTORY:
            return out
        ins = _tensors(args) + _tensors(kwargs)
        metas = [self._meta.get(t) for t in ins]
        if not any(m is not None for m in metas):
            return out  # weights only (or constants): not an activation
        if base in _SYNAPTIC:
            self._count_matmul_like(base, args, out)
        elif base == "mul" and len(args) >= 2 and isinstance(args[0], Tensor) and isinstance(args[1], Tensor):
            if (self._meta.get(args[0]) is not None and self._meta.get(args[1]) is not None
                    and args[0].numel() > 1 and args[1].numel() > 1):
                self._count_mask(args[0], args[1], out)
        meta = self._propagate(base, args, kwargs, ins, out)
        if meta.q is None and not meta.analog and any(m is not None and m.analog for m in metas):
            meta = _ANALOG  # computed from an analog input without passing a neuron: still analog
        for t in _tensors(out):
            self._meta[t] = meta
        return out

    def _propagate(self, base: str, args: tuple, kwargs: dict, ins: list[Tensor], out: Any) -> _Meta:
        """Meta of an operator's output from its inputs' (the rule sets are listed above the class)."""
        meta = self._meta.get
        first = meta(args[0]) if args and isinstance(args[0], Tensor) else None
        if base in _MOVE:
            if base == "copy" and len(args) > 1 and isinstance(args[1], Tensor):
                return meta(args[1]) or _REAL
            return first or _REAL
        if base in _NONLINEAR_SAME:
            if base == "masked_fill" and _scalar(args[2] if len(args) > 2 else None) not in (0.0, None):
                return _REAL
            return _Meta(first.q, first.bound, first.neuron) if first is not None else _REAL
        if base == "constant_pad_nd":
            value = _scalar(args[2]) if len(args) > 2 else 0.0
            if first is None:
                return _REAL
            return first if value == 0.0 else _Meta(None, linear=_lin(first))
        if base in _BATCH_NORM:
            return _Meta(None, linear=_lin(first))
        if base == "where" and len(args) == 3:
            cond, values = args[0], [v for v in args[1:] if isinstance(v, Tensor)]
            ms = [meta(v) for v in values]
            if isinstance(cond, Tensor) and meta(cond) is None:
                # a fixed mask choosing between activations and constants (e.g. a constant border): affine
                acts = [m for m in ms if m is not None]
                if len(acts) == 2:
                    q, bound = _join(acts)
                    return _Meta(q, bound, linear=all(_lin(m) for m in acts))
                return _Meta(None, linear=bool(acts) and all(_lin(m) for m in acts))
            if len(values) == 2 and all(m is not None for m in ms):
                return _Meta(*_join(ms))  # type: ignore[arg-type]
            return _REAL
        if base in _CONCAT or base in _SELECT:
            ms = [meta(t) for t in ins]
            if any(m is None for m in ms):
                return _REAL
            q, bound = _join(ms)  # type: ignore[arg-type]
            return _Meta(q, bound, all(m.neuron for m in ms), base in _CONCAT and all(_lin(m) for m in ms))
        if base in _ADD:
            if len(args) >= 2 and isinstance(args[1], Tensor):
                ma, mb = meta(args[0]), meta(args[1])
                if ma is not None and mb is not None:
                    alpha = abs(_scalar(kwargs.get("alpha", args[2] if len(args) > 2 else 1.0)) or 1.0)
                    mb_scaled = _Meta(mb.q * alpha if mb.q is not None else None, mb.bound)
                    q, bound = _join([ma, mb_scaled], add=True)
                    return _Meta(q, bound, linear=_lin(ma) and _lin(mb))
                # an activation plus a constant tensor (a bias, a position embedding): affine, not integer
                return _Meta(None, linear=_lin(ma if ma is not None else mb))
            return _Meta(None, linear=_lin(first))
        if base in ("mul", "div"):
            a, b = (args + (None, None))[:2]
            # One activation times a constant (a Python number or a one-element tensor that is not an activation,
            # e.g. a scale buffer): the quantum scales. Division only as activation / constant.
            pairs = [(a, b)] if base == "div" else [(a, b), (b, a)]
            for act, const in pairs:
                m = meta(act) if isinstance(act, Tensor) else None
                c = _scalar(const)
                if c is None and isinstance(const, Tensor) and const.numel() == 1 and meta(const) is None:
                    c = float(const.item())
                if m is None or c is None:
                    continue
                if c == 0.0:
                    return _Meta(1.0, 0.0)
                q = None if m.q is None else (m.q * abs(c) if base == "mul" else m.q / abs(c))
                return _Meta(q, m.bound if q is not None else None, m.neuron, _lin(m))
            if isinstance(a, Tensor) and isinstance(b, Tensor):
                ma, mb = meta(a), meta(b)
                if ma is not None and mb is not None:  # activation x activation: bilinear
                    if base == "mul" and ma.q and mb.q:
                        return _Meta(ma.q * mb.q, _prod(ma.bound, mb.bound))
                    return _REAL
                # activation x constant tensor (a layer scale): per-channel scaling, affine
                return _Meta(None, linear=base == "mul" and _lin(ma if ma is not None else mb))
            return _REAL
        if base in _SUM or base in _MEAN:
            if first is None or not isinstance(out, Tensor) or out.numel() == 0:
                return _REAL
            n: float | None = args[0].numel() / out.numel()  # elements summed into one output element
            if base.startswith("avg_pool"):
                n = self._avg_pool_divisor(args)
            elif "adaptive" in base and any(i % o for i, o in zip(args[0].shape[2:], out.shape[2:])):
                n = None  # windows of unequal size: no common divisor
            if base == "cumsum":
                n = float(args[0].shape[args[1]]) if len(args) > 1 else None
            if first.q is None or not n:
                return _Meta(None, linear=_lin(first))
            q = first.q if base in _SUM else first.q / n
            return _Meta(q, _prod(first.bound, n), linear=_lin(first))
        if base in _SYNAPTIC:
            x, w = (args[1], args[2]) if base in ("addmm", "baddbmm") else (args[0], args[1])
            mx, mw = meta(x), meta(w)
            if mx is not None and mw is not None:  # activation x activation: bilinear
                extra = args[0] if base in ("addmm", "baddbmm") else (args[2] if base == "convolution" else None)
                if mx.q is not None and mw.q is not None and extra is None:
                    inner = float(x.shape[-1]) if base != "convolution" else float(w[0].numel())
                    return _Meta(mx.q * mw.q, _prod(_prod(mx.bound, mw.bound), inner))
                return _REAL
            return _Meta(None, linear=_lin(mx if mx is not None else mw))
        if base in _COMPARE:
            return _Meta(1.0, 1.0)
        if base in _ROUND:
            return _Meta(1.0)
        return _REAL

    @staticmethod
    def _avg_pool_divisor(args: tuple) -> float | None:
        kernel = args[1]
        kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
        padding = args[3] if len(args) > 3 else 0
        count_include_pad = args[5] if len(args) > 5 else True
        divisor = args[6] if len(args) > 6 else None
        if divisor:
            return float(divisor)
        pads = list(padding) if isinstance(padding, (list, tuple)) else [padding]
        if any(pads) and not count_include_pad:
            return None  # border windows divide by fewer elements
        if len(kernel) == 1:
            kernel = kernel * (args[0].dim() - 2)
        return float(math.prod(kernel))

    # --- counting ----------------------------------------------------------------------------------------------

    def _kind(self, x: Tensor) -> OperandKind | None:
        """Kind of an activation operand, or ``None`` for a weight."""
        meta = self._meta.get(x)
        if meta is None:
            return None
        if meta.analog:
            return OperandKind("real", 0, None)
        return classify(x, meta.q, bound=meta.bound, neuron=meta.neuron, fallback=self._fallback)

    def _site(self, op: str) -> OpRecord:
        if self._stack:
            name, module, counters = self._stack[-1]
        else:
            name, module, counters = "", self.model, {}
        leaf = next(iter(module.children()), None) is None
        i = counters.get(op, 0)
        counters[op] = i + 1
        if leaf:
            key = name if i == 0 else f"{name}:{op}{i}"
        else:
            key = f"{name}:{op}{i}" if name else f"{op}{i}"
        rec = self.records.get(key)
        if rec is None:
            rec = OpRecord(key=key, module=name, module_type=type(module).__name__, op=op, order=len(self.records))
            self.records[key] = rec
        if self._first_key is None:
            self._first_key = key
            rec.encoding = True
            self._encoding_keys.add(key)
        return rec

    def _record(
        self,
        rec: OpRecord,
        kinds: list[OperandKind | None],
        driver: int | None,
        dense: int,
        acs: int,
        weight_elements: int,
        driver_tensor: Tensor | None,
        linear_input: bool = False,
    ) -> None:
        rec.calls += 1
        rec.dense_flops += int(dense)
        labels = ["weight" if k is None else k.kind for k in kinds]
        for i, lab in enumerate(labels):
            old = rec.operand_kinds[i]
            if rec.calls == 1 or (lab != "weight" and (old == "weight" or _RANK[lab] > _RANK[old])):
                rec.operand_kinds[i] = lab
        dk = kinds[driver] if driver is not None else None
        if dk is None or dk.kind == "real":
            # fusible only if every real-driven call took an affine function of spikes
            rec.fusible = linear_input if rec.macs == 0 else (rec.fusible and linear_input)
            rec.macs += int(dense)
            kind, level = "real", 0
        else:
            rec.acs += int(acs)
            kind, level = dk.kind, dk.max_level
            assert dk.counts is not None and driver_tensor is not None
            events = float(dk.counts.sum(dtype=torch.float64))
            rec.driver_events += events
            rec.driver_nonzero += int(torch.count_nonzero(dk.counts))
            rec.driver_elements += driver_tensor.numel()
            rec.paper_sops += events / max(driver_tensor.numel(), 1) * dense
        if rec.calls == 1 or _RANK[kind] > _RANK[rec.driver_kind]:
            rec.driver_kind = kind
        rec.driver_max_level = max(rec.driver_max_level, level)
        rec.weight_elements = max(rec.weight_elements, weight_elements)

    @staticmethod
    def _driver(kinds: list[OperandKind | None]) -> int | None:
        best, rank = None, len(KINDS)
        for i, k in enumerate(kinds):
            if k is not None and _RANK[k.kind] < rank:
                best, rank = i, _RANK[k.kind]
        return best

    def _count_matmul_like(self, base: str, args: tuple, out: Tensor) -> None:
        if base == "convolution":
            self._count_conv(args, out)
            return
        a, b = (args[1], args[2]) if base in ("addmm", "baddbmm") else (args[0], args[1])
        ka, kb = self._kind(a), self._kind(b)
        kinds = [ka, kb]
        op = "matmul" if (ka is not None and kb is not None) else "linear"
        rec = self._site(op)
        # a: [..., M, K], b: [..., K, N]
        M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
        batch = a.numel() // (M * K) if M * K else 0
        dense = batch * M * K * N
        driver = self._driver(kinds)
        acs = 0
        tensor = None
        if driver is not None and kinds[driver].kind != "real":  # type: ignore[union-attr]
            counts = kinds[driver].counts  # type: ignore[union-attr]
            tensor = a if driver == 0 else b
            fan_out = N if driver == 0 else M
            acs = int(round(float(counts.sum(dtype=torch.float64)))) * fan_out  # type: ignore[union-attr]
        weight = b if kb is None else (a if ka is None else None)
        act = a if ka is not None else b
        linear = weight is not None and _lin(self._meta.get(act))
        self._record(rec, kinds, driver, dense, acs, weight.numel() if weight is not None else 0, tensor, linear)

    def _count_conv(self, args: tuple, out: Tensor) -> None:
        x, w, _bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
        kx, kw = self._kind(x), self._kind(w)
        kinds = [kx, kw]
        rec = self._site("conv")
        ksize = math.prod(w.shape[2:])
        if transposed:
            dense = x.numel() * w.shape[1] * ksize
            c_out = w.shape[1] * groups
        else:
            dense = out.numel() * w.shape[1] * ksize
            c_out = w.shape[0]
        driver = self._driver(kinds)
        acs = 0
        tensor = None
        if driver == 0 and kx is not None and kx.kind != "real":
            tensor = x
            acs = self._conv_events(kx.counts, w, stride, padding, dilation, transposed, output_padding, groups, c_out)
        elif driver == 1 and kw is not None and kw.kind != "real":
            # An activation used as a convolution kernel (rare): count it densely as a MAC-free dynamic weight.
            tensor = w
            events = float(kw.counts.sum(dtype=torch.float64))  # type: ignore[union-attr]
            acs = int(round(events)) * (out.numel() // max(c_out, 1))
        weight = w if kw is None else (x if kx is None else None)
        act = x if kx is not None else w
        linear = weight is not None and _lin(self._meta.get(act))
        self._record(rec, kinds, driver, dense, acs, weight.numel() if weight is not None else 0, tensor, linear)

    @staticmethod
    def _conv_events(counts, w, stride, padding, dilation, transposed, output_padding, groups, c_out) -> int:
        """Σ over events of the weight taps each reaches inside the output: a convolution of the per-group spike
        counts with an all-ones kernel, times the output channels per group."""
        n, c_in = counts.shape[0], counts.shape[1]
        spatial = counts.shape[2:]
        per_group = counts.reshape(n, groups, c_in // groups, *spatial).sum(2).to(torch.float64)
        ones = torch.ones(groups, 1, *w.shape[2:], dtype=torch.float64, device=counts.device)
        reach = aten.convolution.default(
            per_group, ones, None, stride, padding, dilation, transposed, output_padding, groups
        )
        return int(round(float(reach.sum()))) * (c_out // groups)

    def _count_mask(self, a: Tensor, b: Tensor, out: Tensor) -> None:
        ka, kb = self._kind(a), self._kind(b)
        kinds = [ka, kb]
        rec = self._site("mask")
        dense = out.numel()
        driver = self._driver(kinds)
        acs = 0
        tensor = None
        if driver is not None and kinds[driver].kind != "real":  # type: ignore[union-attr]
            tensor = a if driver == 0 else b
            counts = kinds[driver].counts  # type: ignore[union-attr]
            # Each event reaches every output element it is broadcast to.
            fan_out = out.numel() // max(counts.numel(), 1)
            acs = int(round(float(counts.sum(dtype=torch.float64)))) * fan_out
        self._record(rec, kinds, driver, dense, acs, 0, tensor)
