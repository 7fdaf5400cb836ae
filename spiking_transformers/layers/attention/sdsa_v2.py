"""Meta-SpikeFormer's (SDT V2) spike-driven self-attention with RepConv projections (the paper's SDSA-3).

Yao et al., "Spike-driven Transformer V2: Meta Spiking Neural Network Architecture Inspiring the Design of
Next-generation Neuromorphic Chips", ICLR 2024. Shared by SDT V2 and QSD-Transformer (whose LSQ convs and multi-level
neurons come in through the factory arguments). Feature-map layout ``[T, B, C, H, W]``, as the official code.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...neurons import SpikeFactory
from ..conv import ConvFactory, rep_conv_bn
from ..ops import folded, merge_heads

__all__ = ["MSAttentionRepConv"]


class MSAttentionRepConv(nn.Module):
    """Spike-driven self-attention of V2 (the paper's SDSA-3) with RepConv projections.

    ``S = head_lif(X)``; ``Q = q_lif(BN(RepConv(S)))`` and likewise K, V; per head ``Y = Q (K^T V) * scale``
    (linear in the token count N); heads merged channel-major (``c = head * d + j``); ``attn_lif(Y)``;
    ``proj_conv`` = RepConv + BN. The output is real-valued (membrane shortcut).

    Args:
        dim: channels C.
        num_heads: heads h (C must be divisible by h).
        scale: the constant applied after the product (V2 0.125, QSD 0.25).
        spike_layer: neuron factory for head/q/k/v.
        attn_spike_layer: neuron factory after the product (V2: LIF threshold 0.5).
        conv_layer: conv factory for the RepConvs.

    Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        scale: float,
        spike_layer: SpikeFactory,
        attn_spike_layer: SpikeFactory,
        conv_layer: ConvFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = scale
        self.head_lif = spike_layer()
        self.q_conv = rep_conv_bn(dim, conv_layer)
        self.k_conv = rep_conv_bn(dim, conv_layer)
        self.v_conv = rep_conv_bn(dim, conv_layer)
        self.q_lif = spike_layer()
        self.k_lif = spike_layer()
        self.v_lif = spike_layer()
        self.attn_lif = attn_spike_layer()
        self.proj_conv = rep_conv_bn(dim, conv_layer)

    def _heads(self, x: Tensor) -> Tensor:
        # [T, B, C, H, W] -> [T, B, h, N, d], channel c = head * d + j: the split of ops.split_heads, but left a
        # strided view. split_heads' contiguous copy makes matmul's backward sum in another order (float64 gradients
        # then differ in the last bit), so this keeps the port's results bit for bit.
        T, B, C = x.shape[:3]
        return x.flatten(3).transpose(-1, -2).reshape(T, B, -1, self.num_heads, C // self.num_heads).transpose(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        s = self.head_lif(x)
        q = self._heads(self.q_lif(folded(s, self.q_conv)))  # [T, B, h, N, d]
        k = self._heads(self.k_lif(folded(s, self.k_conv)))
        v = self._heads(self.v_lif(folded(s, self.v_conv)))
        y = (q @ (k.transpose(-2, -1) @ v)) * self.scale  # [T, B, h, N, d]; K^T V first: O(N d^2)
        y = self.attn_lif(merge_heads(y, H, W))  # [T, B, C, H, W]
        return folded(y, self.proj_conv)
