"""Blocks of the Spike-driven Transformer (SDT V1) family, shared by SDT V1 and STAtten.

Yao et al., "Spike-driven Transformer", NeurIPS 2023, arXiv 2307.01694. Upstream:
github.com/BICLab/Spike-Driven-Transformer (``module/sps.py``, ``module/ms_conv.py``), checked at commit
3faa82272eb499e4d56ea77707d4536e7c69a54b; STAtten's copy (Intelligent-Computing-Lab-Yale/STAtten @ e9048a18b02c)
builds the same layers.

Everything works on feature maps ``[T, B, C, H, W]``: every projection is a 1x1 ``Conv2d`` followed by
``BatchNorm2d`` applied over folded time (BN sees ``T*B`` samples, as in the official code), and the residual stream
is real-valued ("membrane shortcut": every branch starts with a spiking neuron and ends in Conv/BN, so every
Conv input is a binary spike map).

Conv -> BN -> neuron chains (tokenizer stages 0-2, Q/K/V, and ``fc1_bn`` -> ``fc2_lif`` in the MLP) fuse BatchNorm
and neuron in training (:func:`~spiking_transformers.layers.spikformer_blocks.folded_bn_spike`,
:func:`~spiking_transformers.neurons.kernels.bn_spike.bn_spike`): only the conv output is kept for backward.

Submodule names are the official ones (``proj_conv1``, ``q_bn``, ``talking_heads_lif``, ...), so official
state-dict keys and neuron module paths carry over unchanged. Modules that the official forward never calls
(``talking_heads`` Conv1d, ``attn_lif``, ``rpe_lif``) are left out.

Contents:
    :class:`Erode`: the official ``dvs_mode`` 3x3 max filter.
    :class:`MSSPS`: the MS spiking patch splitting tokenizer (4 conv stages + a relative position conv).
    :class:`SDTProjections`: the Q/K/V/output projections shared by SDSA and STAtten's attention.
    :class:`SpikeDrivenSelfAttention`: SDSA, ``Y = Q * SN_0.5(sum_N K * V)``.
    :class:`MSMLP`: the two-layer 1x1-conv MLP with its membrane shortcut.
    :class:`MSBlock`: attention + MLP, the attention class passed in.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import get_spike_layer
from ..neurons.kernels.bn_spike import bn_spike
from ._shapes import fold_time
from .ops import folded, merge_heads, split_heads
from .spikformer_blocks import ATTN_V_THRESHOLD, SpikeLayer, SPSStages, folded_bn_spike

__all__ = [
    "resolve_spike_layer",
    "Erode",
    "MSSPS",
    "SDTProjections",
    "SpikeDrivenSelfAttention",
    "MSMLP",
    "MSBlock",
]

# ``spike_layer`` arguments here take a neuron factory (``SpikeLayer``) or a string naming a type of
# ``neurons.SPIKE_LAYERS`` (``"lif"``, ``"plif"``) with its default arguments, which are the official ones (tau 2, hard
# reset to 0, detached reset, sigmoid surrogate with alpha 4).


def resolve_spike_layer(spike_layer: str | SpikeLayer) -> SpikeLayer:
    """``"lif"`` / ``"plif"`` -> a neuron factory; a factory is returned unchanged."""
    return get_spike_layer(spike_layer) if isinstance(spike_layer, str) else spike_layer


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


class MSSPS(SPSStages):
    """MS spiking patch splitting: ``[T, B, C_in, H, W]`` input -> real-valued tokens ``[T, B, D, H', W']``.

    Stages 0-2: Conv3x3 (no bias) -> BN -> neuron -> optional MaxPool 3/2/1. Stage 3: Conv3x3 -> BN -> optional
    MaxPool, applied to the BN output before any spike, giving ``F``. Then a relative position term
    ``R = BN(Conv3x3(SN(F)))`` and the output ``F + R`` (real-valued; it feeds the membrane-shortcut stream).
    Widths are D/8, D/4, D/2, D; layer names are those of Spikformer's SPS
    (:class:`~spiking_transformers.layers.spikformer_blocks.SPSStages`), without ``rpe_lif``.

    Args:
        in_chans: input channels.
        embed_dim: D (a multiple of 8).
        pool_stages: four booleans, the official ``pooling_stat`` bitstring ("0011" -> (False, False, True, True));
            each True halves the resolution.
        spike_layer: neuron factory.
    """

    def __init__(
        self, *, in_chans: int, embed_dim: int, pool_stages: Sequence[bool], spike_layer: str | SpikeLayer = "lif"
    ) -> None:
        if embed_dim % 8:
            raise ValueError(f"embed_dim must be a multiple of 8 (SPS widths D/8, D/4, D/2), got {embed_dim}")
        if len(pool_stages) != 4:
            raise ValueError(f"pool_stages needs 4 booleans, got {pool_stages!r}")
        super().__init__(in_chans=in_chans, embed_dim=embed_dim, spike_layer=resolve_spike_layer(spike_layer))
        self.pool_stages = tuple(bool(p) for p in pool_stages)

    @property
    def reduction(self) -> int:
        """Total down-sampling factor (2 per pooled stage)."""
        return 2 ** sum(self.pool_stages)

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C_in, H, W]`` -> ``[T, B, D, H / r, W / r]`` real-valued (r = :attr:`reduction`)."""
        for i in range(3):
            x = self.stage_conv_bn_spike(i, x)
            if self.pool_stages[i]:
                x = folded(x, self._pool)
        feat = self.stage_conv_bn(3, x)
        if self.pool_stages[3]:
            feat = folded(feat, self._pool)  # pooled before the spike, unlike stages 0-2
        rpe = folded(self.stage_spike(3, feat), self.rpe_conv, self.rpe_bn)
        return rpe + feat


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

    def __init__(self, dim: int, num_heads: int, *, spike_layer: SpikeLayer, dvs_mode: bool) -> None:
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
    (no residual; :class:`MSBlock` adds it).

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
        self, dim: int, num_heads: int = 8, *, spike_layer: str | SpikeLayer = "lif", dvs_mode: bool = False
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


class MSMLP(nn.Module):
    """The MS MLP: ``SN -> Conv1x1 (bias) -> BN -> SN -> Conv1x1 (bias) -> BN``, membrane shortcut included.

    Returns the updated stream ``x + branch`` (not the branch alone): when ``hidden_dim == dim`` the official MLP
    has a second, inner shortcut after the first BN (``h = x + BN(fc1)``, output ``h + BN(fc2)``), which cannot be
    written as an outer ``x + branch`` with the same float rounding.

    Shape: ``x: [T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: str | SpikeLayer = "lif") -> None:
        super().__init__()
        spike_layer = resolve_spike_layer(spike_layer)
        self.inner_shortcut = hidden_dim == dim
        self.fc1_lif = spike_layer()
        self.fc1_conv = nn.Conv2d(dim, hidden_dim, 1, 1)
        self.fc1_bn = nn.BatchNorm2d(hidden_dim)
        self.fc2_lif = spike_layer()
        self.fc2_conv = nn.Conv2d(hidden_dim, dim, 1, 1)
        self.fc2_bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` stream -> updated stream ``[T, B, C, H, W]``."""
        identity = x
        T = x.shape[0]
        z = self.fc1_conv(fold_time(self.fc1_lif(x)))  # [T*B, hidden, H, W]
        shape = (T, z.shape[0] // T, *z.shape[1:])
        if self.inner_shortcut:
            h = identity + self.fc1_bn(z).reshape(shape)
            s = self.fc2_lif(h)
            identity = h
        else:
            s = bn_spike(z, self.fc1_bn, self.fc2_lif, shape)  # fc2_lif(fc1_bn(z)), fused in training
        return folded(s, self.fc2_conv, self.fc2_bn) + identity


class MSBlock(nn.Module):
    """One encoder block with membrane shortcuts: ``x = x + attn(x)``, then ``x = mlp(x)`` (shortcut inside).

    Args:
        dim: channels.
        num_heads: attention heads.
        mlp_ratio: hidden width ``int(dim * mlp_ratio)``.
        attn_layer: attention class or factory, called ``attn_layer(dim, num_heads, spike_layer=..., dvs_mode=...)``;
            it returns the branch ``[T, B, C, H, W]``.
        spike_layer: neuron factory.
        dvs_mode: passed to the attention.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        attn_layer: Callable[..., nn.Module] = SpikeDrivenSelfAttention,
        spike_layer: str | SpikeLayer = "lif",
        dvs_mode: bool = False,
    ) -> None:
        super().__init__()
        self.attn = attn_layer(dim, num_heads, spike_layer=spike_layer, dvs_mode=dvs_mode)
        self.mlp = MSMLP(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` real-valued -> same shape."""
        return self.mlp(self.attn(x) + x)
