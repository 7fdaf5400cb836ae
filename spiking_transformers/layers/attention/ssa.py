"""Spikformer's spiking self-attention (SSA), registered as ``"ssa"``.

Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023, arXiv 2209.15425. Upstream:
github.com/ZK-Zhou/spikformer @ 621268981827af47aa666c1b5f774de4281d90ad. Token-native: the contract's layout is the
official one (``nn.Linear`` projections on ``[T, B, N, C]``; the ImageNet/DVS files' 1-wide convs compute the same map
and their converters squeeze the weights). Module names follow the official keys (``q_linear``, ``attn_lif``, ...).
"""

from __future__ import annotations

from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ..ops import linear_bn_spike
from ._layout import ATTN_V_THRESHOLD
from ._registry import register_attention

__all__ = ["SpikingSelfAttention"]


@register_attention(
    "ssa",
    description="spiking self-attention: SN(s * Q K^T V) on LIF spikes, no softmax",
    paper="Spikformer (ICLR 2023)",
    spike_driven=False,
)
class SpikingSelfAttention(nn.Module):
    r"""Spiking self-attention (SSA) without softmax.

    .. math::
        Q, K, V = \mathrm{LIF}(\mathrm{BN}(X W_{q,k,v})), \qquad
        Y = \mathrm{LIF}_{0.5}\big(s \, Q K^\top V\big), \qquad
        \mathrm{out} = \mathrm{LIF}(\mathrm{BN}(Y W_o + b_o))

    per head, with the head split channel-major (channel ``c = head * d + j``). ``Q K^T V`` is a product of
    binary matrices, so both association orders give the same integers; ``kv_first`` picks the order the official
    file uses (the D x D product ``K^T V`` first in the ImageNet file), which matters for low-precision rounding and
    for cost (``O(N^2 d)`` versus ``O(N d^2)``).

    Args:
        dim: token width ``C``.
        num_heads: number of heads ``h`` (``d = C / h``).
        attn_scale: the constant ``s`` (0.125 in the CIFAR and ImageNet files, 0.25 in the DVS file).
        qkv_bias: bias on the q/k/v projections (True in the CIFAR file, whose ``nn.Linear`` keeps its default
            bias; the official ``qkv_bias`` argument is ignored there). The output projection always has a bias.
        kv_first: compute ``Q (K^T V)`` instead of ``(Q K^T) V``.
        spike_layer: neuron factory; the attention neuron gets ``v_threshold=0.5``.

    Shape:
        ``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        kv_first: bool = False,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_scale = float(attn_scale)
        self.kv_first = bool(kv_first)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_linear", nn.Linear(dim, dim, bias=qkv_bias))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{name}_lif", spike_layer())
        self.attn_lif = spike_layer(v_threshold=ATTN_V_THRESHOLD)
        self.proj_linear = nn.Linear(dim, dim)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = spike_layer()

    def _heads(self, x: Tensor) -> Tensor:
        T, B, N, C = x.shape
        return x.reshape(T, B, N, self.num_heads, C // self.num_heads).transpose(2, 3)  # [T, B, h, N, d]

    def forward(self, x: Tensor) -> Tensor:
        T, B, N, C = x.shape
        q = self._heads(linear_bn_spike(x, self.q_linear, self.q_bn, self.q_lif))
        k = self._heads(linear_bn_spike(x, self.k_linear, self.k_bn, self.k_lif))
        v = self._heads(linear_bn_spike(x, self.v_linear, self.v_bn, self.v_lif))
        y = q @ (k.transpose(-2, -1) @ v) if self.kv_first else (q @ k.transpose(-2, -1)) @ v  # [T, B, h, N, d]
        y = (y * self.attn_scale).transpose(2, 3).reshape(T, B, N, C)  # merge heads, head-major channels
        y = self.attn_lif(y)
        return linear_bn_spike(y, self.proj_linear, self.proj_bn, self.proj_lif)

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return f"num_heads={self.num_heads}, attn_scale={self.attn_scale}, kv_first={self.kv_first}"
