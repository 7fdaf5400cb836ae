"""Convolution blocks of the Meta-SpikeFormer (SDT V2) lineage, shared by SDT V2, QSD-Transformer and E-SpikeFormer.

* ``ConvFactory``: ``conv_layer(in, out, kernel_size, stride=, padding=, groups=, bias=)`` (``nn.Conv2d`` signature),
  so that V2 (``nn.Conv2d``) and QSD (LSQ-quantized convs) differ by an argument, not by copied classes.
* :class:`BNAndPad`, :class:`RepConv`: the re-parameterisable 3x3 conv of V2's attention projections.
* :class:`SepConv`: V2's spiking inverted separable conv (the token mixer of its conv stages).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import SpikeFactory
from .ops import folded

__all__ = ["ConvFactory", "BNAndPad", "RepConv", "rep_conv_bn", "SepConv"]

ConvFactory = Callable[..., nn.Module]


class BNAndPad(nn.Module):
    """BatchNorm2d, then a border of ``pad_pixels`` filled with the per-channel value BN maps a zero input to.

    The border value ``beta - mu * gamma / sqrt(var + eps)`` uses the *running* statistics and detached affine
    parameters in both modes (as the official ``BNAndPadLayer``), so in eval mode this equals zero-padding the
    BN's input; in training the interior uses batch statistics while the border still uses running ones.

    Shape: ``[N, C, H, W] -> [N, C, H + 2p, W + 2p]``.
    """

    def __init__(self, num_features: int, pad_pixels: int = 1) -> None:
        super().__init__()
        if pad_pixels < 0:
            raise ValueError(f"pad_pixels must be >= 0, got {pad_pixels}")
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(x)
        p = self.pad_pixels
        if p == 0:
            return y
        bn = self.bn
        border = bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        out = F.pad(y, [p, p, p, p])
        # Overwrite the zero border with the per-channel constant (the interior keeps y and its gradient).
        mask = torch.ones_like(y[:1, :1])
        mask = F.pad(mask, [p, p, p, p]) == 0  # [1, 1, H+2p, W+2p], True on the border
        return torch.where(mask, border.view(1, -1, 1, 1).to(out.dtype), out)


class RepConv(nn.Module):
    """Re-parameterisable 3x3 conv of V2's attention: 1x1 conv -> BNAndPad -> depthwise 3x3 (no pad) -> 1x1 -> BN.

    Keys ``body.0`` (1x1), ``body.1.bn``, ``body.2.0`` (dw 3x3), ``body.2.1`` (1x1), ``body.2.2`` (BN). The block can
    be folded into one 3x3 conv for deployment, but the official keys need this unfolded form.
    Shape: ``[N, C_in, H, W] -> [N, C_out, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, conv_layer: ConvFactory = nn.Conv2d) -> None:
        super().__init__()
        conv3x3 = nn.Sequential(
            conv_layer(in_channels, in_channels, 3, stride=1, padding=0, groups=in_channels, bias=False),
            conv_layer(in_channels, out_channels, 1, stride=1, padding=0, groups=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.body = nn.Sequential(
            conv_layer(in_channels, in_channels, 1, stride=1, padding=0, groups=1, bias=False),
            BNAndPad(in_channels, pad_pixels=1),
            conv3x3,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def rep_conv_bn(dim: int, conv_layer: ConvFactory) -> nn.Sequential:
    """``RepConv(C, C) -> BatchNorm2d`` (keys ``0.body.*``, ``1.*``): every projection of the V2 attention."""
    return nn.Sequential(RepConv(dim, dim, conv_layer=conv_layer), nn.BatchNorm2d(dim))


class SepConv(nn.Module):
    """Spiking inverted separable conv (MobileNetV2 style), V2's token mixer of the conv stages.

    ``lif1 -> pwconv1 (1x1, C -> rC) -> bn1 -> lif2 -> dwconv (k x k, groups rC) -> pwconv2 (1x1, rC -> C) -> bn2``.
    There is no BN and no neuron between the depthwise conv and ``pwconv2`` (official), so ``pwconv2`` sees real
    values. Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(
        self,
        dim: int,
        *,
        expansion_ratio: int = 2,
        kernel_size: int = 7,
        spike_layer: SpikeFactory,
        conv_layer: ConvFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        med = int(expansion_ratio * dim)
        self.lif1 = spike_layer()
        self.pwconv1 = conv_layer(dim, med, 1, stride=1, padding=0, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = spike_layer()
        self.dwconv = conv_layer(med, med, kernel_size, stride=1, padding=kernel_size // 2, groups=med, bias=False)
        self.pwconv2 = conv_layer(med, dim, 1, stride=1, padding=0, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = folded(self.lif1(x), self.pwconv1, self.bn1)
        return folded(self.lif2(x), self.dwconv, self.pwconv2, self.bn2)
