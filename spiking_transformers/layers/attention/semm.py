r"""SEMM: spiking experts mixture in attention (EMSA) and in the MLP (EMSP), with binary routers and no softmax.

Zhou et al., "Spiking Transformer with Experts Mixture", NeurIPS 2024 (openreview WcIeEtY3AG). No official code;
built from the paper summary and the third-party re-implementation in Fancyssc/STEP
(``cls/models/static/spikf_semm_cifar.py``), as the library's spec records it (``table-models.md`` section 10).
What is the paper's and what is our reading:

* [paper] mixture of experts re-expressed for SNNs: no softmax, no top-K; a spiking router emits binary gates per
  token, expert and time step; expert outputs (spike trains) are combined by element-wise gating and addition.
  EMSA replaces SSA's heads by attention experts; EMSP adds channel-wise experts to the MLP.
* [third-party, STEP] EMSA: router ``R = SN(BN(W_r X)) ∈ {0,1}^m``; shared keys ``K = SN(BN(W_k X))`` of width
  ``d_e``; shared values ``V = SN(BN(W_v X))`` of width ``D`` (``"full"``) or ``d_e`` (``"small"``); expert ``i``:
  ``Q_i = SN(BN(W_{q,i} X))`` (width ``d_e``), ``E_i = SN(s (Q_i Kᵀ) V)`` with ``s = 0.125``; mix
  ``Y = Σ_i R_i ⊙ E_i``, an integer in ``[0, m]``, used as it is; ``out = SN(BN(W_o Y))``.
* [third-party, STEP] EMSP: ``H = SN(BN(W_1 X))`` of width ``r D`` (``r = 4``) split into halves ``H_a | H_b``;
  router ``R = SN(BN(DWConv3x3(H_a)))`` on the token grid; ``out = SN(BN(W_2 (R ⊙ H_b)))``.
* [our reading] the expert neuron ``E_i`` fires at 0.5, SSA's attention threshold (not retrieved); the router's
  BN/LIF placement and the 3x3 depth-wise kernel follow STEP; ``d_e = D / m`` by default.

Every product takes spikes: ``Q_i Kᵀ`` binary x binary; ``(Q_i Kᵀ) V`` driven by ``V``; the gates ``R_i ⊙ E_i``
binary x binary; the projections take the integer mix ``Y`` (integer-driven, like Spikformer's SEW residual), so
the module is not spike-driven in the strict sense of the audit (the paper does not claim it is).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ...neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ..ops import folded_bn_spike, linear_bn_spike
from ._layout import ATTN_V_THRESHOLD
from ._qkv import add_branch
from ._registry import register_attention

__all__ = ["ExpertsMixtureAttention", "ExpertsMixtureMlp", "square_grid"]


def square_grid(num_tokens: int, grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """The token grid ``(H, W)``: ``grid`` when given (checked), else the square ``sqrt(N) x sqrt(N)``."""
    if grid is not None:
        if grid[0] * grid[1] != num_tokens:
            raise ValueError(f"grid {tuple(grid)} has {grid[0] * grid[1]} cells for {num_tokens} tokens")
        return int(grid[0]), int(grid[1])
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} tokens are not a square grid; pass grid=(H, W)")
    return side, side


@register_attention(
    "semm",
    description="experts mixture attention (EMSA): m query experts, shared K/V, binary router, integer mix",
    paper="SEMM (NeurIPS 2024)",
    spike_driven=False,  # the output projection takes the integer mix of gated experts
    reference="paper",
)
class ExpertsMixtureAttention(nn.Module):
    r"""EMSA: spiking attention experts gated by a binary spiking router.

    .. math::
        R = \mathrm{SN}(\mathrm{BN}(X W_r)), \quad E_i = \mathrm{SN}_{0.5}(s\, (Q_i K^\top) V), \quad
        Y = \sum_{i=1}^m R_i \odot E_i, \quad \mathrm{out} = \mathrm{SN}(\mathrm{BN}(Y W_o + b_o))

    Args:
        dim: token width ``D``.
        num_heads: the backbone's head count; the number of experts when ``num_experts`` is not given.
        num_experts: ``m``.
        expert_dim: ``d_e``, the width of each expert's query and of the shared key (default ``D / m``).
        v_dim: ``"full"`` (values of width ``D``) or ``"small"`` (width ``d_e``; the projection maps ``d_e -> D``).
        attn_scale: ``s``.
        qkv_bias: bias on the router, query, key and value projections.
        spike_layer: neuron factory; the expert neuron gets ``v_threshold=0.5``.

    Shape:
        ``x: [T, B, N, D]`` -> spikes ``[T, B, N, D]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        num_experts: int | None = None,
        expert_dim: int | None = None,
        v_dim: str = "full",
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__()
        m = int(num_experts if num_experts is not None else num_heads)
        if m < 1:
            raise ValueError(f"num_experts must be >= 1, got {m}")
        if expert_dim is None:
            if dim % m:
                raise ValueError(f"dim {dim} is not divisible by num_experts {m}; pass expert_dim")
            expert_dim = dim // m
        if v_dim not in ("full", "small"):
            raise ValueError(f"v_dim must be 'full' or 'small', got {v_dim!r}")
        self.num_experts, self.expert_dim, self.v_dim = m, int(expert_dim), v_dim
        self.attn_scale = float(attn_scale)
        width_v = dim if v_dim == "full" else self.expert_dim
        for name, width in (("router", m), ("q", m * self.expert_dim), ("k", self.expert_dim), ("v", width_v)):
            add_branch(self, name, dim, width, bias=qkv_bias, neuron=spike_layer)
        self.expert_lif = spike_layer(v_threshold=ATTN_V_THRESHOLD)
        add_branch(self, "proj", width_v, dim, bias=True, neuron=spike_layer)

    def route(self, x: Tensor) -> Tensor:
        """Binary gates ``[T, B, N, m]``: which experts each token uses at each step."""
        return linear_bn_spike(x, self.router_linear, self.router_bn, self.router_lif)

    def experts(self, x: Tensor) -> Tensor:
        """Every expert's binary output ``E`` as ``[T, B, m, N, D_v]``."""
        T, B, N, _ = x.shape
        q = linear_bn_spike(x, self.q_linear, self.q_bn, self.q_lif)  # [T, B, N, m * d_e]
        q = q.reshape(T, B, N, self.num_experts, self.expert_dim).transpose(2, 3)  # [T, B, m, N, d_e]
        k = linear_bn_spike(x, self.k_linear, self.k_bn, self.k_lif).unsqueeze(2)  # [T, B, 1, N, d_e]
        v = linear_bn_spike(x, self.v_linear, self.v_bn, self.v_lif).unsqueeze(2)  # [T, B, 1, N, D_v]
        return self.expert_lif(((q @ k.transpose(-2, -1)) @ v) * self.attn_scale)  # [T, B, m, N, D_v]

    def mix(self, x: Tensor) -> Tensor:
        """The gated sum ``Y = Σ_i R_i ⊙ E_i``: integers in ``[0, m]``, ``[T, B, N, D_v]``."""
        gates = self.route(x).transpose(2, 3).unsqueeze(-1)  # [T, B, m, N, 1]
        return (gates * self.experts(x)).sum(2)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, D]`` -> spikes ``[T, B, N, D]``."""
        return linear_bn_spike(self.mix(x), self.proj_linear, self.proj_bn, self.proj_lif)

    def extra_repr(self) -> str:
        return (f"num_experts={self.num_experts}, expert_dim={self.expert_dim}, v_dim={self.v_dim}, "
                f"attn_scale={self.attn_scale}")


class ExpertsMixtureMlp(nn.Module):
    r"""EMSP: an MLP whose hidden channels are experts gated per token and step by a depth-wise-conv spiking router.

    .. math::
        [H_a \mid H_b] = \mathrm{SN}(\mathrm{BN}(X W_1)), \quad
        R = \mathrm{SN}(\mathrm{BN}(\mathrm{DWConv}_{k \times k}(H_a))), \quad
        \mathrm{out} = \mathrm{SN}(\mathrm{BN}((R \odot H_b) W_2 + b_2))

    Args:
        dim: token width ``D``.
        hidden_dim: width of ``H`` (``r D``; even): ``H_a`` and ``H_b`` have ``hidden_dim / 2`` channels each.
        kernel_size: the router's depth-wise kernel (3, as STEP).
        spike_layer: neuron factory.

    Shape:
        ``forward(x, grid=None)``: ``x: [T, B, N, D]`` tokens in row-major order of the grid ``(H, W)`` (default: a
        square grid) -> spikes ``[T, B, N, D]``.
    """

    def __init__(
        self, dim: int, hidden_dim: int, *, kernel_size: int = 3, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER
    ) -> None:
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even (split into two halves), got {hidden_dim}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        half = hidden_dim // 2
        self.fc1_linear = nn.Linear(dim, hidden_dim)
        self.fc1_bn = nn.BatchNorm1d(hidden_dim)
        self.fc1_lif = spike_layer()
        self.router_conv = nn.Conv2d(half, half, kernel_size, padding=kernel_size // 2, groups=half, bias=False)
        self.router_bn = nn.BatchNorm2d(half)
        self.router_lif = spike_layer()
        self.fc2_linear = nn.Linear(half, dim)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = spike_layer()

    def route(self, h_a: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        """Binary gates ``[T, B, N, hidden/2]`` from the first half ``h_a: [T, B, N, hidden/2]`` of ``H``."""
        T, B, N, C = h_a.shape
        Hg, Wg = square_grid(N, grid)
        fmap = h_a.transpose(2, 3).reshape(T, B, C, Hg, Wg)
        r = folded_bn_spike(fmap, self.router_conv, self.router_bn, self.router_lif)  # [T, B, C, H, W]
        return r.flatten(3).transpose(2, 3)

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        h = linear_bn_spike(x, self.fc1_linear, self.fc1_bn, self.fc1_lif)  # [T, B, N, hidden]
        h_a, h_b = h.chunk(2, dim=-1)
        return linear_bn_spike(self.route(h_a, grid) * h_b, self.fc2_linear, self.fc2_bn, self.fc2_lif)
