"""Spike-driven Transformer (SDT V1).

Yao, Hu, Zhou, Yuan, Tian, Xu, Li. "Spike-driven Transformer", NeurIPS 2023, arXiv:2307.01694.
Upstream: https://github.com/BICLab/Spike-Driven-Transformer (``model/spikeformer.py``, ``module/sps.py``,
``module/ms_conv.py``), checked against commit 3faa82272eb499e4d56ea77707d4536e7c69a54b with the official fixtures
``sdt_cifar_small`` and ``sdt_cifar10dvs_small``.

Architecture: MS SPS tokenizer -> ``depth`` blocks of spike-driven self-attention (SDSA) and MLP with membrane
shortcuts -> token mean -> LIF over T -> Linear -> mean over T. See :mod:`spiking_transformers.layers.attention.sdsa`.

Readings of the official code (each checked by the fixtures where they apply):
    * SDSA is ``Q * SN_0.5(sum_N K * V)`` per head; the scale 0.125, ``attn_lif``, ``rpe_lif`` and the
      ``talking_heads`` Conv1d are built but never used upstream. We do not build them, and the converter drops
      ``talking_heads.weight`` (and PLIF ``attn_lif.w`` / ``rpe_lif.w``) explicitly.
    * ``pooling_stat`` (a bitstring) becomes ``pool_stages`` (four booleans).
    * ``TET`` only stops the official forward from averaging over T. Here ``forward`` always returns ``[B, K]`` and
      :meth:`forward_timesteps` returns ``[T, B, K]``; TET is a property of the training loss, not of the model.
    * ``dvs_mode`` (set by the official train.py for CIFAR10-DVS) adds the Erode max filters of SDSA.
    * ``spike_mode="plif"`` swaps every neuron for a parametric LIF (checkpoints gain ``*_lif.w`` keys).
    * The official model takes event input as ``[B, T, C, H, W]`` and transposes it; ours takes ``[T, B, C, H, W]``.
    * ``attn_mode``, ``patch_size``, ``qkv_bias``, ``qk_scale``, ``sr_ratios``, ``drop_*``, ``norm_layer``,
      ``get_embed``, ``cml`` and ``pretrained*`` have no effect upstream; :func:`build_official` accepts and
      ignores them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from torch import Tensor, nn

from ..layers import MSSPS, MSBlock
from ..layers.attention import backbone_options, resolve_attention
from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ._base import SpikingModel
from ._common import (
    BN_KEYS,
    PVT_KWARGS,
    check_input_kind,
    check_sizes,
    known_keys_converter,
    make_head,
    official_builder,
    official_int,
    to_2tuple,
    trunc_normal_init,
)
from ._grad_checkpoint import checkpoint_module
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "SpikeDrivenTransformer",
    "SDT_PAPER",
    "parse_pooling_stat",
    "spike_layer_from_mode",
    "build_official",
    "official_model_kwargs",
    "convert_official_key",
    "SDT_KEY_PATTERNS",
    "SDT_BASE_KWARGS",
    "SDT_OFFICIAL_KWARGS",
]

SDT_PAPER = Paper(
    title="Spike-driven Transformer",
    venue="NeurIPS",
    year=2023,
    arxiv="2307.01694",
    repo="BICLab/Spike-Driven-Transformer",
    commit="3faa82272eb499e4d56ea77707d4536e7c69a54b",
)


class SpikeDrivenTransformer(SpikingModel):
    """Spike-driven Transformer V1 classifier.

    Args:
        num_classes: classes K (0: no classifier, features out).
        img_size: input size (int or ``(H, W)``); sets :attr:`grid_size`, the token grid after the tokenizer.
        in_chans: input channels (3 for images, 2 for event polarities).
        T: time steps; a static ``[B, C, H, W]`` input is repeated ``T`` times.
        embed_dim: width D (a multiple of 8 and of ``num_heads``).
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width ``int(D * mlp_ratio)``.
        pool_stages: four booleans, one per tokenizer stage; True halves the resolution there
            (official "1111" for ImageNet 224 -> 14, "0011" for CIFAR 32 -> 8).
        dvs_mode: the official CIFAR10-DVS attention variant (Erode filters).
        spike_layer: neuron type, ``"lif"`` / ``"plif"`` or a factory (``neurons.SpikeFactory``).
        attn: the attention of every block: the name of a registered attention (``"sdsa"``, SDT V1's own;
            ``"statten"``; any name ``spiking-transformers models --attention`` lists) or a class/factory under the
            attention contract, called ``attn(dim, num_heads, spike_layer=..., **attn_options)``. A token attention
            sees the feature map as row-major tokens (:func:`~spiking_transformers.layers.attention.attend`).
        attn_options: its keyword options; ``dvs_mode=True`` is added in DVS mode (the attention must take it).
        input_kind: ``"image"`` or ``"events"`` (events take only time-major ``[T, B, C, H, W]`` frames).

    Shape:
        ``forward``: ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> logits ``[B, K]``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        T: int = 4,
        embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        pool_stages: Sequence[bool] = (True, True, True, True),
        dvs_mode: bool = False,
        spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER,
        attn: str | Callable[..., nn.Module] = "sdsa",
        attn_options: Mapping[str, Any] | None = None,
        input_kind: str = "image",
    ) -> None:
        super().__init__()
        check_sizes(T=T, depth=depth, min_depth=1, embed_dim=embed_dim, num_heads=num_heads)
        spike_layer = resolve_spike_layer(spike_layer)
        self.T = T
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.input_kind = check_input_kind(input_kind)
        self.img_size = to_2tuple(img_size)
        self.dvs_mode = bool(dvs_mode)

        self.patch_embed = MSSPS(
            in_chans=in_chans, embed_dim=embed_dim, pool_stages=pool_stages, spike_layer=spike_layer
        )
        # Token grid: each pooled stage is a k3/s2/p1 max pool, ceil(g / 2).
        grid = list(self.img_size)
        for _ in range(sum(self.patch_embed.pool_stages)):
            grid = [(g - 1) // 2 + 1 for g in grid]
        self.grid_size: tuple[int, int] = (grid[0], grid[1])
        # Official name "block" (a ModuleList), so keys read block.{i}.attn.* / block.{i}.mlp.*.
        self.attn_name = attn if isinstance(attn, str) else getattr(attn, "__name__", type(attn).__name__)
        attn_layer = resolve_attention(attn)
        options = backbone_options(attn_layer, num_tokens=self.grid_size[0] * self.grid_size[1])
        if dvs_mode:
            if not backbone_options(attn_layer, dvs_mode=True):
                raise ValueError(f"dvs_mode=True needs an attention with a dvs_mode option (sdsa, statten); "
                                 f"attention {self.attn_name!r} has none")
            options["dvs_mode"] = True
        options.update(attn_options or {})
        self.block = nn.ModuleList(
            MSBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, attn_layer=attn_layer, attn_options=options,
                spike_layer=spike_layer,
            )
            for _ in range(depth)
        )
        self.head_lif = spike_layer()
        self.head = make_head(embed_dim, num_classes)
        # The official initialisation: truncated normal (std 0.02) convs with zero bias, BN at identity (PyTorch's
        # default); the classifier keeps PyTorch's default Linear init.
        self.apply(trunc_normal_init(nn.Conv2d))
        self.grad_checkpointing = False

    def forward_intermediates(self, x: Tensor) -> list[Tensor]:
        """Real-valued stream after the tokenizer and after each block, each ``[T, B, D, H', W']``.

        SDT V1 has one scale (``H' x W'`` = :attr:`grid_size`); the last entry is :meth:`forward_features`.
        """
        x = self.encode_input(x)
        ckpt = self.grad_checkpointing
        x = checkpoint_module(self.patch_embed, x) if ckpt else self.patch_embed(x)
        out = [x]
        for blk in self.block:
            x = checkpoint_module(blk, x) if ckpt else blk(x)
            out.append(x)
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Memory mode (timm's name): keep only the input of the tokenizer and of each block for backward and
        recompute the rest there; same outputs, gradients and running statistics (see ``_grad_checkpoint.py``)."""
        self.grad_checkpointing = bool(enable)

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> real-valued feature map ``[T, B, D, H', W']``."""
        return self.forward_intermediates(x)[-1]

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """``[T, B, D, H', W']`` -> token mean -> neuron over T -> classifier -> ``[B, K]`` (or ``[T, B, K]``)."""
        x = self.head(self.head_lif(x.flatten(3).mean(3)))  # [T, B, K]
        return x.mean(0) if reduce_time else x


# --------------------------------------------------------------------------------------------------------------------
# Official interop


def parse_pooling_stat(pooling_stat: str) -> tuple[bool, bool, bool, bool]:
    """The official 4-character bitstring (``"0011"``) -> four booleans."""
    if not isinstance(pooling_stat, str) or len(pooling_stat) != 4 or set(pooling_stat) - {"0", "1"}:
        raise ValueError(f"pooling_stat must be a string of four '0'/'1' characters, got {pooling_stat!r}")
    return tuple(c == "1" for c in pooling_stat)  # type: ignore[return-value]


def spike_layer_from_mode(spike_mode: str) -> str:
    """Official ``spike_mode`` -> our neuron name (``"lif"`` -> LIF, ``"plif"`` -> ParametricLIF)."""
    if spike_mode not in ("lif", "plif"):
        raise ValueError(f"spike_mode must be 'lif' or 'plif', got {spike_mode!r}")
    return spike_mode


# The official constructor's keyword arguments with their defaults, except ``depths`` (officially ``[6, 8, 6]``,
# which the official code cannot build). timm's create_model adds pretrained, pretrained_cfg and drop_block_rate.
# SDT_BASE_KWARGS are those STAtten's constructor shares.
SDT_BASE_KWARGS: dict[str, Any] = dict(
    PVT_KWARGS, embed_dims=512, num_heads=8, mlp_ratios=4, depths=8, drop_block_rate=None, T=4, pooling_stat="1111",
    attn_mode="direct_xor", spike_mode="lif", dvs_mode=False, TET=False, pretrained=False, pretrained_cfg=None,
)  # fmt: skip
SDT_OFFICIAL_KWARGS: dict[str, Any] = dict(SDT_BASE_KWARGS, get_embed=False, cml=False)


def official_model_kwargs(
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
    pooling_stat: str,
    spike_mode: str,
    dvs_mode: bool,
    **ignored: Any,
) -> dict[str, Any]:
    """The official SDT V1 constructor's keyword arguments -> ours (:class:`SpikeDrivenTransformer` and STAtten).

    Every other official argument has no effect upstream and is ignored (see :func:`build_official`).
    """
    return dict(
        num_classes=num_classes,
        img_size=img_size_h if img_size_h == img_size_w else (img_size_h, img_size_w),
        in_chans=in_channels,
        T=T,
        embed_dim=embed_dims,
        depth=official_int("depths", depths, family="SDT"),
        num_heads=num_heads,
        mlp_ratio=mlp_ratios,
        pool_stages=parse_pooling_stat(pooling_stat),
        dvs_mode=dvs_mode,
        spike_layer=spike_layer_from_mode(spike_mode),
    )


@official_builder(SDT_OFFICIAL_KWARGS)
def build_official(**kwargs: Any) -> SpikeDrivenTransformer:
    """Our model equal to the official ``SpikeDrivenTransformer(**kwargs)`` (timm name ``sdt``).

    The defaults are the official constructor's, except ``depths`` (officially ``[6, 8, 6]``, which the official
    code cannot build). Ignored because they have no effect upstream: ``patch_size``, ``qkv_bias``, ``qk_scale``,
    ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate`` (DropPath is built but never called), ``drop_block_rate``
    (timm's ``create_model`` drops it when None), ``norm_layer``, ``sr_ratios``, ``attn_mode``, ``get_embed``, ``cml``,
    ``pretrained``, ``pretrained_cfg``. ``TET`` changes only the official output rank: use ``forward_timesteps``.
    Unknown keyword arguments raise ``TypeError``.
    """
    return SpikeDrivenTransformer(**official_model_kwargs(**kwargs))


# Official keys that our model holds under the same name. The ``.w`` keys exist only in PLIF checkpoints.
SDT_KEY_PATTERNS: tuple[str, ...] = (
    r"patch_embed\.(proj_conv[123]?|rpe_conv)\.weight",
    rf"patch_embed\.(proj_bn[123]?|rpe_bn)\.{BN_KEYS}",
    r"patch_embed\.proj_lif[123]?\.w",
    r"block\.\d+\.attn\.[qkv]_conv\.weight",
    rf"block\.\d+\.attn\.([qkv]_bn|proj_bn)\.{BN_KEYS}",
    r"block\.\d+\.attn\.proj_conv\.(weight|bias)",
    r"block\.\d+\.attn\.([qkv]|shortcut|talking_heads)_lif\.w",
    r"block\.\d+\.mlp\.fc[12]_conv\.(weight|bias)",
    rf"block\.\d+\.mlp\.fc[12]_bn\.{BN_KEYS}",
    r"block\.\d+\.mlp\.fc[12]_lif\.w",
    r"head\.(weight|bias)",
    r"head_lif\.w",
)
# Official SDT V1 key -> ours: the names are identical, so a known key maps to itself; unknown -> None.
convert_official_key = known_keys_converter(SDT_KEY_PATTERNS)


register_official_family(
    OfficialFamily(
        name="sdt",
        source="BICLab/Spike-Driven-Transformer@3faa82272eb499e4d56ea77707d4536e7c69a54b model/spikeformer.py",
        build=build_official,
        convert_key=convert_official_key,
        unused=(
            # Never called by the official forward: the talking-heads Conv1d (heads^2 weights per block), and in
            # PLIF checkpoints the learnable tau of the unused attn_lif and rpe_lif neurons.
            r"block\.\d+\.attn\.talking_heads\.weight",
            r"block\.\d+\.attn\.attn_lif\.w",
            r"patch_embed\.rpe_lif\.w",
        ),
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Registered variants

_TINY = dict(depth=1, embed_dim=32, num_heads=4, img_size=32, T=2)
_CIFAR = dict(input_kind="image", img_size=32, in_chans=3, default_T=4)
_IMAGENET = dict(input_kind="image", dataset="imagenet", num_classes=1000, img_size=224, in_chans=3, default_T=4)
_COMMON = dict(
    family="sdt", paper=SDT_PAPER, lineage="spikformer", spike_driven=True, official_family="sdt", tiny_overrides=_TINY
)
_CIFAR_ARCH = dict(num_heads=8, mlp_ratio=4.0, pool_stages=(False, False, True, True), img_size=32, T=4)
_IMAGENET_ARCH = dict(num_heads=8, mlp_ratio=4.0, pool_stages=(True, True, True, True), img_size=224, T=4)
_UNUSED_NOTE = "Official count includes the unused talking_heads Conv1d (heads^2 per block), left out here. "


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> SpikeDrivenTransformer:
    return SpikeDrivenTransformer(**{**defaults, **overrides})


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar10", num_classes=10, reported_top1=None,
    official_config="sdt_v1/sdt-2-256-cifar10-T4", official_params=2567082, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10/2_256_300E_t4.yml; no accuracy recorded for this size.",
)
def sdt_2_256_cifar10(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR-10 images (32x32, T=4, 10 classes), 2.57M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=256, num_classes=10), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar10", num_classes=10, reported_top1=95.6,
    official_config="sdt_v1/sdt-2-512-cifar10-T4", official_params=10233546, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10/2_512_300E_t4.yml. reported_top1 95.6 is unverified: check against the paper.",
)
def sdt_2_512_cifar10(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR-10 images (32x32, T=4, 10 classes), 10.23M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=512, num_classes=10), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar10", num_classes=10, reported_top1=None,
    official_config="sdt_v1/sdt-2-512-cifar10-T4-2_512_300E_t4_TET", official_params=10233546,
    official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10/2_512_300E_t4_TET.yml: the 2-512 architecture trained with the TET loss "
    "(means 1.0, lambda 0.001); use forward_timesteps for the per-step logits.",
)
def sdt_2_512_cifar10_tet(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR-10 images (32x32, T=4, 10 classes), 10.23M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=512, num_classes=10), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar100", num_classes=100, reported_top1=None,
    official_config="sdt_v1/sdt-2-256-cifar100-T4", official_params=2590212, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar100/2_256_300E_t4.yml; no accuracy recorded for this size.",
)
def sdt_2_256_cifar100(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR-100 images (32x32, T=4, 100 classes), 2.59M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=256, num_classes=100), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar100", num_classes=100, reported_top1=78.4,
    official_config="sdt_v1/sdt-2-512-cifar100-T4", official_params=10279716, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar100/2_512_300E_t4.yml. reported_top1 78.4 is unverified: check against the paper.",
)
def sdt_2_512_cifar100(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR-100 images (32x32, T=4, 100 classes), 10.28M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=512, num_classes=100), kwargs)


@register_model(
    **_COMMON, input_kind="events", dataset="cifar10-dvs", num_classes=10, img_size=64, in_chans=2, default_T=10,
    reported_top1=None, official_config="sdt_v1/sdt-2-256-cifar10-dvs-T10", official_params=2566794,
    official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10-dvs/2_256_200E_t10_TET.yml: frames resized to 64x64, dvs_mode (Erode) on, "
    "trained with the TET loss (forward_timesteps gives the per-step logits). The paper reports 80.0 at T=16 "
    "(unverified); the official config trains T=10, for which no accuracy is recorded.",
)
def sdt_2_256_cifar10dvs(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on CIFAR10-DVS event frames (64x64, T=10, 10 classes), 2.57M parameters."""
    arch = dict(_CIFAR_ARCH, depth=2, embed_dim=256, num_classes=10, img_size=64, in_chans=2, T=10)
    return _create(dict(arch, dvs_mode=True, input_kind="events"), kwargs)


_GESTURE_ARCH = dict(
    num_heads=8, mlp_ratio=4.0, pool_stages=(False, True, True, True), depth=2, embed_dim=256, num_classes=11,
    img_size=128, in_chans=2, input_kind="events",
)
_GESTURE = dict(input_kind="events", dataset="dvs128-gesture", num_classes=11, img_size=128, in_chans=2)


@register_model(
    **_COMMON, **_GESTURE, default_T=10, reported_top1=None, official_config="sdt_v1/sdt-2-256-gesture-T10",
    official_params=2567051, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/gesture/2_256_200E_t10.yml (pooling 0111, 128 -> 16x16 tokens, no dvs_mode).",
)
def sdt_2_256_gesture_t10(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on DVS128 Gesture event frames (128x128, T=10, 11 classes), 2.57M parameters."""
    return _create(dict(_GESTURE_ARCH, T=10), kwargs)


@register_model(
    **_COMMON, **_GESTURE, default_T=16, reported_top1=99.3, official_config="sdt_v1/sdt-2-256-gesture-T16",
    official_params=2567051, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/gesture/2_256_200E_t16.yml (pooling 0111, no dvs_mode). reported_top1 99.3 is "
    "unverified: check against the paper.",
)
def sdt_2_256_gesture_t16(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on DVS128 Gesture event frames (128x128, T=16, 11 classes), 2.57M parameters."""
    return _create(dict(_GESTURE_ARCH, T=16), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, reported_top1=72.28, official_config="sdt_v1/sdt-8-384-imagenet-T4",
    official_params=16816536, official_unused_params=8 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/8_384_300E_t4.yml; accuracy and 3.90 mJ from the official README.",
)
def sdt_8_384(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on ImageNet-1k images (224x224, T=4, 1000 classes), 16.82M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=8, embed_dim=384, num_classes=1000), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, reported_top1=74.11, official_config="sdt_v1/sdt-6-512-imagenet-T4",
    official_params=23373736, official_unused_params=6 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/6_512_300E_t4.yml; accuracy and 3.56 mJ from the official README.",
)
def sdt_6_512(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on ImageNet-1k images (224x224, T=4, 1000 classes), 23.37M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=6, embed_dim=512, num_classes=1000), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, reported_top1=74.57, official_config="sdt_v1/sdt-8-512-imagenet-T4",
    official_params=29689896, official_unused_params=8 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/8_512_300E_t4.yml; accuracy and 4.50 mJ from the official README.",
)
def sdt_8_512(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on ImageNet-1k images (224x224, T=4, 1000 classes), 29.69M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=8, embed_dim=512, num_classes=1000), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, reported_top1=74.66, official_config="sdt_v1/sdt-10-512-imagenet-T4",
    official_params=36006056, official_unused_params=10 * 64,
    notes=_UNUSED_NOTE + "The official config file is conf/imagenet/10_384_300E_t4.yml but it sets dim 512 and "
    "10 layers; accuracy and 5.53 mJ from the official README.",
)
def sdt_10_512(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on ImageNet-1k images (224x224, T=4, 1000 classes), 36.01M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=10, embed_dim=512, num_classes=1000), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, reported_top1=77.07, official_config="sdt_v1/sdt-8-768-imagenet-T4",
    official_params=66339144, official_unused_params=8 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/8_768_300E_t4.yml. 77.07 (README, 6.09 mJ) is measured at 288x288 test "
    "resolution (--large-valid); at 224 the paper gives 76.32 (unverified).",
)
def sdt_8_768(**kwargs: Any) -> SpikeDrivenTransformer:
    """SDT V1 on ImageNet-1k images (224x224, T=4, 1000 classes), 66.34M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=8, embed_dim=768, num_classes=1000), kwargs)
