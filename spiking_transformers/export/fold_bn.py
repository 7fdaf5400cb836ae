r"""Fold eval-mode BatchNorm into the convolution or linear map that feeds it.

At inference a BatchNorm is an affine map per channel, ``BN(z) = s (z - mu) + beta`` with
``s = gamma / sqrt(var + eps)``, so ``BN(W x + b) = (s W) x + (s (b - mu) + beta)``: the conv/linear gets the scaled
weight and a bias, and the BN becomes ``nn.Identity``. One fewer pass over every activation map.

Which BN follows which layer is found by running the model once on an example input and watching the tensors: a
``BatchNorm1d/2d`` whose input shares storage with the output of an ``nn.Conv2d`` / ``nn.Linear`` called just
before it is paired with that layer (the channel axis is checked to be the conv's / linear's output axis, so a
reshaped or transposed output is paired only when its channels still line up). The folded model is then run on the
same input and compared with the original, so a layer whose output also went somewhere else (a pairing that
folding would break) is caught, not silently wrong.

Spikes may in principle flip where a membrane lies within rounding of a threshold; in float64 that does not
happen in practice (the tests check logits to 1e-12 relative).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["fold_bn", "find_conv_bn_pairs", "example_input"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_LAYERS = (nn.Conv2d, nn.Linear)


def example_input(model: nn.Module, batch_size: int = 1) -> Tensor:
    """A random input for ``model``: ``[B, C, H, W]`` images (``[T, B, C, H, W]`` for event models).

    ``C`` is the ``in_channels`` of the first ``nn.Conv2d``; ``H, W`` come from ``model.img_size``.
    """
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or not hasattr(model, "img_size"):
        raise ValueError("cannot build an example input for this model; pass one explicitly")
    size = model.img_size
    h, w = (size, size) if isinstance(size, int) else size
    dtype = first.weight.dtype
    g = torch.Generator().manual_seed(0)
    shape = (batch_size, first.in_channels, h, w)
    if getattr(model, "input_kind", "image") == "events":
        shape = (int(model.T),) + shape
    return torch.rand(shape, generator=g, dtype=dtype)


def find_conv_bn_pairs(model: nn.Module, example: Tensor) -> list[tuple[str, str]]:
    """Names ``(layer, bn)`` of each BatchNorm fed directly by a Conv2d/Linear, found by one forward of ``example``."""
    names = {m: n for n, m in model.named_modules()}
    last_out: dict[int, tuple[nn.Module, Tensor]] = {}  # storage pointer -> (layer, its output)
    pairs: list[tuple[str, str]] = []
    handles = []

    def on_layer(mod: nn.Module, inputs, out: Tensor) -> None:
        last_out[out.untyped_storage().data_ptr()] = (mod, out)

    def on_bn(mod: nn.Module, inputs) -> None:
        z = inputs[0]
        hit = last_out.get(z.untyped_storage().data_ptr())
        if hit is None:
            return
        layer, out = hit
        if isinstance(layer, nn.Conv2d):
            ok = isinstance(mod, nn.BatchNorm2d) and z.shape == out.shape and z.stride() == out.stride()
            ok = ok and layer.out_channels == mod.num_features
        else:
            # BN's channel axis (1) must be the linear's output axis: unit stride, out_features long.
            ok = z.dim() >= 2 and z.shape[1] == layer.out_features == mod.num_features and z.stride(1) == 1
            ok = ok and z.numel() == out.numel()
        if ok:
            pairs.append((names[layer], names[mod]))

    for m in model.modules():
        if type(m) in _LAYERS:
            handles.append(m.register_forward_hook(on_layer))
        elif type(m) in _BN and m.track_running_stats and m.running_mean is not None:
            handles.append(m.register_forward_pre_hook(on_bn))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    seen: set[str] = set()
    unique = []
    for layer, bn in pairs:  # a pair is found once per call; keep each BN once
        if bn not in seen:
            seen.add(bn)
            unique.append((layer, bn))
    return unique


@torch.no_grad()
def _fold(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    s = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        s = s * bn.weight
    shift = -bn.running_mean * s
    if bn.affine:
        shift = shift + bn.bias
    w = layer.weight
    w.mul_(s.reshape(-1, *([1] * (w.dim() - 1))))
    if layer.bias is None:
        layer.bias = nn.Parameter(shift.clone(), requires_grad=False)
    else:
        layer.bias.mul_(s).add_(shift)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def fold_bn(model: nn.Module, example: Tensor | None = None, *, check: bool = True, rtol: float = 1e-4) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the conv/linear that feeds it.

    Args:
        model: any model of the library (left unchanged).
        example: an input to discover the pairs with; default :func:`example_input` (batch 1).
        check: run the folded copy on ``example`` and require its output to match the original's.
        rtol: tolerance of that check, relative to the largest output (rounding of the fold; a spike that flips
            at a threshold can move a logit more in float32).

    Returns:
        the folded copy, in eval mode, with gradients off.

    Raises:
        RuntimeError: when the check fails (a layer whose output is used beside the BN).
    """
    folded = copy.deepcopy(model).eval()
    for p in folded.parameters():
        p.requires_grad_(False)
    if example is None:
        example = example_input(folded)
    pairs = find_conv_bn_pairs(folded, example)
    for layer_name, bn_name in pairs:
        _fold(folded.get_submodule(layer_name), folded.get_submodule(bn_name))
        _set(folded, bn_name, nn.Identity())
    if check and pairs:
        with torch.no_grad():
            ref = model.eval()(example) if not model.training else copy.deepcopy(model).eval()(example)
            out = folded(example)
        err = float((out - ref).abs().max())
        scale = max(float(ref.abs().max()), 1e-12)
        if not err <= rtol * scale:
            raise RuntimeError(f"folded model differs from the original by {err:.3g} (scale {scale:.3g})")
    folded.folded_bn_pairs = pairs  # type: ignore[attr-defined]  # record what was folded
    return folded
