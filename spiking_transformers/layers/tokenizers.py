"""Tokenizers (stems): input ``[T, B, C_in, H, W]`` -> the first stream of a backbone.

* :class:`SPSStages`: the layers of every spiking patch splitting of the Spikformer lineage, under the official names.
* :class:`SpikingPatchSplitting`: Spikformer's SPS (pools on spikes, spiking position term) -> tokens ``[T, B, N, D]``.
* :class:`MSSPS`: SDT V1's MS-SPS (stage 3 pooled before its spike, real-valued position term) -> ``[T, B, D, H', W']``.
* :class:`MSDownsampling`: Meta-SpikeFormer's (SDT V2, QSD, E-SpikeFormer) conv stem / down-sampling layer.

Every Conv -> BN -> neuron chain goes through :func:`~spiking_transformers.layers.ops.folded_bn_spike` (BN and neuron
fused in training). Shape legend as in :mod:`spiking_transformers.layers._shapes`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ._shapes import TimeDistributed
from .conv import ConvFactory
from .ops import folded, folded_bn_spike

__all__ = ["SPS_STAGES", "SPSStages", "SpikingPatchSplitting", "MSSPS", "MSDownsampling"]

# The SPS has four conv stages (widths D/8, D/4, D/2, D); pooling by 2 may follow each of them.
SPS_STAGES = 4


def _stage_suffix(i: int) -> str:
    # Official names: proj_conv, proj_conv1, proj_conv2, proj_conv3 (and likewise for bn, lif, maxpool).
    return "" if i == 0 else str(i)


class SPSStages(nn.Module):
    """The layers every spiking patch splitting of the Spikformer lineage holds, under the official names.

    Four Conv3x3 (no bias) + BatchNorm2d + neuron stages ``proj_conv{s}``, ``proj_bn{s}``, ``proj_lif{s}``
    (``s`` = "", "1", "2", "3") of widths ``D/8, D/4, D/2, D``, and the relative-position Conv3x3 + BN ``rpe_conv``,
    ``rpe_bn``. Subclasses add the pooling and write ``forward``: Spikformer's SPS
    (:class:`SpikingPatchSplitting`) and SDT V1's MS-SPS (:class:`MSSPS`)
    differ only in where they pool and how the position term joins.

    Args:
        in_chans: input channels.
        embed_dim: output width ``D``.
        spike_layer: neuron factory.
    """

    def __init__(self, *, in_chans: int, embed_dim: int, spike_layer: SpikeFactory) -> None:
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

    def __init__(self, *, in_chans: int, embed_dim: int, patch_size: int, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
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

    def _stage(self, i: int, x: Tensor) -> Tensor:
        x = self.stage_conv_bn_spike(i, x)
        return getattr(self, f"maxpool{_stage_suffix(i)}")(x)  # pooling acts on spikes, after the LIF

    def forward(self, x: Tensor, stage_runner: Callable[..., Tensor] | None = None) -> Tensor:
        """``x: [T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` with values in {0, 1, 2}.

        ``stage_runner(fn, i, x)``, if given, runs each of the four conv stages ``fn(i, x)`` (the memory mode passes
        an activation-checkpointing runner: the stages hold the largest activations of the model)."""
        for i in range(SPS_STAGES):
            x = stage_runner(self._stage, i, x) if stage_runner is not None else self._stage(i, x)
        x = x + folded_bn_spike(x, self.rpe_conv, self.rpe_bn, self.rpe_lif)  # [T, B, D, H', W'], values in {0, 1, 2}
        return x.flatten(3).transpose(2, 3)  # [T, B, N, D]



class MSSPS(SPSStages):
    """MS spiking patch splitting: ``[T, B, C_in, H, W]`` input -> real-valued tokens ``[T, B, D, H', W']``.

    Stages 0-2: Conv3x3 (no bias) -> BN -> neuron -> optional MaxPool 3/2/1. Stage 3: Conv3x3 -> BN -> optional
    MaxPool, applied to the BN output before any spike, giving ``F``. Then a relative position term
    ``R = BN(Conv3x3(SN(F)))`` and the output ``F + R`` (real-valued; it feeds the membrane-shortcut stream).
    Widths are D/8, D/4, D/2, D; layer names are those of Spikformer's SPS
    (:class:`SPSStages`), without ``rpe_lif``.

    Args:
        in_chans: input channels.
        embed_dim: D (a multiple of 8).
        pool_stages: four booleans, the official ``pooling_stat`` bitstring ("0011" -> (False, False, True, True));
            each True halves the resolution.
        spike_layer: neuron factory.
    """

    def __init__(
        self, *, in_chans: int, embed_dim: int, pool_stages: Sequence[bool], spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER
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



class MSDownsampling(nn.Module):
    """``[encode_lif ->] encode_conv (k x k / s, with bias) -> encode_bn``.

    The first stem has no neuron (``spike_layer=None``): it sees the analog image and is the encoding (MAC) layer.
    ``neuron_name`` is the neuron's module name (``encode_lif`` in V2, QSD and E-SpikeFormer-large; ``encode_spike`` in
    E-SpikeFormer-base), so official module paths carry over.
    Shape: ``[T, B, C_in, H, W] -> [T, B, C_out, H/s, W/s]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        padding: int,
        spike_layer: SpikeFactory | None,
        conv_layer: ConvFactory = nn.Conv2d,
        neuron_name: str = "encode_lif",
    ) -> None:
        super().__init__()
        self.encode_conv = conv_layer(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=1, bias=True
        )
        self.encode_bn = nn.BatchNorm2d(out_channels)
        self.neuron_name = neuron_name if spike_layer is not None else None
        if spike_layer is not None:
            self.add_module(neuron_name, spike_layer())

    def forward(self, x: Tensor) -> Tensor:
        if self.neuron_name is not None:
            x = getattr(self, self.neuron_name)(x)
        return folded(x, self.encode_conv, self.encode_bn)
