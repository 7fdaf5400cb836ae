"""Meta-SpikeFormer, the Spike-driven Transformer V2 (Yao et al., ICLR 2024).

"Spike-driven Transformer V2: Meta Spiking Neural Network Architecture Inspiring the Design of Next-generation
Neuromorphic Chips", arXiv 2404.03663. Ported from BICLab/Spike-Driven-Transformer-V2 ``classification/models.py``
(commit 35f245f4f79a) and checked against the ``sdtv2_small`` fixture (float64: exact spike counts, logits and
gradients).

Architecture (meta-architecture, 2 conv stages + 2 transformer stages, membrane shortcut everywhere):

* ``downsample1_1``: 7x7/2 conv + BN on the analog image (no neuron: the encoding layer), then ``ConvBlock1_1``
  (SepConv + channel conv) at C0/2; ``downsample1_2`` (LIF, 3x3/2 conv, BN) and ``ConvBlock1_2`` at C0;
  ``downsample2`` and ``ConvBlock2_1``, ``ConvBlock2_2`` at C1;
* ``downsample3`` and ``block3`` (6 transformer blocks at C2); ``downsample4`` (stride 1) and ``block4`` (2 blocks
  at C3). Transformer blocks: SDSA-3 attention ``Q (K^T V) * 0.125`` with RepConv projections, then a channel MLP;
* head: token mean ``[T, B, C3]`` -> LIF -> Linear -> mean over T. With ``kd=True`` a second Linear ``head_kd``
  (DeiT-style hard-distillation head) reads the same spikes; the logits are the mean of both heads.

Readings of the official code (recorded here because they change outputs):

* The classifier reads the *spikes* of the token mean (``head(lif(mean))``), as at commit 35f245f4f79a and as the
  ``sdtv2_small`` fixture confirms (logits and head gradients exact). Another revision of models.py (commit 03cc73ed)
  applies ``head`` to the un-spiked mean and only ``head_kd`` to the spikes; that version is not ported.
* The block counts 6 + 2 are hard-coded officially (the ``depths`` kwarg only sizes an unused drop-path list); our
  native ``depths`` makes them a parameter, and the official builder passes (6, 2).
* ``model.T`` defaults to 1 officially and ``main_finetune.py`` sets it after construction (``--time_steps``).
* With ``kd=True`` the official forward returns a tuple ``(head, head_kd)`` in training mode and their average in
  eval mode. Our ``forward`` always returns the average (return types never depend on the mode); use
  :meth:`MetaSpikeFormer.forward_distill` for the pair that a distillation loss needs.
* ``drop_path`` is built but never applied officially; it is not ported.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

from torch import Tensor, nn

from ..layers import ConvFactory, MSConvBlock, MSDownsampling, MSTransformerBlock
from ..neurons import SpikeFactory
from ..neurons.lif import LIF
from ._base import SpikingModel
from ._common import PVT_KWARGS, known_keys_converter, official_builder, trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "MetaSpikeFormer",
    "SDT_V2_PAPER",
    "METAFORMER_OFFICIAL_KWARGS",
    "METAFORMER_KEY_PATTERNS",
    "build_official_sdt_v2",
    "convert_sdt_v2_key",
    "metaformer_official_args",
]

SDT_V2_PAPER = Paper(
    title=(
        "Spike-driven Transformer V2: Meta Spiking Neural Network Architecture Inspiring the Design of "
        "Next-generation Neuromorphic Chips"
    ),
    venue="ICLR",
    year=2024,
    arxiv="2404.03663",
    repo="BICLab/Spike-Driven-Transformer-V2",
    commit="35f245f4f79acf1a2b3ef22698c58ab05c1ede33",
)


def _lif(v_threshold: float = 1.0) -> LIF:
    # spikingjelly MultiStepLIFNode(tau=2.0, detach_reset=True): hard reset to 0, decay_input, sigmoid(alpha 4).
    return LIF(tau=2.0, v_threshold=v_threshold, v_reset=0.0, detach_reset=True)


# Official: truncated normal (std 0.02) for Linear layers (the classifiers), zero bias; convs keep PyTorch's default.
_init_linear = trunc_normal_init(nn.Linear)


class MetaSpikeFormer(SpikingModel):
    """Meta-SpikeFormer (SDT V2) classifier.

    Args:
        num_classes: classes K (0: no classifier, features out).
        img_size: nominal input size (the network is convolutional; any size divisible by 16 works).
        in_chans: input channels.
        T: time steps; a static image is repeated T times (V2 trains at T=1 and fine-tunes at T=4).
        embed_dim: stage widths ``(C0, C1, C2, C3)``; the first stem outputs C0/2.
        num_heads: attention heads of the transformer stages.
        mlp_ratio: expansion of the channel conv (conv stages) and the MLP (transformer stages); 4 officially.
        depths: transformer blocks in stages 3 and 4 (officially 6 and 2).
        kd: add the distillation head ``head_kd``.
        attn_scale: constant after the attention product (0.125 in V2).
        layer_scale_init: per-channel layer scale of the transformer blocks' branches (``None``: none, as V2).
        spike_layer: neuron factory of every branch (default: LIF tau 2, threshold 1).
        attn_spike_layer: neuron factory after the attention product (default: LIF threshold 0.5).
        head_spike_layer: neuron factory before the classifier (default: ``spike_layer``).
        conv_layer, conv1d_layer, linear_layer: layer factories (``nn.Conv2d``, ``nn.Conv1d``, ``nn.Linear``
            signatures); QSD passes LSQ-quantized ones.

    Shapes: input ``[B, C, H, W]`` (repeated over T) or ``[T, B, C, H, W]``; features ``[T, B, C3, H/16, W/16]``;
    logits ``[B, K]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        img_size: int = 224,
        in_chans: int = 3,
        T: int = 1,
        embed_dim: Sequence[int] = (64, 128, 256, 360),
        num_heads: int = 8,
        mlp_ratio: int = 4,
        depths: Sequence[int] = (6, 2),
        kd: bool = False,
        attn_scale: float = 0.125,
        layer_scale_init: float | None = None,
        spike_layer: SpikeFactory | None = None,
        attn_spike_layer: SpikeFactory | None = None,
        head_spike_layer: SpikeFactory | None = None,
        conv_layer: ConvFactory = nn.Conv2d,
        conv1d_layer: ConvFactory = nn.Conv1d,
        linear_layer: ConvFactory = nn.Linear,
    ) -> None:
        super().__init__()
        embed_dim = tuple(int(c) for c in embed_dim)
        depths = tuple(int(d) for d in depths)
        if len(embed_dim) != 4:
            raise ValueError(f"embed_dim must give 4 stage widths (C0, C1, C2, C3), got {embed_dim}")
        if embed_dim[0] % 2:
            raise ValueError(f"embed_dim[0] must be even (the first stem outputs C0/2), got {embed_dim[0]}")
        if len(depths) != 2 or min(depths) < 0:
            raise ValueError(f"depths must give the block counts of the 2 transformer stages, got {depths}")
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        spike_layer = spike_layer or _lif
        attn_spike_layer = attn_spike_layer or partial(_lif, 0.5)
        head_spike_layer = head_spike_layer or spike_layer
        self.T = T
        self.num_classes = num_classes
        self.img_size = img_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_features = embed_dim[3]
        self.kd = kd
        self.input_kind = "image"
        self._linear_layer = linear_layer

        c0, c1, c2, c3 = embed_dim
        conv = dict(spike_layer=spike_layer, conv_layer=conv_layer)
        down = partial(MSDownsampling, kernel_size=3, padding=1, **conv)
        self.downsample1_1 = MSDownsampling(
            in_chans, c0 // 2, kernel_size=7, stride=2, padding=3, spike_layer=None, conv_layer=conv_layer
        )
        self.ConvBlock1_1 = nn.ModuleList([MSConvBlock(c0 // 2, mlp_ratio=mlp_ratio, **conv)])
        self.downsample1_2 = down(c0 // 2, c0, stride=2)
        self.ConvBlock1_2 = nn.ModuleList([MSConvBlock(c0, mlp_ratio=mlp_ratio, **conv)])
        self.downsample2 = down(c0, c1, stride=2)
        self.ConvBlock2_1 = nn.ModuleList([MSConvBlock(c1, mlp_ratio=mlp_ratio, **conv)])
        self.ConvBlock2_2 = nn.ModuleList([MSConvBlock(c1, mlp_ratio=mlp_ratio, **conv)])
        self.downsample3 = down(c1, c2, stride=2)
        block = partial(
            MSTransformerBlock,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            attn_scale=attn_scale,
            layer_scale_init=layer_scale_init,
            spike_layer=spike_layer,
            attn_spike_layer=attn_spike_layer,
            conv_layer=conv_layer,
            conv1d_layer=conv1d_layer,
        )
        self.block3 = nn.ModuleList([block(c2) for _ in range(depths[0])])
        self.downsample4 = down(c2, c3, stride=1)
        self.block4 = nn.ModuleList([block(c3) for _ in range(depths[1])])

        self.lif = head_spike_layer()
        self.head = self._new_head(num_classes)
        if kd:
            self.head_kd = self._new_head(num_classes)
        self.apply(_init_linear)

    def _new_head(self, num_classes: int) -> nn.Module:
        # A classifier of the model's linear layer type (default initialisation); identity without classes.
        return self._linear_layer(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def stages(self) -> list[list[nn.Module]]:
        """The modules of the four stages, in order (downsampling first)."""
        return [
            [self.downsample1_1, *self.ConvBlock1_1, self.downsample1_2, *self.ConvBlock1_2],
            [self.downsample2, *self.ConvBlock2_1, *self.ConvBlock2_2],
            [self.downsample3, *self.block3],
            [self.downsample4, *self.block4],
        ]

    def forward_intermediates(self, x: Tensor) -> list[Tensor]:
        """Stage outputs (membrane-like, real-valued) ``[T, B, C_i, H_i, W_i]`` at strides 4, 8, 16, 16."""
        x = self.encode_input(x)
        outs = []
        for stage in self.stages():
            for module in stage:
                x = module(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> ``[T, B, C3, H/16, W/16]``."""
        return self.forward_intermediates(x)[-1]

    def _head_logits(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        # [T, B, C3, H, W] -> token mean [T, B, C3] -> spikes -> per-step logits of head (and head_kd)
        s = self.lif(x.flatten(3).mean(3))
        kd = self.head_kd(s) if self.kd else None
        return self.head(s), kd

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Features ``[T, B, C3, H, W]`` -> logits ``[B, K]`` (mean over T) or ``[T, B, K]``.

        With ``kd`` the logits are the average of ``head`` and ``head_kd`` (the official eval output).
        """
        logits, kd = self._head_logits(x)
        if reduce_time:
            logits = logits.mean(0)
            kd = kd.mean(0) if kd is not None else None
        return logits if kd is None else (logits + kd) / 2

    def forward_distill(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(head logits, head_kd logits)``, each ``[B, K]`` averaged over T: the official training output of a
        ``kd=True`` model, for a DeiT-style distillation loss."""
        if not self.kd:
            raise RuntimeError("forward_distill needs a model built with kd=True")
        logits, kd = self._head_logits(self.forward_features(x))
        return logits.mean(0), kd.mean(0)  # type: ignore[union-attr]

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh classifier(s) of ``num_classes`` outputs (0: identity), of the model's linear layer type."""
        self.num_classes = num_classes
        ref = self.head.weight if isinstance(self.head, nn.Linear) else None

        def make() -> nn.Module:
            layer = self._new_head(num_classes).apply(_init_linear)  # an Identity has nothing to initialise
            reinit = getattr(layer, "reset_step_size", None)
            if reinit is not None:  # quantized layers derive their step size from the new weights
                reinit()
            return layer.to(device=ref.device, dtype=ref.dtype) if ref is not None else layer

        self.head = make()
        if self.kd:
            self.head_kd = make()


# --------------------------------------------------------------------------------------------------------------
# Official interop (family "sdt_v2": classification/models.py, class Spiking_vit_MetaFormer)
# --------------------------------------------------------------------------------------------------------------


# The official ``Spiking_vit_MetaFormer`` keyword arguments with the class defaults, shared with QSD (whose class has
# the same constructor without ``kd``): the PVT list, ``embed_dims`` renamed ``embed_dim``. The defaults (3 widths,
# per-stage lists) do not build, officially or here.
METAFORMER_OFFICIAL_KWARGS: dict[str, Any] = {
    **{("embed_dim" if k == "embed_dims" else k): v for k, v in PVT_KWARGS.items()},
    "embed_dim": (64, 128, 256), "num_heads": (1, 2, 4), "mlp_ratios": (4, 4, 4), "depths": (6, 8, 6),
    "sr_ratios": (8, 4, 2),
}  # fmt: skip


def metaformer_official_args(
    family: str,
    *,
    img_size_h: int,
    in_channels: int,
    num_classes: int,
    embed_dim: Any,
    num_heads: Any,
    mlp_ratios: Any,
    depths: Any,
    **ignored: Any,
) -> tuple[dict[str, Any], int]:
    """Our constructor arguments from the official ``Spiking_vit_MetaFormer`` kwargs (shared by V2 and QSD).

    Returns ``(kwargs, depths)``: ``num_classes``, ``img_size`` (``img_size_h``, nominal only), ``in_chans``,
    ``T = 1`` (the official ``T`` after construction), ``embed_dim``, ``num_heads`` and ``mlp_ratio``; and the
    official ``depths`` integer, whose meaning differs (V2 hard-codes 6 + 2 blocks, QSD splits it 3:1). The official
    class indexes ``embed_dim[0..3]``, passes ``num_heads`` and ``mlp_ratios`` as scalars to every block and reshapes
    the channel conv to ``4 * C``; other values fail there, so they fail here with a clear ``ValueError``. The other
    arguments (``ignored``) have no effect on the official forward.
    """
    if not isinstance(embed_dim, (list, tuple)) or len(embed_dim) != 4:
        raise ValueError(f"{family}: embed_dim must list 4 stage widths, got {embed_dim!r}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int):
        raise ValueError(f"{family}: num_heads must be one int for every block, got {num_heads!r}")
    if mlp_ratios != 4 or isinstance(mlp_ratios, (list, tuple)):
        raise ValueError(
            f"{family}: mlp_ratios must be 4 (the official conv block reshapes to 4*C), got {mlp_ratios!r}"
        )
    if isinstance(depths, bool) or not isinstance(depths, int) or depths < 0:
        raise ValueError(f"{family}: depths must be a non-negative int (torch.linspace length), got {depths!r}")
    kwargs = dict(
        num_classes=num_classes,
        img_size=img_size_h,
        in_chans=in_channels,
        T=1,
        embed_dim=tuple(int(c) for c in embed_dim),
        num_heads=int(num_heads),
        mlp_ratio=int(mlp_ratios),
    )
    return kwargs, int(depths)


@official_builder(dict(METAFORMER_OFFICIAL_KWARGS, kd=False))
def build_official_sdt_v2(*, kd: bool, **official: Any) -> MetaSpikeFormer:
    """Our model equal to the official ``Spiking_vit_MetaFormer(**kwargs)`` (defaults as the official class; its own
    defaults do not build, like the official ones). The official ``T`` is 1 after construction.

    Ignored, because the official forward never uses them: ``patch_size``, ``qkv_bias``, ``qk_scale`` (the scale is
    hard-coded 0.125), ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate`` (DropPath is built but never called),
    ``norm_layer`` (class or string), ``sr_ratios``, and ``depths`` beyond its type (the 6 + 2 blocks are
    hard-coded). ``img_size_h``/``img_size_w`` only become the nominal ``img_size``.
    """
    kwargs, _ = metaformer_official_args("sdt_v2", **official)
    return MetaSpikeFormer(**kwargs, depths=(6, 2), kd=bool(kd))


# Official keys equal ours (module names were kept); anything outside these module trees is not a V2 / QSD key.
METAFORMER_KEY_PATTERNS = (r"(downsample(1_1|1_2|2|3|4)|ConvBlock(1_1|1_2|2_1|2_2)|block[34]|head)\..+",)

# Official V2 key -> ours: identity for every known key (``head_kd`` too), ``None`` for an unknown one.
convert_sdt_v2_key = known_keys_converter((*METAFORMER_KEY_PATTERNS, r"head_kd\..+"))


register_official_family(
    OfficialFamily(
        name="sdt_v2",
        source="BICLab/Spike-Driven-Transformer-V2 classification/models.py Spiking_vit_MetaFormer @ 35f245f4f79a",
        build=build_official_sdt_v2,
        convert_key=convert_sdt_v2_key,
        unused=(),  # the official forward uses every parameter (head_kd too, when kd=True)
    )
)


# --------------------------------------------------------------------------------------------------------------
# Registered variants (named by the paper's parameter counts; the official factory names give C2 instead)
# --------------------------------------------------------------------------------------------------------------

_COMMON = dict(
    family="sdt_v2",
    paper=SDT_V2_PAPER,
    lineage="sdt",
    spike_driven=True,
    input_kind="image",
    dataset="imagenet",
    num_classes=1000,
    img_size=224,
    in_chans=3,
    official_family="sdt_v2",
    tiny_overrides=dict(embed_dim=(16, 32, 64, 80), num_heads=2, depths=(1, 1), img_size=32, num_classes=10, T=2),
)
_NAME_NOTE = "The official factory name gives C2 (the stage-3 width), not the parameter count."
_KD_NOTE = (
    " kd=True adds head_kd (DeiT hard distillation from caformer_b36_in21ft1k, used for the T=4 fine-tune); the "
    "logits are the mean of both heads (forward_distill gives the pair)."
)


def _create(embed_dim: tuple[int, int, int, int], kd: bool, T: int, kwargs: dict[str, Any]) -> MetaSpikeFormer:
    return MetaSpikeFormer(**{**dict(embed_dim=embed_dim, num_heads=8, mlp_ratio=4, kd=kd, T=T), **kwargs})


@register_model(
    **_COMMON,
    default_T=1,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_256_15M(unregistered)",
    official_params=15_112_208,
    notes=(
        "Paper size 15.1M: the width list [64,128,256,360], which has no factory in the V2 repository (QSD registers "
        "it as spikformer_8_15M_CAFormer). Paper top-1 71.8 (T=1) / 74.1 (T=4) from memory, unverified."
    ),
)
def sdt_v2_15m(**kwargs: Any) -> MetaSpikeFormer:
    return _create((64, 128, 256, 360), False, 1, kwargs)


@register_model(
    **_COMMON,
    default_T=1,
    reported_top1=75.4,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_384",
    official_params=31_333_864,
    notes="Paper size 31.3M, official factory metaspikformer_8_384. Top-1 75.4 at T=1 (quoted). " + _NAME_NOTE,
)
def sdt_v2_31m(**kwargs: Any) -> MetaSpikeFormer:
    return _create((96, 192, 384, 480), False, 1, kwargs)


@register_model(
    **_COMMON,
    default_T=4,
    reported_top1=77.2,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_384-kd",
    official_params=31_814_864,
    notes="Paper size 31.3M at T=4 (top-1 77.2, quoted), official metaspikformer_8_384(kd=True)." + _KD_NOTE,
)
def sdt_v2_31m_kd(**kwargs: Any) -> MetaSpikeFormer:
    return _create((96, 192, 384, 480), True, 4, kwargs)


@register_model(
    **_COMMON,
    default_T=1,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_512",
    official_params=55_350_248,
    notes="Paper size 55.4M, official factory metaspikformer_8_512 (T=1 top-1 79.1 from memory, unverified). "
    + _NAME_NOTE,
)
def sdt_v2_55m(**kwargs: Any) -> MetaSpikeFormer:
    return _create((128, 256, 512, 640), False, 1, kwargs)


@register_model(
    **_COMMON,
    default_T=4,
    reported_top1=80.0,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_512-kd",
    official_params=55_991_248,
    notes=(
        "Paper size 55.4M at T=4 with distillation: the 80.0% model of the abstract and the released checkpoint "
        "(55M_kd_T4.pth: build metaspikformer_8_512(kd=True), then T=4)." + _KD_NOTE
    ),
)
def sdt_v2_55m_kd(**kwargs: Any) -> MetaSpikeFormer:
    return _create((128, 256, 512, 640), True, 4, kwargs)


@register_model(
    **_COMMON,
    default_T=1,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_768",
    official_params=123_741_160,
    notes="Official factory metaspikformer_8_768 (123.7M); not in the paper. " + _NAME_NOTE,
)
def sdt_v2_124m(**kwargs: Any) -> MetaSpikeFormer:
    return _create((192, 384, 768, 960), False, 1, kwargs)


@register_model(
    **_COMMON,
    default_T=4,
    official_config="sdt_v2_meta_spikeformer/metaspikformer_8_768-kd",
    official_params=124_702_160,
    notes="Official metaspikformer_8_768(kd=True); not in the paper." + _KD_NOTE,
)
def sdt_v2_124m_kd(**kwargs: Any) -> MetaSpikeFormer:
    return _create((192, 384, 768, 960), True, 4, kwargs)
