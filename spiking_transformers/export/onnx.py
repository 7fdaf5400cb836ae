r"""ONNX export of any model of the library, checked by onnxruntime before the file is written.

What the exported graph is:

* eval mode, BatchNorm folded into the conv/linear that feeds it (:func:`~.fold_bn.fold_bn`), every IF / LIF /
  parametric-LIF neuron switched to the ``"traced"`` back end (the reference maths in 6 standard operators per step:
  Sub, Div, Add, GreaterOrEqual, Cast, Where), so that the time loop is unrolled over the model's ``T`` and
  onnxruntime runs it with no custom operator;
* input ``"input"``: ``[B, C, H, W]`` images (repeated over ``T`` inside the graph) or ``[T, B, C, H, W]`` event
  frames, as our models take them, with a dynamic batch axis;
* outputs ``"logits"`` ``[B, K]`` and ``"spike_counts"`` ``[B, n]``: the number of spikes each of the ``n`` neurons
  emitted for each sample over all time steps (their names are in the metadata ``neurons``), so that a deployment can
  report firing and so that the check below can count spikes that differ;
* metadata (``metadata_props``): model name, opset, input layout, ``T``, class names where known, neuron names, the
  library version.

The check (:func:`check_onnx`) runs the file in onnxruntime and compares it with the eager model on the example and on
every extra input given. In float64 the file must agree to 1e-9 relative wherever onnxruntime has double kernels for
every operator of the graph (its CPU provider has none for ``Conv``: then float64 cannot be checked there, and the
report says so). In float32 another summation order can move a membrane across its threshold, which changes that
sample's logits by more than rounding: the check requires at least 99 % of samples within ``1e-5`` relative and every
prediction equal, and reports the share of samples and of spikes that differ (never hidden).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..neurons import Neuron, set_backend
from .fold_bn import fold_bn

__all__ = ["OnnxCheck", "OnnxExport", "OnnxExportError", "export_onnx", "check_onnx", "prepare_for_export",
           "require_export_packages"]

DEFAULT_OPSET = 18
#: float32 agreement demanded by :func:`check_onnx`: per-sample relative tolerance and the share within it.
FLOAT32_RTOL = 1e-5
FLOAT32_MIN_SHARE = 0.99
FLOAT64_RTOL = 1e-9


class OnnxExportError(ValueError):
    """The export could not be made or did not pass its check (one line: what differs, by how much)."""


def require_export_packages(*names: str) -> None:
    """Raise ``ImportError`` naming the extra to install when an optional export package is missing."""
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise ImportError(
            f"export needs the optional package(s) {', '.join(missing)}: "
            "pip install 'spiking-transformers[export]'"
        )


@dataclass
class OnnxCheck:
    """How the exported file agreed with the eager model on one batch of inputs.

    Attributes:
        label: where the inputs came from (``"example"``, a fixture name, ...).
        dtype: ``"float32"`` or ``"float64"``.
        samples: batch size checked.
        max_rel_err: largest per-sample relative error of the logits (relative to that sample's largest logit).
        share_within: share of samples whose relative error is within the tolerance.
        predictions_equal: share of samples whose arg-max class is the same.
        spikes: total spikes the eager model emitted on the batch.
        spikes_differ: sum over neurons and samples of ``|count_onnx - count_eager|``.
        passed: whether the check's rule holds.
        note: why a check could not run (e.g. no double kernel), else empty.
    """

    label: str
    dtype: str
    samples: int = 0
    max_rel_err: float = float("nan")
    share_within: float = float("nan")
    predictions_equal: float = float("nan")
    spikes: int = 0
    spikes_differ: int = 0
    passed: bool = False
    note: str = ""

    def line(self) -> str:
        if self.note and not self.samples:
            return f"{self.label} ({self.dtype}): not checked: {self.note}"
        spike_share = self.spikes_differ / max(self.spikes, 1)
        return (
            f"{self.label} ({self.dtype}, {self.samples} samples): max rel err {self.max_rel_err:.2e}, "
            f"{100 * self.share_within:.1f} % within tolerance, {100 * self.predictions_equal:.1f} % same prediction, "
            f"{self.spikes_differ} of {self.spikes} spikes differ ({100 * spike_share:.4f} %)"
            f" -> {'ok' if self.passed else 'FAILED'}"
        )


@dataclass
class OnnxExport:
    """Result of :func:`export_onnx`: the file, how it was made and how it was checked."""

    path: Path
    opset: int
    input_layout: str
    input_shape: tuple[int, ...]
    T: int
    neurons: list[str]
    folded_bn: int
    checks: list[OnnxCheck] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


class _WithSpikeCounts(nn.Module):
    """Runs a model and also returns per-sample spike counts of every neuron ``[B, n]``.

    The counts are taken by forward hooks during the traced forward, so the exported graph carries the reductions.
    A neuron output is time-major ``[T, B, ...]``: its per-sample count sums every axis but the batch axis.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.neuron_names = [n for n, m in model.named_modules() if isinstance(m, Neuron)]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        counts: list[Tensor] = []
        handles = []
        batch_axis = 1 if x.dim() == 5 else 0
        batch = x.shape[batch_axis]

        def hook(mod: nn.Module, _inp: Any, out: Tensor) -> None:
            if out.dim() >= 2 and out.shape[1] == batch:
                per_sample = out.transpose(0, 1).reshape(batch, -1).sum(dim=1)
            elif out.dim() >= 1 and out.shape[0] % batch == 0:
                # time folded into the batch axis, time-major ([T*B, ...], as QKFormer's official last stage runs)
                per_sample = out.reshape(-1, batch, *out.shape[1:]).transpose(0, 1).reshape(batch, -1).sum(dim=1)
            else:
                raise OnnxExportError(f"neuron output {tuple(out.shape)} has no batch axis of size {batch}")
            counts.append(per_sample * float(getattr(mod, "spike_scale", 1.0)))

        for name in self.neuron_names:
            handles.append(self.model.get_submodule(name).register_forward_hook(hook))
        try:
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
        if not counts:
            return logits, logits.new_zeros(batch, 0)
        return logits, torch.stack(counts, dim=1)


def prepare_for_export(model: nn.Module, example: Tensor, *, fold_batchnorm: bool = True) -> tuple[nn.Module, int]:
    """An eval-mode copy ready for tracing: BatchNorm folded (when ``fold_batchnorm``), reference neurons.

    Returns:
        the copy and the number of BatchNorm layers folded.
    """
    prepared = copy.deepcopy(model).eval()
    for p in prepared.parameters():
        p.requires_grad_(False)
    folded = 0
    set_backend(prepared, "traced")  # the reference maths in the fewest graph operators
    if fold_batchnorm:
        example = example.to(next(prepared.parameters()).dtype)
        try:
            # fold_bn's own tolerance check is left to check_onnx, which compares the file with the unfolded model
            # sample by sample (in float32 a fold may flip a threshold crossing, which is what it counts)
            candidate = fold_bn(prepared, example, check=False)
            with torch.no_grad():
                candidate(example)
        except (ValueError, AttributeError, RuntimeError):
            # no conv/BN pair to find, or a model whose forward reads a BatchNorm's parameters itself (Meta-
            # SpikeFormer's RepConv pads with the BN's border value): exported unfolded
            candidate = prepared
        prepared = candidate
        folded = len(getattr(prepared, "folded_bn_pairs", ()))
    return prepared, folded


def _input_layout(model: nn.Module, example: Tensor) -> tuple[str, int]:
    """The layout string written into the metadata and the index of the batch axis."""
    if example.dim() == 5:
        return "[T, B, C, H, W]", 1
    if example.dim() == 4:
        return "[B, C, H, W]", 0
    raise OnnxExportError(f"example input must be [B, C, H, W] or [T, B, C, H, W], got shape {tuple(example.shape)}")


def _class_names(model: nn.Module, class_names: Sequence[str] | None) -> list[str] | None:
    if class_names is not None:
        return [str(c) for c in class_names]
    names = getattr(model, "class_names", None)
    return [str(c) for c in names] if names else None


def _onnx_export(wrapper: nn.Module, example: Tensor, path: Path, batch_axis: int, opset: int, exporter: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            # The TorchScript-based exporter: 5-8x faster to export than torch.export + onnxscript here, same graph
            # operators. What it records is checked below (input consumed) and in onnxruntime by the caller.
            axes = {"input": {batch_axis: "B"}, "logits": {0: "B"}, "spike_counts": {0: "B"}}
            torch.onnx.export(wrapper, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits", "spike_counts"], dynamic_axes=axes, opset_version=opset)
        elif exporter == "dynamo":
            program = torch.onnx.export(
                wrapper, (example,), dynamo=True, input_names=["input"], output_names=["logits", "spike_counts"],
                dynamic_shapes=({batch_axis: torch.export.Dim("batch", min=1)},), opset_version=opset,
                verbose=False,
            )
            if program is None:
                raise OnnxExportError("torch.onnx.export returned no program")
            program.save(str(path))
        else:
            raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if not any("input" in node.input for node in graph.node):
        raise OnnxExportError("the exported graph does not use its input (the tracer folded the network to a constant)")


def _set_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx(
    path: str | os.PathLike[str],
    model: nn.Module,
    inputs: Tensor,
    *,
    label: str = "example",
    rtol: float | None = None,
    threads: int | None = None,
) -> OnnxCheck:
    """Run ``path`` in onnxruntime on ``inputs`` and compare with the eager ``model`` (see the module docstring).

    Args:
        path: an ONNX file written by :func:`export_onnx` (outputs ``logits`` and ``spike_counts``).
        model: the eager model (any back end; it is run in eval mode on a copy).
        inputs: a batch in the model's layout; its dtype selects the float32 or float64 rule.
        label: name of the inputs in the report.
        rtol: per-sample relative tolerance (default 1e-9 in float64, 1e-5 in float32).
    """
    dtype = "float64" if inputs.dtype == torch.float64 else "float32"
    tol = rtol if rtol is not None else (FLOAT64_RTOL if dtype == "float64" else FLOAT32_RTOL)
    report = OnnxCheck(label=label, dtype=dtype)
    try:
        session = _session(Path(path), threads)
    except Exception as exc:  # onnxruntime: NOT_IMPLEMENTED for an operator in this dtype
        report.note = str(exc).splitlines()[0][:200]
        return report
    eager = _WithSpikeCounts(copy.deepcopy(model).eval())
    with torch.no_grad():
        ref_logits, ref_counts = eager(inputs)
    ort_logits, ort_counts = session.run(None, {"input": inputs.detach().cpu().numpy()})
    ort_logits = torch.from_numpy(ort_logits).to(ref_logits.dtype)
    ort_counts = torch.from_numpy(ort_counts).to(ref_counts.dtype)
    if ort_logits.shape != ref_logits.shape:
        raise OnnxExportError(f"onnxruntime logits {tuple(ort_logits.shape)} != eager {tuple(ref_logits.shape)}")
    flat_ref = ref_logits.reshape(ref_logits.shape[0], -1)
    flat_ort = ort_logits.reshape(ort_logits.shape[0], -1)
    scale = flat_ref.abs().amax(dim=1).clamp_min(torch.finfo(flat_ref.dtype).tiny)
    rel = (flat_ort - flat_ref).abs().amax(dim=1) / scale
    report.samples = int(flat_ref.shape[0])
    report.max_rel_err = float(rel.max())
    report.share_within = float((rel <= tol).double().mean())
    report.predictions_equal = float((flat_ort.argmax(1) == flat_ref.argmax(1)).double().mean())
    report.spikes = int(round(float(ref_counts.sum())))
    report.spikes_differ = int(round(float((ort_counts - ref_counts).abs().sum())))
    if dtype == "float64":
        report.passed = report.share_within == 1.0
    else:
        report.passed = report.share_within >= FLOAT32_MIN_SHARE and report.predictions_equal == 1.0
    return report


def export_onnx(
    model: nn.Module,
    example: Tensor,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    fold_batchnorm: bool = True,
    check: bool = True,
    check_inputs: dict[str, Tensor] | None = None,
    class_names: Sequence[str] | None = None,
    model_name: str | None = None,
    exporter: str = "torchscript",
) -> OnnxExport:
    """Export ``model`` to ONNX at ``path`` and check it in onnxruntime; refuse to write a file that disagrees.

    Args:
        model: any classifier of the library (left unchanged).
        example: a batch in the model's layout, ``[B, C, H, W]`` or ``[T, B, C, H, W]``; its dtype is the graph's.
        path: the ``.onnx`` file to write (written only when every check passes).
        opset: ONNX opset version.
        fold_batchnorm: fold eval BatchNorm into the conv/linear before it (fewer passes over every activation).
        check: run :func:`check_onnx` on ``example`` and every entry of ``check_inputs`` (name -> batch).
        class_names: written into the metadata (default: ``model.class_names`` where set).
        model_name: written into the metadata (default: ``model.model_name`` or the class name).
        exporter: ``"torchscript"`` (default: fast to export) or ``"dynamo"`` (``torch.export`` + onnxscript).

    Raises:
        OnnxExportError: the export failed or a check did not pass (the file is then not written).
        ImportError: onnx / onnxruntime / onnxscript missing (names the extra to install).
    """
    require_export_packages("onnx", *(("onnxscript",) if exporter == "dynamo" else ()),
                            *(("onnxruntime",) if check else ()))
    path = Path(path)
    layout, batch_axis = _input_layout(model, example)
    T = int(example.shape[0]) if example.dim() == 5 else int(getattr(model, "T", 1))
    prepared, folded = prepare_for_export(model, example, fold_batchnorm=fold_batchnorm)
    wrapper = _WithSpikeCounts(prepared)
    if example.shape[batch_axis] < 2:
        # a batch of 1 lets a tracer specialise the batch axis away; two samples keep it symbolic
        example = torch.cat([example, example], dim=batch_axis)
    name = model_name or getattr(model, "model_name", None) or type(model).__name__
    metadata = {
        "producer": "spiking-transformers",
        "model_name": str(name),
        "opset": str(opset),
        "input_layout": layout,
        "input_shape": json.dumps([("B" if i == batch_axis else int(s)) for i, s in enumerate(example.shape)]),
        "T": str(T),
        "dtype": str(example.dtype).replace("torch.", ""),
        "outputs": "logits [B, K]; spike_counts [B, n] (spikes per neuron over all time steps)",
        "neurons": json.dumps(wrapper.neuron_names),
        "batchnorm_folded": str(folded),
        "exporter": exporter,
    }
    names = _class_names(model, class_names)
    if names:
        metadata["class_names"] = json.dumps(names)
    from .. import __version__

    metadata["library_version"] = __version__

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        try:
            _onnx_export(wrapper, example, staged, batch_axis, opset, exporter)
        except OnnxExportError:
            raise
        except Exception as exc:
            raise OnnxExportError(f"torch.onnx.export failed: {str(exc).splitlines()[0][:300]}") from exc
        _set_metadata(staged, metadata)
        result = OnnxExport(path, opset, layout, tuple(example.shape), T, wrapper.neuron_names, folded,
                            metadata=metadata)
        if check:
            batches = {"example": example, **(check_inputs or {})}
            for label, batch in batches.items():
                report = check_onnx(staged, model, batch.to(example.dtype), label=label)
                result.checks.append(report)
                if not report.passed and not (report.note and not report.samples):
                    raise OnnxExportError(f"onnxruntime disagrees with the model, not written: {report.line()}")
                if report.note and not report.samples and example.dtype != torch.float64:
                    raise OnnxExportError(f"onnxruntime cannot run the exported graph: {report.note}")
        os.replace(staged, path)
    return result
