"""Functional helpers on time-major tensors shared by the blocks of several families.

* :func:`folded`: apply stateless layers (conv, BN, pooling) to every time step at once, the function twin of
  :class:`~spiking_transformers.layers._shapes.TimeDistributed` for layers that a block owns under official names.
* :func:`split_heads` / :func:`merge_heads`: the channel-major head split of every channels-first attention
  (SDT V1, STAtten, QKFormer's SSA, E-SpikeFormer): channel ``c = head * d + j``.

Shape legend as in :mod:`spiking_transformers.layers._shapes`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._shapes import fold_time, unfold_time

__all__ = ["folded", "split_heads", "merge_heads"]


def folded(x: Tensor, *modules: nn.Module) -> Tensor:
    """Apply ``modules`` in order over folded time: ``[T, B, ...] -> [T*B, ...] -> modules -> [T, B, ...']``.

    BatchNorm layers therefore see ``T*B`` samples, as in the official models.
    """
    T = x.shape[0]
    x = fold_time(x)
    for m in modules:
        x = m(x)
    return unfold_time(x, T)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """Channels-first ``[T, B, C, *spatial]`` -> heads ``[T, B, h, N, d]`` (``N = prod(spatial)``, ``d = C / h``,
    channel ``c = head * d + j``); the result is contiguous."""
    T, B, C = x.shape[:3]
    # [T, B, C, N] -> [T, B, N, C] -> [T, B, N, h, d] -> [T, B, h, N, d]
    x = x.flatten(3).transpose(-1, -2).reshape(T, B, -1, num_heads, C // num_heads)
    return x.permute(0, 1, 3, 2, 4).contiguous()


def merge_heads(x: Tensor, *spatial: int) -> Tensor:
    """Heads ``[T, B, h, N, d]`` -> channels-first ``[T, B, h*d, *spatial]`` (inverse of :func:`split_heads`;
    ``spatial`` defaults to ``(N,)``)."""
    T, B, h, N, d = x.shape
    # [T, B, h, d, N] read as [T, B, C, N] with c = head * d + j
    return x.transpose(3, 4).reshape(T, B, h * d, *(spatial or (N,)))
