"""Spikformer's building blocks: spiking patch splitting (SPS), spiking self-attention (SSA), the spiking MLP and
the spike-element-wise (SEW) block.

Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023, arXiv 2209.15425. Upstream:
github.com/ZK-Zhou/spikformer, checked at commit 621268981827af47aa666c1b5f774de4281d90ad. The three official model
files (CIFAR, ImageNet, CIFAR10-DVS) differ only in arguments of these blocks:

================  ==========  ==========  ===========
argument          CIFAR       ImageNet    CIFAR10-DVS
================  ==========  ==========  ===========
``patch_size``    4 (2 pools) 16 (4)      16 (4)
``qkv_bias``      True        False       False
``attn_scale``    0.125       0.125       0.25
``kv_first``      False       True        False
================  ==========  ==========  ===========

Every projection is stored as an ``nn.Linear`` on tokens ``[T, B, N, C]``: the official 1-wide ``Conv1d`` /
``Conv2d`` of the ImageNet and DVS files compute the same map, and their converters squeeze the weights.
BatchNorm normalises channels with statistics over ``T * B * N`` samples, as the official models do.

Every Linear/Conv -> BatchNorm -> LIF chain goes through :func:`linear_bn_spike` / :func:`folded_bn_spike`, which in
training fuse the BatchNorm with the neuron so that only the BatchNorm input is kept for backward (same outputs and
gradients; :mod:`spiking_transformers.neurons.kernels.bn_spike`, switched by ``set_bn_fusion``).

Module names follow the official state-dict keys (``proj_conv1``, ``q_linear``, ``fc1_bn``, ``attn_lif`` ...), so
official checkpoints of the CIFAR file load by identity and neuron paths match the official ones in every file.
"""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor, nn

from ..neurons.kernels.bn_spike import bn_spike
from ..neurons.lif import LIF, Neuron
from ._shapes import TimeDistributed, fold_time
from .ops import folded

__all__ = [
    "SpikeLayer",
    "ATTN_V_THRESHOLD",
    "SPSStages",
    "SpikingPatchSplitting",
    "SpikingSelfAttention",
    "SpikingMlp",
    "SpikformerBlock",
    "linear_bn_spike",
    "folded_bn_spike",
]

# A factory of neuron modules: called with keyword overrides (e.g. ``v_threshold=0.5``), returns a fresh Neuron.
# The default, ``LIF``, is spikingjelly's MultiStepLIFNode as every Spikformer file sets it: tau 2, threshold 1,
# hard reset to 0, detached reset, sigmoid surrogate with alpha 4.
SpikeLayer = Callable[..., Neuron]

# The attention neurons fire at half the usual threshold in every official file of the lineage (Spikformer's SSA
# output, SDT V1's column-sum mask, STAtten's output, QKFormer's masks).
ATTN_V_THRESHOLD = 0.5
# The SPS has four conv stages (widths D/8, D/4, D/2, D); pooling by 2 may follow each of them.
SPS_STAGES = 4


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


def _stage_suffix(i: int) -> str:
    # Official names: proj_conv, proj_conv1, proj_conv2, proj_conv3 (and likewise for bn, lif, maxpool).
    return "" if i == 0 else str(i)


class SPSStages(nn.Module):
    """The layers every spiking patch splitting of the Spikformer lineage holds, under the official names.

    Four Conv3x3 (no bias) + BatchNorm2d + neuron stages ``proj_conv{s}``, ``proj_bn{s}``, ``proj_lif{s}``
    (``s`` = "", "1", "2", "3") of widths ``D/8, D/4, D/2, D``, and the relative-position Conv3x3 + BN ``rpe_conv``,
    ``rpe_bn``. Subclasses add the pooling and write ``forward``: Spikformer's SPS
    (:class:`SpikingPatchSplitting`) and SDT V1's MS-SPS (:class:`~spiking_transformers.layers.sdt_blocks.MSSPS`)
    differ only in where they pool and how the position term joins.

    Args:
        in_chans: input channels.
        embed_dim: output width ``D``.
        spike_layer: neuron factory.
    """

    def __init__(self, *, in_chans: int, embed_dim: int, spike_layer: SpikeLayer) -> None:
        super().__init__()
        widths = [in_chans] + [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        for i in range(SPS_STAGES):
            s = _stage_suffix(i)
            setattr(self, f"proj_conv{s}", nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"proj_bn{s}", nn.BatchNorm2d(widths[i + 1]))
            setattr(self, f"proj_lif{s}", spike_layer())
        self.rpe_conv = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(embed_dim)

    def stage_conv_bn(self, i: int, x: Tensor) -> Tensor:
        """Conv and BN of stage ``i`` over folded time: ``[T, B, C_i, H, W] -> [T, B, C_{i+1}, H, W]``."""
        s = _stage_suffix(i)
        return folded(x, getattr(self, f"proj_conv{s}"), getattr(self, f"proj_bn{s}"))

    def stage_spike(self, i: int, x: Tensor) -> Tensor:
        """The neuron of stage ``i``."""
        return getattr(self, f"proj_lif{_stage_suffix(i)}")(x)

    def stage_conv_bn_spike(self, i: int, x: Tensor) -> Tensor:
        """``stage_spike(i, stage_conv_bn(i, x))`` with BN and neuron fused in training: ``[T, B, C_i, H, W]`` ->
        spikes ``[T, B, C_{i+1}, H, W]``."""
        s = _stage_suffix(i)
        conv, bn, lif = (getattr(self, f"proj_{part}{s}") for part in ("conv", "bn", "lif"))
        return folded_bn_spike(x, conv, bn, lif)


class SpikingPatchSplitting(SPSStages):
    """Spikformer's tokenizer: four Conv3x3-BN-LIF stages, max-pools on spikes, and a spiking conv position term.

    Stage ``i`` maps ``D * 2**i / 8`` channels (the input's ``in_chans`` for stage 0) to ``D * 2**(i+1) / 8`` with
    a 3x3 convolution (no bias), BatchNorm2d and a LIF. ``log2(patch_size)`` MaxPool(3, 2, 1) layers follow the LIFs
    of the *last* stages (CIFAR: stages 2 and 3; ImageNet and DVS: all four). The pooled stage-3 spikes ``F`` get a
    relative position embedding ``LIF(BN(Conv3x3(F)))`` added, so the output takes values in {0, 1, 2}.

    Each max-pool halves a side as ``ceil(n / 2)``, so any input size works; the grid is
    ``ceil(H / patch_size) x ceil(W / patch_size)`` (exactly ``H / patch_size`` when it divides).

    Args:
        in_chans: input channels (3 for images, 2 for event polarities).
        embed_dim: token width ``D``.
        patch_size: total down-sampling, a power of two from 1 to 16.
        spike_layer: neuron factory.

    Shape:
        ``x: [T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` with ``N = H' * W'`` in row-major order.
    """

    def __init__(self, *, in_chans: int, embed_dim: int, patch_size: int, spike_layer: SpikeLayer = LIF) -> None:
        num_pools = round(math.log2(patch_size)) if patch_size >= 1 else -1
        if not (0 <= num_pools <= SPS_STAGES and 2**num_pools == patch_size):
            raise ValueError(f"patch_size must be a power of two from 1 to {2**SPS_STAGES}, got {patch_size}")
        if embed_dim < 8:
            raise ValueError(f"embed_dim must be at least 8 (SPS stage 0 has embed_dim // 8 channels), got {embed_dim}")
        super().__init__(in_chans=in_chans, embed_dim=embed_dim, spike_layer=spike_layer)
        self.patch_size = patch_size
        for i in range(SPS_STAGES):
            pooled = i >= SPS_STAGES - num_pools
            pool = TimeDistributed(nn.MaxPool2d(kernel_size=3, stride=2, padding=1)) if pooled else nn.Identity()
            setattr(self, f"maxpool{_stage_suffix(i)}", pool)
        self.rpe_lif = spike_layer()

    def grid_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """Token grid ``(H', W')`` for an input of ``img_size = (H, W)``."""
        h, w = img_size
        for _ in range(round(math.log2(self.patch_size))):
            h, w = -(-h // 2), -(-w // 2)  # MaxPool(3, 2, 1) gives ceil(n / 2)
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` with values in {0, 1, 2}."""
        for i in range(SPS_STAGES):
            x = self.stage_conv_bn_spike(i, x)
            x = getattr(self, f"maxpool{_stage_suffix(i)}")(x)  # pooling acts on spikes, after the LIF
        x = x + folded_bn_spike(x, self.rpe_conv, self.rpe_bn, self.rpe_lif)  # [T, B, D, H', W'], values in {0, 1, 2}
        return x.flatten(3).transpose(2, 3)  # [T, B, N, D]


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
        spike_layer: SpikeLayer = LIF,
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


class SpikingMlp(nn.Module):
    """Two Linear-BN-LIF layers: ``C -> hidden -> C``. Shape ``[T, B, N, C]`` -> spikes ``[T, B, N, C]``."""

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: SpikeLayer = LIF) -> None:
        super().__init__()
        self.fc1_linear = nn.Linear(dim, hidden_dim)
        self.fc1_bn = nn.BatchNorm1d(hidden_dim)
        self.fc1_lif = spike_layer()
        self.fc2_linear = nn.Linear(hidden_dim, dim)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        x = linear_bn_spike(x, self.fc1_linear, self.fc1_bn, self.fc1_lif)
        return linear_bn_spike(x, self.fc2_linear, self.fc2_bn, self.fc2_lif)


class SpikformerBlock(nn.Module):
    """Encoder block with spike-element-wise (SEW) residuals: ``x + SSA(x)``, then ``x + MLP(x)``.

    Both branches end in a LIF, so the residual stream holds non-negative integers (the next projection's input is
    not binary). There is no normalisation: the official LayerNorms ``norm1``/``norm2`` are never applied and are
    left out here.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP is ``int(dim * mlp_ratio)``.
        attn_scale, qkv_bias, kv_first: see :class:`SpikingSelfAttention`.
        spike_layer: neuron factory.

    Shape:
        ``x: [T, B, N, C]`` -> ``[T, B, N, C]`` (integer-valued).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        kv_first: bool = False,
        spike_layer: SpikeLayer = LIF,
    ) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(
            dim, num_heads, attn_scale=attn_scale, qkv_bias=qkv_bias, kv_first=kv_first, spike_layer=spike_layer
        )
        self.mlp = SpikingMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)
