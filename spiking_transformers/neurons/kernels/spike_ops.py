r"""Linear, convolution and max-pool layers that keep spike inputs as ``uint8`` for backward.

A layer that follows a spiking neuron receives exact small integers (binary spikes, or the integer-valued residual
stream of Spikformer's SEW blocks). Autograd's ``linear`` / ``conv2d`` save that input in float32 for the weight
gradient, and ``max_pool2d`` saves its float input plus ``int64`` indices. These layers save the input as ``uint8``
instead (a quarter of the memory; an eighth of the pool's input + indices), and rebuild the float tensor in
backward. The forward calls the same kernels as the plain layers, so outputs are bit-identical; weight and input
gradients come from the same ATen backward kernels on the same values.

Each call checks that its input really is integer-valued in ``[0, 255]`` (:func:`as_uint8_if_integral`: one pass
that also writes the bytes when the compiled extension of :mod:`.cpp` is loaded, else a few passes); otherwise, or
when no gradient is needed, the plain layer runs.

:func:`compact_spike_saves` switches the ``nn.Linear`` / ``nn.Conv2d`` / ``nn.MaxPool2d`` modules of a model to these
classes (the same parameters and state-dict keys, by a change of class); ``restore=True`` switches them back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cpp import loaded_extension, pack_uint8_if_integral

__all__ = [
    "as_uint8_if_integral",
    "spike_linear",
    "spike_conv2d",
    "spike_max_pool2d",
    "spike_matmul",
    "spike_mul",
    "SpikeSavingLinear",
    "SpikeSavingConv2d",
    "SpikeSavingMaxPool2d",
    "compact_spike_saves",
]


def as_uint8_if_integral(x: Tensor) -> Tensor | None:
    """``x`` as ``uint8`` when every element is an integer in ``[0, 255]`` (exactly representable), else ``None``.

    With the compiled extension of :mod:`.cpp` loaded (the ``cpp`` back end loads it on first use), the check and
    the pack are one pass over ``x`` that stops early on a real-valued input; otherwise a cast, a cast back and a
    comparison (after a look at the first elements, which rejects real-valued inputs at once).
    """
    if not x.is_floating_point():
        return None
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and loaded_extension() is not None:
        return pack_uint8_if_integral(x)
    head = x.reshape(-1)[:64] if x.is_contiguous() else None
    if head is not None and not torch.equal(head.to(torch.uint8).to(x.dtype), head):
        return None
    xu = x.to(torch.uint8)
    return xu if torch.equal(xu.to(x.dtype), x) else None


class _LinearU8(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, xu: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(xu, weight)
        ctx.x_dtype = x.dtype
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        xu, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        g2 = grad.reshape(-1, grad.shape[-1])  # [M, out]
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(weight)
        if ctx.needs_input_grad[2]:
            grad_w = g2.t().mm(xu.reshape(-1, xu.shape[-1]).to(ctx.x_dtype))
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = g2.sum(0)
        return grad_x, None, grad_w, grad_b


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def spike_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` that saves an integer-valued input as ``uint8`` for backward. ``[..., in] -> [..., out]``."""
    if _needs_grad(weight) and x.dim() >= 2:
        xu = as_uint8_if_integral(x.detach())
        if xu is not None:
            return _LinearU8.apply(x, xu, weight, bias)
    return F.linear(x, weight, bias)


class _Conv2dU8(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, xu, weight, bias, stride, padding, dilation, groups):  # type: ignore[override]
        ctx.save_for_backward(xu, weight)
        ctx.conf = (x.dtype, bias is not None, stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        xu, weight = ctx.saved_tensors
        dtype, has_bias, stride, padding, dilation, groups = ctx.conf
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[2], has_bias and ctx.needs_input_grad[3]]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, xu.to(dtype), weight, [weight.shape[0]] if has_bias else None,
            stride, padding, dilation, False, [0, 0], groups, mask,
        )
        return grad_x, None, grad_w, grad_b, None, None, None, None


def spike_conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` (zero padding) saving an integer-valued input as ``uint8``. ``[B, C, H, W] -> [B, C', H', W']``."""
    if _needs_grad(conv.weight, conv.bias) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str):
        xu = as_uint8_if_integral(x.detach())
        if xu is not None:
            return _Conv2dU8.apply(
                x, xu, conv.weight, conv.bias, list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups
            )
    return nn.Conv2d.forward(conv, x)


class _MaxPool2dU8(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, xu, kernel_size, stride, padding, dilation, ceil_mode):  # type: ignore[override]
        ctx.save_for_backward(xu)
        ctx.conf = (x.dtype, kernel_size, stride, padding, dilation, ceil_mode)
        return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (xu,) = ctx.saved_tensors
        dtype, kernel_size, stride, padding, dilation, ceil_mode = ctx.conf
        x = xu.to(dtype)
        # The indices are recomputed by the same kernel autograd would have run, so ties route identically.
        _, idx = torch.ops.aten.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode)
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad, x, kernel_size, stride, padding, dilation, ceil_mode, idx
        )
        return grad_x, None, None, None, None, None, None


def _pair(v) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


def spike_max_pool2d(x: Tensor, pool: nn.MaxPool2d) -> Tensor:
    """``pool(x)`` saving an integer-valued input as ``uint8`` and no indices. ``[B, C, H, W] -> [B, C, H', W']``."""
    if _needs_grad(x) and not pool.return_indices:
        xu = as_uint8_if_integral(x.detach())
        if xu is not None:
            stride = pool.stride if pool.stride is not None else pool.kernel_size
            return _MaxPool2dU8.apply(
                x, xu, _pair(pool.kernel_size), _pair(stride), _pair(pool.padding), _pair(pool.dilation),
                pool.ceil_mode,
            )
    return nn.MaxPool2d.forward(pool, x)


class _BinaryOpU8(torch.autograd.Function):
    """``a @ b`` or ``a * b`` whose operands are saved as ``uint8`` (float ones where they are not integral)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, au: Tensor | None, bu: Tensor | None, op: str):  # type: ignore[override]
        ctx.save_for_backward(au if au is not None else a, bu if bu is not None else b)
        ctx.dtype, ctx.op = a.dtype, op
        return torch.matmul(a, b) if op == "matmul" else torch.mul(a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        a, b = (t.to(ctx.dtype) for t in ctx.saved_tensors)
        ga = gb = None
        if ctx.op == "matmul":  # batched 3-D+ operands, the formulas of matmul's own backward
            if ctx.needs_input_grad[0]:
                ga = grad.matmul(b.mT)
            if ctx.needs_input_grad[1]:
                gb = a.mT.matmul(grad)
        else:
            if ctx.needs_input_grad[0]:
                ga = _sum_to(grad * b, a.shape)
            if ctx.needs_input_grad[1]:
                gb = _sum_to(grad * a, b.shape)
        return ga, gb, None, None, None


def _sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    return g if g.shape == shape else g.sum_to_size(shape)


def _binary_op(a: Tensor, b: Tensor, op: str) -> Tensor:
    if _needs_grad(a, b) and a.dtype == b.dtype and a.is_floating_point():
        au, bu = as_uint8_if_integral(a.detach()), as_uint8_if_integral(b.detach())
        if au is not None or bu is not None:
            return _BinaryOpU8.apply(a, b, au, bu, op)
    return torch.matmul(a, b) if op == "matmul" else torch.mul(a, b)


def spike_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` (both at least 3-D, same batch shape) saving integer-valued operands as ``uint8`` for backward.

    For spiking attention: ``Q K^T`` of binary ``Q, K`` is a matrix of small counts, so both products of
    ``(Q K^T) V`` keep their operands as bytes instead of float32.
    """
    if a.dim() < 3 or b.dim() < 3 or a.shape[:-2] != b.shape[:-2]:
        return torch.matmul(a, b)
    return _binary_op(a, b, "matmul")


def spike_mul(a: Tensor, b: Tensor) -> Tensor:
    """``a * b`` (broadcasting) saving integer-valued operands as ``uint8`` for backward (SDT's ``K * V``)."""
    return _binary_op(a, b, "mul")


class SpikeSavingLinear(nn.Linear):
    """``nn.Linear`` that saves an integer-valued input as ``uint8`` (see :func:`spike_linear`)."""

    def forward(self, x: Tensor) -> Tensor:
        return spike_linear(x, self.weight, self.bias)


class SpikeSavingConv2d(nn.Conv2d):
    """``nn.Conv2d`` that saves an integer-valued input as ``uint8`` (see :func:`spike_conv2d`)."""

    def forward(self, x: Tensor) -> Tensor:
        return spike_conv2d(x, self)


class SpikeSavingMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that saves an integer-valued input as ``uint8`` and recomputes indices in backward."""

    def forward(self, x: Tensor) -> Tensor:
        return spike_max_pool2d(x, self)


_SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: SpikeSavingLinear,
    nn.Conv2d: SpikeSavingConv2d,
    nn.MaxPool2d: SpikeSavingMaxPool2d,
}


def compact_spike_saves(model: nn.Module, restore: bool = False) -> int:
    """Switch every exact ``nn.Linear`` / ``nn.Conv2d`` / ``nn.MaxPool2d`` of ``model`` to its spike-saving class.

    Parameters, buffers and state-dict keys are unchanged; layers whose input is not integer-valued behave exactly
    as before. ``restore=True`` switches back. Returns the number of modules switched.
    """
    table = {v: k for k, v in _SWAPS.items()} if restore else _SWAPS
    n = 0
    for module in model.modules():
        new = table.get(type(module))
        if new is not None:
            module.__class__ = new
            n += 1
    return n
