"""Encoder blocks, by residual style: an attention (any registered one) and an MLP around the backbone's shortcut.

* :class:`SpikformerBlock`: spike-element-wise (SEW) shortcut on tokens ``[T, B, N, C]``: ``x + attn(x)``,
  ``x + mlp(x)`` (Spikformer; the stream holds integers).
* :class:`MSBlock`: membrane shortcut on feature maps ``[T, B, C, H, W]`` (SDT V1, STAtten): ``x + attn(x)``, then the
  MLP with its shortcut inside (real-valued stream).
* :class:`MSConvBlock`, :class:`MSTransformerBlock`: Meta-SpikeFormer's (V2, QSD, E-SpikeFormer) conv and transformer
  blocks, membrane shortcut, with factories for neurons and convs.

The attention of the first two is given as ``attn_layer`` (a class or factory under the attention contract,
``attn_layer(dim, num_heads, *, spike_layer=..., **attn_options)``, usually looked up by name in the attention registry);
the block runs it through :func:`~spiking_transformers.layers.attention.attend`, which adapts token attentions to a
feature-map stream and feature-map attentions to a token stream.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from .attention._layout import attend
from .attention.sdsa import SDSA
from .attention.sdsa_v2 import MSAttentionRepConv
from .attention.ssa import SpikingSelfAttention
from .conv import ConvFactory, SepConv
from .mlp import MSMLP, MSMlp, SpikingMlp
from .ops import folded

__all__ = ["SpikformerBlock", "MSBlock", "MSConvBlock", "MSTransformerBlock"]


class SpikformerBlock(nn.Module):
    """Encoder block with spike-element-wise (SEW) residuals: ``x + attn(x)``, then ``x + MLP(x)``.

    Both branches end in a LIF (with SSA), so the residual stream holds non-negative integers (the next projection's
    input is not binary). There is no normalisation: the official LayerNorms ``norm1``/``norm2`` are never applied and
    are left out here.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP is ``int(dim * mlp_ratio)``.
        attn_scale, qkv_bias, kv_first: options of Spikformer's :class:`SpikingSelfAttention` (used when
            ``attn_layer`` is ``None``).
        attn_layer: another attention under the contract (``None``: SSA with the options above).
        attn_options: keyword options of ``attn_layer``.
        spike_layer: neuron factory.

    Shape:
        ``x: [T, B, N, C]`` -> ``[T, B, N, C]``; ``grid = (H, W)`` of the tokens, for attentions that look at it.
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
        attn_layer: Callable[..., nn.Module] | None = None,
        attn_options: Mapping[str, Any] | None = None,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__()
        if attn_layer is None:
            attn_layer = SpikingSelfAttention
            attn_options = dict(attn_scale=attn_scale, qkv_bias=qkv_bias, kv_first=kv_first, **(attn_options or {}))
        self.attn = attn_layer(dim, num_heads, **{"spike_layer": spike_layer, **(attn_options or {})})
        self.mlp = SpikingMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        x = x + attend(self.attn, x, layout="tokens", grid=grid)
        return x + self.mlp(x)


class MSBlock(nn.Module):
    """One encoder block with membrane shortcuts: ``x = x + attn(x)``, then ``x = mlp(x)`` (shortcut inside).

    Args:
        dim: channels.
        num_heads: attention heads.
        mlp_ratio: hidden width ``int(dim * mlp_ratio)``.
        attn_layer: attention class or factory under the contract, called
            ``attn_layer(dim, num_heads, spike_layer=..., **attn_options)`` (default: SDT V1's :data:`SDSA`).
        attn_options: its keyword options (SDT passes ``dvs_mode=True`` in DVS mode).
        spike_layer: neuron factory or name.

    Shape: ``x: [T, B, C, H, W]`` real-valued -> same shape.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        attn_layer: Callable[..., nn.Module] = SDSA,
        attn_options: Mapping[str, Any] | None = None,
        spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__()
        spike_layer = resolve_spike_layer(spike_layer)
        self.attn = attn_layer(dim, num_heads, **{"spike_layer": spike_layer, **(attn_options or {})})
        self.mlp = MSMLP(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` real-valued -> same shape."""
        return self.mlp(attend(self.attn, x, layout="map") + x)


class MSConvBlock(nn.Module):
    """Conv-stage block: ``x + mixer(x)``, then ``x + BN(conv3x3(SN(BN(conv3x3(SN(x))))))`` (channel ratio r).

    Submodules ``Conv`` (the token mixer: V2's :class:`~spiking_transformers.layers.conv.SepConv` by default),
    ``{p}1``, ``conv1`` (C -> rC), ``bn1``, ``{p}2``, ``conv2`` (rC -> C), ``bn2`` with the neuron prefix ``p``
    (``lif`` in V2 and QSD, ``spike`` in E-SpikeFormer-base, whose mixer is its own ``SepConvSpike``), so official
    module paths carry over. Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(
        self,
        dim: int,
        *,
        mlp_ratio: int = 4,
        spike_layer: SpikeFactory,
        conv_layer: ConvFactory = nn.Conv2d,
        token_mixer: Callable[[int], nn.Module] | None = None,
        neuron_prefix: str = "lif",
    ) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        self.Conv = token_mixer(dim) if token_mixer else SepConv(dim, spike_layer=spike_layer, conv_layer=conv_layer)
        self.neuron_prefix = neuron_prefix
        self.add_module(f"{neuron_prefix}1", spike_layer())
        self.conv1 = conv_layer(dim, hidden, 3, stride=1, padding=1, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.add_module(f"{neuron_prefix}2", spike_layer())
        self.conv2 = conv_layer(hidden, dim, 3, stride=1, padding=1, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        p = self.neuron_prefix
        x = self.Conv(x) + x
        y = folded(getattr(self, f"{p}1")(x), self.conv1, self.bn1)
        y = folded(getattr(self, f"{p}2")(y), self.conv2, self.bn2)
        return x + y


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
