r"""DISTA's spatio-temporal spiking self-attention: attention over a window of past time steps with a thresholding
denoiser.

"DISTA: Denoising Spiking Transformer with Intrinsic Plasticity and Spatiotemporal Attention" (ICLR 2024
submission, arXiv 2311.09376). No code is published; built from the abstract, the OpenReview reviews and the
library's spec (``table-models.md`` section 4). What is the paper's and what is our reading:

* [paper, abstract / reviews] two spatio-temporal attentions: intrinsic (neuron-level: membrane time constants
  learned with the weights, "intrinsic plasticity", which a reviewer calls PLIF) and network-level with explicit
  memory (the attention map at step ``t`` also uses spikes from earlier steps); a nonlinear, threshold-based
  denoiser on the attention map replaces softmax; complexity O(T N D²); the window adds parameters.
* [our reading] ``A_{t,τ} = Q_t K_{t-τ}ᵀ`` for lags ``τ = 0..Δ`` (``window = Δ``), causal (past steps only; a lag
  reaching before step 0 contributes nothing); denoiser ``Ã = A ⊙ 1[A > θ]`` (``denoise="threshold"``), or
  ``ReLU(A - θ)`` (``"relu"``), or none; ``Y_t = SN_0.5(s Σ_τ Ã_{t,τ} V_{t-τ})`` with ``s = 0.125``; Spikformer's
  Linear-BN-LIF projections around it.
* [our reading] the "extra parameters" of the window: separate K/V projections per lag (``per_lag_kv=True``);
  off by default (one K/V projection, kept over the window).
* [our reading] intrinsic plasticity: the family builds every neuron as a parametric LIF with one learnable ``τ``
  per layer; ``tau_per_channel=True`` gives this attention's neurons one ``τ`` per channel
  (:class:`~spiking_transformers.neurons.ChannelParametricLIF`).
* [our reading] ``θ = 1``: a query-key pair must share at least two spikes to count. Δ, θ, lag weights are unknown.

Products: every ``Q K_{t-τ}ᵀ`` takes two spike tensors; every ``Ã V`` is driven by ``V``'s spikes. The denoiser is
a comparison and a masked fill, not a synaptic operation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ...neurons import DEFAULT_SPIKE_LAYER, ChannelParametricLIF, Neuron, SpikeFactory
from ._qkv import QKVAttention, add_branch
from ._registry import register_attention

__all__ = ["DISTAAttention", "denoise_attention"]


DENOISERS = ("threshold", "relu", "none")


def denoise_attention(a: Tensor, mode: str, theta: float) -> Tensor:
    """The attention denoiser: ``A * 1[A > θ]`` (``"threshold"``), ``max(A - θ, 0)`` (``"relu"``) or ``A``."""
    if mode == "threshold":
        return a.masked_fill(a <= theta, 0.0)
    if mode == "relu":
        return (a - theta).clamp_min(0.0)
    if mode == "none":
        return a
    raise ValueError(f"denoise must be one of {DENOISERS}, got {mode!r}")


@register_attention(
    "dista",
    description="spatio-temporal SSA over a causal window of past steps, threshold-denoised attention maps",
    paper="DISTA (ICLR 2024 submission)",
    spike_driven=True,
    reference="paper",
)
class DISTAAttention(QKVAttention):
    r"""Windowed spatio-temporal spiking self-attention with an attention denoiser.

    .. math::
        Y_t = \mathrm{SN}_{0.5}\Big(s \sum_{\tau=0}^{\min(\Delta, t)} \tilde A_{t,\tau} V_{t-\tau}\Big), \quad
        \tilde A_{t,\tau} = \mathrm{denoise}(Q_t K_{t-\tau}^\top), \quad
        \mathrm{out} = \mathrm{SN}(\mathrm{BN}(Y W_o + b_o))

    per head, with ``Q, K, V = SN(BN(X W))`` as in SSA.

    Args:
        dim: token width ``C``.
        num_heads: heads ``h``.
        window: ``Δ``, the number of past steps attended besides the current one (0: SSA with a denoiser).
        denoise: ``"threshold"``, ``"relu"`` or ``"none"`` (see :func:`denoise_attention`).
        theta: denoiser threshold ``θ``.
        per_lag_kv: separate K and V projections for each lag ``τ``.
        attn_scale: ``s``.
        qkv_bias: bias on the q/k/v projections.
        tau_per_channel: this attention's neurons learn one time constant per channel.
        spike_layer: neuron factory (the family passes a parametric LIF); unused with ``tau_per_channel``.

    Shape:
        ``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        window: int = 2,
        denoise: str = "threshold",
        theta: float = 1.0,
        per_lag_kv: bool = False,
        attn_scale: float = 0.125,
        qkv_bias: bool = True,
        tau_per_channel: bool = False,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__(dim, num_heads)
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if denoise not in DENOISERS:
            raise ValueError(f"denoise must be one of {DENOISERS}, got {denoise!r}")
        self.window = int(window)
        self.denoise = denoise
        self.theta = float(theta)
        self.per_lag_kv = bool(per_lag_kv)
        self.attn_scale = float(attn_scale)
        kv_width = dim * (self.window + 1) if per_lag_kv else dim

        def neuron(width: int, **kw) -> Neuron:
            if tau_per_channel:
                return ChannelParametricLIF(width, **kw)
            return spike_layer(**kw)

        for name, width in (("q", dim), ("k", kv_width), ("v", kv_width)):
            add_branch(self, name, dim, width, bias=qkv_bias, neuron=lambda width=width: neuron(width))
        self.add_output(dim, neuron=lambda **kw: neuron(dim, **kw))

    def _lag_kv(self, kv: Tensor, lag: int, C: int) -> Tensor:
        # per_lag_kv: the projection's output holds (window + 1) blocks of C channels, block `lag` for that lag
        return self._heads(kv[..., lag * C:(lag + 1) * C] if self.per_lag_kv else kv)

    def window_sum(self, q: Tensor, k_all: Tensor, v_all: Tensor) -> Tensor:
        """``Σ_τ denoise(Q_t K_{t-τ}ᵀ) V_{t-τ}`` for every step, before the scale and the attention neuron.

        Args:
            q: query spikes ``[T, B, N, C]``.
            k_all, v_all: key / value spikes ``[T, B, N, C]`` (``[T, B, N, (window + 1) C]`` with ``per_lag_kv``:
                block ``τ`` of ``C`` channels serves lag ``τ``).

        Returns:
            ``[T, B, h, N, d]`` integers.
        """
        T, C = q.shape[0], q.shape[-1]
        q = self._heads(q)  # [T, B, h, N, d]
        y: Tensor | None = None
        for lag in range(min(self.window, T - 1) + 1):
            k, v = self._lag_kv(k_all, lag, C), self._lag_kv(v_all, lag, C)
            # steps t >= lag attend to step t - lag; the first `lag` steps have nothing that far back
            a = denoise_attention(q[lag:] @ k[: T - lag].transpose(-2, -1), self.denoise, self.theta)
            z = a @ v[: T - lag]  # [T - lag, B, h, N, d]
            z = F.pad(z, (0, 0, 0, 0, 0, 0, 0, 0, lag, 0))  # zeros for steps t < lag -> [T, B, h, N, d]
            y = z if y is None else y + z
        assert y is not None
        return y

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``."""
        q, k_all, v_all = (self.branch(name, x) for name in ("q", "k", "v"))
        return self.output(self.window_sum(q, k_all, v_all) * self.attn_scale)  # window sum: [T, B, h, N, d]

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, window={self.window}, denoise={self.denoise}, theta={self.theta}, "
                f"per_lag_kv={self.per_lag_kv}, attn_scale={self.attn_scale}")
