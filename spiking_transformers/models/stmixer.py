r"""STMixer: the Spiking Token Mixer (NeurIPS 2024).

Official code: brain-intelligence-lab/STMixer_demo (``models/STMixer.py`` class ``STMixerV3``,
``models/spiking_layer.py``, ``models/surrogate_module.py``, ``functions/loss_functions.py``), checked against
commit 38a078679478264ef68c17d66e435c7dae3147d9 with the fixture ``stmixer_cifar_small``.

The network (:class:`STMixer`):

* **IPSPS stem** (:class:`IPSPS`, official ``SPSV2``): five 3x3 conv + BN stages of widths ``D/8, D/4, D/2, D,
  7D/8`` with a neuron after each but the last; the last ``k`` convs have stride 2 (``k = downsample_times``).
  A protection path maps the raw input by one conv with kernel = stride = ``2^k`` + BN to ``D/8`` channels. The
  output is the concatenation ``[protection ; main]`` (protection first), real-valued, without max-pool.
* **Encoder blocks** (membrane shortcut, every branch starts with a neuron):
  ``X <- X + TokenMixer(X)`` (:class:`~spiking_transformers.layers.attention.stmixer.STMixerAttention`, registered
  as attention ``"stmixer"``) and ``X <- X + [SN -> Linear(D, rD) + BN -> SN -> Linear(rD, D) + BN](X)``.
* **Head**: token mean of the real-valued stream, a Linear per time step, mean over time.
* **SML side heads** (``sml=True``; training only): ANN branches (GELU, no spikes) on the stem output and after
  blocks 2, 4, 6, ... (1-based). Each averages over time, applies pw + BN + GELU, ``L`` ANN mixer encoders (the same
  token mixing, GELU instead of neurons, FFN x4), a token mean and a Linear. ``forward`` never runs them;
  :meth:`STMixer.forward_distill` returns ``(main, side_1, ..., side_K)`` for
  :func:`~spiking_transformers.training.losses.sml_loss`.

The neuron (:class:`STMixerLIF`, official ``LIFSpike`` with ``ZDSPIKE``): ``v <- 0.5 v + x``, spike where
``v - 1 >= 0``, hard reset ``v <- v (1 - s)`` with the reset **not** detached, Dspike surrogate
``k (1 - tanh^2(2.5 u)) 2.5`` (``k = 1 / (2 tanh 2.5)``, zero for ``|u| > 1``).

Readings of the official code:

* ``ZDSPIKE`` returns float32 spikes even in a float64 model; they are copied into a float64 buffer, so the
  gradient reaching the surrogate is rounded to float32 (and the two uses of a spike, the output and the reset,
  add their gradients in float32). :func:`build_official` reproduces this (``float32_spike_grad=True``, the only
  place it is on); registered variants and :class:`STMixer` default to full-precision gradients. Forward values and
  spike counts do not depend on it.
* The side heads average over time with ``x.view(-1, T, C, N).mean(1)`` on the time-major ``[T*B, C, N]`` tensor,
  which for ``T > 1`` averages ``T`` consecutive rows, i.e. mixes samples (the paper configuration uses ``T = 1``,
  where both readings agree). :class:`STMixer` averages each sample over its own steps;
  ``official_side_grouping=True`` (set by :func:`build_official`) reproduces the official rows.
* The side-head depth table ``{2: 1, 4: 2, 6: 3, 8: 3, 10: 3}`` (keyed by the depth rounded down to even) is
  ``min(depth // 2, 3)``; the official table stops at depth 11 (a ``KeyError`` beyond), ours continues the rule
  (a side head after every second block, ``max(3 - j, 1)`` encoders for the ``j``-th).
* ``in_channels == 2`` is event input (official ``[B, T, 2, H, W]``, ours time-major ``[T, B, 2, H, W]``); any
  other channel count is an image repeated over ``T``. (Upstream a channel count other than 2 or 3 skips the time
  expansion; that only coincides with ours at ``T = 1``, so :func:`build_official` refuses it for ``T > 1``.)
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..layers._shapes import fold_time, unfold_time
from ..layers.attention.stmixer import STMixerAttention, TokenMixing
from ..neurons import Neuron
from ._base import SpikingModel
from ._common import BN_KEYS, check_input_kind, check_sizes, official_builder, to_2tuple
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "STMIXER_PAPER",
    "DSpikeFunction",
    "STMixerLIF",
    "IPSPS",
    "STMixerMlp",
    "STMixerBlock",
    "SideHead",
    "STMixer",
    "side_head_layers",
    "build_official",
    "convert_official_key",
    "official_neuron_name",
    "STMIXER_OFFICIAL_KWARGS",
]

STMIXER_PAPER = Paper(
    title="Spiking Token Mixer: An Event-Driven Friendly Former Structure for Spiking Neural Networks",
    venue="NeurIPS",
    year=2024,
    repo="brain-intelligence-lab/STMixer_demo",
    commit="38a078679478264ef68c17d66e435c7dae3147d9",
)


# --------------------------------------------------------------------------------------------------------------------
# The neuron


class DSpikeFunction(torch.autograd.Function):
    """Heaviside forward (fires on ``u >= 0``), Dspike backward: ``k (1 - tanh^2(g u)) g`` on ``|u| <= 1``, else 0,
    with ``k = 1 / (2 tanh g)`` (region 1, the official ``ZDSPIKE``).

    ``apply(u, gamma, spike_dtype)``: the spikes are returned in ``spike_dtype`` (``None``: ``u``'s dtype).
    """

    @staticmethod
    def forward(ctx, u: Tensor, gamma: float, spike_dtype: torch.dtype | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.gamma = gamma
        return (u >= 0).to(spike_dtype or u.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        g = ctx.gamma
        k = 1 / (2 * math.tanh(g))
        m = torch.tanh(g * u)
        slope = k * (1 - m * m) * g
        slope = slope.masked_fill(u.abs() > 1.0, 0.0)
        return grad_output * slope, None, None


class STMixerLIF(Neuron):
    r"""STMixer's decay LIF (official ``LIFSpike``): ``v_t = \tau v_{t-1} + x_t``, ``s_t = \Theta(v_t - V_{th})``,
    hard reset ``v_t \leftarrow v_t (1 - s_t)``, Dspike surrogate (:class:`DSpikeFunction`).

    Args:
        tau: membrane decay factor (a multiplier, 0.5 upstream; not a time constant).
        v_threshold: firing threshold (1.0).
        gamma: Dspike sharpness (2.5).
        detach_reset: detach the spike in the reset term (False upstream: gradient flows through the reset).
        float32_spike_grad: compute the spikes in float32 whatever the input dtype, so that (as in the official code)
            the gradient reaching the surrogate is rounded to float32. Only :func:`build_official` sets it.

    Shape:
        ``x: [T, B, ...]`` input current -> spikes of the same shape and dtype (exact 0/1).
    """

    def __init__(
        self,
        tau: float = 0.5,
        v_threshold: float = 1.0,
        gamma: float = 2.5,
        detach_reset: bool = False,
        float32_spike_grad: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau is STMixer's decay factor and must lie in [0, 1], got {tau}")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.tau, self.v_threshold, self.gamma = float(tau), float(v_threshold), float(gamma)
        self.detach_reset = bool(detach_reset)
        self.float32_spike_grad = bool(float32_spike_grad)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, ...]`` -> spikes ``[T, B, ...]``."""
        if x.dim() < 2:
            raise ValueError(f"STMixerLIF expects a time-major tensor [T, B, ...], got shape {tuple(x.shape)}")
        spike_dtype = torch.float32 if self.float32_spike_grad else None
        v: Tensor | float = 0.0
        out = []
        for t in range(x.shape[0]):
            v = v * self.tau + x[t]
            s = DSpikeFunction.apply(v - self.v_threshold, self.gamma, spike_dtype)
            out.append(s.to(x.dtype))  # float32 spikes: this cast rounds their incoming gradient to float32
            v = v * (1 - (s.detach() if self.detach_reset else s))
        return torch.stack(out)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, gamma={self.gamma}, detach_reset={self.detach_reset}"
            + (", float32_spike_grad=True" if self.float32_spike_grad else "")
        )


# --------------------------------------------------------------------------------------------------------------------
# Blocks


def _kaiming_fan_out(weight: Tensor) -> None:
    if not weight.is_meta:  # normal_ on the meta device is slow (a decomposition per call) and draws nothing
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def _linear_bn(x: Tensor, linear: nn.Linear, bn: nn.BatchNorm1d) -> Tensor:
    # Per-token linear map + BatchNorm over channels (statistics over all leading dims): the official
    # Conv1d(k=1) + BatchNorm1d on [M, C, N].
    y = bn(linear(x.reshape(-1, x.shape[-1])))
    return y.reshape(*x.shape[:-1], y.shape[-1])


class IPSPS(nn.Module):
    """STMixer's patch embedding (official ``SPSV2``): a spiking conv path plus a protection path from the raw input.

    Args:
        in_chans: input channels.
        embed_dim: ``D`` (a multiple of 8).
        downsample_times: ``k`` in 0..4 (official: 2 or 4); the grid shrinks by ``2^k``.
        spike_layer: neuron factory.

    Modules: ``convs.{0..4}`` / ``bns.{0..4}`` (main path), ``lifs.{0..3}``, ``short_conv`` / ``short_bn``.

    Shape:
        ``x: [T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` (``N = H/2^k * W/2^k``, row-major), real-valued.
    """

    def __init__(self, *, in_chans: int, embed_dim: int, downsample_times: int, spike_layer: Callable[..., Neuron]):
        super().__init__()
        if embed_dim % 8:
            raise ValueError(f"IPSPS: embed_dim must be a multiple of 8 (D/8 protection channels), got {embed_dim}")
        if not 0 <= downsample_times <= 4:
            raise ValueError(f"IPSPS: downsample_times must be in 0..4 (5 conv stages), got {downsample_times}")
        D = embed_dim
        widths = [in_chans, D // 8, D // 4, D // 2, D, D // 8 * 7]
        self.downsample_times = downsample_times
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2 if i >= 5 - downsample_times else 1, padding=1, bias=False)
            for i in range(5)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(widths[i + 1]) for i in range(5))
        self.lifs = nn.ModuleList(spike_layer() for _ in range(4))
        s = 2**downsample_times
        self.short_conv = nn.Conv2d(in_chans, D // 8, s, stride=s, bias=False)
        self.short_bn = nn.BatchNorm2d(D // 8)
        for m in (*self.convs, self.short_conv):
            _kaiming_fan_out(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` -> ``[T, B, N, D]``."""
        T, s = x.shape[0], 2**self.downsample_times
        H, W = x.shape[-2:]
        if H % s or W % s:
            raise ValueError(f"IPSPS: input size {H}x{W} must be divisible by 2^downsample_times = {s}")
        short = self.short_bn(self.short_conv(fold_time(x)))
        y = fold_time(x)
        for i in range(5):
            y = self.bns[i](self.convs[i](y))
            if i < 4:
                y = fold_time(self.lifs[i](unfold_time(y, T)))
        y = torch.cat([short, y], dim=1)  # [T*B, D, H', W'], protection channels first
        return unfold_time(y.flatten(2).transpose(1, 2), T)


class STMixerMlp(nn.Module):
    """Channel mixer: ``SN -> Linear(D, rD) + BN -> SN -> Linear(rD, D) + BN`` (official ``FFN``), ``[T, B, N, D]``."""

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: Callable[..., Neuron]) -> None:
        super().__init__()
        self.fc1_lif = spike_layer()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=False)
        self.fc1_bn = nn.BatchNorm1d(hidden_dim)
        self.fc2_lif = spike_layer()
        self.fc2 = nn.Linear(hidden_dim, dim, bias=False)
        self.fc2_bn = nn.BatchNorm1d(dim)
        for m in (self.fc1, self.fc2):
            _kaiming_fan_out(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        h = _linear_bn(self.fc1_lif(x), self.fc1, self.fc1_bn)
        return _linear_bn(self.fc2_lif(h), self.fc2, self.fc2_bn)


class STMixerBlock(nn.Module):
    """Encoder block (official ``Encoder``): ``x + token_mix(x)``, then ``x + mlp(x)``. Shape ``[T, B, N, D]``."""

    def __init__(
        self, dim: int, num_heads: int, num_tokens: int, mlp_ratio: float, *, spike_layer: Callable[..., Neuron]
    ) -> None:
        super().__init__()
        self.token_mix = STMixerAttention(dim, num_heads, spike_layer=spike_layer, num_tokens=num_tokens)
        self.mlp = STMixerMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.token_mix(x)
        return x + self.mlp(x)


class _AnnMixerBlock(nn.Module):
    """ANN encoder of a side head (official ``SurrogateEncoder``) on ``[B, N, D]``: GELU token and channel mixers."""

    def __init__(self, dim: int, num_heads: int, num_tokens: int, expansion: int = 4) -> None:
        super().__init__()
        self.act = nn.GELU()
        self.tm_in, self.tm_in_bn = nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim)
        self.mix = TokenMixing(dim, num_heads, num_tokens)
        self.tm_out, self.tm_out_bn = nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim)
        self.fc1, self.fc1_bn = nn.Linear(dim, dim * expansion, bias=False), nn.BatchNorm1d(dim * expansion)
        self.fc2, self.fc2_bn = nn.Linear(dim * expansion, dim, bias=False), nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        a = self.act
        t = a(_linear_bn(a(x), self.tm_in, self.tm_in_bn))
        x = x + _linear_bn(a(self.mix(t)), self.tm_out, self.tm_out_bn)
        h = a(_linear_bn(a(x), self.fc1, self.fc1_bn))
        return x + _linear_bn(h, self.fc2, self.fc2_bn)


class SideHead(nn.Module):
    """One SML side head (official ``SurrogateModule``): time mean -> Linear + BN + GELU -> ANN mixer blocks ->
    token mean -> Linear.

    Args:
        dim, num_heads, num_tokens: as the backbone.
        num_classes: classes.
        num_layers: ANN mixer blocks.
        official_grouping: average ``T`` consecutive rows of the time-major fold (the official ``view(-1, T, ...)``,
            which mixes samples for ``T > 1``) instead of each sample's own steps.

    Shape:
        ``x: [T, B, N, D]`` -> logits ``[B, num_classes]``.
    """

    def __init__(
        self, dim: int, num_heads: int, num_tokens: int, num_classes: int, num_layers: int, *,
        official_grouping: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.official_grouping = official_grouping
        self.proj, self.proj_bn, self.act = nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.GELU()
        self.blocks = nn.Sequential(*(_AnnMixerBlock(dim, num_heads, num_tokens) for _ in range(num_layers)))
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        for m in self.modules():  # upstream: every Conv1d and Linear (token mixing and head included)
            if isinstance(m, nn.Linear):
                _kaiming_fan_out(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[0]
        if self.official_grouping:
            x = fold_time(x).reshape(-1, T, *x.shape[2:]).mean(1)
        else:
            x = x.mean(0)  # [B, N, D]
        x = self.blocks(self.act(_linear_bn(x, self.proj, self.proj_bn)))
        return self.head(x.mean(1))


def side_head_layers(depth: int) -> list[int]:
    """ANN encoder counts of the SML side heads of a ``depth``-block model (one head per two blocks; upstream table
    ``{2: 1, 4: 2, 6: 3, 8: 3, 10: 3}`` for the largest, decreasing by one per head down to 1)."""
    if depth < 2:
        raise ValueError(f"SML side heads need depth >= 2 (one head per two blocks), got depth {depth}")
    top = min((depth - depth % 2) // 2, 3)
    return [max(top - j, 1) for j in range(depth // 2)]


# --------------------------------------------------------------------------------------------------------------------
# The model


class STMixer(SpikingModel):
    """Spiking Token Mixer (STMixerV3 of the official code).

    Args:
        num_classes: classes (0: features out).
        img_size: input size ``H`` or ``(H, W)``; with ``downsample_times`` it fixes the token count
            ``N = H W / 4^k`` that the token mixing weights are built for.
        in_chans: input channels.
        T: time steps.
        embed_dim: width ``D`` (a multiple of 8 and of ``num_heads``).
        depth: encoder blocks.
        num_heads: channel groups of the token mixing.
        mlp_ratio: hidden width of the channel mixer, ``int(D * mlp_ratio)``.
        downsample_times: ``k`` (2: 32 -> 8 for CIFAR; 4: 224 -> 14).
        sml: build the SML side heads (training only; see :meth:`forward_distill`).
        input_kind: ``"image"`` (static images repeated over T) or ``"events"``.
        spike_layer: neuron factory (default: :class:`STMixerLIF`).
        official_side_grouping: see :class:`SideHead` (only :func:`build_official` sets it).

    Shape:
        ``x: [B, C, H, W]`` (image) or ``[T, B, C, H, W]`` -> logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        img_size: int | tuple[int, int] = 32,
        in_chans: int = 3,
        T: int = 1,
        embed_dim: int = 384,
        depth: int = 10,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        downsample_times: int = 2,
        sml: bool = False,
        input_kind: str = "image",
        spike_layer: Callable[..., Neuron] = STMixerLIF,
        official_side_grouping: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(T=T, depth=depth, min_depth=1, embed_dim=embed_dim, num_heads=num_heads)
        H, W = to_2tuple(img_size)
        s = 2**downsample_times
        if H % s or W % s:
            raise ValueError(f"img_size {H}x{W} must be divisible by 2^downsample_times = {s}")
        self.T, self.num_classes, self.num_features = T, num_classes, embed_dim
        self.input_kind = check_input_kind(input_kind)
        self.img_size = (H, W)
        self.grid_size = (H // s, W // s)
        self.num_tokens = self.grid_size[0] * self.grid_size[1]
        self.sml = bool(sml)
        self.patch_embed = IPSPS(
            in_chans=in_chans, embed_dim=embed_dim, downsample_times=downsample_times, spike_layer=spike_layer
        )
        self.blocks = nn.ModuleList(
            STMixerBlock(embed_dim, num_heads, self.num_tokens, mlp_ratio, spike_layer=spike_layer)
            for _ in range(depth)
        )
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.side_heads = nn.ModuleList()
        if self.sml:
            self.side_heads.extend(
                SideHead(
                    embed_dim, num_heads, self.num_tokens, num_classes, n, official_grouping=official_side_grouping
                )
                for n in side_head_layers(depth)
            )

    def _tokens(self, x: Tensor) -> Tensor:
        x = self.encode_input(x)
        if x.shape[0] != self.T:
            raise ValueError(f"STMixer was built for T={self.T} time steps, got input with T={x.shape[0]}")
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"STMixer was built for {self.img_size[0]}x{self.img_size[1]} inputs (N={self.num_tokens} tokens for "
                f"the token mixing), got {x.shape[-2]}x{x.shape[-1]}; build it with img_size=({x.shape[-2]}, "
                f"{x.shape[-1]})"
            )
        return self.patch_embed(x)

    def forward_features(self, x: Tensor) -> Tensor:
        """Input -> real-valued tokens ``[T, B, N, D]`` after the last block."""
        x = self._tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """``[T, B, N, D]`` -> token mean -> Linear per step -> ``[B, K]`` (mean over T) or ``[T, B, K]``."""
        out = self.head(x.mean(2))
        return out.mean(0) if reduce_time else out

    @property
    def self_distillation(self) -> bool:
        """True when built with the SML side heads: the trainer then optimises
        :func:`~spiking_transformers.training.losses.sml_loss` on :meth:`forward_distill`."""
        return self.sml

    def forward_distill(self, x: Tensor) -> tuple[Tensor, ...]:
        """Main logits and the SML side heads' logits: ``(main [B, K], side_1 [B, K], ..., side_K [B, K])``, in the
        official order (stem head first). Needs a model built with ``sml=True``."""
        if not self.sml:
            raise RuntimeError("forward_distill needs a model built with sml=True (the SML side heads)")
        x = self._tokens(x)
        sides = [self.side_heads[0](x)]
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            j = (i + 1) // 2  # after block 2j (1-based) comes side head j
            if i % 2 == 1 and j < len(self.side_heads):
                sides.append(self.side_heads[j](x))
        return (self.forward_head(x), *sides)

    def remove_side_heads(self) -> "STMixer":
        """Drop the training-only SML side heads (the inference network of the official ``sml=False``); returns
        the model. ``forward`` is unchanged."""
        self.side_heads = nn.ModuleList()
        self.sml = False
        return self

    def reset_classifier(self, num_classes: int) -> None:
        """New main classifier (and new side-head classifiers) with ``num_classes`` outputs."""
        super().reset_classifier(num_classes)
        for side in self.side_heads:
            old = side.head
            new = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
            if isinstance(old, nn.Linear):
                new = new.to(device=old.weight.device, dtype=old.weight.dtype)
            side.head = new


# --------------------------------------------------------------------------------------------------------------------
# Official interop

# The official STMixerV3 constructor's keyword arguments and defaults, plus our switch for the float32 spike
# gradient (not an official argument; on by default because the official code does it).
STMIXER_OFFICIAL_KWARGS: dict[str, Any] = dict(
    img_size=128, downsample_times=4, in_channels=3, embd_dims=256, T=1, mlp_ratio=2, depths=6, num_head=8,
    num_classes=100, sml=False, float32_spike_grad=True,
)  # fmt: skip


@official_builder(STMIXER_OFFICIAL_KWARGS)
def build_official(
    *, img_size: int, downsample_times: int, in_channels: int, embd_dims: int, T: int, mlp_ratio: float,
    depths: int, num_head: int, num_classes: int, sml: bool, float32_spike_grad: bool,
) -> STMixer:  # fmt: skip
    """Our model equal to the official ``STMixerV3(**kwargs)``.

    ``downsample_times`` must be 2 or 4 (upstream raises ``NotImplementedError`` otherwise). ``in_channels == 2``
    builds an event model (time-major ``[T, B, 2, H, W]`` input). ``float32_spike_grad`` (ours, default True)
    reproduces the official float32 rounding of the spike gradient; the side heads use the official time grouping.
    """
    if downsample_times not in (2, 4):
        raise NotImplementedError(f"official SPSV2 supports downsample_times 2 or 4, got {downsample_times}")
    if in_channels not in (2, 3) and T > 1:
        raise NotImplementedError(
            f"official STMixerV3 with in_channels={in_channels} does not expand the input over T={T} steps; not ported"
        )
    if sml and depths > 11:
        raise ValueError(f"official STMixerV3 has an SML depth table up to depth 11, got depths={depths}")
    return STMixer(
        num_classes=num_classes, img_size=img_size, in_chans=in_channels, T=T, embed_dim=embd_dims, depth=depths,
        num_heads=num_head, mlp_ratio=mlp_ratio, downsample_times=downsample_times, sml=sml,
        input_kind="events" if in_channels == 2 else "image",
        spike_layer=partial(STMixerLIF, float32_spike_grad=float32_spike_grad), official_side_grouping=True,
    )  # fmt: skip


def _squeeze_conv1d(value: Tensor) -> Tensor:
    # Conv1d(k=1) weights [out, in, 1] are our Linear weights [out, in] (gradients too).
    return value.squeeze(-1) if value.dim() == 3 else value


_OFFICIAL_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []


def _rule(pattern: str) -> Callable[[Callable[[re.Match[str]], str]], Callable[[re.Match[str]], str]]:
    def wrap(fn: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        _OFFICIAL_RULES.append((re.compile(pattern), fn))
        return fn

    return wrap


@_rule(rf"patch_embd\.proj_conv\.(\d+)\.({BN_KEYS})")
def _stem(m: re.Match[str]) -> str:
    idx = int(m[1])  # nn.Sequential: conv 3i, BN 3i+1, neuron 3i+2
    if idx % 3 == 0 and m[2] == "weight":
        return f"patch_embed.convs.{idx // 3}.weight"
    if idx % 3 == 1:
        return f"patch_embed.bns.{idx // 3}.{m[2]}"
    return ""


@_rule(rf"patch_embd\.short_proj1\.([01])\.({BN_KEYS})")
def _short(m: re.Match[str]) -> str:
    if m[1] == "0":
        return "patch_embed.short_conv.weight" if m[2] == "weight" else ""
    return f"patch_embed.short_bn.{m[2]}"


_SPIKING_BRANCH = {  # official (sub-module, Sequential index of conv / BN) -> ours
    ("token_mix.fc1", "1"): "token_mix.in_proj", ("token_mix.fc1", "2"): "token_mix.in_bn",
    ("token_mix.fc2", "1"): "token_mix.out_proj", ("token_mix.fc2", "2"): "token_mix.out_bn",
    ("channel_mix.fc1", "1"): "mlp.fc1", ("channel_mix.fc1", "2"): "mlp.fc1_bn",
    ("channel_mix.fc2", "1"): "mlp.fc2", ("channel_mix.fc2", "2"): "mlp.fc2_bn",
}  # fmt: skip


@_rule(rf"block\.(\d+)\.(token_mix\.fc[12]|channel_mix\.fc[12])\.([12])\.({BN_KEYS})")
def _block(m: re.Match[str]) -> str:
    return f"blocks.{m[1]}.{_SPIKING_BRANCH[(m[2], m[3])]}.{m[4]}"


@_rule(r"block\.(\d+)\.token_mix\.attn\.linear_mix\.(\d+)\.weight")
def _block_mix(m: re.Match[str]) -> str:
    return f"blocks.{m[1]}.token_mix.mix.linear_mix.{m[2]}.weight"


@_rule(r"head\.(weight|bias)")
def _head(m: re.Match[str]) -> str:
    return f"head.{m[1]}"


@_rule(rf"sml(\d+)\.proj_conv\.([01])\.({BN_KEYS})")
def _side_proj(m: re.Match[str]) -> str:
    name = "proj" if m[2] == "0" else "proj_bn"
    return f"side_heads.{int(m[1]) - 1}.{name}.{m[3]}"


_ANN_BRANCH = {  # SurrogateEncoder (sub-module, Sequential index) -> ours; the GELUs hold no parameters
    ("spatial_mix.fc1", "1"): "tm_in", ("spatial_mix.fc1", "2"): "tm_in_bn",
    ("spatial_mix.fc2", "1"): "tm_out", ("spatial_mix.fc2", "2"): "tm_out_bn",
    ("channel_mix.fc1", "1"): "fc1", ("channel_mix.fc1", "2"): "fc1_bn",
    ("channel_mix.fc2", "0"): "fc2", ("channel_mix.fc2", "1"): "fc2_bn",
}  # fmt: skip


@_rule(rf"sml(\d+)\.encoder\.(\d+)\.(spatial_mix\.fc[12]|channel_mix\.fc[12])\.(\d)\.({BN_KEYS})")
def _side_block(m: re.Match[str]) -> str:
    ours = _ANN_BRANCH.get((m[3], m[4]))
    return f"side_heads.{int(m[1]) - 1}.blocks.{m[2]}.{ours}.{m[5]}" if ours else ""


@_rule(r"sml(\d+)\.encoder\.(\d+)\.spatial_mix\.attn\.linear_mix\.(\d+)\.weight")
def _side_mix(m: re.Match[str]) -> str:
    return f"side_heads.{int(m[1]) - 1}.blocks.{m[2]}.mix.linear_mix.{m[3]}.weight"


@_rule(r"sml(\d+)\.head\.(weight|bias)")
def _side_head(m: re.Match[str]) -> str:
    return f"side_heads.{int(m[1]) - 1}.head.{m[2]}"


def convert_official_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """Official ``STMixerV3`` key -> ours (Conv1d weights squeezed to Linear weights); ``None`` for an unknown key."""
    for pattern, fn in _OFFICIAL_RULES:
        m = pattern.fullmatch(key)
        if m:
            ours = fn(m)
            return (ours, _squeeze_conv1d(value)) if ours else None
    return None


_NEURON_NAMES = {
    "token_mix.fc1.0": "token_mix.in_lif", "token_mix.fc1.3": "token_mix.mix_lif",
    "token_mix.fc2.0": "token_mix.out_lif", "channel_mix.fc1.0": "mlp.fc1_lif", "channel_mix.fc2.0": "mlp.fc2_lif",
}  # fmt: skip


def official_neuron_name(name: str) -> str:
    """Official neuron module name (``patch_embd.proj_conv.2``, ``block.0.token_mix.fc1.0``, ...) -> ours."""
    m = re.fullmatch(r"patch_embd\.proj_conv\.(\d+)", name)
    if m and int(m[1]) % 3 == 2:
        return f"patch_embed.lifs.{int(m[1]) // 3}"
    m = re.fullmatch(r"block\.(\d+)\.(.+)", name)
    if m and m[2] in _NEURON_NAMES:
        return f"blocks.{m[1]}.{_NEURON_NAMES[m[2]]}"
    raise ValueError(f"not an official STMixer neuron module name: {name!r}")


register_official_family(
    OfficialFamily(
        name="stmixer",
        source="brain-intelligence-lab/STMixer_demo@38a078679478264ef68c17d66e435c7dae3147d9 models/STMixer.py",
        build=build_official,
        convert_key=convert_official_key,
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Registered variants

_TINY = dict(depth=2, embed_dim=32, num_heads=4, T=2)
_COMMON = dict(
    family="stmixer", paper=STMIXER_PAPER, lineage="sdt", official_family="stmixer", input_kind="image",
    img_size=32, in_chans=3, default_T=1, tiny_overrides=_TINY,
)  # fmt: skip
_ARCH = dict(embed_dim=384, depth=10, num_heads=16, mlp_ratio=4.0, downsample_times=2, img_size=32, T=1)
_NOTE = (
    "train_timm.py __main__ configuration (10 blocks, width 384, 16 channel groups, 8x8 tokens, T=1). "
    "No accuracy recorded: the paper's tables were not retrieved. "
    "Not spike-driven by the operator audit: the classifier reads the token mean of the real-valued residual stream "
    "(no neuron before the head), and two stem convs read the raw image; every block layer takes binary spikes. "
)
_SML_NOTE = "Built with the SML side heads (training only; forward ignores them, forward_distill returns them). "


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> STMixer:
    return STMixer(**{**defaults, **overrides})


@register_model(
    **_COMMON, spike_driven=False, dataset="cifar10", num_classes=10,
    official_config="stmixer/stmixer-10-384-cifar10-nosml", official_params=17496506, notes=_NOTE,
)  # fmt: skip
def stmixer_10_384_cifar10(**kwargs: Any) -> STMixer:
    """STMixer-10-384 on CIFAR-10 (32x32, T=1, 10 classes), the inference network: 17.50M parameters."""
    return _create(dict(_ARCH, num_classes=10), kwargs)


@register_model(
    **_COMMON, spike_driven=False, dataset="cifar100", num_classes=100,
    official_config="stmixer/stmixer-10-384-cifar100-nosml", official_params=17531156, notes=_NOTE,
)  # fmt: skip
def stmixer_10_384_cifar100(**kwargs: Any) -> STMixer:
    """STMixer-10-384 on CIFAR-100 (32x32, T=1, 100 classes), the inference network: 17.53M parameters."""
    return _create(dict(_ARCH, num_classes=100), kwargs)


@register_model(
    **_COMMON, spike_driven=False, dataset="cifar10", num_classes=10,
    official_config="stmixer/stmixer-10-384-cifar10", official_params=30620652, notes=_SML_NOTE + _NOTE,
)  # fmt: skip
def stmixer_10_384_cifar10_sml(**kwargs: Any) -> STMixer:
    """STMixer-10-384 on CIFAR-10 with its 5 SML side heads (as trained): 30.62M parameters, 13.12M of them in the
    training-only side heads."""
    return _create(dict(_ARCH, num_classes=10, sml=True), kwargs)


@register_model(
    **_COMMON, spike_driven=False, dataset="cifar100", num_classes=100,
    official_config="stmixer/stmixer-10-384-cifar100", official_params=30828552, notes=_SML_NOTE + _NOTE,
)  # fmt: skip
def stmixer_10_384_cifar100_sml(**kwargs: Any) -> STMixer:
    """STMixer-10-384 on CIFAR-100 with its 5 SML side heads (as trained, the official train_timm.py setting):
    30.83M parameters, 13.30M of them in the training-only side heads."""
    return _create(dict(_ARCH, num_classes=100, sml=True), kwargs)
