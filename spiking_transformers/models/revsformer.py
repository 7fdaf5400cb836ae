"""RevSFormer (Hong Zhang and Yu Zhang, "Memory-Efficient Reversible Spiking Neural Networks", AAAI 2024).

Upstream: github.com/mi804/RevSNN, checked against commit 7521f75afb0394d89a8a162ce8e2fe8b0a4f6441 (the
``revsformer_cifar_small`` fixture was made from it). Official family ``revsformer``: ``cifar10/revmodel.py``, the
class ``rev_vit_snn`` that timm's ``create_model('RevSpikingformer')`` returns.

A Spikingformer (pre-activation Spikformer) made reversible. The tokenizer output ``X`` (real-valued, it ends in a
BatchNorm) is doubled along the channels, ``Z = [X; X]``, and each block couples the halves (RevNet)::

    Y1 = Z1 + F(Z2)        F: SN -> q/k/v (Linear, BN, SN) -> SN_0.5(0.125 (Q K^T) V) -> Linear + BN
    Y2 = Z2 + G(Y1)        G: SN -> Linear + BN -> SN -> Linear + BN

so the block inputs can be rebuilt from its outputs (``Z2 = Y2 - G(Y1)``, ``Z1 = Y1 - F(Z2)``). With
``reversible=True`` (the default) the blocks run in a custom autograd function (:class:`ReversibleSequence`) that
keeps only the output of the last block; its backward rebuilds each block's input and re-runs F and G to
differentiate them, so the activation memory of training does not grow with depth. ``reversible=False`` runs the
same blocks under ordinary autograd (same outputs; gradients equal up to rounding). The head averages the
``2D``-channel stream over tokens and time.

Readings of the official code recorded here:

* Neurons are spikingjelly's multi-step LIF (tau 2, hard reset, detached reset, sigmoid surrogate alpha 4), the
  attention neuron at threshold 0.5: the library's :class:`~spiking_transformers.neurons.LIF`.
* Neurons are stateless across calls in this library, so the official ``reset_net`` after the forward and after
  each recomputation is implicit: a recomputation sees exactly the spikes of the forward pass.
* The recomputation runs BatchNorm in training mode again, so each training step updates the running statistics
  twice, as the official code does; ``recompute_bn_stats=False`` restores them after each recomputation instead.
* The CIFAR tokenizer always pools twice (32 -> 8) whatever ``patch_size`` says; ``enable_amp`` (CUDA autocast
  inside each block) and the PVT leftovers (``qkv_bias``, ``qk_scale``, ``sr_ratios``, drop rates,
  ``norm_layer``) have no effect on the forward.
* Neuron forward hooks fire again during the recomputation of a reversible backward (firing monitors that run in
  training see each block twice).
* The DVS files (``cifar10-dvs``, ``dvs128-gesture``) use the same blocks with a tokenizer that pools four times
  (128 -> 8); the registered DVS variants are built that way (``patch_size=16``). Their official key names differ
  (``proj{i}_conv`` ...) and no fixture checks them, so no ``from_official`` family is registered for them.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import SpikingSelfAttention, folded, linear_bn_spike
from ..neurons import LIF, SpikeFactory
from ._base import SpikingModel
from ._common import BN_KEYS, REQUIRED, check_sizes, make_head, official_builder, official_int, to_2tuple
from ._common import trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "RevSFormer",
    "RevTokenizer",
    "PreActSelfAttention",
    "PreActMlp",
    "ReversibleBlock",
    "ReversibleSequence",
    "REVSFORMER_PAPER",
    "revsformer_from_official",
]

REVSFORMER_PAPER = Paper(
    title="Memory-Efficient Reversible Spiking Neural Networks",
    venue="AAAI",
    year=2024,
    arxiv=None,  # an arXiv version exists (Dec 2023); its number was not checked here
    repo="mi804/RevSNN",
    commit="7521f75afb0394d89a8a162ce8e2fe8b0a4f6441",
)

_STAGES = 4


class RevTokenizer(nn.Module):
    """Spikingformer's tokenizer: Conv3x3-BN, then four times SN -> [MaxPool 3/2/1] -> Conv3x3 -> BN.

    Widths ``D/8, D/4, D/2, D, D``. The ``log2(patch_size)`` max-pools sit in the last stages (CIFAR: 2, stages
    3 and 4; DVS: 4). No neuron follows the last BatchNorm: the output is real-valued.

    Shape:
        ``[T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` (row-major ``N = H' * W'``, each pool giving ``ceil(n / 2)``).
    """

    def __init__(self, *, in_chans: int, embed_dim: int, patch_size: int, spike_layer: SpikeFactory = LIF) -> None:
        super().__init__()
        num_pools = round(math.log2(patch_size)) if patch_size >= 1 else -1
        if not (0 <= num_pools <= _STAGES and 2**num_pools == patch_size):
            raise ValueError(f"patch_size must be a power of two from 1 to {2**_STAGES}, got {patch_size}")
        if embed_dim < 8:
            raise ValueError(
                f"embed_dim must be at least 8 (the first stage has embed_dim // 8 channels), got {embed_dim}"
            )
        self.patch_size = patch_size
        widths = [in_chans, embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim, embed_dim]
        for i in range(_STAGES + 1):
            setattr(self, f"block{i}_conv", nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"block{i}_bn", nn.BatchNorm2d(widths[i + 1]))
            if i > 0:
                setattr(self, f"block{i}_lif", spike_layer())
                pooled = i > _STAGES - num_pools
                setattr(self, f"block{i}_mp", nn.MaxPool2d(3, 2, 1) if pooled else nn.Identity())

    def grid_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """Token grid ``(H', W')`` for an input of ``img_size``."""
        h, w = img_size
        for _ in range(round(math.log2(self.patch_size))):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        x = folded(x, self.block0_conv, self.block0_bn)
        for i in range(1, _STAGES + 1):
            x = getattr(self, f"block{i}_lif")(x)
            x = folded(x, getattr(self, f"block{i}_mp"), getattr(self, f"block{i}_conv"), getattr(self, f"block{i}_bn"))
        return x.flatten(3).transpose(2, 3)  # [T, B, N, D]


def _linear_bn(x: Tensor, linear: nn.Linear, bn: nn.BatchNorm1d) -> Tensor:
    """Per-token Linear then BatchNorm over channels (statistics over ``T * B * N``): ``[T, B, N, C]`` -> same."""
    y = bn(linear(x.reshape(-1, x.shape[-1])))
    return y.reshape(*x.shape[:-1], y.shape[-1])


class PreActSelfAttention(SpikingSelfAttention):
    """F of a RevSFormer block: Spikingformer's pre-activation SSA (Spikformer's SSA with the output neuron moved
    to the input): ``SN(x) -> q/k/v Linear-BN-SN -> SN_0.5(s (Q K^T) V) -> Linear (bias) -> BN``.

    The neuron on the input is named ``proj_lif`` (the official name). q/k/v have no bias. Shape ``[T, B, N, C]``
    (real) -> ``[T, B, N, C]`` (real).
    """

    def __init__(
        self, dim: int, num_heads: int, *, attn_scale: float = 0.125, spike_layer: SpikeFactory = LIF
    ) -> None:
        super().__init__(dim, num_heads, attn_scale=attn_scale, qkv_bias=False, kv_first=False, spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        T, B, N, C = x.shape
        s = self.proj_lif(x)
        q = self._heads(linear_bn_spike(s, self.q_linear, self.q_bn, self.q_lif))
        k = self._heads(linear_bn_spike(s, self.k_linear, self.k_bn, self.k_lif))
        v = self._heads(linear_bn_spike(s, self.v_linear, self.v_bn, self.v_lif))
        y = ((q @ k.transpose(-2, -1)) @ v) * self.attn_scale  # [T, B, h, N, d]
        y = self.attn_lif(y.transpose(2, 3).reshape(T, B, N, C))
        # The output projection in the official channel-first layout (a 1-wide Conv1d on [T*B, C, N], BN over it):
        # its bias feeds a training-mode BN, so its gradient is pure rounding noise, which only the official
        # summation order reproduces at the parity tolerance.
        z = F.conv1d(y.flatten(0, 1).transpose(1, 2), self.proj_linear.weight.unsqueeze(-1), self.proj_linear.bias)
        return self.proj_bn(z).transpose(1, 2).reshape(T, B, N, C)


class PreActMlp(nn.Module):
    """G of a RevSFormer block: ``SN -> Linear -> BN -> SN -> Linear -> BN`` (both Linear with bias).

    Shape ``[T, B, N, C]`` (real) -> ``[T, B, N, C]`` (real)."""

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: SpikeFactory = LIF) -> None:
        super().__init__()
        self.mlp1_lif = spike_layer()
        self.mlp1_linear = nn.Linear(dim, hidden_dim)
        self.mlp1_bn = nn.BatchNorm1d(hidden_dim)
        self.mlp2_lif = spike_layer()
        self.mlp2_linear = nn.Linear(hidden_dim, dim)
        self.mlp2_bn = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = _linear_bn(self.mlp1_lif(x), self.mlp1_linear, self.mlp1_bn)
        return _linear_bn(self.mlp2_lif(x), self.mlp2_linear, self.mlp2_bn)


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module, freeze: bool) -> Iterator[None]:
    """Restore the running statistics of every BatchNorm of ``module`` on exit (when ``freeze``)."""
    if not freeze:
        yield
        return
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, n in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(n)


class ReversibleBlock(nn.Module):
    """The additive coupling ``Y1 = Z1 + F(Z2)``, ``Y2 = Z2 + G(Y1)`` on the two channel halves of ``[..., 2C]``.

    Args:
        f_block: F (attention), ``[..., C] -> [..., C]``.
        g_block: G (MLP), ``[..., C] -> [..., C]``.
    """

    def __init__(self, f_block: nn.Module, g_block: nn.Module) -> None:
        super().__init__()
        self.f_block = f_block
        self.g_block = g_block

    def forward(self, z: Tensor) -> Tensor:
        z1, z2 = z.chunk(2, dim=-1)
        y1 = z1 + self.f_block(z2)
        y2 = z2 + self.g_block(y1)
        return torch.cat([y1, y2], dim=-1)

    def inverse(self, y: Tensor) -> Tensor:
        """The block input rebuilt from its output (no gradient): ``Z2 = Y2 - G(Y1)``, ``Z1 = Y1 - F(Z2)``."""
        with torch.no_grad():
            y1, y2 = y.chunk(2, dim=-1)
            z2 = y2 - self.g_block(y1)
            z1 = y1 - self.f_block(z2)
            return torch.cat([z1, z2], dim=-1)

    def backward_pass(
        self, y: Tensor, dy: Tensor, recompute_bn_stats: bool = True
    ) -> tuple[Tensor, Tensor, dict[nn.Parameter, Tensor | None]]:
        """From the output ``y`` and its gradient ``dy``: the input ``z``, its gradient ``dz`` and the gradients of
        the block's parameters, re-running G then F with autograd (RevNet's backward)."""
        y1, y2 = y.chunk(2, dim=-1)
        dy1, dy2 = dy.chunk(2, dim=-1)
        grads: dict[nn.Parameter, Tensor | None] = {}

        with _frozen_bn_stats(self, not recompute_bn_stats):
            g_params = [p for p in self.g_block.parameters() if p.requires_grad]
            with torch.enable_grad():
                y1_ = y1.detach().requires_grad_(True)
                g_out = self.g_block(y1_)
                d = torch.autograd.grad(g_out, [y1_, *g_params], dy2, allow_unused=True)
            grads.update(zip(g_params, d[1:]))
            with torch.no_grad():
                z2 = y2 - g_out.detach()
                dz1 = dy1 if d[0] is None else dy1 + d[0]
            del g_out, y1_

            f_params = [p for p in self.f_block.parameters() if p.requires_grad]
            with torch.enable_grad():
                z2_ = z2.detach().requires_grad_(True)
                f_out = self.f_block(z2_)
                d = torch.autograd.grad(f_out, [z2_, *f_params], dz1, allow_unused=True)
            grads.update(zip(f_params, d[1:]))
            with torch.no_grad():
                z1 = y1 - f_out.detach()
                dz2 = dy2 if d[0] is None else dy2 + d[0]
        return torch.cat([z1, z2], dim=-1), torch.cat([dz1, dz2], dim=-1), grads


class _ReversibleFunction(torch.autograd.Function):
    """Runs the blocks without a graph; the backward rebuilds inputs block by block (saves only the output)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, seq: "ReversibleSequence", *params: Tensor) -> Tensor:
        with torch.no_grad():
            y = x
            for blk in seq.reversible_blocks:
                y = blk(y)
        ctx.seq = seq
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        seq: ReversibleSequence = ctx.seq
        (y,) = ctx.saved_tensors
        grads: dict[nn.Parameter, Tensor | None] = {}
        for blk in reversed(seq.reversible_blocks):
            y, dy, g = blk.backward_pass(y, dy, seq.recompute_bn_stats)
            grads.update(g)
        return (dy, None, *(grads.get(p) for p in seq._trainable()))


class ReversibleSequence(nn.Module):
    """A stack of :class:`ReversibleBlock` trained with the reversible backward (or plain autograd).

    Args:
        blocks: the reversible blocks.
        reversible: use the memory-saving backward (True) or ordinary autograd (False). Same forward either way.
        recompute_bn_stats: let the backward's re-run of the blocks update BatchNorm running statistics again
            (True, as the official code), or restore them afterwards (False).

    Shape:
        ``[..., 2C]`` -> ``[..., 2C]``.
    """

    def __init__(
        self, blocks: Sequence[ReversibleBlock], *, reversible: bool = True, recompute_bn_stats: bool = True
    ) -> None:
        super().__init__()
        self.reversible_blocks = nn.ModuleList(blocks)
        self.reversible = bool(reversible)
        self.recompute_bn_stats = bool(recompute_bn_stats)

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: Tensor) -> Tensor:
        params = self._trainable()
        if self.reversible and torch.is_grad_enabled() and (x.requires_grad or params):
            return _ReversibleFunction.apply(x, self, *params)
        for blk in self.reversible_blocks:
            x = blk(x)
        return x

    def extra_repr(self) -> str:
        return f"reversible={self.reversible}, recompute_bn_stats={self.recompute_bn_stats}"


class RevSFormer(SpikingModel):
    """RevSFormer-L-D: Spikingformer tokenizer, ``depth`` reversible blocks on a ``2D``-channel stream, linear head.

    Args:
        num_classes: classifier outputs (0: features out).
        img_size: input size of the configuration (sets :attr:`num_patches`; other sizes run).
        in_chans: input channels (3 images, 2 event polarities).
        T: time steps a static image is repeated over.
        embed_dim: width ``D`` of each half of the stream (the head sees ``2D``).
        depth: number of reversible blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of G is ``int(D * mlp_ratio)``.
        patch_size: tokenizer down-sampling (CIFAR 4, DVS 16).
        attn_scale: constant of ``(Q K^T) V`` (0.125).
        reversible: the memory-saving backward (True) or plain autograd (False).
        recompute_bn_stats: see :class:`ReversibleSequence`.
        input_kind: ``"image"`` or ``"events"``.
        spike_layer: neuron factory (default LIF, tau 2).

    Shape:
        ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> logits ``[B, K]``; :meth:`forward_features` -> ``[T, B, N, 2D]``
        (real-valued).
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        img_size: int | tuple[int, int] = 32,
        in_chans: int = 3,
        T: int = 4,
        embed_dim: int = 384,
        depth: int = 4,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 4,
        attn_scale: float = 0.125,
        reversible: bool = True,
        recompute_bn_stats: bool = True,
        input_kind: str = "image",
        spike_layer: SpikeFactory = LIF,
    ) -> None:
        super().__init__()
        check_sizes(T=T, depth=depth, num_classes=num_classes, embed_dim=embed_dim, num_heads=num_heads)
        if input_kind not in ("image", "events"):
            raise ValueError(f"input_kind must be 'image' or 'events', got {input_kind!r}")
        self.T = T
        self.num_classes = num_classes
        self.num_features = 2 * embed_dim
        self.input_kind = input_kind
        self.img_size = to_2tuple(img_size)
        self.patch_embed = RevTokenizer(
            in_chans=in_chans, embed_dim=embed_dim, patch_size=patch_size, spike_layer=spike_layer
        )
        grid = self.patch_embed.grid_size(self.img_size)
        self.num_patches = grid[0] * grid[1]
        blocks = [
            ReversibleBlock(
                PreActSelfAttention(embed_dim, num_heads, attn_scale=attn_scale, spike_layer=spike_layer),
                PreActMlp(embed_dim, int(embed_dim * mlp_ratio), spike_layer=spike_layer),
            )
            for _ in range(depth)
        ]
        self.block = ReversibleSequence(blocks, reversible=reversible, recompute_bn_stats=recompute_bn_stats)
        self.head = make_head(2 * embed_dim, num_classes)
        self.apply(trunc_normal_init(nn.Linear))

    @property
    def reversible(self) -> bool:
        """Whether training uses the reversible backward (settable: ``model.reversible = False``)."""
        return self.block.reversible

    @reversible.setter
    def reversible(self, value: bool) -> None:
        self.block.reversible = bool(value)

    def forward_features(self, x: Tensor) -> Tensor:
        """Input -> the reversible stream ``[T, B, N, 2D]`` after the last block."""
        x = self.patch_embed(self.encode_input(x))
        return self.block(torch.cat([x, x], dim=-1))

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Stream ``[T, B, N, 2D]`` -> mean over tokens (and time) -> logits ``[B, K]`` or ``[T, B, K]``."""
        x = x.mean(2)
        if reduce_time:
            x = x.mean(0)
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------------
# Official checkpoints.

_PROJ = re.compile(
    r"(block\.reversible_blocks\.\d+\.(?:f_block\.(?:q|k|v|proj)|g_block\.mlp[12]))_conv\.(weight|bias)"
)
_OUR_KEY = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"patch_embed\.block[0-4]_conv\.weight",
            rf"patch_embed\.block[0-4]_bn\.{BN_KEYS}",
            rf"block\.reversible_blocks\.\d+\.f_block\.(q|k|v|proj)_bn\.{BN_KEYS}",
            rf"block\.reversible_blocks\.\d+\.g_block\.mlp[12]_bn\.{BN_KEYS}",
            r"head\.(weight|bias)",
        )
    )
)


def convert_revsformer_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """Official key -> ours: the 1-wide Conv1d / Conv2d projections become ``*_linear`` (weights squeezed);
    ``None`` for a key of another family."""
    m = _PROJ.fullmatch(key)
    if m is not None:
        prefix, kind = m.groups()
        if kind == "weight":
            if value.dim() < 3 or any(s != 1 for s in value.shape[2:]):
                return None
            value = value.reshape(value.shape[0], value.shape[1])
        return f"{prefix}_linear.{kind}", value
    return (key, value) if _OUR_KEY.fullmatch(key) else None


# rev_vit_snn's arguments with the class defaults (its list defaults cannot build: required), plus timm's.
_REV_KWARGS: dict[str, Any] = dict(
    img_size_h=128, img_size_w=128, patch_size=16, in_channels=2, num_classes=10, embed_dims=REQUIRED,
    num_heads=REQUIRED, mlp_ratios=REQUIRED, qkv_bias=False, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
    drop_path_rate=0.0, norm_layer="nn.LayerNorm", depths=REQUIRED, sr_ratios=REQUIRED, T=4, pretrained_cfg=None,
    enable_amp=False, pretrained=False, drop_block_rate=None,
)  # fmt: skip


@official_builder(_REV_KWARGS)
def revsformer_from_official(
    *,
    img_size_h: int,
    img_size_w: int,
    in_channels: int,
    num_classes: int,
    embed_dims: int,
    num_heads: int,
    mlp_ratios: float,
    depths: int,
    T: int,
    pretrained: bool,
    **ignored: Any,
) -> RevSFormer:
    """Our model equal to ``RevSpikingformer(**kwargs)`` of ``cifar10/revmodel.py`` (class ``rev_vit_snn``).

    The file's tokenizer always pools twice (``patch_size`` has no effect); ``enable_amp``, ``qkv_bias``,
    ``qk_scale``, ``sr_ratios``, the drop rates and ``norm_layer`` do not change the forward.
    """
    if pretrained:
        raise ValueError("no pretrained RevSFormer weights are available through timm (pretrained=True)")
    return RevSFormer(
        num_classes=num_classes,
        img_size=(img_size_h, img_size_w),
        in_chans=in_channels,
        T=official_int("T", T, family="RevSFormer"),
        embed_dim=official_int("embed_dims", embed_dims, family="RevSFormer"),
        depth=official_int("depths", depths, family="RevSFormer"),
        num_heads=official_int("num_heads", num_heads, family="RevSFormer"),
        mlp_ratio=mlp_ratios,
        patch_size=4,
        attn_scale=0.125,
    )


register_official_family(
    OfficialFamily(
        name="revsformer",
        source="mi804/RevSNN @ 7521f75afb0394d89a8a162ce8e2fe8b0a4f6441: cifar10/revmodel.py",
        build=revsformer_from_official,
        convert_key=convert_revsformer_key,
    )
)


# ---------------------------------------------------------------------------------------------------------------------
# Registered variants: RevSFormer-L-D (L reversible blocks, width D per half of the stream).

# Spike-driven (the audit agrees): every F and G starts with a neuron, so each synaptic operation after the
# tokenizer's first conv takes binary spikes; the head's input is a linear function of spikes (folds into the BNs).
_COMMON: dict[str, Any] = dict(
    family="revsformer", paper=REVSFORMER_PAPER, lineage="spikformer", spike_driven=True,
)  # fmt: skip
_CIFAR_INFO: dict[str, Any] = dict(
    _COMMON, default_T=4, input_kind="image", img_size=32, in_chans=3, official_family="revsformer",
    tiny_overrides=dict(depth=1, embed_dim=32, num_heads=2, T=2),
)  # fmt: skip
_DVS_INFO: dict[str, Any] = dict(
    _COMMON, default_T=16, input_kind="events", img_size=128, in_chans=2, official_family=None,
    tiny_overrides=dict(depth=1, embed_dim=32, num_heads=2, T=2, img_size=64),
)  # fmt: skip
_HEADS_NOTE = (
    "12 heads as in the official cifar10/configs ymls (a reading of cifar100/configs/revsformer_4_384.yml gave 8; "
    "parameters do not depend on heads). "
)


def _cifar(kwargs: dict[str, Any], **args: Any) -> RevSFormer:
    return RevSFormer(**{**dict(img_size=32, in_chans=3, T=4, patch_size=4, num_heads=12), **args, **kwargs})


def _dvs(kwargs: dict[str, Any], **args: Any) -> RevSFormer:
    base = dict(img_size=128, in_chans=2, T=16, patch_size=16, embed_dim=256, depth=2, num_heads=16,
                input_kind="events")  # fmt: skip
    return RevSFormer(**{**base, **args, **kwargs})


@register_model(
    **_CIFAR_INFO, dataset="cifar10", num_classes=10, reported_top1=95.29,
    official_config="revsnn/revsformer-2-384-cifar10", official_params=5766586, notes=_HEADS_NOTE,
)  # fmt: skip
def revsformer_2_384_cifar10(**kwargs: Any) -> RevSFormer:
    """RevSFormer-2-384 on CIFAR-10 (32x32, T=4, 10 classes), 5.77M parameters."""
    return _cifar(kwargs, num_classes=10, depth=2, embed_dim=384)


@register_model(
    **_CIFAR_INFO, dataset="cifar10", num_classes=10, reported_top1=95.34,
    official_config="revsnn/revsformer-4-384-cifar10", official_params=9323962,
    notes=_HEADS_NOTE + "3.00x less GPU memory per image than its non-reversible counterpart (paper).",
)  # fmt: skip
def revsformer_4_384_cifar10(**kwargs: Any) -> RevSFormer:
    """RevSFormer-4-384 on CIFAR-10 (32x32, T=4, 10 classes), 9.32M parameters."""
    return _cifar(kwargs, num_classes=10, depth=4, embed_dim=384)


@register_model(
    **_CIFAR_INFO, dataset="cifar100", num_classes=100, reported_top1=78.04,
    official_config="revsnn/revsformer-2-384-cifar100", official_params=5835796, notes=_HEADS_NOTE,
)  # fmt: skip
def revsformer_2_384_cifar100(**kwargs: Any) -> RevSFormer:
    """RevSFormer-2-384 on CIFAR-100 (32x32, T=4, 100 classes), 5.84M parameters."""
    return _cifar(kwargs, num_classes=100, depth=2, embed_dim=384)


@register_model(
    **_CIFAR_INFO, dataset="cifar100", num_classes=100, reported_top1=79.04,
    official_config="revsnn/revsformer-4-384-cifar100", official_params=9393172, notes=_HEADS_NOTE,
)  # fmt: skip
def revsformer_4_384_cifar100(**kwargs: Any) -> RevSFormer:
    """RevSFormer-4-384 on CIFAR-100 (32x32, T=4, 100 classes), 9.39M parameters."""
    return _cifar(kwargs, num_classes=100, depth=4, embed_dim=384)


@register_model(
    **_DVS_INFO, dataset="cifar10-dvs", num_classes=10, reported_top1=82.2,
    official_config="revsnn/revsformer-2-256-cifar10-dvs", official_params=2569226,
    notes="cifar10-dvs/revmodel.py factory (4 max-pools, 128 -> 8). T=16: 82.20 (T=10: 81.40).",
)  # fmt: skip
def revsformer_2_256_cifar10dvs(**kwargs: Any) -> RevSFormer:
    """RevSFormer-2-256 on CIFAR10-DVS frames (128x128, T=16, 10 classes), 2.57M parameters."""
    return _dvs(kwargs, num_classes=10)


@register_model(
    **_DVS_INFO, dataset="dvs128-gesture", num_classes=11, reported_top1=97.57,
    official_config="revsnn/revsformer-2-256-dvs128-gesture", official_params=2569739,
    notes="dvs128-gesture/revmodel.py (4 max-pools, 128 -> 8). T=16: 97.57 (T=10: 97.22).",
)  # fmt: skip
def revsformer_2_256_dvs128gesture(**kwargs: Any) -> RevSFormer:
    """RevSFormer-2-256 on DVS128 Gesture frames (128x128, T=16, 11 classes), 2.57M parameters."""
    return _dvs(kwargs, num_classes=11)
