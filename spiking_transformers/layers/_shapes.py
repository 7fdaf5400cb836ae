"""Tensor layout helpers.

Legend used in every shape comment of the library: ``T`` time, ``B`` batch, ``N`` tokens, ``C`` channels,
``H, W`` spatial size, ``h`` heads, ``d`` channels per head. Token tensors are ``[T, B, N, C]``; feature maps are
``[T, B, C, H, W]``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["fold_time", "unfold_time", "TimeDistributed", "repeat_over_time", "batch_axis"]


def fold_time(x: Tensor) -> Tensor:
    """``[T, B, ...] -> [T*B, ...]`` (a view when ``x`` is contiguous)."""
    return x.flatten(0, 1)


def unfold_time(x: Tensor, T: int) -> Tensor:
    """``[T*B, ...] -> [T, B, ...]``."""
    if x.shape[0] % T:
        raise ValueError(f"leading size {x.shape[0]} is not a multiple of T={T}")
    return x.reshape(T, x.shape[0] // T, *x.shape[1:])


def repeat_over_time(x: Tensor, T: int) -> Tensor:
    """Direct encoding: ``[B, ...] -> [T, B, ...]``, the same analog input at every step."""
    return x.unsqueeze(0).expand(T, *x.shape).contiguous()


class TimeDistributed(nn.Sequential):
    """Apply stateless layers (conv, BN, pooling, linear) to every time step at once by folding time into batch.

    ``[T, B, ...] -> [T, B, ...']``. BatchNorm therefore normalises over ``T*B`` samples, as the official models do.
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        T = x.shape[0]
        return unfold_time(super().forward(fold_time(x)), T)


def batch_axis(x: Tensor, input_kind: str = "image") -> int:
    """Axis of the batch in a model input, from the model's declared ``input_kind``.

    ``"events"`` models take only time-major frames ``[T, B, C, H, W]`` (axis 1). ``"image"`` models take a static
    batch ``[B, C, H, W]`` (axis 0) or time-major frames ``[T, B, C, H, W]`` (axis 1): two layouts of different rank,
    so the rank names the layout without ambiguity. Any other input raises, naming what the model takes.
    """
    if input_kind == "events":
        if x.dim() != 5:
            raise ValueError(f"an event-data model takes time-major frames [T, B, C, H, W], got shape {tuple(x.shape)}")
        return 1
    if input_kind != "image":
        raise ValueError(f"input_kind must be 'image' or 'events', got {input_kind!r}")
    if x.dim() not in (4, 5):
        raise ValueError(f"an image model takes [B, C, H, W] or [T, B, C, H, W], got shape {tuple(x.shape)}")
    return 0 if x.dim() == 4 else 1
