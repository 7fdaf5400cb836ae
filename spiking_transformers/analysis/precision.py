"""How far a model's forward pass in a lower precision drifts from a float64 reference, spike by spike.

A spiking network is a chain of threshold (or rounding) decisions, so a rounding error does not stay small: a
membrane potential that lands on the other side of the threshold flips a spike, and the flipped spike changes every
input downstream. :func:`compare_precision` measures that drift on given inputs. It runs deep copies of the model in
eval mode, once in the reference dtype (float64) and once per tested precision, records the integer spike levels of
every :class:`~spiking_transformers.neurons.Neuron` module through forward hooks (``output * spike_scale``: 0/1 for
binary neurons, ``0..D`` for multi-level ones) and compares them element by element with the reference, together with
the logits and the top-1 predictions.

Two ways to run in a 16-bit float are compared, because they are not the same computation:

- ``"cast"``: ``model.to(dtype)`` and the input cast too; every op (BatchNorm, LayerNorm, the membrane update, the
  mean over time) runs in that dtype.
- ``"autocast"``: float32 weights under ``torch.autocast(device, dtype)``; only the ops on autocast's lower-precision
  list (convolutions, linear layers, matmuls) run in the 16-bit dtype, the rest in float32. This is how the official
  SDT V2, V3 and QSD code evaluates (fp16 autocast on a GPU).

float32 and float64 have only the ``"cast"`` form. What the library supports, and the measured figures, are in
``docs/precision.md``.

Definitions (our reading of "spike agreement"): it is the fraction of neuron output elements (every time step,
sample and channel) whose integer level equals the reference's; as most elements are silent in both runs, the
agreement among the elements where either run fires (:attr:`NeuronAgreement.active_agreement`) is reported as well.
The comparison is end to end: a neuron's agreement includes the effect of every flip upstream of it.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import Tensor, nn

from ..neurons import Neuron

__all__ = [
    "DTYPES",
    "MODES",
    "NeuronAgreement",
    "PrecisionResult",
    "PrecisionReport",
    "compare_precision",
]

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
MODES = ("cast", "autocast")
# Spike levels are small integers. ``output * spike_scale`` of a 16-bit run can miss the integer by a rounding of
# ``k / norm`` (a few 1e-3 for a norm that is no power of two); a wrong ``spike_scale`` misses it by far more.
_INTEGER_TOL = 0.1


@dataclass(frozen=True)
class NeuronAgreement:
    """Agreement of one neuron module's spikes with the reference (all its calls pooled).

    Attributes:
        name: qualified module name.
        elements: output elements compared (all calls, time steps, samples).
        agreement: fraction of elements whose integer level equals the reference's.
        active_agreement: the same among elements where the reference or the tested run fires (1.0 if neither does).
        ref_spikes: total integer spikes of the reference.
        spikes: total integer spikes of the tested run.
        max_level_diff: largest ``|level - reference level|`` (1 at most for binary neurons).
    """

    name: str
    elements: int
    agreement: float
    active_agreement: float
    ref_spikes: int
    spikes: int
    max_level_diff: int


@dataclass
class PrecisionResult:
    """One tested precision against the reference.

    Attributes:
        label: ``"<dtype>/<mode>"``, e.g. ``"bfloat16/autocast"``.
        dtype, mode: what ran (see :data:`DTYPES`, :data:`MODES`).
        error: the exception text if the forward pass failed (then every figure below is NaN / empty).
        output_dtype: dtype of the model's output.
        neurons: per-neuron agreement, in the order the neurons first ran.
        spike_agreement: fraction of all neuron output elements (all neurons pooled) equal to the reference.
        active_spike_agreement: the same among elements where either run fires.
        spike_count_rel_diff: ``|total spikes - reference total| / reference total``.
        logit_max_abs_err: ``max |out - ref|``.
        logit_rel_err: ``max |out - ref| / max |ref|`` (the parity tests' measure).
        top1_agreement: fraction of samples (and time steps, for per-step outputs) with the same arg-max.
    """

    label: str
    dtype: str
    mode: str
    error: str | None = None
    output_dtype: str = ""
    neurons: dict[str, NeuronAgreement] = field(default_factory=dict)
    spike_agreement: float = float("nan")
    active_spike_agreement: float = float("nan")
    spike_count_rel_diff: float = float("nan")
    logit_max_abs_err: float = float("nan")
    logit_rel_err: float = float("nan")
    top1_agreement: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def min_neuron_agreement(self) -> float:
        return min((n.agreement for n in self.neurons.values()), default=float("nan"))

    @property
    def first_divergent(self) -> str | None:
        """The first neuron (in execution order) with a spike that differs from the reference, or ``None``."""
        return next((n.name for n in self.neurons.values() if n.agreement < 1.0), None)


@dataclass
class PrecisionReport:
    """Results of :func:`compare_precision`, keyed by label (``"float32/cast"``, ``"bfloat16/autocast"``, ...)."""

    reference: str
    results: dict[str, PrecisionResult]

    def __getitem__(self, label: str) -> PrecisionResult:
        return self.results[label]

    def table(self) -> str:
        """A Markdown table, one row per tested precision."""
        rows = [
            f"| precision (vs {self.reference}) | spike agreement | active-spike agreement | spike count diff "
            "| logit max abs err | logit rel err | top-1 agreement | first divergent neuron |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in self.results.values():
            if not r.ok:
                rows.append(f"| {r.label} | failed: {r.error} | | | | | | |")
                continue
            rows.append(
                f"| {r.label} | {r.spike_agreement:.4%} | {r.active_spike_agreement:.2%} | "
                f"{r.spike_count_rel_diff:.2%} | {r.logit_max_abs_err:.2e} | {r.logit_rel_err:.2e} | "
                f"{r.top1_agreement:.0%} | {r.first_divergent or '-'} |"
            )
        return "\n".join(rows)


def _dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None


class _SpikeRecorder:
    """Forward hooks that keep every neuron call's integer spike levels ``[T, B, ...]`` (int16), per module name."""

    def __init__(self, model: nn.Module) -> None:
        self.levels: dict[str, list[Tensor]] = {}
        self._handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if isinstance(module, Neuron)
        ]

    def _hook(self, name: str):
        def hook(module: Neuron, _inp, out: Tensor) -> None:
            levels = out.detach().double() * module.spike_scale
            rounded = torch.round(levels)
            off = float((levels - rounded).abs().max()) if levels.numel() else 0.0
            if off > _INTEGER_TOL:
                # Not integer spikes: the neuron's spike_scale is wrong, or this is no spike output at all.
                raise ValueError(f"neuron {name!r}: output * spike_scale is not integer (off by {off:.3g})")
            # int16: levels are 0..max_level (at most a few dozen), and a quarter of the memory of float64.
            self.levels.setdefault(name, []).append(rounded.clamp(-(2**15), 2**15 - 1).to(torch.int16))

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _run(model: nn.Module, x: Tensor, dtype: torch.dtype, mode: str, method: str) -> tuple[Tensor, _SpikeRecorder]:
    """Forward a deep copy of ``model`` in ``dtype`` / ``mode`` (eval, no grad); returns its output and spikes."""
    weight_dtype = torch.float32 if mode == "autocast" else dtype
    clone = copy.deepcopy(model).to(weight_dtype).eval()
    recorder = _SpikeRecorder(clone)
    ctx = torch.autocast(x.device.type, dtype=dtype) if mode == "autocast" else nullcontext()
    try:
        with torch.no_grad(), ctx:
            out = getattr(clone, method)(x.to(weight_dtype) if x.is_floating_point() else x)
    finally:
        recorder.remove()
    return out, recorder


def _compare(
    label: str, dtype: str, mode: str, out: Tensor, rec: _SpikeRecorder, ref_out: Tensor, ref: _SpikeRecorder
) -> PrecisionResult:
    """Element-wise comparison of one run's spikes and output with the reference run's."""
    if set(rec.levels) != set(ref.levels):
        raise RuntimeError(f"{label}: neurons that ran differ from the reference's")
    neurons: dict[str, NeuronAgreement] = {}
    tot = dict(elements=0, equal=0, active=0, active_equal=0, ref_spikes=0, spikes=0)
    for name, ref_calls in ref.levels.items():
        calls = rec.levels[name]
        if len(calls) != len(ref_calls) or any(a.shape != b.shape for a, b in zip(calls, ref_calls)):
            raise RuntimeError(f"{label}: neuron {name!r} ran a different number of times or shapes")
        a = torch.cat([c.flatten() for c in calls]).int()
        b = torch.cat([c.flatten() for c in ref_calls]).int()
        equal = a == b
        active = (a != 0) | (b != 0)
        n = dict(
            elements=a.numel(),
            equal=int(equal.sum()),
            active=int(active.sum()),
            active_equal=int((equal & active).sum()),
            ref_spikes=int(b.sum()),
            spikes=int(a.sum()),
        )
        for k in tot:
            tot[k] += n[k]
        neurons[name] = NeuronAgreement(
            name=name,
            elements=n["elements"],
            agreement=n["equal"] / max(n["elements"], 1),
            active_agreement=n["active_equal"] / n["active"] if n["active"] else 1.0,
            ref_spikes=n["ref_spikes"],
            spikes=n["spikes"],
            max_level_diff=int((a - b).abs().max()) if a.numel() else 0,
        )
    o, r = out.detach().double(), ref_out.detach().double()
    abs_err = float((o - r).abs().max())
    return PrecisionResult(
        label=label,
        dtype=dtype,
        mode=mode,
        output_dtype=str(out.dtype).removeprefix("torch."),
        neurons=neurons,
        spike_agreement=tot["equal"] / max(tot["elements"], 1),
        active_spike_agreement=tot["active_equal"] / tot["active"] if tot["active"] else 1.0,
        spike_count_rel_diff=abs(tot["spikes"] - tot["ref_spikes"]) / max(tot["ref_spikes"], 1),
        logit_max_abs_err=abs_err,
        logit_rel_err=abs_err / max(float(r.abs().max()), 1e-300),
        top1_agreement=float((o.argmax(-1) == r.argmax(-1)).double().mean()),
    )


def compare_precision(
    model: nn.Module,
    x: Tensor,
    dtypes: Iterable[str] = ("float32", "bfloat16"),
    reference: str = "float64",
    *,
    modes: Iterable[str] = MODES,
    method: str = "forward",
) -> PrecisionReport:
    """Compare the eval forward pass of ``model`` in lower precisions with a reference precision, spike by spike.

    ``model`` is not changed: each run uses a deep copy, converted to the run's dtype and put in eval mode. Runs that
    raise (an op without a kernel for that dtype) are recorded with their error instead of stopping the comparison.

    Args:
        model: any model built from the library's neurons (every neuron module a
            :class:`~spiking_transformers.neurons.Neuron`), with weights in any float dtype.
        x: input batch (``[B, C, H, W]`` images or ``[T, B, C, H, W]`` event frames); cast to each run's dtype.
        dtypes: precisions to test, names in :data:`DTYPES`. Giving ``reference`` itself checks determinism
            (it must agree 100 %).
        reference: the reference precision (``"float64"``, in which the official fixtures were made).
        modes: for float16 / bfloat16, which of ``"cast"`` (``model.to(dtype)``) and ``"autocast"`` (float32 weights
            under ``torch.autocast``) to run; float32 and float64 always run as ``"cast"`` only.
        method: the model method to call (``"forward"`` -> ``[B, K]``, or ``"forward_timesteps"`` -> ``[T, B, K]``).

    Returns:
        a :class:`PrecisionReport` whose results are keyed ``"<dtype>/<mode>"``.
    """
    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}, got {modes}")
    dtypes = tuple(dtypes)
    for name in dtypes:
        _dtype(name)  # fail on a bad name before the (possibly long) reference run
    ref_dtype = _dtype(reference)
    ref_out, ref_rec = _run(model, x, ref_dtype, "cast", method)
    if not ref_rec.levels:
        raise ValueError("compare_precision: the model has no spiking_transformers.neurons.Neuron module")
    results: dict[str, PrecisionResult] = {}
    for name in dtypes:
        dtype = _dtype(name)
        run_modes = modes if dtype in (torch.float16, torch.bfloat16) else ("cast",)
        for mode in run_modes:
            label = f"{name}/{mode}"
            try:
                out, rec = _run(model, x, dtype, mode, method)
            except (RuntimeError, NotImplementedError, TypeError) as err:
                error = f"{type(err).__name__}: {err}"
                results[label] = PrecisionResult(label=label, dtype=name, mode=mode, error=error)
                continue
            results[label] = _compare(label, name, mode, out, rec, ref_out, ref_rec)
    return PrecisionReport(reference=reference, results=results)
