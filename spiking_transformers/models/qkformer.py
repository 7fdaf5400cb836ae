r"""QKFormer: a hierarchical spiking transformer with Q-K attention.

Zhou, Zhang, Zhou, Yu, Huang, Fan, Yuan, Ma, Zhou, Tian, "QKFormer: Hierarchical Spiking Transformer using Q-K
Attention", NeurIPS 2024 (arXiv 2403.16552). Official code: github.com/zhouchenlin2096/QKFormer, checked against
commit c2a00e8e54538e76f5954614a60c1d53824bbee9 (files ``cifar10/model.py``, ``cifar100/model.py``,
``imagenet/qkformer.py``, ``cifar10-dvs/model.py``, ``dvs128-gesture/model.py``).

Architecture (feature maps ``[T, B, C, H, W]`` throughout, SEW residuals on spikes, so the residual stream holds
small integers and the model is integer-driven, not spike-driven):

- **SPEDS** embeddings (spiking patch embedding with deformed shortcut): a chain of 3x3 conv + BN (+ 3x3/2
  max-pool) + LIF, plus a 1x1 strided conv + BN + LIF shortcut from an early spike map; the two spike maps are
  added. One initial embedding, then one stage embedding (halving the resolution, doubling the width) before
  every later stage.
- **Stages** of blocks ``x + Attn(x)``, ``x + MLP(x)``: Q-K token attention in the early stages, Spikformer's
  spiking self-attention (SSA) in the last one.
- **Head**: mean over tokens, mean over time, linear.

The three official layouts differ in the embeddings (``embed_layout``):

==============  ===============================  =====================  ==================
layout          initial embedding                stage-embed pool       stages (dims)
==============  ===============================  =====================  ==================
``imagenet``    D/8 (pool), D/4 (pool), D/4;     after the first conv   D/4, D/2, D
                shortcut from the first, /2
``cifar``       D/8, D/4, no pool; shortcut /1   after the second conv  D/4, D/2, D
``dvs``         D/16, D/8 (pool), D/4 (pool),    after the second conv  D/2, D
                D/2 (pool); shortcut from the
                second, /4
==============  ===============================  =====================  ==================

Quirks of the official code, and our reading:

- The SSA output neuron runs over the folded ``[T*B, C, N]`` tensor, so spikingjelly's multi-step neuron takes
  ``T*B`` as its time axis: the membrane flows from sample ``b`` to sample ``b+1`` and from the last sample at step
  ``t`` to the first at ``t+1``, in eval too. Every official file does this. ``ssa_proj_over_batch=True``
  reproduces it (``from_official`` sets it, for exact parity); the registered variants compute the neuron per
  sample over ``T`` (``False``), so that an output never depends on the rest of the batch.
- The CIFAR and DVS files ignore ``num_heads`` (hard-coded to 8 and 16 in every stage); the ImageNet file uses it
  in every stage. ``depths`` sets the last stage only (CIFAR: ``depths - 2`` SSA blocks, ImageNet: ``depths - 3``;
  stage 1 has one block and stage 2 one (CIFAR) or two (ImageNet)); the DVS file has one block per stage whatever
  ``depths`` is.
- The SSA output is reshaped to ``[T, B, C, W, H]``; this is a plain reshape, harmless for the square maps the
  official code requires. We keep ``[T, B, C, H, W]`` and accept any size.
- ``patch_size``, ``qkv_bias``, ``qk_scale``, ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``,
  ``norm_layer``, ``sr_ratios`` are accepted by the official constructors and never used in forward.

Module names: blocks are ``stage{i}.{j}`` with ``attn`` and ``mlp.fc{1,2}_{conv,bn,lif}`` (the ImageNet keys);
the converters rename the CIFAR/DVS ``tssa``/``ssa`` and ``mlp{1,2}_*`` keys, the ImageNet ``tssa`` keys, and the
DVS stage embedding's ``proj_*`` (our ``proj3_*``). Embedding layers keep the official names (``proj_conv``,
``proj1_conv``, ..., ``proj_res_conv``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ..layers._shapes import fold_time, unfold_time
from ..layers.ops import folded, merge_heads, split_heads
from ..layers.attention import attend, list_attentions, resolve_attention
from ..layers.attention.qk import PointwiseProjections, QKChannelAttention, QKTokenAttention
from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
from ._base import SpikingModel
from ._common import PVT_KWARGS, check_input_kind, make_head, official_builder, official_int, trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "QKFormer",
    "QKFormerBlock",
    "QKFormerMlp",
    "QKFormerSSA",
    "SPEDSInit",
    "SPEDSStage",
    "ATTENTION_LAYERS",
    "EMBED_LAYOUTS",
]

PAPER = Paper(
    title="QKFormer: Hierarchical Spiking Transformer using Q-K Attention",
    venue="NeurIPS",
    year=2024,
    arxiv="2403.16552",
    repo="zhouchenlin2096/QKFormer",
    commit="c2a00e8e54538e76f5954614a60c1d53824bbee9",
)
SOURCE = f"github.com/{PAPER.repo} @ {PAPER.commit}"


# --------------------------------------------------------------------------------------------------- blocks


class QKFormerSSA(PointwiseProjections):
    """Spikformer's spiking self-attention on feature maps, as QKFormer's last stage uses it.

    ``Q, K, V = SN(BN(W X))`` (no bias), ``Y = SN_{0.5}(Q (K^T V) * 0.125)`` per head, out ``SN(BN(W_p Y))`` (bias).
    ``K^T V`` is formed first, as in the official code (exact in float64 either way: spike products are integers).

    Args:
        dim: channels ``C``.
        num_heads: heads ``h`` (``d = C / h`` channels each).
        spike_layer: neuron factory (the attention neuron gets ``v_threshold=0.5``).
        proj_over_batch: run the output neuron over the folded ``T*B`` axis (the official quirk, see the module
            docstring) instead of over ``T`` per sample.

    Shape:
        ``[T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    scale = 0.125

    def __init__(
        self, dim: int, num_heads: int, *, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER, proj_over_batch: bool = False
    ) -> None:
        super().__init__(dim, num_heads, branches=("q", "k", "v"), spike_layer=spike_layer)
        self.proj_over_batch = proj_over_batch

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` spikes (integer sums on the SEW stream) -> spikes ``[T, B, C, H, W]``."""
        T = x.shape[0]
        tokens = x.flatten(3)  # [T, B, C, N]
        q, k, v = (split_heads(self.project(n, tokens), self.num_heads) for n in ("q", "k", "v"))  # [T, B, h, N, d]
        y = (q @ (k.transpose(-2, -1) @ v)) * self.scale  # [T, B, h, N, d]
        y = self.attn_lif(merge_heads(y))  # [T, B, C, N]
        y = self.proj_bn(self.proj_conv(fold_time(y)))  # [T*B, C, N]
        if self.proj_over_batch:
            y = self.proj_lif(y)  # time axis = T*B, as the official code (quirk)
        else:
            y = self.proj_lif(unfold_time(y, T))
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return f"dim={self.dim}, num_heads={self.num_heads}, proj_over_batch={self.proj_over_batch}"


class QKFormerMlp(nn.Module):
    """1x1 conv (bias) + BN + SN, twice: ``[T, B, C, H, W] -> [T, B, C, H, W]`` through ``hidden_dim`` channels."""

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        self.fc1_conv = nn.Conv2d(dim, hidden_dim, kernel_size=1, bias=True)
        self.fc1_bn = nn.BatchNorm2d(hidden_dim)
        self.fc1_lif = spike_layer()
        self.fc2_conv = nn.Conv2d(hidden_dim, dim, kernel_size=1, bias=True)
        self.fc2_bn = nn.BatchNorm2d(dim)
        self.fc2_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` -> spikes ``[T, B, C, H, W]``."""
        x = self.fc1_lif(folded(x, self.fc1_conv, self.fc1_bn))
        return self.fc2_lif(folded(x, self.fc2_conv, self.fc2_bn))


# QKFormer's own attention cores on feature maps, by the names of its configurations. Any other name is looked up
# in the attention registry (``"qk_token"`` and ``"qk_channel"`` are these two cores under the token contract;
# ``"sdsa"``, ``"statten"``, ... work too) and run through the layout adapter.
ATTENTION_LAYERS: dict[str, type[nn.Module]] = {
    "qkta": QKTokenAttention,
    "qkca": QKChannelAttention,
    "ssa": QKFormerSSA,
}
AttnLayer = str | type[nn.Module] | Callable[..., nn.Module]


def _resolve_attn(attn: AttnLayer) -> Callable[..., nn.Module]:
    if isinstance(attn, str):
        if attn in ATTENTION_LAYERS:
            return ATTENTION_LAYERS[attn]
        try:
            return resolve_attention(attn)
        except ValueError:
            raise ValueError(
                f"unknown attention {attn!r}; known: {', '.join(sorted(ATTENTION_LAYERS))} and the registered "
                f"{', '.join(list_attentions())}"
            ) from None
    return attn


class QKFormerBlock(nn.Module):
    """SEW block ``x + Attn(x)``, then ``x + MLP(x)`` on feature maps ``[T, B, C, H, W]``.

    Args:
        dim: channels.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width = ``int(dim * mlp_ratio)``.
        attn_layer: attention class, its name in :data:`ATTENTION_LAYERS` (QKFormer's own cores on feature maps), or
            the name of a registered attention (run through
            :func:`~spiking_transformers.layers.attention.attend`).
        spike_layer: neuron factory.
        ssa_proj_over_batch: passed to :class:`QKFormerSSA` (ignored by other attention classes: see there).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        attn_layer: AttnLayer = "qkta",
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
        ssa_proj_over_batch: bool = False,
    ) -> None:
        super().__init__()
        cls = _resolve_attn(attn_layer)
        extra = {"proj_over_batch": ssa_proj_over_batch} if cls is QKFormerSSA else {}
        self.attn = cls(dim, num_heads, spike_layer=spike_layer, **extra)
        self.mlp = QKFormerMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)
        # QKFormer's own cores take the feature map as it is (the official layout); registered attentions go
        # through the layout adapter.
        self._map_native = cls in ATTENTION_LAYERS.values()

    def forward(self, x: Tensor) -> Tensor:
        x = x + (self.attn(x) if self._map_native else attend(self.attn, x, layout="map"))
        return x + self.mlp(x)


def _layer_prefix(i: int) -> str:
    # Official embedding names: proj, proj1, proj2, proj3 (then proj_res for the shortcut).
    return "proj" if i == 0 else f"proj{i}"


def _maxpool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


class _ConvChain(nn.Module):
    """Conv3x3 + BN (+ max-pool) + SN units named ``{prefix}_conv/_bn/_pool/_lif``, and a 1x1 strided shortcut."""

    def _add_unit(self, prefix: str, c_in: int, c_out: int, pool: bool, spike_layer: SpikeFactory) -> None:
        setattr(self, f"{prefix}_conv", nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False))
        setattr(self, f"{prefix}_bn", nn.BatchNorm2d(c_out))
        setattr(self, f"{prefix}_pool", _maxpool() if pool else nn.Identity())
        setattr(self, f"{prefix}_lif", spike_layer())

    def _add_shortcut(self, c_in: int, c_out: int, stride: int, spike_layer: SpikeFactory) -> None:
        self.proj_res_conv = nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)
        self.proj_res_bn = nn.BatchNorm2d(c_out)
        self.proj_res_lif = spike_layer()

    def _unit(self, prefix: str, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> spikes ``[T, B, C', H', W']``: conv, BN, pool (BN before pool, as official)."""
        conv, bn, pool, lif = (getattr(self, f"{prefix}_{part}") for part in ("conv", "bn", "pool", "lif"))
        return lif(folded(x, conv, bn, pool))

    def _shortcut(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> spikes ``[T, B, C', H / s, W / s]`` through the strided 1x1 conv."""
        return self.proj_res_lif(folded(x, self.proj_res_conv, self.proj_res_bn))


class SPEDSInit(_ConvChain):
    """Initial SPEDS embedding: a chain of conv units plus a deformed (1x1 strided conv) shortcut; outputs added.

    Args:
        in_chans: input channels.
        channels: output width of every conv unit (the last is the embedding width).
        pools: whether a 3x3/2 max-pool follows each unit's BN.
        shortcut_from: index of the unit whose spikes feed the shortcut; its stride is ``2 ** (pools after it)``.
        spike_layer: neuron factory.

    Shape:
        ``[T, B, in_chans, H, W] -> [T, B, channels[-1], H / s, W / s]`` (values in {0, 1, 2}).
    """

    def __init__(
        self,
        in_chans: int,
        channels: Sequence[int],
        pools: Sequence[bool],
        shortcut_from: int,
        *,
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
    ) -> None:
        super().__init__()
        if len(channels) != len(pools) or not 0 <= shortcut_from < len(channels) - 1:
            raise ValueError(f"bad SPEDS layout: channels {channels}, pools {pools}, shortcut_from {shortcut_from}")
        self.num_units = len(channels)
        self.shortcut_from = shortcut_from
        c_in = in_chans
        for i, (c_out, pool) in enumerate(zip(channels, pools)):
            self._add_unit(_layer_prefix(i), c_in, c_out, pool, spike_layer)
            c_in = c_out
        stride = 2 ** sum(bool(p) for p in pools[shortcut_from + 1 :])
        self._add_shortcut(channels[shortcut_from], channels[-1], stride, spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        feat = x
        for i in range(self.num_units):
            x = self._unit(_layer_prefix(i), x)
            if i == self.shortcut_from:
                feat = x
        return x + self._shortcut(feat)


class SPEDSStage(_ConvChain):
    """Stage SPEDS embedding: two conv units (``proj3``, ``proj4``), one 3x3/2 max-pool, a 1x1/2 conv shortcut.

    Args:
        in_dim: input channels (previous stage width).
        dim: output channels.
        pool_first: pool after the first unit (ImageNet file) or after the second (CIFAR and DVS files).
        spike_layer: neuron factory.

    Shape:
        ``[T, B, in_dim, H, W] -> [T, B, dim, H/2, W/2]`` (values in {0, 1, 2}).
    """

    def __init__(self, in_dim: int, dim: int, *, pool_first: bool, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        self._add_unit("proj3", in_dim, dim, pool_first, spike_layer)
        self._add_unit("proj4", dim, dim, not pool_first, spike_layer)
        self._add_shortcut(in_dim, dim, 2, spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self._unit("proj4", self._unit("proj3", x)) + self._shortcut(x)


# layout -> (initial embedding as fractions of the first stage width and pools, shortcut source, stage pool_first)
EMBED_LAYOUTS: dict[str, tuple[tuple[int, ...], tuple[bool, ...], int, bool]] = {
    # divisors of the first stage width D1 for each initial unit, pools, shortcut_from, stage-embed pool_first
    "imagenet": ((2, 1, 1), (True, True, False), 0, True),
    "cifar": ((2, 1), (False, False), 0, False),
    "dvs": ((8, 4, 2, 1), (False, True, True, True), 1, False),
}


# --------------------------------------------------------------------------------------------------- model


class QKFormer(SpikingModel):
    """QKFormer classifier (hierarchical, SPEDS embeddings, Q-K attention then SSA).

    Args:
        num_classes: classifier outputs (0: no classifier, features out).
        img_size: input height = width (any size; each max-pool halves it, rounding up).
        in_chans: input channels (3 for images, 2 for event polarities).
        T: time steps for static images (event input brings its own ``T``).
        embed_dim: width ``D`` of the last stage; stage ``i`` of ``S`` has ``D / 2^(S-1-i)`` channels.
        depths: blocks per stage, e.g. ``(1, 2, 7)`` (ImageNet 10-block models), ``(1, 1, 2)`` (CIFAR), ``(1, 1)``
            (DVS).
        num_heads: attention heads, the same in every stage.
        mlp_ratio: MLP hidden width over block width.
        attn_layers: attention per stage (class or name in :data:`ATTENTION_LAYERS`); default token Q-K attention
            in every stage but the last, which uses SSA.
        embed_layout: ``"imagenet"``, ``"cifar"`` or ``"dvs"``: the SPEDS layout of :data:`EMBED_LAYOUTS`.
        input_kind: ``"image"`` (static ``[B, C, H, W]`` repeated over ``T``) or ``"events"`` (``[T, B, C, H, W]``).
        spike_layer: neuron factory (LIF, tau 2, threshold 1; attention masks get threshold 0.5).
        ssa_proj_over_batch: reproduce the official quirk of the SSA output neuron (see the module docstring).

    Shape:
        ``[B, in_chans, H, W]`` or ``[T, B, in_chans, H, W]`` -> logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        img_size: int = 224,
        in_chans: int = 3,
        T: int = 4,
        embed_dim: int = 384,
        depths: Sequence[int] = (1, 2, 7),
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        attn_layers: Sequence[AttnLayer] | None = None,
        embed_layout: str = "imagenet",
        input_kind: str = "image",
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
        ssa_proj_over_batch: bool = False,
    ) -> None:
        super().__init__()
        if embed_layout not in EMBED_LAYOUTS:
            raise ValueError(f"unknown embed_layout {embed_layout!r}; known: {', '.join(EMBED_LAYOUTS)}")
        depths = tuple(int(d) for d in depths)
        n_stages = len(depths)
        if n_stages < 1 or min(depths) < 0:
            raise ValueError(f"depths must list at least one stage of >= 0 blocks, got {depths}")
        if attn_layers is None:
            attn_layers = ("qkta",) * (n_stages - 1) + ("ssa",)
        if len(attn_layers) != n_stages:
            raise ValueError(f"attn_layers has {len(attn_layers)} entries for {n_stages} stages")
        dims = [embed_dim // 2 ** (n_stages - 1 - i) for i in range(n_stages)]
        if min(dims) < 1:
            raise ValueError(f"embed_dim {embed_dim} is too small for {n_stages} stages")

        self.T = T
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.img_size = img_size
        self.in_chans = in_chans
        self.input_kind = check_input_kind(input_kind)
        self.embed_layout = embed_layout
        self.depths = depths
        self.dims = tuple(dims)
        self.num_stages = n_stages

        divisors, pools, shortcut_from, pool_first = EMBED_LAYOUTS[embed_layout]
        self.patch_embed1 = SPEDSInit(
            in_chans, [dims[0] // d for d in divisors], pools, shortcut_from, spike_layer=spike_layer
        )
        for i in range(n_stages):
            if i > 0:
                embed = SPEDSStage(dims[i - 1], dims[i], pool_first=pool_first, spike_layer=spike_layer)
                setattr(self, f"patch_embed{i + 1}", embed)
            blocks = nn.ModuleList(
                QKFormerBlock(
                    dims[i],
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    attn_layer=attn_layers[i],
                    spike_layer=spike_layer,
                    ssa_proj_over_batch=ssa_proj_over_batch,
                )
                for _ in range(depths[i])
            )
            setattr(self, f"stage{i + 1}", blocks)
        self.head = make_head(embed_dim, num_classes)
        # As official: truncated normal (std 0.02) for the classifier, zero bias; convs keep torch's default.
        self.apply(trunc_normal_init(nn.Linear))

    def forward_intermediates(self, x: Tensor) -> list[Tensor]:
        """Output of every stage, ``[T, B, C_i, H_i, W_i]`` (integer-valued: sums of spikes on the SEW stream)."""
        x = self.encode_input(x)
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"stage{i + 1}"):
                x = blk(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> last-stage map ``[T, B, embed_dim, H', W']``."""
        return self.forward_intermediates(x)[-1]

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """``[T, B, C, H, W]`` -> ``[B, K]`` (token mean, time mean, linear) or per-step ``[T, B, K]``."""
        x = x.flatten(3).mean(3)  # [T, B, C]
        return self.head(x.mean(0)) if reduce_time else self.head(x)


# --------------------------------------------------------------------------------------------------- official


# The official constructors' keyword arguments with their defaults (the shape arguments default to None, a stand-in
# for the classes' list defaults, which cannot build). timm's create_model adds pretrained* and drop_block_rate.
_QK_KWARGS: dict[str, Any] = dict(
    PVT_KWARGS, embed_dims=None, num_heads=None, mlp_ratios=None, depths=None, sr_ratios=None, T=4
)
_CIFAR_KWARGS: dict[str, Any] = dict(_QK_KWARGS, pretrained=False, pretrained_cfg=None, drop_block_rate=None)
_IMAGENET_KWARGS: dict[str, Any] = _QK_KWARGS
_DVS_KWARGS: dict[str, Any] = dict(_QK_KWARGS, pretrained_cfg=None, in_chans=3, no_weight_decay=None)


def _official_depths(depths: Any, fixed: int) -> int:
    # ``depths`` counts every block; the first stages hold ``fixed`` of them, the last stage the rest.
    depths = official_int("depths", depths, family="QKFormer")
    if depths < fixed:
        raise ValueError(f"depths must be >= {fixed} (stage 3 holds depths - {fixed} blocks), got {depths}")
    return depths - fixed


def _build_official(
    *,
    layout: str,
    depths: tuple[int, ...],
    num_heads: int,
    img_size_h: int,
    img_size_w: int,
    in_channels: int,
    num_classes: int,
    embed_dims: Any,
    mlp_ratios: Any,
    T: int,
    **ignored: Any,
) -> QKFormer:
    # ``ignored``: the official arguments that no forward reads (listed in each builder's docstring).
    if img_size_h != img_size_w:
        raise ValueError(f"the official QKFormer code needs square inputs, got {img_size_h}x{img_size_w}")
    if isinstance(mlp_ratios, bool) or not isinstance(mlp_ratios, (int, float)):
        raise TypeError(f"mlp_ratios must be a number in the official QKFormer constructors, got {mlp_ratios!r}")
    return QKFormer(
        num_classes=num_classes,
        img_size=img_size_h,
        in_chans=in_channels,
        T=T,
        embed_dim=official_int("embed_dims", embed_dims, family="QKFormer"),
        depths=depths,
        num_heads=num_heads,
        mlp_ratio=mlp_ratios,
        embed_layout=layout,
        input_kind="events" if layout == "dvs" else "image",
        ssa_proj_over_batch=True,
    )


@official_builder(_CIFAR_KWARGS)
def build_qkformer_cifar(*, pretrained: bool, depths: Any, num_heads: Any, **kwargs: Any) -> QKFormer:
    """Our model equal to timm's ``create_model('QKFormer', **kwargs)`` of ``cifar10/model.py`` (and cifar100).

    Dead official arguments, accepted and ignored: ``pretrained_cfg``, ``drop_block_rate`` (timm drops a ``None``),
    ``patch_size``, ``num_heads`` (hard-coded to 8), ``qkv_bias``, ``qk_scale``, ``drop_rate``, ``attn_drop_rate``,
    ``drop_path_rate`` (never applied), ``norm_layer``, ``sr_ratios``. ``embed_dims``, ``mlp_ratios`` and
    ``depths`` must be given (the class's list defaults do not build).
    """
    if pretrained:
        raise ValueError("pretrained=True: no weights are bundled; load them with st.load_official_state_dict")
    return _build_official(layout="cifar", depths=(1, 1, _official_depths(depths, 2)), num_heads=8, **kwargs)


@official_builder(_IMAGENET_KWARGS)
def build_qkformer_imagenet(*, depths: Any, num_heads: Any, **kwargs: Any) -> QKFormer:
    """Our model equal to ``hierarchical_spiking_transformer(**kwargs)`` of ``imagenet/qkformer.py``.

    The paper models are that class with ``embed_dims`` 384/512/768, ``num_heads`` 6/8/12, ``mlp_ratios=4``,
    ``depths=10``, ``img_size_h = img_size_w = 224``, ``in_channels=3``, ``num_classes=1000`` (the
    ``QKFormer_10_*`` factories). Dead arguments: ``patch_size``, ``qkv_bias``, ``qk_scale``, ``drop_rate``,
    ``attn_drop_rate``, ``drop_path_rate``, ``norm_layer``, ``sr_ratios``.
    """
    heads = official_int("num_heads", num_heads, family="QKFormer")
    return _build_official(layout="imagenet", depths=(1, 2, _official_depths(depths, 3)), num_heads=heads, **kwargs)


@official_builder(_DVS_KWARGS)
def build_qkformer_dvs(*, depths: Any, num_heads: Any, **kwargs: Any) -> QKFormer:
    """Our model equal to ``vit_snn(**kwargs)`` of ``cifar10-dvs/model.py`` / ``dvs128-gesture/model.py``.

    The registered ``QKFormer`` factories there are this class with ``embed_dims=256``, ``num_heads=16``,
    ``in_channels=2``, ``depths=4`` and ``mlp_ratios=1`` / ``num_classes=10`` (CIFAR10-DVS) or ``mlp_ratios=4`` /
    ``num_classes=11`` (DVS128 Gesture). Input: our model takes time-major frames ``[T, B, 2, H, W]`` (the
    official forward permutes ``[B, T, ...]``). Dead arguments: ``patch_size``, ``num_heads`` (hard-coded to 16),
    ``qkv_bias``, ``qk_scale``, ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``, ``norm_layer``, ``depths``
    (one block per stage always), ``sr_ratios``, ``T`` (the input's), ``pretrained_cfg``, ``in_chans``,
    ``no_weight_decay``.
    """
    return _build_official(layout="dvs", depths=(1, 1), num_heads=16, **kwargs)


# Official -> ours, applied in order to every key (the parity test applies the same renames to neuron names).
_CIFAR_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^(stage\d+\.\d+)\.(?:tssa|ssa)\.", r"\1.attn."),
    (r"\.mlp\.mlp([12])_", r".mlp.fc\1_"),
)
_IMAGENET_RENAMES: tuple[tuple[str, str], ...] = ((r"^(stage\d+\.\d+)\.tssa\.", r"\1.attn."),)
_DVS_RENAMES: tuple[tuple[str, str], ...] = _CIFAR_RENAMES + (
    (r"^(patch_embed(?:[2-9]|\d\d+))\.proj_(conv|bn|lif)\b", r"\1.proj3_\2"),
)
# Every key (after renaming) that our model holds.
_KNOWN_KEY = re.compile(
    r"^(?:patch_embed\d+\.proj\d*_(?:conv|bn|res_conv|res_bn)"
    r"|stage\d+\.\d+\.(?:attn\.(?:[qkv]|proj)_(?:conv|bn)|mlp\.fc[12]_(?:conv|bn))"
    r"|head)\.(?:weight|bias|running_mean|running_var|num_batches_tracked)$"
)


def rename_official(name: str, renames: Sequence[tuple[str, str]]) -> str:
    """An official parameter or module name -> ours (a name the renames do not touch is returned unchanged)."""
    for pattern, repl in renames:
        name = re.sub(pattern, repl, name)
    return name


def _key_converter(renames: Sequence[tuple[str, str]]) -> Callable[[str, Tensor], tuple[str, Tensor] | None]:
    def convert(key: str, value: Tensor) -> tuple[str, Tensor] | None:
        new = rename_official(key, renames)
        return (new, value) if _KNOWN_KEY.match(new) else None

    return convert


# No QKFormer file holds a parameter its forward never uses, so nothing is dropped (``unused`` stays empty).
register_official_family(
    OfficialFamily(
        name="qkformer",
        source=f"{SOURCE}, cifar10/model.py (cifar100/model.py is the same), timm create_model('QKFormer')",
        build=build_qkformer_cifar,
        convert_key=_key_converter(_CIFAR_RENAMES),
    )
)
register_official_family(
    OfficialFamily(
        name="qkformer_imagenet",
        source=f"{SOURCE}, imagenet/qkformer.py, class hierarchical_spiking_transformer",
        build=build_qkformer_imagenet,
        convert_key=_key_converter(_IMAGENET_RENAMES),
    )
)
register_official_family(
    OfficialFamily(
        name="qkformer_dvs",
        source=f"{SOURCE}, cifar10-dvs/model.py and dvs128-gesture/model.py, class vit_snn",
        build=build_qkformer_dvs,
        convert_key=_key_converter(_DVS_RENAMES),
    )
)


# --------------------------------------------------------------------------------------------------- variants

_COMMON = dict(family="qkformer", paper=PAPER, lineage="spikformer", spike_driven=False)
_REPEAT_NOTE = (
    "SSA output neuron per sample over T; the official code runs it over the folded T*B axis "
    "(from_official reproduces that)."
)
_TINY_IMAGENET = dict(embed_dim=32, depths=(1, 1, 1), num_heads=2, T=2, img_size=32, num_classes=10)
_TINY_CIFAR = dict(embed_dim=32, depths=(1, 1, 1), num_heads=2, T=2, num_classes=10)
_TINY_DVS = dict(embed_dim=32, num_heads=2, T=2, img_size=32)


def _imagenet(embed_dim: int, num_heads: int, kwargs: dict[str, Any]) -> QKFormer:
    args = dict(
        num_classes=1000, img_size=224, in_chans=3, T=4, embed_dim=embed_dim, depths=(1, 2, 7),
        num_heads=num_heads, mlp_ratio=4.0, embed_layout="imagenet",
    )  # fmt: skip
    return QKFormer(**{**args, **kwargs})


def _cifar(num_classes: int, kwargs: dict[str, Any]) -> QKFormer:
    args = dict(
        num_classes=num_classes, img_size=32, in_chans=3, T=4, embed_dim=384, depths=(1, 1, 2), num_heads=8,
        mlp_ratio=4.0, embed_layout="cifar",
    )  # fmt: skip
    return QKFormer(**{**args, **kwargs})


def _dvs(num_classes: int, mlp_ratio: float, kwargs: dict[str, Any]) -> QKFormer:
    args = dict(
        num_classes=num_classes, img_size=128, in_chans=2, T=16, embed_dim=256, depths=(1, 1), num_heads=16,
        mlp_ratio=mlp_ratio, embed_layout="dvs", input_kind="events",
    )  # fmt: skip
    return QKFormer(**{**args, **kwargs})


_IMAGENET_INFO = dict(
    _COMMON, default_T=4, input_kind="image", dataset="imagenet", num_classes=1000, img_size=224, in_chans=3,
    official_family="qkformer_imagenet", tiny_overrides=_TINY_IMAGENET,
)  # fmt: skip


@register_model(
    **_IMAGENET_INFO, reported_top1=78.80, official_config="qkformer/QKFormer_10_384", official_params=16473688,
    notes="HST-10-384: stages 96/192/384 with 1/2/7 blocks, 6 heads. " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_10_384(**kwargs: Any) -> QKFormer:
    """QKFormer on ImageNet-1k images (224x224, T=4, 1000 classes), 16.47M parameters."""
    return _imagenet(384, 6, kwargs)


@register_model(
    **_IMAGENET_INFO, reported_top1=82.04, official_config="qkformer/QKFormer_10_512", official_params=29079336,
    notes="HST-10-512: stages 128/256/512 with 1/2/7 blocks, 8 heads. " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_10_512(**kwargs: Any) -> QKFormer:
    """QKFormer on ImageNet-1k images (224x224, T=4, 1000 classes), 29.08M parameters."""
    return _imagenet(512, 8, kwargs)


@register_model(
    **_IMAGENET_INFO, reported_top1=84.22, official_config="qkformer/QKFormer_10_768", official_params=64962760,
    notes="HST-10-768: stages 192/384/768 with 1/2/7 blocks, 12 heads; 85.25 at 288 and 85.65 at 384 px "
    "(fine-tuned from 224). " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_10_768(**kwargs: Any) -> QKFormer:
    """QKFormer on ImageNet-1k images (224x224, T=4, 1000 classes), 64.96M parameters."""
    return _imagenet(768, 12, kwargs)


_CIFAR_INFO = dict(
    _COMMON, default_T=4, input_kind="image", img_size=32, in_chans=3, official_family="qkformer",
    tiny_overrides=_TINY_CIFAR,
)  # fmt: skip


@register_model(
    **_CIFAR_INFO, dataset="cifar10", num_classes=10, reported_top1=96.18,
    official_config="qkformer/qkformer-4-384-cifar10", official_params=6706234,
    notes="Stages 96/192/384 at 32/16/8 px with 1/1/2 blocks, 8 heads (hard-coded officially). " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_4_384_cifar10(**kwargs: Any) -> QKFormer:
    """QKFormer on CIFAR-10 images (32x32, T=4, 10 classes), 6.71M parameters."""
    return _cifar(10, kwargs)


@register_model(
    **_CIFAR_INFO, dataset="cifar100", num_classes=100, reported_top1=81.15,
    official_config="qkformer/qkformer-4-384-cifar100", official_params=6740884,
    notes="Stages 96/192/384 at 32/16/8 px with 1/1/2 blocks, 8 heads (hard-coded officially). " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_4_384_cifar100(**kwargs: Any) -> QKFormer:
    """QKFormer on CIFAR-100 images (32x32, T=4, 100 classes), 6.74M parameters."""
    return _cifar(100, kwargs)


_DVS_INFO = dict(
    _COMMON, default_T=16, input_kind="events", img_size=128, in_chans=2, official_family="qkformer_dvs",
    tiny_overrides=_TINY_DVS,
)  # fmt: skip


@register_model(
    **_DVS_INFO, dataset="cifar10-dvs", num_classes=10, reported_top1=84.0,
    official_config="qkformer/qkformer-cifar10dvs", official_params=1504138,
    notes="Two stages 128/256 at 16/8 px, one block each (QKTA, SSA), 16 heads, MLP ratio 1. " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_cifar10dvs(**kwargs: Any) -> QKFormer:
    """QKFormer on CIFAR10-DVS event frames (128x128, T=16, 10 classes), 1.50M parameters."""
    return _dvs(10, 1.0, kwargs)


@register_model(
    **_DVS_INFO, dataset="dvs128-gesture", num_classes=11, reported_top1=98.6,
    official_config="qkformer/qkformer-dvs128gesture", official_params=1999371,
    notes="Two stages 128/256 at 16/8 px, one block each (QKTA, SSA), 16 heads, MLP ratio 4. Top-1 98.6 is "
    "unverified (the paper's table as recalled, not confirmed from the repository). " + _REPEAT_NOTE,
)  # fmt: skip
def qkformer_dvs128gesture(**kwargs: Any) -> QKFormer:
    """QKFormer on DVS128 Gesture event frames (128x128, T=16, 11 classes), 2.00M parameters."""
    return _dvs(11, 4.0, kwargs)
