"""Tensor layout helpers.

Legend used in every shape comment of the library: ``T`` time, ``B`` batch, ``N`` tokens, ``C`` channels,
``H, W`` spatial size, ``h`` heads, ``d`` channels per head. Token tensors are ``[T, B, N, C]``; feature maps are
``[T, B, C, H, W]``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["fold_time", "unfold_time", "TimeDistributed", "repeat_over_time"]


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
