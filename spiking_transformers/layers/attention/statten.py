"""STAtten's block-wise spatio-temporal attention, registered as ``"statten"``.

"Spiking Transformer with Spatial-Temporal Attention", CVPR 2025, arXiv:2409.19764. Upstream:
github.com/Intelligent-Computing-Lab-Yale/STAtten (``module/ms_conv.py``) @ e9048a18b02cdaf824ac2ad82f2e6f5bfcf50134.
It is SDT V1's projections (:class:`~.sdsa.SDTProjections`) with another core, on feature maps; the registry holds its
token-contract subclass :data:`STAttention` (the grid matters here: the scale is ``1 / H``).
"""

from __future__ import annotations

from torch import Tensor

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ..ops import merge_heads
from ._layout import ATTN_V_THRESHOLD, token_contract
from ._registry import register_attention
from .sdsa import SDTProjections

__all__ = ["SpatioTemporalAttention", "STAttention"]


class SpatioTemporalAttention(SDTProjections):
    r"""STAtten's block-wise spatio-temporal spiking attention, on SDT V1's projections.

    With ``S = SN(X)`` and ``Q, K, V = SN(BN(W S))`` split into heads ``[T, B, h, N, d]``, the ``T`` steps are cut
    into ``T / c`` groups of ``c = chunk_size`` consecutive steps. In each group the ``c*N`` tokens are stacked, and

    .. math::
        O = Q \, (K^\top V \cdot s), \qquad Y = SN_{0.5}(O), \qquad \text{out} = BN(W_p Y + b_p)

    (linear in tokens: ``K^T V`` is ``d x d`` per head and group). ``s = 1 / H`` (token-grid height), or
    ``1 / (H^2 c)`` with ``dvs_mode``. Groups are independent; a query attends to later steps of its own group.

    Args:
        dim: channels C (a multiple of ``num_heads``).
        num_heads: heads h.
        chunk_size: time steps per group c (default 2, the official default); must divide T.
        spike_layer: neuron factory (the output neuron gets ``v_threshold=0.5``).
        dvs_mode: the official event-data variant (3x3 max filters on S, Q, K, V and the output gating).

    Shape:
        ``x: [T, B, C, H, W]`` real-valued stream -> ``[T, B, C, H, W]`` branch output.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        chunk_size: int = 2,
        spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER,
        dvs_mode: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        spike_layer = resolve_spike_layer(spike_layer)
        super().__init__(dim, num_heads, spike_layer=spike_layer, dvs_mode=dvs_mode)
        self.chunk_size = chunk_size
        self.dvs_mode = bool(dvs_mode)
        self.attn_lif = spike_layer(v_threshold=ATTN_V_THRESHOLD)

    def _chunks(self, x: Tensor) -> Tensor:
        """``[T, B, h, N, d] -> [T/c, B, h, c*N, d]``: the c steps of a group stacked along the tokens."""
        T, B, h, N, d = x.shape
        c = self.chunk_size
        x = x.view(T // c, c, B, h, N, d).permute(0, 2, 3, 1, 4, 5)  # [T/c, B, h, c, N, d]
        return x.reshape(T // c, B, h, c * N, d)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` real-valued stream -> branch ``[T, B, C, H, W]``."""
        T, B, C, H, W = x.shape
        if T % self.chunk_size:
            raise ValueError(f"STAtten chunk_size {self.chunk_size} does not divide the number of time steps T={T}")
        s = self.shortcut_lif(x)
        pooled = self.erode(s) if self.dvs_mode else None
        q, k, v = self.project("q", s), self.project("k", s), self.project("v", s)  # [T, B, h, N, d]
        # Same Python float as upstream (1 / H, or 1 / (H * H * c)), so scaled values round identically.
        scale = 1 / (H * H * self.chunk_size) if self.dvs_mode else 1 / H
        kv = (self._chunks(k).transpose(-2, -1) @ self._chunks(v)) * scale  # [T/c, B, h, d, d]
        out = self._chunks(q) @ kv  # [T/c, B, h, c*N, d]
        c, h, N, d = self.chunk_size, self.num_heads, H * W, C // self.num_heads
        out = out.reshape(T // c, B, h, c, N, d).permute(0, 3, 1, 2, 4, 5).reshape(T, B, h, N, d)
        y = self.attn_lif(merge_heads(out, H, W))  # [T, B, C, H, W] binary
        if pooled is not None:
            y = y * pooled + pooled
        return self.out_proj(y)



STAttention = register_attention(
    "statten",
    description="spatio-temporal attention: Q (K^T V) over groups of chunk_size time steps, linear in N",
    paper="STAtten (CVPR 2025)",
    spike_driven=True,
)(token_contract(SpatioTemporalAttention, "STAttention"))
