"""Spike-driven token selection (STS) around Spikformer's SSA, registered as ``"sts"``.

Spike-TransCNN (ICLR 2025 submission, openreview zweyouirw7) uses "spike-driven token selection" in the first two,
high-resolution stages of its backbone: only the important tokens enter the self-attention. The paper's code is not
public and the rule is not described in the sources we have (spec ``table-models.md`` section 16), so this is **our
reconstruction** (``reference="paper"``):

* a token's importance is its spike count over time and channels, ``s_n = sum_{t, c} x[t, n, c]`` (additions only,
  hence spike-driven); the ``k = ceil(keep_ratio * N)`` tokens with the largest counts are kept, the same tokens at
  every time step (so each kept token has a whole spike train);
* SSA (:class:`~spiking_transformers.layers.attention.ssa.SpikingSelfAttention`) runs on the kept tokens only;
* the attention output of a dropped token is 0 (the block's shortcut carries it unchanged).

The selection itself has no gradient (a top-k of counts); the kept tokens' attention is trained as usual.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ._registry import register_attention
from .ssa import SpikingSelfAttention

__all__ = ["SpikeTokenSelection"]


@register_attention(
    "sts",
    description="spike-driven token selection: SSA on the keep_ratio most active tokens (by spike count)",
    paper="Spike-TransCNN (ICLR 2025 submission; reconstruction)",
    spike_driven=False,
    reference="paper",
)
class SpikeTokenSelection(nn.Module):
    """SSA on the ``keep_ratio`` tokens with the most spikes; 0 for the others.

    Args:
        dim: token width ``C``.
        num_heads: SSA heads.
        keep_ratio: fraction of tokens kept, in (0, 1] (0.5 by default; 1 keeps every token and equals SSA).
        attn_scale, qkv_bias, kv_first: options of :class:`SpikingSelfAttention` (``kv_first`` defaults to True
            here: ``Q (K^T V)`` costs ``O(N d^2)``, the cheap order at high resolution).
        spike_layer: neuron factory.

    Shape:
        ``x: [T, B, N, C]`` -> ``[T, B, N, C]`` (rows of dropped tokens are 0).
    """

    def __init__(self, dim: int, num_heads: int, *, keep_ratio: float = 0.5, attn_scale: float = 0.125,
                 qkv_bias: bool = True, kv_first: bool = True,
                 spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        if not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        self.keep_ratio = float(keep_ratio)
        self.ssa = SpikingSelfAttention(dim, num_heads, attn_scale=attn_scale, qkv_bias=qkv_bias,
                                        kv_first=kv_first, spike_layer=spike_layer)

    def kept_tokens(self, x: Tensor) -> Tensor:
        """Indices ``[B, k]`` of the kept tokens of ``x [T, B, N, C]`` (largest spike counts first)."""
        N = x.shape[2]
        k = min(N, max(1, math.ceil(self.keep_ratio * N)))
        score = x.detach().sum(dim=(0, 3))  # [B, N] spike counts
        return score.topk(k, dim=1, sorted=True).indices

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"SpikeTokenSelection takes tokens [T, B, N, C], got shape {tuple(x.shape)}")
        T, B, N, C = x.shape
        idx = self.kept_tokens(x)
        if idx.shape[1] == N:
            return self.ssa(x)
        gather = idx[None, :, :, None].expand(T, B, idx.shape[1], C)
        y = self.ssa(x.gather(2, gather))  # [T, B, k, C]
        return torch.zeros_like(x).scatter(2, gather, y)

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}"
