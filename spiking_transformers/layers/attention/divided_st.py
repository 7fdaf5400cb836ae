r"""Divided space-time softmax attention (TimeSformer style), as in Spikeformer (Li, Lei and Yang).

"Spikeformer: A Novel Architecture for Training High-Performance Low-Latency Spiking Neural Network",
arXiv:2211.10686 (Neurocomputing 2024). Upstream: github.com/Loydian/Spikeformer ``dvscifar10/spikeformer.py``
(classes ``Attention`` and ``Block``), checked at commit cacc58d328a7dcbb00636d4b82b1a0abc22def0d.

The paper calls it spatio-temporal attention (STA). The released code computes it in two steps on real-valued
tokens; nothing in it spikes:

.. math::
    X_t = X + W_{fc}\,\mathrm{MHSA}_t(\mathrm{LN}_t(X)) \quad\text{(over the T steps of each token position)}

    X' = X_t + \mathrm{MHSA}_s(\mathrm{LN}_s(X_t)) \quad\text{(over the N positions of each time step)}

with :math:`\mathrm{MHSA}(Z) = W_p\,\mathrm{softmax}(Q K^\top d^{-1/2}) V + b_p`, ``[Q, K, V] = W_{qkv} Z`` (no
bias). The shortcut is inside the temporal step (the spatial attention reads ``X_t``, not ``X``), so the module
gives the whole branch ``X' - X = R_t + \mathrm{MHSA}_s(\mathrm{LN}_s(X + R_t))`` under the attention contract
(``forward``), and the Spikeformer block calls :meth:`temporal_residual` and :meth:`spatial_residual` itself to add
the shortcuts in the official order (same rounding as upstream).

Readings of the official code:
    * drop path is applied to the temporal residual *before* ``temporal_fc`` and to the spatial residual, with one
      draw per token position (temporal) and per frame (spatial), because upstream applies ``DropPath`` to the
      ``(b h w) t m`` and ``(b t) (h w) m`` layouts. Here the masks have those granularities.
    * ``spike_layer`` is accepted for the contract and unused: the official attention has no neuron.

The paper's wording ("spatio-temporal attention instead of spatial-wise or temporal-wise attention") could also be
read as one attention over all ``T * N`` tokens. :class:`JointSpaceTimeAttention` (``spikeformer_joint``) is that
reading; it is **not** in the official code and is registered with ``reference="paper"``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._registry import register_attention

__all__ = ["SoftmaxMHSA", "DividedSpaceTimeAttention", "JointSpaceTimeAttention", "drop_path"]


def drop_path(x: Tensor, p: float, training: bool, mask_shape: tuple[int, ...]) -> Tensor:
    """Stochastic depth: zero whole groups of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Args:
        x: any tensor.
        p: drop probability; ``0`` or ``training=False`` returns ``x`` itself.
        mask_shape: shape of the random mask, broadcast against ``x`` (its 1-sized dims are the dropped groups).
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty(mask_shape).bernoulli_(keep)
    return x * mask.div_(keep)


class SoftmaxMHSA(nn.Module):
    """Plain multi-head softmax self-attention on real-valued rows: ``[S, L, C] -> [S, L, C]``.

    ``qkv`` has no bias, ``proj`` has one; the scale is ``(C / heads) ** -0.5`` (official ``Attention``).

    Args:
        dim: channels C (a multiple of ``num_heads``).
        num_heads: heads.
        attn_drop: dropout on the attention map.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a multiple of num_heads ({num_heads})")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [S, L, C]`` (S independent sequences of length L) -> ``[S, L, C]``."""
        S, L, C = x.shape
        qkv = self.qkv(x).reshape(S, L, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [S, h, L, d]
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(S, L, C)
        return self.proj_drop(self.proj(x))


@register_attention(
    "spikeformer_st",
    description="divided space-time softmax attention on real tokens: temporal MHSA + linear, then spatial MHSA",
    paper="Spikeformer, Li, Lei & Yang (Neurocomputing 2024)",
    spike_driven=False,
    reference="official",
)
class DividedSpaceTimeAttention(nn.Module):
    """Spikeformer's (Li et al.) spatio-temporal attention: temporal, then spatial softmax attention.

    Module names follow the official block (``temporal_norm1``, ``temporal_attn``, ``temporal_fc``; the spatial
    ``norm1`` and ``attn`` are ``spatial_norm`` and ``spatial_attn`` here).

    Args:
        dim: channels C.
        num_heads: heads of both attentions.
        spike_layer: unused (the official attention has no neuron); accepted for the attention contract.
        norm_eps: LayerNorm epsilon (1e-6 in the official model).
        attn_drop, proj_drop: dropout rates inside both attentions.
        drop_path: stochastic-depth rate of both residuals.

    Shape:
        ``x: [T, B, N, C]`` real tokens -> branch ``[T, B, N, C]`` (the caller adds ``x``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        spike_layer: Any = None,
        norm_eps: float = 1e-6,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        del spike_layer  # no neuron in this attention
        self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.temporal_attn = SoftmaxMHSA(dim, num_heads, attn_drop, proj_drop)
        self.temporal_fc = nn.Linear(dim, dim)
        self.spatial_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.spatial_attn = SoftmaxMHSA(dim, num_heads, attn_drop, proj_drop)
        self.drop_path = float(drop_path)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"DividedSpaceTimeAttention expects tokens [T, B, N, C], got shape {tuple(x.shape)}")

    def temporal_residual(self, x: Tensor) -> Tensor:
        """``R_t = W_fc DropPath(MHSA_t(LN_t(x)))``: each token position attends over its T steps.

        ``x: [T, B, N, C]`` -> ``[T, B, N, C]``.
        """
        T, B, N, C = x.shape
        seqs = x.permute(1, 2, 0, 3).reshape(B * N, T, C)  # one sequence of T steps per (b, n)
        r = self.temporal_attn(self.temporal_norm1(seqs)).reshape(B, N, T, C).permute(2, 0, 1, 3)
        r = drop_path(r, self.drop_path, self.training, (1, B, N, 1))
        return self.temporal_fc(r)

    def spatial_residual(self, x: Tensor) -> Tensor:
        """``R_s = DropPath(MHSA_s(LN_s(x)))``: the N tokens of each frame attend to each other.

        ``x: [T, B, N, C]`` -> ``[T, B, N, C]``.
        """
        T, B, N, C = x.shape
        r = self.spatial_attn(self.spatial_norm(x.reshape(T * B, N, C))).reshape(T, B, N, C)
        return drop_path(r, self.drop_path, self.training, (T, B, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """The branch ``R_t + R_s(x + R_t)`` of tokens ``x: [T, B, N, C]`` (the caller adds ``x``)."""
        self._check(x)
        r_t = self.temporal_residual(x)
        return r_t + self.spatial_residual(x + r_t)



@register_attention(
    "spikeformer_joint",
    description="joint space-time softmax attention on real tokens: one MHSA over all T*N tokens (non-official)",
    paper="Spikeformer, Li, Lei & Yang (Neurocomputing 2024), a reading of the paper; not in the official code",
    spike_driven=False,
    reference="paper",
)
class JointSpaceTimeAttention(nn.Module):
    """One pre-LN softmax attention over all ``T * N`` tokens of each sample (a non-official reading of the paper).

    Args:
        dim: channels C.
        num_heads: heads.
        spike_layer: unused (no neuron); accepted for the attention contract.
        norm_eps: LayerNorm epsilon.
        attn_drop, proj_drop: dropout rates inside the attention.
        drop_path: stochastic-depth rate, one draw per sample.

    Shape:
        ``x: [T, B, N, C]`` real tokens -> branch ``[T, B, N, C]`` (the caller adds ``x``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        spike_layer: Any = None,
        norm_eps: float = 1e-6,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        del spike_layer  # no neuron in this attention
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SoftmaxMHSA(dim, num_heads, attn_drop, proj_drop)
        self.drop_path = float(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        """Branch ``MHSA(LN(x))`` over the ``T * N`` tokens of each sample of ``x: [T, B, N, C]``."""
        if x.dim() != 4:
            raise ValueError(f"JointSpaceTimeAttention expects tokens [T, B, N, C], got shape {tuple(x.shape)}")
        T, B, N, C = x.shape
        seqs = x.permute(1, 0, 2, 3).reshape(B, T * N, C)  # one sequence of all steps' tokens per sample
        r = self.attn(self.norm(seqs)).reshape(B, T, N, C).permute(1, 0, 2, 3)
        return drop_path(r, self.drop_path, self.training, (1, B, 1, 1))
