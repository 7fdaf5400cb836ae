"""Functional helpers on time-major tensors shared by the blocks of several families.

* :func:`folded`: apply stateless layers (conv, BN, pooling) to every time step at once, the function twin of
  :class:`~spiking_transformers.layers._shapes.TimeDistributed` for layers that a block owns under official names.
* :func:`linear_bn_spike` / :func:`folded_bn_spike`: a Linear/Conv -> BatchNorm -> neuron chain with BatchNorm and
  neuron fused in training (only the BatchNorm input is kept for backward; same outputs and gradients, see
  :mod:`spiking_transformers.neurons.kernels.bn_spike`, switched by ``set_bn_fusion``).
* :func:`split_heads` / :func:`merge_heads`: the channel-major head split of every channels-first attention
  (SDT V1, STAtten, QKFormer's SSA, E-SpikeFormer): channel ``c = head * d + j``.

Shape legend as in :mod:`spiking_transformers.layers._shapes`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..neurons.kernels.bn_spike import bn_spike
from ._shapes import fold_time, unfold_time

__all__ = ["folded", "linear_bn_spike", "folded_bn_spike", "split_heads", "merge_heads"]


def folded(x: Tensor, *modules: nn.Module) -> Tensor:
    """Apply ``modules`` in order over folded time: ``[T, B, ...] -> [T*B, ...] -> modules -> [T, B, ...']``.

    BatchNorm layers therefore see ``T*B`` samples, as in the official models.
    """
    T = x.shape[0]
    x = fold_time(x)
    for m in modules:
        x = m(x)
    return unfold_time(x, T)


def linear_bn_spike(x: Tensor, linear: nn.Linear, bn: nn.BatchNorm1d, neuron: nn.Module) -> Tensor:
    """Per-token linear map, BatchNorm over channels (statistics over ``T * B * N``), then the neuron, with
    BatchNorm and neuron fused in training (only the linear output is kept for backward; see
    :func:`~spiking_transformers.neurons.kernels.bn_spike.bn_spike`).

    Args:
        x: tokens ``[T, B, N, C_in]``.

    Returns:
        spikes ``[T, B, N, C_out]``.
    """
    # BatchNorm1d on a 2-D [rows, C] input normalises each channel over the rows: the same statistics as over
    # (T*B, N) of a [T*B, C, N] tensor, without the two transposed copies that layout would cost.
    y = linear(x.reshape(-1, x.shape[-1]))  # [T*B*N, C_out]
    return bn_spike(y, bn, neuron, (*x.shape[:-1], y.shape[-1]))


def folded_bn_spike(x: Tensor, layer: nn.Module, bn: nn.Module, neuron: nn.Module) -> Tensor:
    """``neuron(folded(x, layer, bn))``: a conv (or any layer) and BatchNorm over folded time, then the neuron, with
    BatchNorm and neuron fused in training (only the layer output is kept for backward; see
    :func:`~spiking_transformers.neurons.kernels.bn_spike.bn_spike`).

    Args:
        x: ``[T, B, ...]``.

    Returns:
        spikes ``[T, B, ...']`` (``...'`` the layer's output shape per sample).
    """
    T = x.shape[0]
    z = layer(fold_time(x))  # [T*B, ...']
    return bn_spike(z, bn, neuron, (T, z.shape[0] // T, *z.shape[1:]))



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
