"""SDT V1's spike-driven self-attention (SDSA), registered as ``"sdsa"``, and the layers it shares with STAtten.

Yao et al., "Spike-driven Transformer", NeurIPS 2023, arXiv 2307.01694. Upstream: github.com/BICLab/Spike-Driven-
Transformer (``module/ms_conv.py``) @ 3faa82272eb499e4d56ea77707d4536e7c69a54b. The official code works on feature maps
``[T, B, C, H, W]`` (1x1 ``Conv2d`` + ``BatchNorm2d`` over folded time); the classes keep that layout in ``forward`` and
the registry holds their :func:`~._layout.token_contract` subclasses (:data:`SDSA`).

Contents:
    :class:`Erode`: the official ``dvs_mode`` 3x3 max filter.
    :class:`SDTProjections`: the Q/K/V/output projections shared by SDSA and STAtten's attention.
    :class:`SpikeDrivenSelfAttention`: SDSA, ``Y = Q * SN_0.5(sum_N K * V)``, on feature maps.
    :data:`SDSA`: the same under the token contract (registered ``"sdsa"``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ..ops import folded, folded_bn_spike, merge_heads, split_heads
from ._layout import ATTN_V_THRESHOLD, token_contract
from ._registry import register_attention

__all__ = ["Erode", "SDTProjections", "SpikeDrivenSelfAttention", "SDSA"]


class Erode(nn.Module):
    """The official ``dvs_mode`` filter: a 3x3 max (stride 1, padding 1) over the last two axes of a 5-D tensor.

    On a feature map ``[T, B, C, H, W]`` this is a spatial dilation of the spikes. The official code also applies
    it to head-split tensors ``[T, B, h, N, d]``, where it takes the max over 3 neighbouring token indices and 3
    neighbouring channels of a head; CIFAR10-DVS checkpoints depend on that, so it is kept as is. It is computed by
    the same ``max_pool3d`` call as the official ``nn.MaxPool3d((1, 3, 3))``, so gradients pick the same element
    among tied maxima.

    Shape:
        ``x: [T, B, C, H, W]`` (or ``[T, B, h, N, d]``) -> the same shape.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"Erode expects a 5-D tensor, got shape {tuple(x.shape)}")
        return F.max_pool3d(x, kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))


class SDTProjections(nn.Module):
    """The layers of SDT V1's attention and of STAtten's, under the official names.

    A shortcut neuron ``shortcut_lif`` on the real-valued stream; Q, K, V projections ``{q,k,v}_conv`` (1x1, no
    bias), ``{q,k,v}_bn``, ``{q,k,v}_lif``; the output projection ``proj_conv`` (1x1, bias) + ``proj_bn``; and
    ``erode`` (:class:`Erode` with ``dvs_mode``, identity otherwise). Subclasses add their attention neuron and write
    ``forward``.

    Args:
        dim: channels C (a multiple of ``num_heads``).
        num_heads: heads h.
        spike_layer: neuron factory.
        dvs_mode: build the Erode filter.
    """

    def __init__(self, dim: int, num_heads: int, *, spike_layer: SpikeFactory, dvs_mode: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.shortcut_lif = spike_layer()
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Conv2d(dim, dim, 1, 1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm2d(dim))
            setattr(self, f"{name}_lif", spike_layer())
        self.proj_conv = nn.Conv2d(dim, dim, 1, 1)
        self.proj_bn = nn.BatchNorm2d(dim)
        self.erode = Erode() if dvs_mode else nn.Identity()

    def project(self, name: str, s: Tensor, *, erode: bool = True) -> Tensor:
        """Spikes ``s: [T, B, C, H, W]`` -> heads of ``SN(BN(W_name s))``, ``[T, B, h, N, d]`` (eroded if asked)."""
        conv, bn, lif = (getattr(self, f"{name}_{part}") for part in ("conv", "bn", "lif"))
        y = folded_bn_spike(s, conv, bn, lif)  # lif(folded(s, conv, bn)), BN and neuron fused in training
        return split_heads(self.erode(y) if erode else y, self.num_heads)

    def out_proj(self, y: Tensor) -> Tensor:
        """``BN(W_p y + b_p)`` over folded time: ``[T, B, C, H, W] -> [T, B, C, H, W]``."""
        return folded(y, self.proj_conv, self.proj_bn)


class SpikeDrivenSelfAttention(SDTProjections):
    r"""Spike-driven self-attention (SDSA) of SDT V1, as the official code computes it.

    .. math::
        S = SN(X), \quad Q, K, V = SN(BN(W_{q,k,v} S)), \quad
        Y = Q \odot SN_{0.5}\Big(\sum_{n} K_n \odot V_n\Big) \ \text{(per head)}, \quad
        \text{out} = BN(W_p Y + b_p)

    No softmax, no scale; linear in tokens and channels. The column-sum neuron (``talking_heads_lif``, threshold
    0.5) emits a binary channel mask per head and time step, which gates Q. The output is the branch value only
    (no residual; :class:`~spiking_transformers.layers.MSBlock` adds it).

    With ``dvs_mode`` (the official CIFAR10-DVS setting) :class:`Erode` is applied to K and V after their neurons,
    to ``K * V`` before the column sum and to the gated ``Q``.

    Args:
        dim: channels C (a multiple of ``num_heads``).
        num_heads: heads h.
        spike_layer: neuron factory (threshold 1; the mask neuron gets ``v_threshold=0.5``).
        dvs_mode: apply the Erode filters.

    Shape:
        ``x: [T, B, C, H, W]`` real-valued stream -> ``[T, B, C, H, W]`` branch output.
    """

    def __init__(
        self, dim: int, num_heads: int = 8, *, spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER, dvs_mode: bool = False
    ) -> None:
        spike_layer = resolve_spike_layer(spike_layer)
        super().__init__(dim, num_heads, spike_layer=spike_layer, dvs_mode=dvs_mode)
        # Official name of the column-sum neuron; the Conv1d "talking_heads" beside it is never used and not built.
        self.talking_heads_lif = spike_layer(v_threshold=ATTN_V_THRESHOLD)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` real-valued stream -> branch ``[T, B, C, H, W]``."""
        H, W = x.shape[-2:]
        s = self.shortcut_lif(x)
        q = self.project("q", s, erode=False)  # the official dvs_mode filters K and V here, not Q
        k, v = self.project("k", s), self.project("v", s)
        kv = self.erode(k * v).sum(dim=-2, keepdim=True)  # [T, B, h, 1, d], integer counts
        y = self.erode(q * self.talking_heads_lif(kv))  # [T, B, h, N, d] binary
        return self.out_proj(merge_heads(y, H, W))



SDSA = register_attention(
    "sdsa",
    description="spike-driven self-attention: Q * SN(sum_N K * V), masks only, linear in N",
    paper="Spike-driven Transformer (NeurIPS 2023)",
    spike_driven=True,
)(token_contract(SpikeDrivenSelfAttention, "SDSA"))
