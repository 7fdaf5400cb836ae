"""STMixer's spiking token mixer: a fixed, input-independent linear mix along the token axis, per channel group.

"Spiking Token Mixer" (STMixer, NeurIPS 2024); official code brain-intelligence-lab/STMixer_demo,
``models/STMixer.py`` (classes ``STM`` and ``TokenMixer``), checked against commit
38a078679478264ef68c17d66e435c7dae3147d9 with the fixture ``stmixer_cifar_small``.

The "attention" of STMixer has no query-key product: each of ``h`` channel groups (``d = C / h`` channels) is mixed
along the ``N`` tokens by its own bias-free weight ``W_g`` (``N x N``), ``Y_g[n', c] = sum_n W_g[n', n] X_g[n, c]``.
The weights do not depend on the input and no spike multiplies another spike, which is what makes the mixer suit
asynchronous hardware. Because ``W_g`` is ``N x N``, the mixer is built for one token count ``N`` (``num_tokens``)
and refuses any other.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ...neurons import LIF, Neuron
from ._registry import register_attention

__all__ = ["TokenMixing", "STMixerAttention"]


class TokenMixing(nn.Module):
    r"""Grouped linear mixing along tokens (the official ``STM``): ``[..., N, C] -> [..., N, C]``.

    .. math:: Y[\dots, n', g d + c] = \sum_n W_g[n', n]\, X[\dots, n, g d + c]

    Args:
        dim: channels ``C`` (a multiple of ``num_heads``).
        num_heads: channel groups ``h``; group ``g`` holds channels ``g*d .. g*d + d - 1`` (``d = C / h``), the
            official ``reshape(B, h, C / h, N)``.
        num_tokens: ``N``, the token count the weights are built for.

    The per-group weights are ``linear_mix.{g}.weight`` (``nn.Linear(N, N, bias=False)``, official names),
    initialised Kaiming-normal with ``mode="fan_out"`` as upstream.

    Shape:
        ``x: [..., N, C]`` (any leading dims) -> ``[..., N, C]``.
    """

    def __init__(self, dim: int, num_heads: int, num_tokens: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"token mixing: dim {dim} is not divisible by num_heads {num_heads}")
        if num_tokens < 1:
            raise ValueError(f"token mixing: num_tokens must be >= 1, got {num_tokens}")
        self.dim, self.num_heads, self.num_tokens = dim, num_heads, num_tokens
        self.linear_mix = nn.ModuleList(nn.Linear(num_tokens, num_tokens, bias=False) for _ in range(num_heads))
        for m in self.linear_mix:
            if not m.weight.is_meta:  # (parameter counting on the meta device: nothing to draw)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``x: [..., N, C] -> [..., N, C]``."""
        *lead, N, C = x.shape
        if N != self.num_tokens or C != self.dim:
            raise ValueError(
                f"token mixing was built for N={self.num_tokens} tokens of C={self.dim} channels; got N={N}, C={C} "
                "(the mixing weights are N x N: build the model for this input size)"
            )
        w = torch.stack([m.weight for m in self.linear_mix])  # [h, N, N]
        xg = x.reshape(-1, N, self.num_heads, C // self.num_heads)  # [M, N, h, d]
        y = torch.einsum("gmn,bngc->bmgc", w, xg)
        return y.reshape(*lead, N, C)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, num_tokens={self.num_tokens}"


def _linear_bn(x: Tensor, linear: nn.Linear, bn: nn.BatchNorm1d) -> Tensor:
    # Per-token linear map and BatchNorm over channels with statistics over every token of every step and sample
    # (the official Conv1d(k=1) + BatchNorm1d on [T*B, C, N]).
    y = bn(linear(x.reshape(-1, x.shape[-1])))
    return y.reshape(*x.shape[:-1], y.shape[-1])


@register_attention(
    "stmixer",
    description="input-independent per-group linear mixing along the N tokens (no QK product); needs num_tokens",
    paper="STMixer (NeurIPS 2024)",
    spike_driven=True,
    reference="official",
)
class STMixerAttention(nn.Module):
    """STMixer's token-mixing branch (the official ``TokenMixer``), on the real-valued residual stream.

    ``SN -> Linear(C, C) + BN -> SN -> TokenMixing -> SN -> Linear(C, C) + BN``; the block adds the shortcut (a
    membrane shortcut, as in SDT). Every weight layer sees binary spikes.

    Args:
        dim: channels ``C``.
        num_heads: channel groups of the token mixing.
        spike_layer: neuron factory (STMixer's own models pass their decay LIF).
        num_tokens: ``N``, the token count of the backbone (required: the mixing weights are ``N x N``).

    Shape:
        ``x: [T, B, N, C]`` -> ``[T, B, N, C]`` branch output (real-valued, BN output).
    """

    def __init__(
        self, dim: int, num_heads: int, *, spike_layer: Callable[..., Neuron] = LIF, num_tokens: int | None = None
    ) -> None:
        super().__init__()
        if num_tokens is None:
            raise TypeError(
                "the stmixer attention mixes along the token axis and needs num_tokens=N, the backbone's token count"
            )
        self.in_lif = spike_layer()
        self.in_proj = nn.Linear(dim, dim, bias=False)
        self.in_bn = nn.BatchNorm1d(dim)
        self.mix_lif = spike_layer()
        self.mix = TokenMixing(dim, num_heads, num_tokens)
        self.out_lif = spike_layer()
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.out_bn = nn.BatchNorm1d(dim)
        for m in (self.in_proj, self.out_proj):  # the official Conv1d init
            if not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def num_tokens(self) -> int:
        return self.mix.num_tokens

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, N, C]`` -> ``[T, B, N, C]``."""
        if x.dim() != 4:
            raise ValueError(f"stmixer attention expects tokens [T, B, N, C], got shape {tuple(x.shape)}")
        if x.shape[2] != self.num_tokens:
            raise ValueError(
                f"stmixer attention was built for N={self.num_tokens} tokens, got N={x.shape[2]} "
                f"(input {tuple(x.shape)}); build it with num_tokens={x.shape[2]}"
            )
        s = self.mix_lif(_linear_bn(self.in_lif(x), self.in_proj, self.in_bn))
        y = self.out_lif(self.mix(s))
        return _linear_bn(y, self.out_proj, self.out_bn)
