r"""Q-K attention of QKFormer: token attention (QKTA) and channel attention (QKCA).

Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K Attention", NeurIPS 2024, arXiv 2403.16552.
Upstream: github.com/zhouchenlin2096/QKFormer, checked at commit c2a00e8e54538e76f5954614a60c1d53824bbee9.

Both cores have no value branch and cost O(N·D). With spike projections of the input

.. math::
    Q = SN(BN(W_q X)), \qquad K = SN(BN(W_k X)) \in \{0, 1\}^{T \times B \times D \times N}

token attention sums the query over the ``d`` channels of each head and turns the sum into a binary token mask
per head, ``A_t = SN_{0.5}(\sum_c Q_{h,c,n})``; channel attention sums over the ``N`` tokens and gives a binary
channel mask ``A_c = SN_{0.5}(\sum_n Q_{c,n})``. The output is ``SN(BN(W_p (A \odot K)))`` (``W_p`` has a bias).

The released code uses token attention only; channel attention is in the paper alone. Our reading: its mask
neuron is the same half-threshold LIF as the token mask (the paper writes both as ``SN``).

Layout: both classes map a feature map ``[T, B, C, *spatial]`` (``[T, B, C, H, W]`` in QKFormer) to the same
shape. The projections are 1-wide ``Conv1d`` on ``[T*B, C, N]`` followed by ``BatchNorm1d`` (statistics over
``T*B*N`` samples), exactly the official layout, so official keys (``q_conv``, ``q_bn``, ``q_lif``, ...) load by
identity and float64 results agree to the last bit. The registry holds their token-contract subclasses
(:data:`QKToken`, :data:`QKChannel`, registered ``"qk_token"`` and ``"qk_channel"``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ..ops import folded
from ._layout import ATTN_V_THRESHOLD, token_contract
from ._registry import register_attention

__all__ = ["PointwiseProjections", "QKTokenAttention", "QKChannelAttention", "QKToken", "QKChannel"]


class PointwiseProjections(nn.Module):
    """The layers of every QKFormer attention, under the official names.

    One 1-wide ``Conv1d`` (no bias) + ``BatchNorm1d`` + neuron per branch (``q_conv``, ``q_bn``, ``q_lif``, ...),
    the half-threshold attention neuron ``attn_lif``, and the output projection ``proj_conv`` (bias) + ``proj_bn``
    + ``proj_lif``. Subclasses write ``forward``.

    Args:
        dim: channels ``C``.
        num_heads: heads ``h`` (must divide ``dim``).
        branches: names of the input projections, ``("q", "k")`` for Q-K attention, ``("q", "k", "v")`` for SSA.
        spike_layer: neuron factory.
    """

    def __init__(self, dim: int, num_heads: int, *, branches: Sequence[str], spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        for name in branches:
            setattr(self, f"{name}_conv", nn.Conv1d(dim, dim, kernel_size=1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{name}_lif", spike_layer())
        self.attn_lif = spike_layer(v_threshold=ATTN_V_THRESHOLD)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = spike_layer()

    def project(self, name: str, tokens: Tensor) -> Tensor:
        """Point-wise projection, BN and spike of branch ``name``: ``[T, B, C, N] -> [T, B, C, N]`` spikes."""
        conv, bn, lif = (getattr(self, f"{name}_{part}") for part in ("conv", "bn", "lif"))
        return lif(folded(tokens, conv, bn))

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return f"dim={self.dim}, num_heads={self.num_heads}"


class _QKAttentionBase(PointwiseProjections):
    """Shared forward of the two Q-K cores: project Q and K, mask the keys, project out."""

    def __init__(self, dim: int, num_heads: int, *, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__(dim, num_heads, branches=("q", "k"), spike_layer=spike_layer)

    def _mask_keys(self, q: Tensor, k: Tensor) -> Tensor:
        """``q, k: [T, B, C, N]`` spikes -> masked keys ``[T, B, C, N]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, *spatial]`` spikes (or integer sums of spikes) -> spikes of the same shape."""
        tokens = x.flatten(3)  # [T, B, C, N]
        y = self._mask_keys(self.project("q", tokens), self.project("k", tokens))
        return self.proj_lif(folded(y, self.proj_conv, self.proj_bn)).reshape(x.shape)


class QKTokenAttention(_QKAttentionBase):
    """Q-K token attention (QKTA): a binary token mask per head from the query, applied to the keys.

    Args:
        dim: channels ``C``.
        num_heads: heads ``h``; the mask of head ``i`` comes from the sum of its ``d = C / h`` query channels.
        spike_layer: neuron factory (the mask neuron gets ``v_threshold=0.5``).

    Shape:
        ``[T, B, C, *spatial] -> [T, B, C, *spatial]``.
    """

    def _mask_keys(self, q: Tensor, k: Tensor) -> Tensor:
        T, B, C, N = q.shape
        h = self.num_heads
        score = q.reshape(T, B, h, C // h, N).sum(dim=3, keepdim=True)  # [T, B, h, 1, N], integers
        mask = self.attn_lif(score)
        return torch.mul(mask, k.reshape(T, B, h, C // h, N)).reshape(T, B, C, N)


class QKChannelAttention(_QKAttentionBase):
    """Q-K channel attention (QKCA, paper only): a binary channel mask from the query's token sums.

    Args:
        dim: channels ``C``.
        num_heads: kept for the attention signature shared with :class:`QKTokenAttention`; it must divide
            ``dim``, but the per-channel mask is the same for any head split.
        spike_layer: neuron factory (the mask neuron gets ``v_threshold=0.5``, our reading of the paper's ``SN``).

    Shape:
        ``[T, B, C, *spatial] -> [T, B, C, *spatial]``.
    """

    def _mask_keys(self, q: Tensor, k: Tensor) -> Tensor:
        mask = self.attn_lif(q.sum(dim=3, keepdim=True))  # [T, B, C, 1]
        return torch.mul(mask, k)



QKToken = register_attention(
    "qk_token",
    description="Q-K token attention: a binary token mask per head from the query, applied to K; no V",
    paper="QKFormer (NeurIPS 2024)",
    spike_driven=True,
)(token_contract(QKTokenAttention, "QKToken"))
QKChannel = register_attention(
    "qk_channel",
    description="Q-K channel attention: a binary channel mask from the query's token sums, applied to K; no V",
    paper="QKFormer (NeurIPS 2024)",
    spike_driven=True,
    reference="paper",
)(token_contract(QKChannelAttention, "QKChannel"))
