"""Building blocks of the Meta-SpikeFormer (Spike-driven Transformer V2) meta-architecture.

Used by SDT V2 (binary LIF neurons, fp32 weights) and, through its factory arguments, by QSD-Transformer
(multi-level neurons, LSQ-quantized weights) and other V2-based backbones. Every block takes and returns a
feature map ``[T, B, C, H, W]`` and applies its convolutions and BatchNorms over folded time (BN sees ``T*B``
samples, as the official code does). Submodule names are those of the official code, so official state-dict keys
and neuron module paths carry over unchanged.

Residual style: membrane shortcut. Every branch *starts* with a neuron and ends in Conv/BN; the real-valued BN
output is added to the stream.

Factories (so that V2 and QSD differ by arguments, not by copied classes):

* ``spike_layer() -> Neuron``: the neuron of every branch (V2: LIF tau 2, threshold 1).
* ``attn_spike_layer() -> Neuron``: the neuron after the attention product (V2: LIF threshold 0.5).
* ``conv_layer(in, out, kernel_size, stride=, padding=, groups=, bias=)``: ``nn.Conv2d`` signature.
* ``conv1d_layer(in, out, kernel_size, bias=)``: ``nn.Conv1d`` signature (the MLP).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons.lif import Neuron
from .ops import folded, merge_heads

__all__ = [
    "SpikeFactory",
    "ConvFactory",
    "BNAndPad",
    "RepConv",
    "SepConv",
    "MSConvBlock",
    "MSDownsampling",
    "MSAttentionRepConv",
    "MSMlp",
    "MSTransformerBlock",
]

SpikeFactory = Callable[[], Neuron]
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


def _rep_conv_bn(dim: int, conv_layer: ConvFactory) -> nn.Sequential:
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


class MSConvBlock(nn.Module):
    """Conv-stage block: ``x + SepConv(x)``, then ``x + BN(conv3x3(LIF(BN(conv3x3(LIF(x))))))`` (channel ratio r).

    Submodules ``Conv`` (the SepConv), ``lif1``, ``conv1`` (C -> rC), ``bn1``, ``lif2``, ``conv2`` (rC -> C), ``bn2``.
    Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(
        self,
        dim: int,
        *,
        mlp_ratio: int = 4,
        spike_layer: SpikeFactory,
        conv_layer: ConvFactory = nn.Conv2d,
    ) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        self.Conv = SepConv(dim, spike_layer=spike_layer, conv_layer=conv_layer)
        self.lif1 = spike_layer()
        self.conv1 = conv_layer(dim, hidden, 3, stride=1, padding=1, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.lif2 = spike_layer()
        self.conv2 = conv_layer(hidden, dim, 3, stride=1, padding=1, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv(x) + x
        y = folded(self.lif1(x), self.conv1, self.bn1)
        y = folded(self.lif2(y), self.conv2, self.bn2)
        return x + y


class MSDownsampling(nn.Module):
    """``[encode_lif ->] encode_conv (k x k / s, with bias) -> encode_bn``.

    The first stem has no neuron (``spike_layer=None``): it sees the analog image and is the encoding (MAC) layer.
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
    ) -> None:
        super().__init__()
        self.encode_conv = conv_layer(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=1, bias=True
        )
        self.encode_bn = nn.BatchNorm2d(out_channels)
        if spike_layer is not None:
            self.encode_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        return folded(x, self.encode_conv, self.encode_bn)


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
        self.q_conv = _rep_conv_bn(dim, conv_layer)
        self.k_conv = _rep_conv_bn(dim, conv_layer)
        self.v_conv = _rep_conv_bn(dim, conv_layer)
        self.q_lif = spike_layer()
        self.k_lif = spike_layer()
        self.v_lif = spike_layer()
        self.attn_lif = attn_spike_layer()
        self.proj_conv = _rep_conv_bn(dim, conv_layer)

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


class MSMlp(nn.Module):
    """Channel MLP on tokens: ``fc1_lif -> fc1_conv (Conv1d k1, bias) -> fc1_bn -> fc2_lif -> fc2_conv -> fc2_bn``.

    Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]`` (tokens N = H*W handled as a Conv1d length).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        spike_layer: SpikeFactory,
        conv1d_layer: ConvFactory = nn.Conv1d,
    ) -> None:
        super().__init__()
        self.fc1_conv = conv1d_layer(dim, hidden, 1, bias=True)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc1_lif = spike_layer()
        self.fc2_conv = conv1d_layer(hidden, dim, 1, bias=True)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.flatten(3)  # [T, B, C, N]
        x = folded(self.fc1_lif(x), self.fc1_conv, self.fc1_bn)
        x = folded(self.fc2_lif(x), self.fc2_conv, self.fc2_bn)
        return x.reshape(shape)


class MSTransformerBlock(nn.Module):
    """Transformer-stage block: ``x + attn(x) * g1``, then ``x + mlp(x) * g2``.

    ``g1``/``g2`` are per-channel layer scales (parameters ``layer_scale1``/``layer_scale2``) when
    ``layer_scale_init`` is given (QSD), and absent otherwise (V2: plain membrane shortcut).

    Args:
        dim, num_heads, mlp_ratio: width, heads, MLP expansion.
        attn_scale: the attention's product scale.
        layer_scale_init: initial value of the layer scales, or ``None`` for none.
        spike_layer, attn_spike_layer, conv_layer, conv1d_layer: factories (module docstring).

    Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        attn_scale: float,
        layer_scale_init: float | None = None,
        spike_layer: SpikeFactory,
        attn_spike_layer: SpikeFactory,
        conv_layer: ConvFactory = nn.Conv2d,
        conv1d_layer: ConvFactory = nn.Conv1d,
    ) -> None:
        super().__init__()
        self.attn = MSAttentionRepConv(
            dim,
            num_heads,
            scale=attn_scale,
            spike_layer=spike_layer,
            attn_spike_layer=attn_spike_layer,
            conv_layer=conv_layer,
        )
        self.mlp = MSMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer, conv1d_layer=conv1d_layer)
        if layer_scale_init is not None:
            self.layer_scale1 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
            self.layer_scale2 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "layer_scale1"):
            x = x + self.attn(x) * self.layer_scale1.view(1, 1, -1, 1, 1)
            return x + self.mlp(x) * self.layer_scale2.view(1, 1, -1, 1, 1)
        x = x + self.attn(x)
        return x + self.mlp(x)
