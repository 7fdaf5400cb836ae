r"""A²OS²A: accurate addition-only spiking self-attention (binary Q, ReLU K, ternary V; no softmax, no scaling).

Guo et al., "Spiking Transformer: Accurate Addition-Only Spiking Self-Attention", CVPR 2025, arXiv 2503.00226. No
official code; built from the abstract, a small third-party module and the library's spec (``table-models.md``
section 12). What is the paper's and what is our reading:

* [paper, abstract] Q, K and V get different neuron types: binary spiking, ReLU and ternary spiking; the attention
  is addition-only, with no softmax and no scaling.
* [third-party code / recall] the assignment Q binary, K ReLU (full-precision, non-negative), V ternary
  ({-1, 0, +1}); ``S = Q_b K_rᵀ`` (each entry adds the K entries Q's spikes select), ``O = S V_t`` (signed
  additions). Configurable here (``q_kind``, ``k_kind``, ``v_kind``).
* [our reading, as the third-party module] no neuron between ``O`` and the output projection
  (``attn_neuron=False``); the projection is Spikformer's Linear-BN-LIF. With ``attn_neuron=True`` a LIF
  (threshold 0.5, as SSA) spikes ``O`` first.
* [our reading] the ternary neuron: :class:`~spiking_transformers.neurons.TernaryLIF` (LIF charge, thresholds
  ``±1``, reset on firing); the paper's neuron thresholds and any learned spike amplitude are unknown.

Energy: both attention products are driven by spikes (``Q_b`` for ``S``, ``V_t`` for ``O``; a ternary spike is an
addition or a subtraction), so they are accumulates. Without ``attn_neuron`` the output projection's input ``O`` is
real-valued (sums of ReLU values), so that Linear is a multiply-accumulate: the *attention* is addition-only, the
block is not spike-driven. The registry records this (``spike_driven=False``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, Neuron, SpikeFactory, TernaryLIF
from ..ops import linear_bn_spike
from ._qkv import QKVAttention, add_branch
from ._registry import register_attention

__all__ = ["A2OS2A"]


_KINDS = ("binary", "relu", "ternary")


@register_attention(
    "a2os2a",
    description="addition-only attention: binary Q, ReLU K, ternary V, O = (Q K^T) V, no softmax, no scale",
    paper="A2OS2A (CVPR 2025)",
    spike_driven=False,  # the attention's products are additions, but O (real) drives the output projection
    reference="paper",
)
class A2OS2A(QKVAttention):
    r"""Addition-only spiking self-attention.

    .. math::
        Q = \mathrm{SN}(\mathrm{BN}(X W_q)) \in \{0,1\}, \quad K = \mathrm{ReLU}(\mathrm{BN}(X W_k)) \ge 0, \quad
        V = \mathrm{SN}_{\pm}(\mathrm{BN}(X W_v)) \in \{-1,0,1\}

        O = (Q K^\top) V \ \text{(per head, no softmax, no scale)}, \qquad
        \mathrm{out} = \mathrm{SN}(\mathrm{BN}(O W_o + b_o))

    Args:
        dim: token width ``C``.
        num_heads: heads ``h`` (channel-major split, as SSA).
        q_kind, k_kind, v_kind: ``"binary"`` (the backbone's neuron), ``"relu"`` or ``"ternary"``
            (:class:`~spiking_transformers.neurons.TernaryLIF`) for each of Q, K, V.
        attn_neuron: spike ``O`` with a LIF (threshold 0.5) before the projection (False: as the third-party code).
        qkv_bias: bias on the q/k/v projections.
        spike_layer: neuron factory of the binary neurons.

    Shape:
        ``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        q_kind: str = "binary",
        k_kind: str = "relu",
        v_kind: str = "ternary",
        attn_neuron: bool = False,
        qkv_bias: bool = True,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__(dim, num_heads)
        kinds = dict(q=q_kind, k=k_kind, v=v_kind)
        for name, kind in kinds.items():
            if kind not in _KINDS:
                raise ValueError(f"{name}_kind must be one of {_KINDS}, got {kind!r}")
        if "relu" in kinds.values() and list(kinds.values()).count("relu") > 1:
            raise ValueError(f"at most one of Q, K, V may be ReLU (two real operands would multiply), got {kinds}")
        self.kinds = kinds
        for name, kind in kinds.items():
            act = {"binary": spike_layer, "ternary": TernaryLIF, "relu": nn.ReLU}[kind]
            add_branch(self, name, dim, dim, bias=qkv_bias, neuron=act, neuron_name="act")
        self.add_output(dim, neuron=spike_layer, attn_neuron=None if attn_neuron else nn.Identity())

    def _branch(self, name: str, x: Tensor) -> Tensor:
        linear, bn, act = (getattr(self, f"{name}_{p}") for p in ("linear", "bn", "act"))
        if isinstance(act, Neuron):  # BN and neuron fused in training where the neuron allows it
            y = linear_bn_spike(x, linear, bn, act)
        else:
            z = bn(linear(x.reshape(-1, x.shape[-1])))
            y = act(z.reshape(*x.shape[:-1], z.shape[-1]))
        return self._heads(y)  # [T, B, h, N, d]

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``."""
        q, k, v = self._branch("q", x), self._branch("k", x), self._branch("v", x)
        s = q @ k.transpose(-2, -1)  # [T, B, h, N, N]: sums of K entries selected by Q's spikes
        return self.output(s @ v)  # s @ v [T, B, h, N, d]: signed sums selected by V's ternary spikes

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, q={self.kinds['q']}, k={self.kinds['k']}, v={self.kinds['v']}"
