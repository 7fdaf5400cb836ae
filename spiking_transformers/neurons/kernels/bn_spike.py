r"""BatchNorm + spiking neuron in one autograd node that keeps only the BatchNorm *input* for backward.

Every spiking transformer of the Spikformer lineage computes ``S = SN(BN(W x))`` again and again: the conv / linear
output ``z = W x`` goes through a training-mode BatchNorm and then a multi-step neuron. Plain autograd keeps two
float tensors of the size of ``z`` per such layer: BatchNorm saves its input ``z``, and the neuron saves its
pre-fire membrane ``H`` (the ``fused`` and ``cpp`` back ends). :func:`bn_spike` runs the pair as one node that
saves ``z`` (and the per-channel batch mean and inverse standard deviation) only. Its backward

1. recomputes ``Y = BN(z)`` with the same native kernel as the forward (``torch.native_batch_norm`` on the same
   input, so ``Y``, and with it every membrane and spike, is bit-identical to the forward's; checked by comparing
   the recomputed batch statistics with the saved ones),
2. reruns the neuron's own forward on ``Y`` with gradient and takes its own backward (the ``fused`` recursion of
   :mod:`.fused` or the compiled one of :mod:`.cpp`, whichever the neuron uses), giving ``dL/dY`` (and PLIF's
   ``dL/dw``) exactly as the unfused graph does,
3. runs ``native_batch_norm_backward``, the function autograd's ``NativeBatchNormBackward0`` calls.

So outputs, running statistics and gradients are those of ``neuron(bn(z))``, at the cost of one more BatchNorm and
neuron forward per layer in backward, and the largest saved tensor of each layer (``H``) is gone.

Usage (the call sites of ``layers/spikformer_blocks.py`` and ``layers/sdt_blocks.py``)::

    z = conv(fold_time(x))                           # [T*B, C, H, W]  (or linear rows [T*B*N, C])
    s = bn_spike(z, bn, neuron, (T, B, C, H, W))     # == neuron(bn(z).reshape(T, B, C, H, W))

The entry point is a function of the BN input, the two modules and the neuron's input shape rather than a new
argument of the neuron's ``forward``: the neuron modules keep their signature (``[T, B, ...] -> spikes``), and the
decision whether to fuse needs both modules. The neuron is still called through ``nn.Module.__call__`` (its
``forward`` is swapped for the fused computation for the duration of that one call), so its forward hooks fire and
see its output spikes, which is what the firing-rate monitors (``analysis/firing.py``, ``training/records.py``), the
spike recorder of ``analysis/precision.py`` and the distillation taps (``training/distill.py``) rely on; what such a
hook receives as the neuron's *input* is then the BatchNorm input ``z``. The BatchNorm module itself is not called.

Fusion happens only where it is exact and changes nothing observable (otherwise the call is
``neuron(bn(z).reshape(shape))`` through both modules' ``__call__``):

* gradient mode on and something (``z``, the BN affine parameters, PLIF's ``w``) requires a gradient;
* ``bn`` is a plain ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` in training mode, affine, with no hooks of its own and
  no global module hooks (a hook would expect to see the BN call), and at least two values per channel;
* ``neuron`` is a plain :class:`~spiking_transformers.neurons.LIF`, ``IF`` or ``ParametricLIF`` with back end
  ``"fused"`` or ``"cpp"`` (the ``"torch"`` reference stays the step-by-step graph), not fusion-disabled;
* a CPU tensor: there ``nn.BatchNorm`` runs ``native_batch_norm``, the kernel the fused node runs. On CUDA it runs
  cuDNN for most inputs, whose results differ in the last bits (measured on an H200: identical spikes but running
  statistics and gradients off by rounding for ``BatchNorm2d``), so CUDA keeps the plain path until the fused node
  runs the same cuDNN kernel (``_batch_norm_impl_index`` and its backward). What it would save there, measured on
  the H200 (float32, batch 32, live peak from ``torch.cuda.max_memory_allocated``): Spikformer-4-384 2.58 -> 2.05 GB,
  SDT-2-512 2.12 -> 1.85 GB;
* not under ``torch.compile`` tracing.

So evaluation, ``torch.no_grad``, BN folding (``export/fold_bn.py`` traces an eval model) and the op counter of
``analysis/ops.py`` (no grad) all take the plain path.

The switch: :func:`set_bn_fusion` turns fusion on or off for every neuron of a model (the flag is the plain
attribute ``fuse_bn`` of each neuron module, not part of the state dict); the default is
:data:`BN_FUSION_DEFAULT` (on). ``spiking-transformers bench MODEL --no-fuse-bn`` measures the difference.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..lif import IF, LIF, ParametricLIF, _IntegrateFireBase

__all__ = ["bn_spike", "can_fuse_bn_spike", "set_bn_fusion", "BN_FUSION_DEFAULT", "FUSABLE_BACKENDS"]

#: Whether neurons fuse with the BatchNorm before them when nothing has been set (see :func:`set_bn_fusion`).
BN_FUSION_DEFAULT = True
#: Neuron back ends that can be fused (their training path saves a membrane that recomputation replaces).
FUSABLE_BACKENDS = ("fused", "cpp")

_NEURON_TYPES = (LIF, IF, ParametricLIF)  # exact types: a subclass may have a forward of its own
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
_warned_stats = [False]


def set_bn_fusion(model: nn.Module, enabled: bool = True) -> int:
    """Allow (``True``) or forbid BatchNorm + neuron fusion for every IF / LIF / PLIF neuron of ``model``.

    Returns the number of neurons set. Results are the same either way; fusion saves memory in training.
    """
    n = 0
    for m in model.modules():
        if isinstance(m, _IntegrateFireBase):
            m.fuse_bn = bool(enabled)
            n += 1
    return n


def _has_global_hooks() -> bool:
    from torch.nn.modules import module as _module

    return bool(
        _module._global_forward_hooks or _module._global_forward_pre_hooks or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


def can_fuse_bn_spike(x: Tensor, bn: nn.Module, neuron: nn.Module) -> bool:
    """Whether :func:`bn_spike` would fuse ``neuron(bn(x))`` (the conditions of the module docstring)."""
    if type(neuron) not in _NEURON_TYPES or not getattr(neuron, "fuse_bn", BN_FUSION_DEFAULT):
        return False
    if neuron.backend not in FUSABLE_BACKENDS or "forward" in vars(neuron):
        return False
    if type(bn) not in _BN_TYPES or not bn.training or not bn.affine:
        return False
    if bn._forward_hooks or bn._forward_pre_hooks or bn._backward_hooks or bn._backward_pre_hooks:
        return False
    if type(x) not in (Tensor, nn.Parameter):  # fx proxies, tensor subclasses: the plain path
        return False
    if x.device.type != "cpu" or not x.is_floating_point() or x.dtype != bn.weight.dtype:
        return False
    if x.dim() < 2 or x.numel() <= x.shape[1]:
        return False  # (one value per channel: let BatchNorm raise its own error)
    if bn.track_running_stats and bn.running_mean is None:
        return False
    if not torch.is_grad_enabled() or torch.compiler.is_compiling() or _has_global_hooks():
        return False
    w = getattr(neuron, "w", None)
    w_grad = w is not None and w.requires_grad
    return bool(x.requires_grad or bn.weight.requires_grad or bn.bias.requires_grad or w_grad)


def _momentum(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """Advance ``num_batches_tracked`` and return the running-average factor, exactly as ``_BatchNorm.forward``."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return factor


class _BNSpike(torch.autograd.Function):
    """``spikes = neuron(BN_train(x).reshape(shape))``; saves ``x``, the batch statistics and the parameters."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        plif_w: Tensor | None,
        bn: nn.modules.batchnorm._BatchNorm,
        neuron: _IntegrateFireBase,
        shape: tuple[int, ...],
        momentum: float,
    ) -> Tensor:
        track = bn.track_running_stats
        # The kernel (and the running-statistics update, in place) that F.batch_norm runs in training mode on CPU.
        y, mean, invstd = torch.native_batch_norm(
            x, weight, bias, bn.running_mean if track else None, bn.running_var if track else None, True, momentum,
            bn.eps,
        )
        # Grad mode is off inside Function.forward: the neuron takes its inference path and saves no membrane.
        spikes = type(neuron).forward(neuron, y.reshape(shape))
        ctx.save_for_backward(x, weight, bias, mean, invstd, plif_w)
        ctx.neuron, ctx.shape, ctx.eps = neuron, shape, bn.eps
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_spikes: Tensor):  # type: ignore[override]
        x, weight, bias, mean, invstd, plif_w = ctx.saved_tensors
        neuron: _IntegrateFireBase = ctx.neuron
        # Recompute the forward's BN output with the same kernel on the same input (no running statistics).
        y, mean2, invstd2 = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, ctx.eps)
        if not (torch.equal(mean2, mean) and torch.equal(invstd2, invstd)) and not _warned_stats[0]:
            _warned_stats[0] = True  # e.g. a different thread count between forward and backward
            warnings.warn(
                "bn_spike: the recomputed BatchNorm statistics differ from the forward's in the last bits; "
                "surrogate gradients are evaluated at membranes that may differ by rounding",
                RuntimeWarning,
                stacklevel=2,
            )
        need_w = plif_w is not None and ctx.needs_input_grad[3]
        with torch.enable_grad():
            y_in = y.reshape(ctx.shape).detach().requires_grad_()
            # The neuron's own training path (fused / cpp node saving H) and its own backward.
            spikes = type(neuron).forward(neuron, y_in)
            inputs = (y_in, neuron.w) if need_w else (y_in,)
            grads = torch.autograd.grad(spikes, inputs, grad_spikes)
        del spikes, y
        grad_y = grads[0].reshape(x.shape)
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad_y, x, weight, None, None, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3])
        )
        return gx, gw, gb, (grads[1] if need_w else None), None, None, None, None


@contextlib.contextmanager
def _forward_replaced(module: nn.Module, forward: Callable[..., Tensor]) -> Iterator[None]:
    """Let ``module.__call__`` run ``forward`` (an instance attribute shadows the class method) for one call."""
    module.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        del module.forward


def bn_spike(x: Tensor, bn: nn.Module, neuron: nn.Module, shape: Sequence[int]) -> Tensor:
    """``neuron(bn(x).reshape(shape))``, fused in training so that only ``x`` is saved for backward.

    Args:
        x: the BatchNorm input as BatchNorm sees it, with time folded into the leading axis: ``[T*B, C, H, W]``
            (``BatchNorm2d``), or token rows ``[T*B*N, C]`` (``BatchNorm1d``).
        bn: the BatchNorm module.
        neuron: the neuron module (any neuron: unfusable ones take the plain path).
        shape: the neuron's time-major input shape, ``[T, ...]`` with as many elements as ``x``
            (``(T, B, C, H, W)``, ``(T, B, N, C)``).

    Returns:
        spikes of ``shape``, bit-identical to the plain computation; running statistics are updated identically
        and gradients are those of the plain graph.
    """
    if not can_fuse_bn_spike(x, bn, neuron):
        # sizes stay as given (symbolic under torch.export, so that an exported batch axis stays dynamic)
        return neuron(bn(x).reshape(tuple(shape)))
    shape = tuple(int(s) for s in shape)

    def fused_forward(z: Tensor) -> Tensor:
        momentum = _momentum(bn)  # type: ignore[arg-type]
        return _BNSpike.apply(z, bn.weight, bn.bias, getattr(neuron, "w", None), bn, neuron, shape, momentum)

    with _forward_replaced(neuron, fused_forward):
        return neuron(x)
