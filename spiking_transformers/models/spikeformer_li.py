r"""Spikeformer (Li, Lei and Yang): a convolutional SEW tokenizer and a TimeSformer-style transformer.

"Spikeformer: A Novel Architecture for Training High-Performance Low-Latency Spiking Neural Network",
Yudong Li, Yunlin Lei, Xu Yang; arXiv:2211.10686, Neurocomputing 2024. Not to be confused with Spikformer (Zhou et
al.), which came out at the same time. Upstream: https://github.com/Loydian/Spikeformer (``dvscifar10/spikeformer.py``,
``dvscifar10/neuron.py``), checked at commit cacc58d328a7dcbb00636d4b82b1a0abc22def0d with the official fixture
``spikeformer_li_dvs_small``.

Architecture (official code):

* **Tokenizer** (CCT's convolutional tokenizer with spiking SEW blocks): each block is two conv-BN-PLIF units
  plus a shortcut, *added* (so the block emits 0, 1 or 2). The shortcut is AvgPool(stride) + 1x1 conv-BN-PLIF where
  the stride or the width changes, otherwise the identity. Widths: with an integer stride and L blocks,
  ``[E/2^(L-1), ..., E/2, E]``; with a list of strides (one per block), each width is used by two blocks,
  ``[E/2^(L/2-1), E/2^(L/2-1), ..., E, E]`` (L must then be even).
* **Embeddings**: a learnable position embedding per token position and a learnable time embedding per step, both
  resized by nearest-neighbour interpolation when the input has another token grid or another T.
* **Blocks**: divided space-time softmax attention on real-valued LayerNorm-ed tokens
  (:class:`~spiking_transformers.layers.attention.divided_st.DividedSpaceTimeAttention`, registered as the attention
  ``spikeformer_st``), then a pre-LN MLP Linear -> PLIF -> Linear. Only the tokenizer and the MLP hidden layer spike.
* **Head**: final LayerNorm, sequence pooling (CCT: softmax over all T*N tokens of a Linear(E, 1) score weights the
  sum of the tokens), Linear classifier.

Neurons: spikingjelly ``MultiStepParametricLIFNode(detach_reset=True)`` (our :class:`ParametricLIF`: hard reset to
0, ``1/tau = sigmoid(w)`` with ``w = 0`` at init, sigmoid surrogate alpha 4). The ImageNet model uses the repository's
``MultiStepParametricLIAFNode`` (:class:`ParametricLIAF`): the same membrane, but it outputs ``ReLU(H)``, an analog
value, and fires only to reset.

Readings and choices:
    * Token layout. Upstream orders tokens ``b (h w t) m``; ours are ``[T, B, N, C]`` with ``N = (h w)``. The same
      numbers, permuted; every operation is per token, per sequence or a full reduction, so the outputs agree.
    * ``forward_timesteps`` (per-step logits, not in the official code): the pooled feature is a sum over steps,
      ``z = sum_t z_t`` with ``z_t = sum_n w_{t,n} x_{t,n}`` (weights from the joint softmax); step t's logits are
      ``head(T * z_t)``, so that their mean over T is exactly the model's output.
    * The official initialisation zeroes ``temporal_fc`` in *every* block (its ``'Block' in str(m)`` test also
      matches the ModuleList, so the intended exception for block 0 never happens). We do the same: at
      initialisation the temporal attention adds nothing, and it learns from there.
    * The official constructor runs a zero input through the tokenizer in training mode to measure the token count,
      which sets every tokenizer BatchNorm's running variance to 0.9 and its batch counter to 1.
      :func:`build_official` reproduces that; the native class (registered variants) computes the count
      arithmetically and leaves fresh BatchNorm statistics.
    * Drop path draws one mask per token position (temporal residual), per frame (spatial residual) and per time
      step (MLP residual), the granularity of the layouts upstream applies ``DropPath`` to.
    * Spike-driven audit: not purely spiking. Besides the softmax attention on real tokens, the first SEW block's
      shortcut conv sees the average-pooled input (real values), and the tokenizer emits sums of spikes.
    * An odd number of tokenizer blocks with a list of strides, a stride list shorter than the number of blocks,
      or sizes at which a block's two paths disagree fail upstream inside the constructor; here they raise a
      ``ValueError`` naming the problem.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers._shapes import fold_time
from ..layers.attention.divided_st import DividedSpaceTimeAttention, JointSpaceTimeAttention, drop_path
from ..neurons import ParametricLIF
from ..neurons.kernels.bn_spike import bn_spike
from ._base import SpikingModel
from ._common import check_input_kind, check_sizes, make_head, official_builder, trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "SpikeformerLi",
    "SEWTokenizer",
    "SEWConvBlock",
    "ConvBNSpike",
    "SpikeformerMlp",
    "SpikeformerBlock",
    "ParametricLIAF",
    "SPIKEFORMER_LI_PAPER",
    "build_official",
    "convert_official_key",
    "official_neuron_name",
    "tokenizer_widths",
]

SPIKEFORMER_LI_PAPER = Paper(
    title="Spikeformer: A Novel Architecture for Training High-Performance Low-Latency Spiking Neural Network",
    venue="Neurocomputing",
    year=2024,
    arxiv="2211.10686",
    repo="Loydian/Spikeformer",
    commit="cacc58d328a7dcbb00636d4b82b1a0abc22def0d",
)

SpikeFactory = Callable[[], nn.Module]


class ParametricLIAF(nn.Module):
    r"""Parametric leaky integrate-and-analog-fire neuron (the repository's ``MultiStepParametricLIAFNode``).

    The membrane is PLIF's (``H_t = V_{t-1} + (X_t - V_{t-1}) sigmoid(w)``, hard reset to 0 where ``H_t >= 1``,
    the reset detached from the graph), but the output is the analog ``ReLU(H_t)``, taken before the reset.
    Its output is not a spike train, so it is deliberately not a :class:`~spiking_transformers.neurons.Neuron`
    (spike counters and the binary checks do not apply to it).

    Args:
        init_tau: initial time constant; ``w = -log(init_tau - 1)`` (0 for the official 2.0).
        v_threshold: reset threshold.

    Shape:
        ``x: [T, B, ...]`` -> ``[T, B, ...]`` non-negative reals.
    """

    def __init__(self, init_tau: float = 2.0, v_threshold: float = 1.0) -> None:
        super().__init__()
        if init_tau <= 1.0:
            raise ValueError(f"init_tau must be > 1, got {init_tau}")
        self.v_threshold = float(v_threshold)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"ParametricLIAF expects a time-major tensor [T, B, ...], got shape {tuple(x.shape)}")
        k = self.w.to(x.dtype).sigmoid()
        v: Tensor | float = 0.0
        out = []
        for t in range(x.shape[0]):
            h = v + (x[t] - v) * k
            s = (h >= self.v_threshold).to(h.dtype)  # detached reset: no surrogate gradient is ever taken
            out.append(torch.relu(h))
            v = (1.0 - s) * h
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, tau={float(1.0 / self.w.detach().sigmoid()):.3f}"


def _plif() -> nn.Module:
    # spikingjelly MultiStepParametricLIFNode(detach_reset=True): tau 2 (w = 0), threshold 1, hard reset to 0,
    # sigmoid surrogate with alpha 4
    return ParametricLIF(init_tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate="sigmoid", alpha=4.0, detach_reset=True)


def _resolve_neuron(spike_layer: str | SpikeFactory) -> SpikeFactory:
    if callable(spike_layer):
        return spike_layer
    table = {"plif": _plif, "pliaf": ParametricLIAF}
    try:
        return table[spike_layer]
    except KeyError:
        raise ValueError(f"spike_layer must be 'plif', 'pliaf' or a neuron factory, got {spike_layer!r}") from None


class ConvBNSpike(nn.Module):
    """[AvgPool] -> Conv2d (no bias) -> BatchNorm2d -> neuron, over folded time (one official ``conv`` unit).

    Args:
        in_chans, out_chans, kernel_size, stride, padding: of the convolution.
        neuron: neuron factory.
        pre_pool: AvgPool2d kernel and stride before the conv (the SEW shortcut's), 1 for none.

    Shape:
        ``x: [T, B, C_in, H, W]`` -> ``[T, B, C_out, H', W']``.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int,
        stride: int,
        padding: int,
        neuron: SpikeFactory,
        pre_pool: int = 1,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pre_pool, pre_pool) if pre_pool > 1 else nn.Identity()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)
        self.lif = neuron()

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[0]
        z = self.conv(self.pool(fold_time(x)))  # [T*B, C_out, H', W']
        # BN and neuron fused in training where exact (see neurons/kernels/bn_spike.py), else bn -> neuron
        return bn_spike(z, self.bn, self.lif, (T, z.shape[0] // T, *z.shape[1:]))

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size after this unit for an ``h x w`` input."""
        if isinstance(self.pool, nn.AvgPool2d):
            h, w = h // self.pool.kernel_size, w // self.pool.kernel_size
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


class SEWConvBlock(nn.Module):
    """SEW residual block of the tokenizer: ``conv2(conv1(x)) + shortcut(x)`` (ADD of spikes: 0, 1 or 2).

    ``conv1`` has the block's stride; the shortcut is AvgPool(stride) + 1x1 conv-BN-neuron where the stride or the
    width changes, else the identity.

    Shape:
        ``x: [T, B, C_in, H, W]`` -> ``[T, B, C_out, H / stride, W / stride]``.
    """

    def __init__(
        self, in_chans: int, out_chans: int, *, stride: int, kernel_size: int, padding: int, neuron: SpikeFactory
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNSpike(in_chans, out_chans, kernel_size, stride, padding, neuron)
        self.conv2 = ConvBNSpike(out_chans, out_chans, kernel_size, 1, padding, neuron)
        needs_projection = stride != 1 or in_chans != out_chans
        self.shortcut: nn.Module = (
            ConvBNSpike(in_chans, out_chans, 1, 1, 0, neuron, pre_pool=stride) if needs_projection else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x)) + self.shortcut(x)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Spatial size after the block; ``ValueError`` where the two paths disagree (upstream: a shape error)."""
        main = self.conv2.output_size(*self.conv1.output_size(h, w))
        short = self.shortcut.output_size(h, w) if isinstance(self.shortcut, ConvBNSpike) else (h, w)
        if main != short:
            raise ValueError(
                f"SEW block on a {h}x{w} map: the residual path gives {main[0]}x{main[1]}, the shortcut "
                f"{short[0]}x{short[1]}; choose an input size, kernel and padding for which they agree"
            )
        return main


def tokenizer_widths(in_chans: int, embed_dim: int, n_conv_layers: int, list_strides: bool) -> list[int]:
    """The official tokenizer's channel list ``[in, w_1, ..., w_L]`` (``w_L = embed_dim``).

    Integer stride: ``w_i = E / 2^(L-i)``. List of strides: each width twice, ``E / 2^(L/2-1)`` up to ``E, E``.
    """
    if n_conv_layers < 1:
        raise ValueError(f"n_conv_layers must be >= 1, got {n_conv_layers}")
    if not list_strides:
        return [in_chans] + [embed_dim // 2 ** (n_conv_layers - i - 1) for i in range(n_conv_layers - 1)] + [embed_dim]
    if n_conv_layers % 2:
        raise ValueError(
            f"with a list of strides n_conv_layers must be even (widths come in pairs), got {n_conv_layers}"
        )
    half = n_conv_layers // 2
    widths = [in_chans]
    for i in range(half - 1):
        widths += [embed_dim // 2 ** (half - i - 1)] * 2
    return widths + [embed_dim, embed_dim]


class SEWTokenizer(nn.Module):
    """Spikeformer's convolutional tokenizer: a stack of :class:`SEWConvBlock` (official ``Tokenizer``).

    Args:
        in_chans: input channels.
        embed_dim: output channels E.
        n_conv_layers: number of SEW blocks L.
        kernel_size, padding: of every 3x3 / 5x5 conv.
        stride: one stride for every block, or a list with one stride per block (extra entries are ignored, as
            upstream).
        neuron: neuron factory.

    Shape:
        ``x: [T, B, C, H, W]`` -> ``[T, B, E, H', W']``.
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        *,
        n_conv_layers: int,
        kernel_size: int,
        stride: int | Sequence[int],
        padding: int,
        neuron: SpikeFactory,
    ) -> None:
        super().__init__()
        list_strides = not isinstance(stride, int)
        widths = tokenizer_widths(in_chans, embed_dim, n_conv_layers, list_strides)
        if list_strides:
            strides = [int(s) for s in stride]  # type: ignore[union-attr]
            if len(strides) < n_conv_layers:
                raise ValueError(f"stride lists {len(strides)} strides for n_conv_layers={n_conv_layers} blocks")
        else:
            strides = [int(stride)] * n_conv_layers  # type: ignore[arg-type]
        if min(strides[:n_conv_layers]) < 1:
            raise ValueError(f"strides must be >= 1, got {strides}")
        self.layers = nn.ModuleList(
            SEWConvBlock(
                widths[i], widths[i + 1], stride=strides[i], kernel_size=kernel_size, padding=padding, neuron=neuron
            )
            for i in range(n_conv_layers)
        )
        for m in self.modules():
            # official init; skipped on the meta device (parameter counting), where normal_ would import the
            # whole of torch._dynamo (seconds) to fill values that do not exist
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Token grid ``(H', W')`` for an ``h x w`` input (``ValueError`` where upstream would fail)."""
        for layer in self.layers:
            h, w = layer.output_size(h, w)
        if h < 1 or w < 1:
            raise ValueError(f"the tokenizer reduces the input to an empty {h}x{w} grid")
        return h, w


class SpikeformerMlp(nn.Module):
    """Linear -> neuron -> Linear -> dropout, per token over time-major tokens (official ``Mlp``).

    Shape:
        ``x: [T, B, N, C]`` -> ``[T, B, N, C]``.
    """

    def __init__(self, dim: int, hidden: int, neuron: SpikeFactory, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc1_lif = neuron()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.fc1_lif(self.fc1(x))))


_ATTENTIONS = {"spikeformer_st": DividedSpaceTimeAttention, "spikeformer_joint": JointSpaceTimeAttention}


class SpikeformerBlock(nn.Module):
    """Divided space-time attention, then the spiking MLP, each with its shortcut (official ``Block``).

    ``X_t = X + R_t(X)``, ``X' = X_t + R_s(X_t)``, ``out = X' + MLP(LN(X'))``. With ``attn="spikeformer_joint"``
    (non-official) the attention step is ``X' = X + MHSA(LN(X))`` over all ``T * N`` tokens.

    Shape:
        ``x: [T, B, N, C]`` real tokens -> ``[T, B, N, C]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        neuron: SpikeFactory,
        *,
        norm_eps: float = 1e-6,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        attn: str = "spikeformer_st",
    ) -> None:
        super().__init__()
        if attn not in _ATTENTIONS:
            raise ValueError(f"attn must be one of {sorted(_ATTENTIONS)}, got {attn!r}")
        self.attn = _ATTENTIONS[attn](
            dim, num_heads, norm_eps=norm_eps, attn_drop=attn_drop, proj_drop=drop, drop_path=drop_path
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = SpikeformerMlp(dim, int(dim * mlp_ratio), neuron, drop)
        self.drop_path = float(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.attn, DividedSpaceTimeAttention):  # the official order of the two shortcuts
            x = x + self.attn.temporal_residual(x)
            x = x + self.attn.spatial_residual(x)
        else:
            x = x + self.attn(x)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training, (x.shape[0], 1, 1, 1))


class SpikeformerLi(SpikingModel):
    """Spikeformer (Li, Lei and Yang, Neurocomputing 2024).

    Args:
        num_classes: classes (0: the head is the identity).
        img_size: square input size the position embedding is made for (other sizes are interpolated).
        in_chans: input channels (2 event polarities; 3 for images).
        T: time steps the time embedding is made for; an input with another number of steps is accepted, and the
            embedding is resized to it (nearest), as upstream.
        embed_dim, depth, num_heads, mlp_ratio: transformer width, blocks, heads, MLP expansion.
        n_conv_layers, kernel_size, stride, padding: tokenizer (see :class:`SEWTokenizer`).
        drop_rate, attn_drop_rate, drop_path_rate: dropout after embeddings / projections / MLP, on attention maps,
            and the stochastic-depth rate of the last block (linear from 0).
        spike_layer: ``"plif"`` (DVS models), ``"pliaf"`` (ImageNet model) or a neuron factory.
        input_kind: ``"events"`` (time-major frames) or ``"image"`` (static images repeated over T).
        norm_eps: LayerNorm epsilon (1e-6 upstream).
        attn: ``"spikeformer_st"`` (official divided space-time attention) or ``"spikeformer_joint"`` (one attention
            over all ``T * N`` tokens: a reading of the paper, not the official code).

    Shape:
        ``x: [T, B, C, H, W]`` (or ``[B, C, H, W]`` for image models) -> logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        img_size: int = 128,
        in_chans: int = 2,
        T: int = 4,
        embed_dim: int = 256,
        depth: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        n_conv_layers: int = 6,
        kernel_size: int = 3,
        stride: int | Sequence[int] = (2, 1, 2, 1, 2, 1),
        padding: int = 1,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        spike_layer: str | SpikeFactory = "plif",
        input_kind: str = "events",
        norm_eps: float = 1e-6,
        attn: str = "spikeformer_st",
    ) -> None:
        super().__init__()
        check_sizes(T=T, embed_dim=embed_dim, num_heads=num_heads)
        neuron = _resolve_neuron(spike_layer)
        self.T = T
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.input_kind = check_input_kind(input_kind)
        self.attn_name = attn
        self.patch_embed = SEWTokenizer(
            in_chans, embed_dim, n_conv_layers=n_conv_layers, kernel_size=kernel_size, stride=stride,
            padding=padding, neuron=neuron,
        )  # fmt: skip
        gh, gw = self.patch_embed.output_size(img_size, img_size)
        self.num_patches = gh * gw
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, T, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.time_drop = nn.Dropout(drop_rate)
        # float32 linspace, as upstream (its values round the same); on the CPU even under a meta-device context
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            SpikeformerBlock(
                embed_dim, num_heads, mlp_ratio, neuron, norm_eps=norm_eps, drop=drop_rate, attn_drop=attn_drop_rate,
                drop_path=dpr[i], attn=attn,
            )
            for i in range(depth)
        )  # fmt: skip
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.attention_pool = nn.Linear(embed_dim, 1)
        self.head = make_head(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # Official scheme: Linear trunc-normal(0.02) with zero bias, LayerNorm (1, 0), position embedding
        # trunc-normal(0.02), time embedding 0, tokenizer convs Kaiming-normal (done by the tokenizer), and every
        # temporal_fc zeroed (see the module docstring).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        init_linear = trunc_normal_init(nn.Linear)
        for m in self.modules():  # pre-order (the official loop's order, hence its random draws); LayerNorms keep 1 / 0
            init_linear(m)
        for block in self.blocks:
            if isinstance(block.attn, DividedSpaceTimeAttention):
                nn.init.zeros_(block.attn.temporal_fc.weight)
                nn.init.zeros_(block.attn.temporal_fc.bias)

    def _check_input(self, x: Tensor) -> None:
        """The library's input checks, except that any number of time steps is valid: upstream resizes the time
        embedding for a ``T`` other than the one it was built for (a batch-major-looking input still raises)."""
        if isinstance(x, Tensor) and x.dim() == 5 and x.shape[0] != self.T and x.shape[1] != self.T:
            x = x[:1].expand(self.T, *x.shape[1:])  # a view with the built T: check everything else
        check = getattr(super(), "_check_input", None)
        if check is not None:
            check(x)

    def _pos_embed(self, gh: int, gw: int) -> Tensor:
        """Position embedding ``[1, gh*gw, E]`` for a ``gh x gw`` grid (nearest resize of the stored square grid)."""
        if gh * gw == self.num_patches:
            return self.pos_embed  # upstream compares token counts only
        p = math.isqrt(self.num_patches)
        if p * p != self.num_patches:
            raise ValueError(
                f"input gives a {gh}x{gw} token grid but the position embedding holds {self.num_patches} tokens, "
                "not a square grid that could be resized"
            )
        grid = self.pos_embed[0].transpose(0, 1).reshape(1, self.embed_dim, p, p)
        return F.interpolate(grid, size=(gh, gw), mode="nearest").flatten(2).transpose(1, 2)

    def _time_embed(self, T: int) -> Tensor:
        """Time embedding ``[T, 1, 1, E]`` (nearest resize when ``T`` differs from the stored one)."""
        emb = self.time_embed
        if T != emb.shape[1]:
            emb = F.interpolate(emb.transpose(1, 2), size=T, mode="nearest").transpose(1, 2)
        return emb[0].reshape(T, 1, 1, self.embed_dim)

    def forward_features(self, x: Tensor) -> Tensor:
        """Input -> LayerNorm-ed tokens ``[T, B, N, E]`` after the last block (``N = H' W'``, row-major)."""
        x = self.encode_input(x)
        feats = self.patch_embed(x)  # [T, B, E, H', W'], sums of spikes
        T, _, _, gh, gw = feats.shape
        tokens = feats.flatten(3).transpose(-1, -2)  # [T, B, N, E]
        tokens = self.pos_drop(tokens + self._pos_embed(gh, gw))
        tokens = self.time_drop(tokens + self._time_embed(T))
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def pool_weights(self, x: Tensor) -> Tensor:
        """Sequence-pooling weights ``[T, B, N, 1]``: softmax over all ``T * N`` tokens of each sample."""
        T, B, N, _ = x.shape
        scores = self.attention_pool(x)[..., 0].permute(1, 0, 2).reshape(B, T * N)
        return scores.softmax(dim=-1).reshape(B, T, N).permute(1, 0, 2).unsqueeze(-1)

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Tokens ``[T, B, N, E]`` -> sequence pooling -> logits ``[B, K]``, or per-step logits ``[T, B, K]``
        (``head(T * z_t)``, whose mean over T is the output; see the module docstring)."""
        per_step = (self.pool_weights(x) * x).sum(2)  # [T, B, E]: z_t, summing to the pooled feature
        if reduce_time:
            return self.head(per_step.sum(0))
        return self.head(per_step * x.shape[0])


# --------------------------------------------------------------------------------------------------------------------
# Official interop: class ``Spikeformer`` of dvscifar10/spikeformer.py (the wrapper every factory returns).

# The official Spikeformer constructor's keyword arguments and defaults. ``act_layer`` is a class upstream; here the
# names "plif" / "pliaf" or the upstream class names.
SPIKEFORMER_LI_OFFICIAL_KWARGS: dict[str, Any] = dict(
    kernel_size=3,
    stride=1,
    padding=1,
    n_conv_layers=1,
    n_input_channels=3,
    img_size=224,
    drop_rate=0.0,
    num_classes=1000,
    num_frames=8,
    mlp_ratio=4,
    attn_drop_rate=0.0,
    drop_path_rate=0.1,
    embed_dim=768,
    depth=12,
    num_heads=12,
    act_layer="plif",
)
_ACT_LAYERS = {
    "plif": "plif",
    "MultiStepParametricLIFNode": "plif",
    "pliaf": "pliaf",
    "MultiStepParametricLIAFNode": "pliaf",
}


@official_builder(SPIKEFORMER_LI_OFFICIAL_KWARGS)
def build_official(
    *,
    kernel_size: int,
    stride: int | Sequence[int],
    padding: int,
    n_conv_layers: int,
    n_input_channels: int,
    img_size: int,
    drop_rate: float,
    num_classes: int,
    num_frames: int,
    mlp_ratio: float,
    attn_drop_rate: float,
    drop_path_rate: float,
    embed_dim: int,
    depth: int,
    num_heads: int,
    act_layer: str,
) -> SpikeformerLi:
    """Our model equal to the official ``Spikeformer(**kwargs)`` (the factories ``PLIF_spikeformer_7_3x2x3``,
    ``PLIF_spikeformer_7_5x3x1`` and ``PLIAF_spikeformer_7_3x2x4`` return it).

    ``act_layer``: ``"plif"`` / ``"MultiStepParametricLIFNode"`` (default) or ``"pliaf"`` /
    ``"MultiStepParametricLIAFNode"``. Event frames are the input (``[T, B, C, H, W]``; upstream ``[B, T, ...]``).
    As upstream's constructor does, the tokenizer BatchNorms have seen one all-zero batch (running variance 0.9).
    """
    if act_layer not in _ACT_LAYERS:
        raise ValueError(f"act_layer must be one of {sorted(_ACT_LAYERS)}, got {act_layer!r}")
    model = SpikeformerLi(
        num_classes=num_classes, img_size=img_size, in_chans=n_input_channels, T=num_frames, embed_dim=embed_dim,
        depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, n_conv_layers=n_conv_layers, kernel_size=kernel_size,
        stride=stride if isinstance(stride, int) else list(stride), padding=padding, drop_rate=drop_rate,
        attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, spike_layer=_ACT_LAYERS[act_layer],
        input_kind="events",
    )  # fmt: skip
    # Upstream measures the token count with a train-mode forward of zeros: every tokenizer BN sees a zero batch.
    with torch.no_grad():
        for m in model.patch_embed.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.mul_(1.0 - m.momentum)
                m.num_batches_tracked.add_(1)
    return model


# Official key -> ours, in order; the first matching rule applies. Every official key is under ``model.``.
_UNIT = {"0.0": "conv", "0.1": "bn", "1": "lif"}
_UNIT_KEYS = r"weight|bias|running_mean|running_var|num_batches_tracked|w"  # conv, BatchNorm and PLIF entries
_KEY_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(rf"patch_embed\.conv_layers\.(\d+)\.residual_function\.([01])\.(0\.0|0\.1|1)\.({_UNIT_KEYS})"),
        lambda m: f"patch_embed.layers.{m[1]}.conv{int(m[2]) + 1}.{_UNIT[m[3]]}.{m[4]}",
    ),
    (
        re.compile(rf"patch_embed\.conv_layers\.(\d+)\.shortcut\.1\.(0\.0|0\.1|1)\.({_UNIT_KEYS})"),
        lambda m: f"patch_embed.layers.{m[1]}.shortcut.{_UNIT[m[2]]}.{m[3]}",
    ),
    (re.compile(r"blocks\.(\d+)\.norm1\.(weight|bias)"), lambda m: f"blocks.{m[1]}.attn.spatial_norm.{m[2]}"),
    (re.compile(r"blocks\.(\d+)\.attn\.(qkv\.weight|proj\.(?:weight|bias))"),
     lambda m: f"blocks.{m[1]}.attn.spatial_attn.{m[2]}"),
    (re.compile(r"blocks\.(\d+)\.(temporal_attn\.(?:qkv\.weight|proj\.(?:weight|bias))|"
                r"(?:temporal_norm1|temporal_fc)\.(?:weight|bias))"),
     lambda m: f"blocks.{m[1]}.attn.{m[2]}"),
    (re.compile(r"blocks\.(\d+)\.mlp\.mlp\.0\.0\.(weight|bias)"), lambda m: f"blocks.{m[1]}.mlp.fc1.{m[2]}"),
    (re.compile(r"blocks\.(\d+)\.mlp\.mlp\.1\.w"), lambda m: f"blocks.{m[1]}.mlp.fc1_lif.w"),
    (re.compile(r"blocks\.(\d+)\.mlp\.mlp\.2\.0\.(weight|bias)"), lambda m: f"blocks.{m[1]}.mlp.fc2.{m[2]}"),
    (re.compile(r"(blocks\.\d+\.norm2|norm|attention_pool|head)\.(weight|bias)"), lambda m: m[0]),
    (re.compile(r"pos_embed|time_embed"), lambda m: m[0]),
)  # fmt: skip


def convert_official_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """One official state-dict key (``model.`` prefix) -> ours; ``None`` for a key of another family."""
    if not key.startswith("model."):
        return None
    rest = key[len("model.") :]
    for pattern, rename in _KEY_RULES:
        m = pattern.fullmatch(rest)
        if m:
            return rename(m), value
    return None


_NEURON_RULES = (
    (re.compile(r"model\.patch_embed\.conv_layers\.(\d+)\.residual_function\.([01])\.1"),
     lambda m: f"patch_embed.layers.{m[1]}.conv{int(m[2]) + 1}.lif"),
    (re.compile(r"model\.patch_embed\.conv_layers\.(\d+)\.shortcut\.1\.1"),
     lambda m: f"patch_embed.layers.{m[1]}.shortcut.lif"),
    (re.compile(r"model\.blocks\.(\d+)\.mlp\.mlp\.1"), lambda m: f"blocks.{m[1]}.mlp.fc1_lif"),
)  # fmt: skip


def official_neuron_name(name: str) -> str:
    """Official neuron module path (e.g. ``model.blocks.0.mlp.mlp.1``) -> ours (``blocks.0.mlp.fc1_lif``)."""
    for pattern, rename in _NEURON_RULES:
        m = pattern.fullmatch(name)
        if m:
            return rename(m)
    raise ValueError(f"{name!r} is not a neuron module path of the official Spikeformer")


register_official_family(
    OfficialFamily(
        name="spikeformer_li",
        source="Loydian/Spikeformer@cacc58d328a7dcbb00636d4b82b1a0abc22def0d dvscifar10/spikeformer.py",
        build=build_official,
        convert_key=convert_official_key,
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Registered variants: the two DVS factories of dvscifar10/spikeformer.py. The ImageNet factory
# PLIAF_spikeformer_7_3x2x4 is built by ``from_official("spikeformer_li", dict(..., act_layer="pliaf"))`` (39,320,836
# parameters, the official count) but not registered: its neurons emit analog ReLU(membrane) values, none is a spiking
# ``Neuron``, and the registry's generic checks (every variant's neurons fire integer spike counts) do not apply.

_TINY = dict(depth=1, embed_dim=32, num_heads=4, img_size=32, T=2, n_conv_layers=2, stride=(2, 1))
_COMMON = dict(
    family="spikeformer_li", paper=SPIKEFORMER_LI_PAPER, lineage=None, official_family="spikeformer_li",
    spike_driven=False,  # softmax attention on real-valued tokens; the SEW tokenizer emits integer sums
)  # fmt: skip
_NOTE = (
    "Only the SEW tokenizer and the MLP hidden layer spike; the divided space-time attention is softmax attention "
    "on real tokens (not spike-driven). "
)


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> SpikeformerLi:
    return SpikeformerLi(**{**defaults, **overrides})


@register_model(
    **_COMMON, input_kind="events", dataset="cifar10-dvs", num_classes=10, img_size=128, in_chans=2, default_T=4,
    reported_top1=81.4, official_config="spikeformer_li/PLIF_spikeformer_7_3x2x3", official_params=8792993,
    tiny_overrides=_TINY,
    notes=_NOTE + "Official factory PLIF_spikeformer_7_3x2x3: 6 SEW blocks, kernel 3, strides [2,1,2,1,2,1], "
    "16x16 tokens; 81.4 % top-1 at T=4 (official README).",
)  # fmt: skip
def spikeformer_li_7_3x2x3_cifar10dvs(**kwargs: Any) -> SpikeformerLi:
    """Spikeformer on CIFAR10-DVS frames (128x128, T=4, 10 classes), 8.79M parameters."""
    arch = dict(
        num_classes=10, img_size=128, in_chans=2, T=4, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0,
        n_conv_layers=6, kernel_size=3, stride=(2, 1, 2, 1, 2, 1), padding=1, spike_layer="plif",
        input_kind="events",
    )  # fmt: skip
    return _create(arch, kwargs)


@register_model(
    **_COMMON, input_kind="events", dataset="dvs128-gesture", num_classes=11, img_size=128, in_chans=2,
    default_T=16, reported_top1=98.96, official_config="spikeformer_li/PLIF_spikeformer_7_5x3x1",
    official_params=9279900, tiny_overrides=dict(_TINY, stride=2, kernel_size=5, padding=2),
    notes=_NOTE + "Official factory PLIF_spikeformer_7_5x3x1: 3 SEW blocks, kernel 5, stride 2 each, 16x16 "
    "tokens; 98.96 % top-1 at T=16 (official README).",
)  # fmt: skip
def spikeformer_li_7_5x3x1_dvs128gesture(**kwargs: Any) -> SpikeformerLi:
    """Spikeformer on DVS128 Gesture frames (128x128, T=16, 11 classes), 9.28M parameters."""
    arch = dict(
        num_classes=11, img_size=128, in_chans=2, T=16, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0,
        n_conv_layers=3, kernel_size=5, stride=2, padding=2, spike_layer="plif", input_kind="events",
    )  # fmt: skip
    return _create(arch, kwargs)
