r"""STFormer's spatial-temporal core and spike-guided attention (SGA), as one attention under the contract.

"Spatial Temporal Spiking Transformer" (STFormer; ICLR 2024 submission, withdrawn; openreview wPK65O4pqS). No code
("code will be made available"); the paper gives a figure and loosely defined equations. Built from the OpenReview
reviews as the library's spec records them (``table-models.md`` section 5). Everything here is a reconstruction;
what is the paper's and what is our reading:

* [paper, via reviews] a Spatial Core of large-kernel spatial convolutions with a residual ("Conv5 + BN" in the
  figure, a 3-layer stack by a reviewer's reading); a Temporal Core of 3-D convolutions over (T, H, W) applied to
  the spikes of all T steps (not causal, as a reviewer notes); SGA, a cross-attention-like fusion of the spatial
  and temporal features, without softmax; the SGA convolutions are not addition-only (reviewer 4).
* [our reading] where: one ST-Core per block, inside this attention (the paper's number of ST-Core positions is not
  known); spatial branch ``S = X + SN(BN(Conv_k(…SN(BN(Conv_k(X)))…)))`` with ``depth = 3`` depth-wise ``k x k``
  convs (``k = 5``; depth-wise to keep the parameter count of a block, the paper's grouping is unknown); temporal
  branch ``P = SN(BN(Conv3d_{3x3x3}(X)))`` over ``[B, C, T, H, W]``, depth-wise as well, zero-padded in time.
* [our reading] SGA direction: queries from the spatial features, keys and values from the temporal features,
  Spikformer-style ``Y = SN_0.5(s (Q Kᵀ) V)``, ``s = 0.125``, then the Linear-BN-LIF projection. The "CTRL" unit
  of the figure is undefined and left out.

Products: the convolutions take the block input (integers on Spikformer's SEW stream, spikes on a spike input);
``Q`` is computed from ``S`` = input + spikes (integers), ``K``/``V`` from spikes; ``Q Kᵀ`` and ``(Q Kᵀ) V`` are
spike-driven. Not spike-driven overall on a SEW backbone (integer inputs to the convs and to ``W_q``), as the paper
does not claim.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ..ops import folded_bn_spike
from ._qkv import QKVAttention
from ._registry import register_attention
from .semm import square_grid

__all__ = ["STFormerAttention"]


@register_attention(
    "stformer",
    description="ST-Core (large-kernel spatial + 3-D temporal convs) and spike-guided cross-attention (Q spatial, "
    "K/V temporal)",
    paper="STFormer (ICLR 2024 submission)",
    spike_driven=False,
    reference="paper",
)
class STFormerAttention(QKVAttention):
    r"""Spatial core, temporal core and spike-guided attention between them.

    .. math::
        S = X + \mathrm{SC}(X), \quad P = \mathrm{SN}(\mathrm{BN}(\mathrm{Conv3d}(X))), \quad
        Q = \mathrm{SN}(\mathrm{BN}(S W_q)), \ K, V = \mathrm{SN}(\mathrm{BN}(P W_{k,v}))

        Y = \mathrm{SN}_{0.5}(s\, (Q K^\top) V), \qquad \mathrm{out} = \mathrm{SN}(\mathrm{BN}(Y W_o + b_o))

    with ``SC`` a stack of ``spatial_depth`` (depth-wise ``k x k`` conv, BN, neuron) layers.

    Args:
        dim: token width ``C``.
        num_heads: heads ``h`` of the cross-attention.
        spatial_kernel: ``k`` of the spatial convs (5).
        spatial_depth: convs in the spatial stack (3).
        temporal_kernel: kernel ``(k_t, k_h, k_w)`` of the temporal Conv3d ((3, 3, 3)).
        depthwise: depth-wise convs (``groups = C``); False: dense convs (``k² C²`` parameters each).
        attn_scale: ``s``.
        qkv_bias: bias on the q/k/v projections.
        spike_layer: neuron factory; the attention neuron gets ``v_threshold=0.5``.

    Shape:
        ``forward(x, grid=None)``: tokens ``[T, B, N, C]`` in row-major order of the grid ``(H, W)`` (default: a
        square grid) -> spikes ``[T, B, N, C]``.
    """

    # The convolutions need the token grid: the backbone's block passes it (``attend`` gives map-native attentions the
    # grid on a token stream and the map itself on a map stream).
    native_layout = "map"

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        spatial_kernel: int = 5,
        spatial_depth: int = 3,
        temporal_kernel: tuple[int, int, int] = (3, 3, 3),
        depthwise: bool = True,
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__(dim, num_heads)
        if spatial_kernel % 2 == 0 or any(k % 2 == 0 for k in temporal_kernel):
            raise ValueError(f"kernels must be odd, got {spatial_kernel} and {tuple(temporal_kernel)}")
        if spatial_depth < 1:
            raise ValueError(f"spatial_depth must be >= 1, got {spatial_depth}")
        groups = dim if depthwise else 1
        self.attn_scale = float(attn_scale)
        self.spatial_conv = nn.ModuleList(
            nn.Conv2d(dim, dim, spatial_kernel, padding=spatial_kernel // 2, groups=groups, bias=False)
            for _ in range(spatial_depth)
        )
        self.spatial_bn = nn.ModuleList(nn.BatchNorm2d(dim) for _ in range(spatial_depth))
        self.spatial_lif = nn.ModuleList(spike_layer() for _ in range(spatial_depth))
        kt = tuple(int(k) for k in temporal_kernel)
        self.temporal_conv = nn.Conv3d(dim, dim, kt, padding=tuple(k // 2 for k in kt), groups=groups, bias=False)
        self.temporal_bn = nn.BatchNorm3d(dim)
        self.temporal_lif = spike_layer()
        self.add_qkv(dim, bias=qkv_bias, neuron=spike_layer)
        self.add_output(dim, neuron=spike_layer)

    def spatial_core(self, fmap: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> ``fmap + spikes of the conv stack`` (same shape)."""
        s = fmap
        for conv, bn, lif in zip(self.spatial_conv, self.spatial_bn, self.spatial_lif):
            s = folded_bn_spike(s, conv, bn, lif)
        return fmap + s

    def temporal_core(self, fmap: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> spikes of a Conv3d over (T, H, W) (same shape; non-causal in time)."""
        z = self.temporal_conv(fmap.permute(1, 2, 0, 3, 4))  # [B, C, T, H, W]
        z = self.temporal_bn(z).permute(2, 0, 1, 3, 4)  # [T, B, C, H, W]
        return self.temporal_lif(z.contiguous())

    def forward_map(self, fmap: Tensor) -> Tensor:
        """Feature map ``[T, B, C, H, W]`` (the block's stream) -> spikes ``[T, B, C, H, W]``."""
        T, B, C, Hg, Wg = fmap.shape
        spatial = self.spatial_core(fmap).flatten(3).transpose(2, 3)  # [T, B, N, C]
        temporal = self.temporal_core(fmap).flatten(3).transpose(2, 3)
        q = self._heads(self.branch("q", spatial))
        k, v = self._heads(self.branch("k", temporal)), self._heads(self.branch("v", temporal))
        y = self.output(((q @ k.transpose(-2, -1)) @ v) * self.attn_scale)  # [T, B, h, N, d] -> [T, B, N, C]
        return y.transpose(2, 3).reshape(T, B, C, Hg, Wg)

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None, *, layout: str = "tokens") -> Tensor:
        """Tokens ``x: [T, B, N, C]`` in row-major order of ``grid = (H, W)`` (default: a square grid) -> spikes
        ``[T, B, N, C]``; ``layout="map"``: a feature map ``[T, B, C, H, W]`` -> ``[T, B, C, H, W]``."""
        if layout == "map":
            return self.forward_map(x)
        if layout != "tokens":
            raise ValueError(f"layout must be 'tokens' or 'map', got {layout!r}")
        if x.dim() != 4:
            raise ValueError(f"STFormerAttention takes tokens [T, B, N, C], got shape {tuple(x.shape)}")
        T, B, N, C = x.shape
        Hg, Wg = square_grid(N, grid)
        y = self.forward_map(x.transpose(2, 3).reshape(T, B, C, Hg, Wg))
        return y.flatten(3).transpose(2, 3)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, attn_scale={self.attn_scale}"
