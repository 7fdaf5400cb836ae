r"""α-XNOR spiking self-attention: a similarity that also rewards matching silences.

Xiao et al., "Rethinking Spiking Self-Attention Mechanism: Implementing α-XNOR Similarity Calculation in Spiking
Transformers", CVPR 2025. No code is published; this module is built from the abstract and the library's spec
(``table-models.md`` section 14). What is the paper's and what is our reading:

* [paper, abstract] The dot product of binary query and key rows ignores (0, 0) pairs, most pairs under sparse
  firing; α-XNOR gives a matching non-spike pair the correlation ``α`` and keeps spike matches more important, so
  ``α < 1``. It is a plug-in for the similarity of spiking self-attention (Spikformer, Spike-driven Transformer).
* [our reading] mismatches count 0: ``sim_α(q, k) = Σ_i q_i k_i + α (1 - q_i)(1 - k_i)``, computed in matrix form
  ``S = (1 + α) Q Kᵀ - α n_q 1ᵀ - α 1 n_kᵀ + α d`` (``n_q``, ``n_k`` the spike counts of each row, ``d`` the head
  width) so that the only product of activations is the spike product ``Q Kᵀ``;
* [our reading] the rest is Spikformer's SSA unchanged: ``Y = SN_0.5(s · S V)`` with ``s = 0.125``, then the
  Linear-BN-LIF output projection; ``α`` fixed (0.25) or learnable (``learnable_alpha``), one per layer or one per
  head (``per_head``). The paper's value of α, whether it is learned and how the scale is retuned are unknown.

Products: ``Q Kᵀ`` takes two spike tensors (accumulates); ``S V`` multiplies a real map by binary ``V``, so it is
driven by ``V``'s spikes (accumulates with a real dynamic weight). The module is spike-driven in the audit's sense.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ._qkv import QKVAttention
from ._registry import register_attention

__all__ = ["alpha_xnor_similarity", "alpha_xnor_similarity_elementwise", "AlphaXNORAttention"]


def alpha_xnor_similarity(q: Tensor, k: Tensor, alpha: Tensor | float) -> Tensor:
    r"""α-XNOR similarity in matrix form: ``(1 + α) Q Kᵀ - α n_q - α n_kᵀ + α d``.

    Args:
        q: binary queries ``[..., N, d]``.
        k: binary keys ``[..., M, d]``.
        alpha: a number, or a tensor broadcasting against ``[..., 1, 1]`` (e.g. one value per head ``[h, 1, 1]``).

    Returns:
        ``S [..., N, M]`` with ``S[n, m] = Σ_i q_ni k_mi + α (1 - q_ni)(1 - k_mi)``.
    """
    d = q.shape[-1]
    qk = q @ k.transpose(-2, -1)  # [..., N, M], spike coincidences
    n_q = q.sum(-1, keepdim=True)  # [..., N, 1]
    n_k = k.sum(-1).unsqueeze(-2)  # [..., 1, M]
    # (1 - q)(1 - k)^T = d - n_q - n_k + q k^T: the matching silences, without a second product
    return qk + alpha * (qk - n_q - n_k + d)


def alpha_xnor_similarity_elementwise(q: Tensor, k: Tensor, alpha: float) -> Tensor:
    """The definition, element by element (reference for tests): ``Σ_i q_i k_i + α (1 - q_i)(1 - k_i)``.

    Shapes as :func:`alpha_xnor_similarity`.
    """
    qe, ke = q.unsqueeze(-2), k.unsqueeze(-3)  # [..., N, 1, d], [..., 1, M, d]
    return (qe * ke + alpha * (1 - qe) * (1 - ke)).sum(-1)


@register_attention(
    "xnor",
    description="alpha-XNOR similarity in SSA: S = (1+a) QK^T - a n_q - a n_k + a d (silences match too)",
    paper="alpha-XNOR (CVPR 2025)",
    spike_driven=True,
    reference="paper",
)
class AlphaXNORAttention(QKVAttention):
    r"""Spikformer SSA with the α-XNOR similarity in place of ``Q Kᵀ``.

    .. math::
        Q, K, V = \mathrm{SN}(\mathrm{BN}(X W_{q,k,v})), \quad
        S = (1 + \alpha) Q K^\top - \alpha n_q - \alpha n_k^\top + \alpha d, \quad
        Y = \mathrm{SN}_{0.5}(s\, S V), \quad \mathrm{out} = \mathrm{SN}(\mathrm{BN}(Y W_o + b_o))

    Args:
        dim: token width ``C``.
        num_heads: heads ``h`` (``d = C / h``; channel-major split as SSA).
        alpha: initial ``α`` (``0 <= α < 1``; 0 gives SSA back).
        learnable_alpha: make ``α`` a parameter.
        per_head: one ``α`` per head (else one per layer).
        attn_scale: ``s`` (0.125, SSA's).
        qkv_bias: bias on the q/k/v projections (the Spikformer CIFAR file's default).
        spike_layer: neuron factory; the attention neuron gets ``v_threshold=0.5``.

    Shape:
        ``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        alpha: float = 0.25,
        learnable_alpha: bool = False,
        per_head: bool = False,
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__(dim, num_heads)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1) (silences count less than spikes), got {alpha}")
        self.attn_scale = float(attn_scale)
        a = torch.full((num_heads, 1, 1) if per_head else (), float(alpha))
        if learnable_alpha:
            self.alpha = nn.Parameter(a)
        else:
            self.register_buffer("alpha", a, persistent=False)
        self.add_qkv(dim, bias=qkv_bias, neuron=spike_layer)
        self.add_output(dim, neuron=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``."""
        q, k, v = (self._heads(self.branch(name, x)) for name in ("q", "k", "v"))  # [T, B, h, N, d]
        s = alpha_xnor_similarity(q, k, self.alpha.to(q.dtype))  # [T, B, h, N, N]
        return self.output((s @ v) * self.attn_scale)

    def extra_repr(self) -> str:
        kind = "learnable" if isinstance(self.alpha, nn.Parameter) else "fixed"
        return f"num_heads={self.num_heads}, alpha={kind} {tuple(self.alpha.shape)}, attn_scale={self.attn_scale}"
