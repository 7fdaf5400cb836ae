"""Spikformer's spiking self-attention (SSA), registered as ``"ssa"``.

Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023, arXiv 2209.15425. Upstream:
github.com/ZK-Zhou/spikformer @ 621268981827af47aa666c1b5f774de4281d90ad. Token-native: the contract's layout is the
official one (``nn.Linear`` projections on ``[T, B, N, C]``; the ImageNet/DVS files' 1-wide convs compute the same map
and their converters squeeze the weights). Module names follow the official keys (``q_linear``, ``attn_lif``, ...).
"""

from __future__ import annotations

from torch import Tensor

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ._qkv import QKVAttention
from ._registry import register_attention

__all__ = ["SpikingSelfAttention"]


@register_attention(
    "ssa",
    description="spiking self-attention: SN(s * Q K^T V) on LIF spikes, no softmax",
    paper="Spikformer (ICLR 2023)",
    spike_driven=False,
)
class SpikingSelfAttention(QKVAttention):
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
        super().__init__(dim, num_heads)
        self.attn_scale = float(attn_scale)
        self.kv_first = bool(kv_first)
        self.add_qkv(dim, bias=qkv_bias, neuron=spike_layer)
        self.add_output(dim, neuron=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``."""
        q, k, v = (self._heads(self.branch(name, x)) for name in ("q", "k", "v"))  # [T, B, h, N, d]
        y = q @ (k.transpose(-2, -1) @ v) if self.kv_first else (q @ k.transpose(-2, -1)) @ v  # [T, B, h, N, d]
        return self.output(y * self.attn_scale)  # merge heads (head-major channels), attn_lif, projection

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return f"num_heads={self.num_heads}, attn_scale={self.attn_scale}, kv_first={self.kv_first}"
