"""The Temporal Interaction Module (TIM) on the query path of spiking self-attention, registered as ``"tim"``.

Shen et al., "TIM: An Efficient Temporal Interaction Module for Spiking Transformer", IJCAI 2024, arXiv 2401.11687.
Upstream: github.com/BrainCog-X/Brain-Cog, folder ``examples/TIM`` (``models/TIM.py``,
``models/spikformer_braincog_DVS.py``, ``utils/MyNode.py``), checked at commit 3998fd504c1a03376c2e96f14ddf98aee9f5370a.

TIM runs a recurrence over time on the query spikes ``q`` (heads split, ``[T, B, h, N, d]``)::

    y_0 = q_0
    y_t = SN_out( alpha * SN_in( Conv1d(y_{t-1}) ) + (1 - alpha) * q_t )      t >= 1

``Conv1d`` (kernel 5, padding 2, with bias) acts on each ``[N, d]`` matrix with the ``N`` axis as its *channels*,
sliding along ``d``. The official layer is built with ``C / heads`` channels, so it runs only when the axis it is
applied to has ``N == C / heads`` entries (the paper setting: 16 tokens, 256 / 16); we keep that requirement and
raise an error naming both numbers otherwise. ``SN_in`` and ``SN_out`` are single-step neurons whose membranes
carry across the ``T - 1`` steps of one call and start at rest at every call.

Readings of the official code recorded here:

* **Head split.** Channel-major (channel ``head * d + j`` of token ``a`` goes to ``q[head, a, j]``), so the Conv1d
  channels are the tokens, as in the same lab's STEP re-implementation. (One stored version of the official file,
  commit c8017861, reshapes ``[T, B, C, N]`` to ``[T, B, N, h, d]`` without a transpose; the fixture made from commit
  3998fd50 is reproduced exactly by the channel-major split, so that is what we build.)
* **Thresholds.** BrainCog's ``MyNode`` ignores the ``v_threshold`` keyword the official code passes (its argument is
  ``threshold``), so the distributed code runs every neuron at 1.0, with which ``SN_out`` can never fire in 10
  steps. ``tim_thresholds`` / ``attn_threshold`` default to the intended 0.3 / 0.5 / 0.5; the family's
  ``from_official`` builds 1.0 everywhere, and a checkpoint's stored ``threshold`` buffers override both.
* **Neuron.** :class:`BrainCogLIF` is ``MyNode``: ``mem += (x - mem) / tau`` (tau 2), fire on ``mem >= threshold``,
  hard reset with the spike detached, and ``mem_detach``: the membrane is cut from the graph before every step, so
  no gradient flows through time inside a neuron. The only gradient path through time is TIM's own recurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...neurons import Neuron, SpikeFactory
from ._qkv import QKVAttention
from ._registry import register_attention

__all__ = ["BrainCogLIF", "MembraneState", "TemporalInteraction", "TIMSelfAttention", "TIM_THRESHOLDS"]

#: The thresholds the official code passes (and ignores): TIM's input neuron 0.3, its output neuron 0.5.
TIM_THRESHOLDS: tuple[float, float] = (0.3, 0.5)


class _SigmoidSpike(torch.autograd.Function):
    """Heaviside forward (fires on equality); backward ``alpha * s * (1 - s)``, ``s = sigmoid(alpha * x)``.

    ``alpha`` is a tensor (the checkpoint's ``act_fun.alpha``), so reading it needs no host synchronisation."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor) -> Tensor:
        ctx.save_for_backward(x, alpha)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        x, alpha = ctx.saved_tensors
        s = torch.sigmoid(alpha * x)
        return grad * s * (1 - s) * alpha, None


@dataclass
class MembraneState:
    """The membrane of a single-step neuron over one forward pass (a local of the caller, never of the module)."""

    v: Tensor | float = 0.0


class BrainCogLIF(Neuron):
    """BrainCog's ``MyNode`` LIF (the TIM example's neuron), multi-step or single-step with explicit state.

    ``H = V + (X - V) / tau``; spike where ``H - threshold >= 0``; ``V = H (1 - S)`` with ``S`` detached; the
    membrane is detached before each step (``mem_detach``), so gradients do not flow through time. Surrogate:
    sigmoid with ``alpha`` 4.

    The threshold and ``alpha`` are buffers (non-trainable, as in the official module, where they are
    ``requires_grad=False`` parameters), so a checkpoint's values are loaded with it.

    Args:
        tau: membrane time constant.
        v_threshold: firing threshold (the lineage's keyword; stored in the ``threshold`` buffer).
        alpha: surrogate sharpness (``surrogate_alpha`` buffer).
        detach_membrane: BrainCog's ``mem_detach`` (True in the TIM example).

    Shape:
        ``forward(x)``: ``[T, B, ...]`` -> spikes of the same shape. ``forward(x, state)``: one step ``[B, ...]`` with
        the membrane in ``state`` (updated in place) -> spikes ``[B, ...]``.
    """

    def __init__(
        self, tau: float = 2.0, v_threshold: float = 1.0, alpha: float = 4.0, detach_membrane: bool = True
    ) -> None:
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1 for a leaky neuron, got {tau}")
        self.tau = float(tau)
        self.detach_membrane = bool(detach_membrane)
        self.register_buffer("threshold", torch.tensor(float(v_threshold)))
        self.register_buffer("surrogate_alpha", torch.tensor(float(alpha)))

    def _step(self, x: Tensor, v: Tensor | float) -> tuple[Tensor, Tensor]:
        if self.detach_membrane and isinstance(v, Tensor):
            v = v.detach()
        h = v + (x - v) / self.tau
        s = _SigmoidSpike.apply(h - self.threshold.to(x.dtype), self.surrogate_alpha.to(x.dtype))
        return s, h * (1 - s.detach())

    def forward(self, x: Tensor, state: MembraneState | None = None) -> Tensor:
        if state is not None:
            s, state.v = self._step(x, state.v)
            return s
        if x.dim() < 2:
            raise ValueError(f"BrainCogLIF expects a time-major tensor [T, B, ...], got shape {tuple(x.shape)}")
        v: Tensor | float = 0.0
        out = []
        for t in range(x.shape[0]):
            s, v = self._step(x[t], v)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, threshold={float(self.threshold):g}, alpha={float(self.surrogate_alpha):g}, "
            f"detach_membrane={self.detach_membrane}"
        )


class TemporalInteraction(nn.Module):
    """TIM: the query recurrence over time (module name ``TIM`` in the official SSA; the conv is ``interactor``).

    Args:
        channels: Conv1d channels; the official layer uses ``C / heads`` and so requires ``N == C / heads``.
        alpha: ``TIM_alpha``, the weight of the interaction term (0.5).
        thresholds: ``(in, out)`` neuron thresholds (intended 0.3 / 0.5; the distributed code runs 1.0 / 1.0).
        kernel_size: Conv1d kernel (5, padding 2).

    Shape:
        ``q: [T, B, h, N, d]`` binary -> ``[T, B, h, N, d]`` binary, with ``N == channels``.
    """

    def __init__(
        self,
        channels: int,
        *,
        alpha: float = 0.5,
        thresholds: tuple[float, float] = TIM_THRESHOLDS,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolution), got {kernel_size}")
        self.channels = channels
        self.alpha = float(alpha)
        self.interactor = nn.Conv1d(channels, channels, kernel_size, stride=1, padding=kernel_size // 2, bias=True)
        self.in_lif = BrainCogLIF(v_threshold=thresholds[0])
        self.out_lif = BrainCogLIF(v_threshold=thresholds[1])

    def forward(self, q: Tensor) -> Tensor:
        if q.dim() != 5:
            raise ValueError(f"TIM expects queries [T, B, heads, N, C/heads], got shape {tuple(q.shape)}")
        T, B, H, N, D = q.shape
        if N != self.channels:
            raise ValueError(
                f"TIM needs N == C/heads: its Conv1d has C/heads = {self.channels} channels (one per token) but the "
                f"queries have N = {N} tokens; choose the input size, patch size or heads so that they agree"
            )
        s_in, s_out = MembraneState(), MembraneState()
        y = q[0]
        out = [y]
        for t in range(1, T):
            z = self.interactor(y.flatten(0, 1)).reshape(B, H, N, D)
            y = self.in_lif(z, s_in) * self.alpha + q[t] * (1 - self.alpha)
            y = self.out_lif(y, s_out)
            out.append(y)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@register_attention(
    "tim",
    description="SSA with the Temporal Interaction Module: a Conv1d recurrence over time on the queries",
    paper="TIM (IJCAI 2024)",
    spike_driven=False,
)
class TIMSelfAttention(QKVAttention):
    r"""Spiking self-attention with TIM on the queries (the TIM example's ``SSA``).

    .. math::
        Q, K, V = \mathrm{SN}(\mathrm{BN}(X W_{q,k,v})), \quad \tilde Q = \mathrm{TIM}(Q), \quad
        \mathrm{out} = \mathrm{SN}(\mathrm{BN}(\mathrm{SN}_{a}(s\,(\tilde Q K^\top) V)\, W_o))

    No bias on any projection (unlike Spikformer's output projection). On another backbone it is a drop-in
    replacement of SSA; the TIM neurons are always :class:`BrainCogLIF` (they need the single-step state API),
    the other neurons come from ``spike_layer``.

    Args:
        dim: token width ``C``.
        num_heads: heads ``h``.
        spike_layer: neuron factory for q/k/v, the attention neuron and the output neuron (default
            :class:`BrainCogLIF`, threshold 1).
        attn_scale: the constant ``s`` (0.25).
        attn_threshold: threshold of the attention neuron (intended 0.5; the distributed code runs 1.0).
        tim_alpha: TIM's ``alpha``.
        tim_thresholds: TIM's ``(in, out)`` thresholds.
        tim_channels: TIM's Conv1d channels (``dim // num_heads`` as in the official code); the number of tokens
            must equal it.

    Shape:
        ``x: [T, B, N, C]`` -> spikes ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        spike_layer: SpikeFactory = BrainCogLIF,
        attn_scale: float = 0.25,
        attn_threshold: float = 0.5,
        tim_alpha: float = 0.5,
        tim_thresholds: tuple[float, float] = TIM_THRESHOLDS,
        tim_channels: int | None = None,
    ) -> None:
        super().__init__(dim, num_heads)
        self.attn_scale = float(attn_scale)
        self.add_qkv(dim, bias=False, neuron=spike_layer)
        self.TIM = TemporalInteraction(
            dim // num_heads if tim_channels is None else tim_channels, alpha=tim_alpha, thresholds=tim_thresholds
        )
        self.add_output(dim, neuron=spike_layer, attn_neuron=spike_layer(v_threshold=attn_threshold), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (self._heads(self.branch(name, x)) for name in ("q", "k", "v"))  # [T, B, h, N, d]
        q = self.TIM(q)
        y = ((q @ k.transpose(-2, -1)) @ v) * self.attn_scale  # [T, B, h, N, d]
        return self.output(y)  # standard merge (channel head * d + j), attn_lif, projection

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, attn_scale={self.attn_scale}"

