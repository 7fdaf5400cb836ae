"""Spikformer with the Temporal Interaction Module (Shen et al., "TIM: An Efficient Temporal Interaction Module for
Spiking Transformer", IJCAI 2024, arXiv 2401.11687).

Upstream: github.com/BrainCog-X/Brain-Cog, folder ``examples/TIM``, checked against commit
3998fd504c1a03376c2e96f14ddf98aee9f5370a (the ``tim_dvs_small`` fixture was made from it). Official family ``tim``:
class ``Spikformer`` of ``models/spikformer_braincog_DVS.py`` (what the timm factory ``spikformer_dvs`` returns).

The model is the Spikformer-DVS backbone (SPS with four max-pools and a spiking position term, SEW blocks, a linear
head on the token and time mean) whose attention is :class:`~spiking_transformers.layers.attention.tim.TIMSelfAttention`
(registered as the attention ``"tim"``) and whose neurons are BrainCog's ``MyNode``
(:class:`~spiking_transformers.layers.attention.tim.BrainCogLIF`: no gradient through time inside a neuron).

Readings of the official code recorded here:

* **Thresholds.** Every neuron's threshold is a buffer ``<neuron>.threshold`` read from the checkpoint. The
  distributed code runs every neuron at 1.0 (``MyNode`` ignores the ``v_threshold`` keyword the code passes), and
  :func:`tim_from_official` builds exactly that; a checkpoint that stores other values (the fixture stores the
  intended 0.3 / 0.5 / 0.5) overrides them on load. The registered variants use the intended values: TIM input
  neuron 0.3, TIM output neuron 0.5, attention neuron 0.5 (with 1.0 the TIM output neuron cannot fire in 10 steps).
* **N == C / heads.** TIM's Conv1d has ``C / heads`` channels and is applied along the axis of ``N`` tokens, so the
  token count ``(H/16) * (W/16)`` must equal ``C / heads`` (paper: 64 x 64 frames, 16 tokens, 256 / 16); the model
  checks it at construction and the module at every call, naming both numbers.
* ``if_UCF=True`` average-pools the frames to 64 x 64 first (``resize_to=64``).
* Unused by the official forward and left out (the converter drops them): the LayerNorms ``norm1``/``norm2`` of each
  block and the SSA's ``res_lif`` neuron (its threshold and surrogate width). The official ``patch_size``,
  ``qkv_bias``, ``qk_scale``, ``sr_ratios`` and drop rates have no effect.
* The parameter count of ours is the official one less the unused LayerNorms and less the 50 neuron scalars
  (threshold and surrogate width), which we keep as buffers since they are not trained.
"""

from __future__ import annotations

import re
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import SpikingMlp, SpikingPatchSplitting
from ..layers.attention.tim import TIM_THRESHOLDS, BrainCogLIF, TIMSelfAttention
from ..neurons import SpikeFactory
from ._base import SpikingModel
from ._common import BN_KEYS, check_sizes, make_head, official_builder, official_int, to_2tuple, trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = ["SpikformerTIM", "TIMBlock", "TIM_PAPER", "tim_from_official", "convert_tim_key"]

TIM_PAPER = Paper(
    title="TIM: An Efficient Temporal Interaction Module for Spiking Transformer",
    venue="IJCAI",
    year=2024,
    arxiv="2401.11687",
    repo="BrainCog-X/Brain-Cog",
    commit="3998fd504c1a03376c2e96f14ddf98aee9f5370a",
)


class TIMBlock(nn.Module):
    """SEW block ``x + TIM-SSA(x)``, then ``x + MLP(x)`` (no normalisation). Shape ``[T, B, N, C]`` -> same."""

    def __init__(
        self, dim: int, num_heads: int, *, mlp_ratio: float, spike_layer: SpikeFactory, **attn_options: Any
    ) -> None:
        super().__init__()
        self.attn = TIMSelfAttention(dim, num_heads, spike_layer=spike_layer, **attn_options)
        self.mlp = SpikingMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikformerTIM(SpikingModel):
    """Spikformer-DVS with TIM on the queries, for event frames.

    Args:
        num_classes: classifier outputs (0: features out).
        img_size: frame size ``H`` or ``(H, W)`` the model sees (after ``resize_to``).
        in_chans: input channels (2 polarities).
        T: nominal number of frames (``step``; event input brings its own time axis).
        embed_dim: token width ``C``.
        depth: number of blocks.
        num_heads: attention heads; ``C / num_heads`` must equal the token count.
        mlp_ratio: MLP hidden width ``int(C * mlp_ratio)``.
        patch_size: SPS down-sampling (16 in the official file: four max-pools).
        tim_alpha: TIM's ``alpha``.
        tim_thresholds: TIM's ``(in, out)`` neuron thresholds (intended 0.3 / 0.5).
        attn_threshold: attention neuron threshold (intended 0.5).
        resize_to: average-pool the frames to this size first (``if_UCF``: 64), or ``None``.
        spike_layer: neuron factory of every neuron but TIM's own (default :class:`BrainCogLIF`, threshold 1).

    Shape:
        ``[T, B, C, H, W]`` frames -> logits ``[B, num_classes]``; :meth:`forward_features` -> ``[T, B, N, C]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        img_size: int | tuple[int, int] = 64,
        in_chans: int = 2,
        T: int = 10,
        embed_dim: int = 256,
        depth: int = 2,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tim_alpha: float = 0.5,
        tim_thresholds: tuple[float, float] = TIM_THRESHOLDS,
        attn_threshold: float = 0.5,
        resize_to: int | None = None,
        spike_layer: SpikeFactory = BrainCogLIF,
    ) -> None:
        super().__init__()
        check_sizes(T=T, depth=depth, num_classes=num_classes, embed_dim=embed_dim, num_heads=num_heads)
        self.T = T
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.input_kind = "events"
        self.resize_to = None if resize_to is None else to_2tuple(resize_to)
        self.img_size = self.resize_to or to_2tuple(img_size)
        self.patch_embed = SpikingPatchSplitting(
            in_chans=in_chans, embed_dim=embed_dim, patch_size=patch_size, spike_layer=spike_layer
        )
        grid = self.patch_embed.grid_size(self.img_size)
        self.num_patches = grid[0] * grid[1]
        if depth and self.num_patches != embed_dim // num_heads:
            raise ValueError(
                f"TIM needs N == C/heads: {self.img_size[0]}x{self.img_size[1]} frames with patch_size {patch_size} "
                f"give N = {self.num_patches} tokens, but C/heads = {embed_dim}/{num_heads} = {embed_dim // num_heads}"
            )
        self.block = nn.ModuleList(
            TIMBlock(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                spike_layer=spike_layer,
                tim_alpha=tim_alpha,
                tim_thresholds=tim_thresholds,
                attn_threshold=attn_threshold,
            )
            for _ in range(depth)
        )
        self.head = make_head(embed_dim, num_classes)
        self.apply(trunc_normal_init(nn.Linear))

    def encode_input(self, x: Tensor) -> Tensor:
        x = super().encode_input(x)
        if self.resize_to is not None:
            T, B = x.shape[:2]
            x = F.adaptive_avg_pool2d(x.flatten(0, 1), self.resize_to).reshape(T, B, *x.shape[2:3], *self.resize_to)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[T, B, C, H, W]`` -> tokens ``[T, B, N, C]`` (non-negative integers)."""
        x = self.patch_embed(self.encode_input(x))
        for blk in self.block:
            x = blk(x)
        return x

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Tokens ``[T, B, N, C]`` -> mean over tokens (and time) -> logits ``[B, K]`` or ``[T, B, K]``."""
        x = x.mean(2)
        if reduce_time:
            x = x.mean(0)
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------------
# Official checkpoints.

_CONV_PROJ = re.compile(r"(block\.\d+\.(?:attn\.(?:q|k|v|proj)|mlp\.fc[12]))_conv\.(weight|bias)")
_NEURON = (
    r"(?:patch_embed\.(?:proj_lif[123]?|rpe_lif)"
    r"|block\.\d+\.(?:attn\.(?:[qkv]|attn|proj)_lif|attn\.TIM\.(?:in|out)_lif|mlp\.fc[12]_lif))"
)
_OUR_KEY = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"patch_embed\.(proj_conv[123]?|rpe_conv)\.weight",
            rf"patch_embed\.(proj_bn[123]?|rpe_bn)\.{BN_KEYS}",
            rf"block\.\d+\.attn\.(q|k|v|proj)_bn\.{BN_KEYS}",
            rf"block\.\d+\.mlp\.fc[12]_bn\.{BN_KEYS}",
            r"block\.\d+\.attn\.TIM\.interactor\.(weight|bias)",
            rf"{_NEURON}\.threshold",
            r"head\.(weight|bias)",
        )
    )
)
_ALPHA = re.compile(rf"({_NEURON})\.act_fun\.alpha")
_UNUSED = (r"block\.\d+\.norm[12]\.(weight|bias)", r"block\.\d+\.attn\.res_lif\.(threshold|act_fun\.alpha)")


def convert_tim_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """Official key -> ours: 1-wide Conv1d projections -> ``*_linear`` (weights squeezed), a neuron's
    ``act_fun.alpha`` -> ``surrogate_alpha``; ``None`` for a key of another family."""
    m = _CONV_PROJ.fullmatch(key)
    if m is not None:
        prefix, kind = m.groups()
        if kind == "weight":
            if value.dim() != 3 or value.shape[2] != 1:
                return None
            value = value.reshape(value.shape[0], value.shape[1])
        return f"{prefix}_linear.{kind}", value
    m = _ALPHA.fullmatch(key)
    if m is not None:
        return f"{m.group(1)}.surrogate_alpha", value
    return (key, value) if _OUR_KEY.fullmatch(key) else None


# The class's constructor arguments and defaults (the factory ``spikformer_dvs`` fixes step 10, TIM_alpha 0.5,
# if_UCF False and num_classes 10, which are the class defaults too).
_TIM_KWARGS: dict[str, Any] = dict(
    step=10, TIM_alpha=0.5, if_UCF=False, img_size_h=64, img_size_w=64, patch_size=16, in_channels=2,
    num_classes=10, embed_dims=256, num_heads=16, mlp_ratios=4, qkv_bias=False, qk_scale=None, drop_rate=0.0,
    attn_drop_rate=0.0, drop_path_rate=0.0, norm_layer="nn.LayerNorm", depths=2, sr_ratios=4,
)  # fmt: skip


@official_builder(_TIM_KWARGS)
def tim_from_official(
    *,
    step: int,
    TIM_alpha: float,
    if_UCF: bool,
    img_size_h: int,
    img_size_w: int,
    in_channels: int,
    num_classes: int,
    embed_dims: int,
    num_heads: int,
    mlp_ratios: float,
    depths: int,
    **ignored: Any,
) -> SpikformerTIM:
    """Our model equal to ``Spikformer(**kwargs)`` of ``examples/TIM/models/spikformer_braincog_DVS.py``.

    Every threshold is 1.0, as the distributed code runs (its ``v_threshold`` keywords are ignored); load a
    checkpoint to take its stored thresholds. ``patch_size``, ``qkv_bias``, ``qk_scale``, ``sr_ratios``, the drop
    rates and ``norm_layer`` have no effect, as in the official forward. Input: ``[T, B, 2, H, W]`` (the official
    takes ``[B, T, ...]`` and permutes).
    """
    return SpikformerTIM(
        num_classes=num_classes,
        img_size=(img_size_h, img_size_w),
        in_chans=in_channels,
        T=official_int("step", step, family="TIM"),
        embed_dim=official_int("embed_dims", embed_dims, family="TIM"),
        depth=official_int("depths", depths, family="TIM"),
        num_heads=official_int("num_heads", num_heads, family="TIM"),
        mlp_ratio=mlp_ratios,
        patch_size=16,  # the file always pools four times, whatever patch_size says
        tim_alpha=TIM_alpha,
        tim_thresholds=(1.0, 1.0),
        attn_threshold=1.0,
        resize_to=64 if if_UCF else None,
        spike_layer=BrainCogLIF,
    )


register_official_family(
    OfficialFamily(
        name="tim",
        source="BrainCog-X/Brain-Cog @ 3998fd504c1a03376c2e96f14ddf98aee9f5370a: "
        "examples/TIM/models/spikformer_braincog_DVS.py",
        build=tim_from_official,
        convert_key=convert_tim_key,
        unused=_UNUSED,
    )
)


# ---------------------------------------------------------------------------------------------------------------------
# Registered variants: Spikformer-TIM 2-256 (16 heads, 64 x 64 frames, T = 10) on the paper's event data sets.

_DEPTH, _DIM = 2, 256
# Official parameters we leave out: the two LayerNorms per block, and one threshold and one surrogate width per
# neuron (25 per model, kept as buffers: they are not trained).
_UNUSED_PARAMS = _DEPTH * 2 * 2 * _DIM + 50
_INFO: dict[str, Any] = dict(
    family="tim", paper=TIM_PAPER, lineage="spikformer", spike_driven=False, default_T=10, input_kind="events",
    img_size=64, in_chans=2, official_family="tim", official_unused_params=_UNUSED_PARAMS,
    # 16 x 16 frames, 4 pools of 2 -> 2 x 2 would give 4 tokens; patch_size 4 gives 16 = 32 / 2 channels per head.
    tiny_overrides=dict(embed_dim=32, num_heads=2, depth=1, T=2, img_size=16, patch_size=4),
)  # fmt: skip
_NOTE = (
    "Intended thresholds (TIM in 0.3, out 0.5, attention 0.5); the distributed code runs 1.0 everywhere "
    "(from_official('tim', ...) reproduces it). "
)


def _create(kwargs: dict[str, Any], **model_args: Any) -> SpikformerTIM:
    return SpikformerTIM(**{**dict(embed_dim=_DIM, depth=_DEPTH, num_heads=16, T=10, img_size=64), **model_args,
                            **kwargs})  # fmt: skip


@register_model(
    **_INFO, dataset="cifar10-dvs", num_classes=10, reported_top1=81.6,
    official_config="tim/spikformer-tim-cifar10-dvs", official_params=2570844,
    notes=_NOTE + "Top-1 from the model zoo (a benchmark aggregator lists 80.85).",
)  # fmt: skip
def spikformer_tim_2_256_cifar10dvs(**kwargs: Any) -> SpikformerTIM:
    """Spikformer-TIM on CIFAR10-DVS frames (64x64, T=10, 10 classes), 2.57M parameters."""
    return _create(kwargs, num_classes=10)


@register_model(
    **_INFO, dataset="n-caltech101", num_classes=101, reported_top1=79.0,
    official_config="tim/spikformer-tim-ncaltech101", official_params=2594231,
    notes=_NOTE + "101 classes as the example's README instructs (the factory fixes 10).",
)  # fmt: skip
def spikformer_tim_2_256_ncaltech101(**kwargs: Any) -> SpikformerTIM:
    """Spikformer-TIM on N-Caltech101 frames (64x64, T=10, 101 classes), 2.59M parameters."""
    return _create(kwargs, num_classes=101)


@register_model(
    **_INFO, dataset="n-cars", num_classes=2, reported_top1=None,
    official_config="tim/spikformer-tim-ncars", official_params=2568788,
    notes=_NOTE + "Top-1 not retrieved.",
)  # fmt: skip
def spikformer_tim_2_256_ncars(**kwargs: Any) -> SpikformerTIM:
    """Spikformer-TIM on N-CARS frames (64x64, T=10, 2 classes), 2.57M parameters."""
    return _create(kwargs, num_classes=2)


@register_model(
    **_INFO, dataset="hmdb51-dvs", num_classes=51, reported_top1=61.93,
    official_config="tim/spikformer-tim-hmdb51dvs", official_params=2581381,
    notes=_NOTE + "Top-1 from a benchmark aggregator (wizwand).",
)  # fmt: skip
def spikformer_tim_2_256_hmdb51dvs(**kwargs: Any) -> SpikformerTIM:
    """Spikformer-TIM on HMDB51-DVS frames (64x64, T=10, 51 classes), 2.58M parameters."""
    return _create(kwargs, num_classes=51)


@register_model(
    **_INFO, dataset="ucf101-dvs", num_classes=101, reported_top1=64.38,
    official_config="tim/spikformer-tim-ucf101dvs", official_params=2594231,
    notes=_NOTE + "if_UCF: frames average-pooled to 64x64 first (resize_to=64). Top-1 from wizwand.",
)  # fmt: skip
def spikformer_tim_2_256_ucf101dvs(**kwargs: Any) -> SpikformerTIM:
    """Spikformer-TIM on UCF101-DVS frames (pooled to 64x64, T=10, 101 classes), 2.59M parameters."""
    if kwargs.get("img_size") not in (None, 64) and "resize_to" not in kwargs:
        kwargs["resize_to"] = kwargs["img_size"]  # a smaller instance (tiny_overrides) pools to its own size
    return _create(kwargs, num_classes=101, resize_to=64)

