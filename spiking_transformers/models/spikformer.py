"""Spikformer (Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer", ICLR 2023).

arXiv: https://arxiv.org/abs/2209.15425. Upstream: https://github.com/ZK-Zhou/spikformer, checked against commit
621268981827af47aa666c1b5f774de4281d90ad (the official fixtures were made from it).

One class, :class:`Spikformer`, covers the three official model files, which differ only in arguments (see
:class:`spiking_transformers.layers.SpikingSelfAttention`):

* ``cifar10/model.py`` (official family ``spikformer``): ``nn.Linear`` projections with q/k/v bias, ``(Q K^T) V``,
  scale 0.125, two SPS max-pools (32 -> 8 tokens per side).
* ``imagenet/model.py`` (``spikformer_imagenet``): 1-wide Conv1d/Conv2d projections without q/k/v bias,
  ``Q (K^T V)``, scale 0.125, four pools (224 -> 14). The official forward fixes ``T = 4``; ours takes ``T``.
* ``cifar10dvs/model.py`` (``spikformer_dvs``): as ImageNet but Conv1d MLP, ``(Q K^T) V``, scale 0.25, 16 heads, and
  event input ``[T, B, 2, H, W]`` (the official takes ``[B, T, ...]`` and permutes). The official SPS hard-codes
  the reshapes for 128 x 128 input; ours works at any size (each pool gives ``ceil(n / 2)``) and equals the
  official at 128 x 128.

Readings of the official code recorded here:

* The LayerNorms ``norm1``/``norm2`` of every block, and the DVS file's ``pos_embed`` and ``norm``, are built but
  never used; we leave them out and the converters drop them explicitly. DropPath, dropout, ``qk_scale``,
  ``sr_ratios`` and ``qkv_bias`` have no effect in any official forward (the CIFAR ``nn.Linear`` q/k/v keep their
  default bias whatever ``qkv_bias`` says; the ImageNet/DVS q/k/v convs never have one).
* The official ``patch_size`` argument does not set the down-sampling: the CIFAR file always pools twice and the
  other two always four times. Our ``patch_size`` is that down-sampling (4 or 16); the official builders set it
  from the file, not from the argument.
* ``img_size`` does not change the parameters; it is the input size of the configuration (``num_patches``). The
  SPS is fully convolutional, so other input sizes run too, as in the CIFAR and ImageNet files.
* Every weight is initialised like the official ``nn.Linear`` layers (truncated normal, std 0.02, zero bias), also
  where the ImageNet/DVS files have a conv with PyTorch's default initialisation.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Callable, Mapping

from torch import Tensor, nn

from ..layers import SpikformerBlock, SpikingPatchSplitting
from ..layers.attention import backbone_options, resolve_attention
from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory
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
from ._grad_checkpoint import checkpoint_call, checkpoint_module
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "Spikformer",
    "SPIKFORMER_PAPER",
    "convert_cifar_key",
    "convert_conv_key",
    "spikformer_from_official_cifar",
    "spikformer_from_official_imagenet",
    "spikformer_from_official_dvs",
]

SPIKFORMER_PAPER = Paper(
    title="Spikformer: When Spiking Neural Network Meets Transformer",
    venue="ICLR",
    year=2023,
    arxiv="2209.15425",
    repo="ZK-Zhou/spikformer",
    commit="621268981827af47aa666c1b5f774de4281d90ad",
)


class Spikformer(SpikingModel):
    """Spikformer-L-D: spiking patch splitting, ``depth`` SEW blocks of spiking self-attention, a linear head.

    Args:
        num_classes: classifier outputs (0: no head, features out).
        img_size: input size ``H`` or ``(H, W)`` of the configuration (sets :attr:`num_patches`; other sizes run).
        in_chans: input channels (3 for images, 2 for event polarities).
        T: time steps a static image is repeated over (event input brings its own).
        embed_dim: token width ``D`` (the SPS stages have ``D/8, D/4, D/2, D`` channels).
        depth: number of blocks ``L``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width is ``int(D * mlp_ratio)``.
        patch_size: SPS down-sampling, a power of two up to 16 (CIFAR 4, ImageNet and DVS 16).
        attn_scale: constant multiplying ``Q K^T V`` (0.125; 0.25 in the DVS file).
        qkv_bias: bias on the q/k/v projections (True in the CIFAR file only).
        kv_first: form ``K^T V`` (D x D) before multiplying by Q, as the ImageNet file does.
        input_kind: ``"image"`` (``[B, C, H, W]`` repeated over T, or ``[T, B, C, H, W]``) or ``"events"``
            (time-major frames ``[T, B, C, H, W]`` only).
        spike_layer: neuron factory (default: the official LIF, tau 2, sigmoid surrogate alpha 4).
        attn: the attention of every block: ``"ssa"`` (Spikformer's, with the three options above), the name of
            any registered attention (``spiking-transformers models --attention``), or a class/factory under the
            attention contract. Another attention gets ``spike_layer`` and ``attn_options`` and sees the token grid.
        attn_options: keyword options of a swapped-in attention (``chunk_size`` for ``"statten"``, ...).

    Shape:
        input ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> logits ``[B, num_classes]``;
        :meth:`forward_features` -> integer-valued tokens ``[T, B, N, D]``.
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
        qkv_bias: bool = True,
        kv_first: bool = False,
        input_kind: str = "image",
        spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER,
        attn: str | Callable[..., nn.Module] = "ssa",
        attn_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_sizes(T=T, depth=depth, num_classes=num_classes, embed_dim=embed_dim, num_heads=num_heads)
        self.T = T
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.input_kind = check_input_kind(input_kind)
        self.img_size = to_2tuple(img_size)

        self.patch_embed = SpikingPatchSplitting(
            in_chans=in_chans, embed_dim=embed_dim, patch_size=patch_size, spike_layer=spike_layer
        )
        grid = self.patch_embed.grid_size(self.img_size)
        self.num_patches = grid[0] * grid[1]
        self.attn_name = attn if isinstance(attn, str) else getattr(attn, "__name__", type(attn).__name__)
        attn_layer = None if attn == "ssa" else resolve_attention(attn)  # None: SSA with the file's options
        if attn_layer is not None:
            attn_options = {**backbone_options(attn_layer, num_tokens=self.num_patches), **(attn_options or {})}
        self.block = nn.ModuleList(
            SpikformerBlock(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                attn_scale=attn_scale,
                qkv_bias=qkv_bias,
                kv_first=kv_first,
                attn_layer=attn_layer,
                attn_options=attn_options,
                spike_layer=spike_layer,
            )
            for _ in range(depth)
        )
        self.head = make_head(embed_dim, num_classes)
        self.apply(trunc_normal_init(nn.Linear))
        self.grad_checkpointing = False

    def forward_intermediates(self, x: Tensor) -> list[Tensor]:
        """Tokens after the tokenizer and after each block, each ``[T, B, N, D]`` (non-negative integers).

        Spikformer has one scale: a dense head reshapes the tokens to the ``[T, B, D, H', W']`` grid of
        :meth:`SpikingPatchSplitting.grid_size`. The last entry is :meth:`forward_features`.
        """
        x = self.encode_input(x)
        grid = self.patch_embed.grid_size((x.shape[-2], x.shape[-1]))
        ckpt = self.grad_checkpointing
        # memory mode: the tokenizer's four conv stages are checkpointed one by one (they hold the model's largest
        # activations: at 32 x 32 the stage-2 conv output alone is eight times the input of a block)
        x = self.patch_embed(x, stage_runner=partial(checkpoint_call, self.patch_embed) if ckpt else None)
        out = [x]
        for blk in self.block:
            x = checkpoint_module(blk, x, grid) if ckpt else blk(x, grid)
            out.append(x)
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Memory mode (timm's name): keep only the input of the tokenizer and of each block for backward and
        recompute the rest there; same outputs, gradients and running statistics (see ``_grad_checkpoint.py``)."""
        self.grad_checkpointing = bool(enable)

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> tokens ``[T, B, N, D]`` (non-negative integers)."""
        return self.forward_intermediates(x)[-1]

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Tokens ``[T, B, N, D]`` -> mean over tokens (and time) -> logits ``[B, K]`` or ``[T, B, K]``.

        The head sees firing rates: as in the official code it has no neuron of its own.
        """
        x = x.mean(2)  # [T, B, D]
        if reduce_time:
            x = x.mean(0)
        return self.head(x)


# ---------------------------------------------------------------------------------------------------------------------
# Official checkpoints: key conversion and builders from the official constructors' keyword arguments.

# Every key of our state dict (after conversion).
_OUR_KEY_PATTERNS = (
    r"patch_embed\.(proj_conv[123]?|rpe_conv)\.weight",
    rf"patch_embed\.(proj_bn[123]?|rpe_bn)\.{BN_KEYS}",
    r"block\.\d+\.attn\.(q|k|v|proj)_linear\.(weight|bias)",
    rf"block\.\d+\.attn\.(q|k|v|proj)_bn\.{BN_KEYS}",
    r"block\.\d+\.mlp\.fc[12]_linear\.(weight|bias)",
    rf"block\.\d+\.mlp\.fc[12]_bn\.{BN_KEYS}",
    r"head\.(weight|bias)",
)
_OUR_KEY = re.compile("|".join(f"(?:{p})" for p in _OUR_KEY_PATTERNS))
# ImageNet / DVS files: 1-wide convs in the blocks; ours are nn.Linear.
_CONV_PROJ = re.compile(r"(block\.\d+\.(?:attn\.(?:q|k|v|proj)|mlp\.fc[12]))_conv\.(weight|bias)")
# Built by every official file but never used by its forward (two LayerNorms per block; DVS: pos_embed, norm).
_UNUSED_BLOCK_NORMS = r"block\.\d+\.norm[12]\.(weight|bias)"
_UNUSED_DVS = (_UNUSED_BLOCK_NORMS, r"pos_embed", r"norm\.(weight|bias)")

convert_cifar_key = known_keys_converter(_OUR_KEY_PATTERNS)
convert_cifar_key.__doc__ = (
    "CIFAR file: the keys are ours already. Returns ``None`` for a key that is not a Spikformer-CIFAR key."
)


def convert_conv_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """ImageNet / DVS files: ``*_conv`` projections of the blocks -> ``*_linear``, weights ``[O, I, 1(, 1)] -> [O, I]``.

    Returns ``None`` for a key of another family (including the CIFAR file's ``*_linear`` keys).
    """
    m = _CONV_PROJ.fullmatch(key)
    if m is None:
        return (key, value) if _OUR_KEY.fullmatch(key) and "_linear." not in key else None
    prefix, kind = m.groups()
    if kind == "weight":
        if value.dim() < 3 or any(s != 1 for s in value.shape[2:]):
            return None  # not a 1-wide convolution: not this family's weight
        value = value.reshape(value.shape[0], value.shape[1])
    return f"{prefix}_linear.{kind}", value


# What each official file fixes, whatever its arguments say.
_CIFAR_FILE: dict[str, Any] = dict(patch_size=4, attn_scale=0.125, qkv_bias=True, kv_first=False)
_IMAGENET_FILE: dict[str, Any] = dict(T=4, patch_size=16, attn_scale=0.125, qkv_bias=False, kv_first=True)
_DVS_FILE: dict[str, Any] = dict(
    T=16, patch_size=16, attn_scale=0.25, qkv_bias=False, kv_first=False, input_kind="events"
)

# The official constructors' keyword arguments with their defaults (timm's create_model adds pretrained and
# drop_block_rate). CIFAR: the class's scalar defaults; its list defaults of the shape arguments cannot build, so
# those are required. ImageNet / DVS: the defaults of each file's registered factory.
_TIMM_EXTRA: dict[str, Any] = dict(pretrained=False, drop_block_rate=None)
_CIFAR_KWARGS: dict[str, Any] = dict(PVT_KWARGS, norm_layer="LayerNorm", T=4, **_TIMM_EXTRA)
_FACTORY_KWARGS: dict[str, Any] = dict(
    PVT_KWARGS, mlp_ratios=4, norm_layer="partial(nn.LayerNorm, eps=1e-6)", **_TIMM_EXTRA
)
_IMAGENET_KWARGS: dict[str, Any] = dict(
    _FACTORY_KWARGS, img_size_h=224, img_size_w=224, in_channels=3, num_classes=1000, embed_dims=512, num_heads=8,
    depths=8,
)  # fmt: skip
_DVS_KWARGS: dict[str, Any] = dict(_FACTORY_KWARGS, num_classes=10, embed_dims=256, num_heads=16, depths=2)


def _build_official(
    file_cfg: dict[str, Any],
    *,
    img_size_h: int,
    img_size_w: int,
    in_channels: int,
    num_classes: int,
    embed_dims: int,
    num_heads: int,
    mlp_ratios: float,
    depths: int,
    norm_layer: Any,
    pretrained: bool,
    drop_block_rate: float | None,
    **ignored: Any,
) -> Spikformer:
    # ``ignored``: patch_size, qkv_bias, qk_scale, the drop rates, sr_ratios have no effect in any official forward.
    if pretrained:
        raise ValueError("no official Spikformer weights are published (ZK-Zhou/spikformer issue #4)")
    if drop_block_rate is not None:
        # timm's create_model passes drop_block_rate and drops it when None; the class itself has no such argument.
        raise TypeError("the official Spikformer has no drop_block_rate argument")
    if not (isinstance(norm_layer, str) or callable(norm_layer)):
        raise TypeError(f"norm_layer must be a class, a factory or its name, got {norm_layer!r}")
    return Spikformer(
        num_classes=num_classes,
        img_size=(img_size_h, img_size_w),
        in_chans=in_channels,
        embed_dim=official_int("embed_dims", embed_dims, family="Spikformer"),
        depth=official_int("depths", depths, family="Spikformer"),
        num_heads=official_int("num_heads", num_heads, family="Spikformer"),
        mlp_ratio=mlp_ratios,
        **file_cfg,
    )


@official_builder(_CIFAR_KWARGS)
def spikformer_from_official_cifar(*, T: int, **kwargs: Any) -> Spikformer:
    """Our model equal to ``cifar10/model.py``'s ``Spikformer(**kwargs)`` (or timm ``spikformer`` of that file).

    The scalar defaults are the official class's; its list defaults cannot build, so those arguments are required.
    ``patch_size``, ``qkv_bias``, ``qk_scale``, the drop rates, ``norm_layer`` and ``sr_ratios`` are accepted and,
    as in the official forward, have no effect (the file always pools twice and its q/k/v Linear has a bias).
    """
    return _build_official(dict(_CIFAR_FILE, T=T), **kwargs)


@official_builder(_IMAGENET_KWARGS)
def spikformer_from_official_imagenet(**kwargs: Any) -> Spikformer:
    """Our model equal to ``imagenet/model.py``'s ``Spikformer(**kwargs)``, run with the official ``T = 4``.

    Defaults are the file's registered factory (Spikformer-8-512, 224 x 224, 1000 classes). Dead arguments as in
    :func:`spikformer_from_official_cifar`; the file always pools four times. Set ``model.T`` for other time steps.
    """
    return _build_official(_IMAGENET_FILE, **kwargs)


@official_builder(_DVS_KWARGS)
def spikformer_from_official_dvs(**kwargs: Any) -> Spikformer:
    """Our model equal to ``cifar10dvs/model.py``'s ``Spikformer(**kwargs)``; it takes ``[T, B, 2, H, W]`` frames.

    Defaults are the file's registered factory (Spikformer-2-256, 16 heads, 10 classes, 128 x 128). The official
    model only runs at 128 x 128; ours also runs at other sizes. ``model.T`` (16, the official training script's
    default) is only the nominal number of frames: event input brings its own time axis.
    """
    return _build_official(_DVS_FILE, **kwargs)


_SOURCE = "ZK-Zhou/spikformer @ 621268981827af47aa666c1b5f774de4281d90ad"
register_official_family(
    OfficialFamily(
        name="spikformer",
        source=f"{_SOURCE}: cifar10/model.py",
        build=spikformer_from_official_cifar,
        convert_key=convert_cifar_key,
        unused=(_UNUSED_BLOCK_NORMS,),
    )
)
register_official_family(
    OfficialFamily(
        name="spikformer_imagenet",
        source=f"{_SOURCE}: imagenet/model.py",
        build=spikformer_from_official_imagenet,
        convert_key=convert_conv_key,
        unused=(_UNUSED_BLOCK_NORMS,),
    )
)
register_official_family(
    OfficialFamily(
        name="spikformer_dvs",
        source=f"{_SOURCE}: cifar10dvs/model.py",
        build=spikformer_from_official_dvs,
        convert_key=convert_conv_key,
        unused=_UNUSED_DVS,
    )
)


# ---------------------------------------------------------------------------------------------------------------------
# Registered variants: Spikformer-L-D of the paper (L blocks, width D).


def _create(file_cfg: dict[str, Any], kwargs: dict[str, Any], **model_args: Any) -> Spikformer:
    return Spikformer(**{**file_cfg, **model_args, **kwargs})


def _unused_block_norms(depth: int, dim: int) -> int:
    return depth * 2 * 2 * dim  # norm1 and norm2, weight and bias


def _unused_dvs(depth: int, dim: int, img_size: int = 128, patch_size: int = 16) -> int:
    return _unused_block_norms(depth, dim) + (img_size // patch_size) ** 2 * dim + 2 * dim  # + pos_embed + norm


_COMMON: dict[str, Any] = dict(family="spikformer", paper=SPIKFORMER_PAPER, lineage=None, spike_driven=False)
_CIFAR_TINY = dict(depth=1, embed_dim=32, num_heads=2, T=2)
_BIG_TINY = dict(depth=1, embed_dim=32, num_heads=2, T=2, img_size=64)
_CIFAR_INFO: dict[str, Any] = dict(
    _COMMON, default_T=4, input_kind="image", img_size=32, in_chans=3, official_family="spikformer",
    tiny_overrides=_CIFAR_TINY,
)  # fmt: skip
_IMAGENET_INFO: dict[str, Any] = dict(
    _COMMON,
    default_T=4,
    input_kind="image",
    dataset="imagenet",
    num_classes=1000,
    img_size=224,
    in_chans=3,
    official_family="spikformer_imagenet",
    tiny_overrides=_BIG_TINY,
)
_DVS_INFO: dict[str, Any] = dict(
    _COMMON, default_T=16, input_kind="events", img_size=128, in_chans=2, official_family="spikformer_dvs",
    tiny_overrides=_BIG_TINY,
)  # fmt: skip
_CIFAR = dict(_CIFAR_FILE, img_size=32, in_chans=3)
_IMAGENET = dict(_IMAGENET_FILE, img_size=224, in_chans=3, num_classes=1000)
_DVS = dict(_DVS_FILE, img_size=128, in_chans=2)


@register_model(
    **_CIFAR_INFO,
    dataset="cifar10",
    num_classes=10,
    reported_top1=95.19,
    official_config="spikformer/spikformer-4-384-cifar10",
    official_params=9330874,
    official_unused_params=_unused_block_norms(4, 384),
    notes="cifar10/cifar10.yml. 95.51 with 400 epochs (as quoted by a third party, not read in the paper).",
)
def spikformer_4_384_cifar10(**kwargs: Any) -> Spikformer:
    """Spikformer on CIFAR-10 images (32x32, T=4, 10 classes), 9.32M parameters."""
    return _create(_CIFAR, kwargs, num_classes=10, depth=4, embed_dim=384, num_heads=12)


@register_model(
    **_CIFAR_INFO,
    dataset="cifar100",
    num_classes=100,
    reported_top1=77.86,
    official_config="spikformer/spikformer-4-384-cifar100",
    official_params=9365524,
    official_unused_params=_unused_block_norms(4, 384),
    notes="Top-1 from memory of the paper, unverified; 78.21 with 400 epochs (unverified, also quoted by a third "
    "party).",
)
def spikformer_4_384_cifar100(**kwargs: Any) -> Spikformer:
    """Spikformer on CIFAR-100 images (32x32, T=4, 100 classes), 9.36M parameters."""
    return _create(_CIFAR, kwargs, num_classes=100, depth=4, embed_dim=384, num_heads=12)


@register_model(
    **_CIFAR_INFO,
    dataset="cifar10",
    num_classes=10,
    reported_top1=93.94,
    official_config="spikformer/spikformer-4-256-cifar10",
    official_params=4159274,
    official_unused_params=_unused_block_norms(4, 256),
    notes="Paper ablation size; heads not given by the paper, 16 as in param_counts.json (params do not depend on "
    "heads). Top-1 unverified (CIFAR-100: 75.96, unverified).",
)
def spikformer_4_256_cifar10(**kwargs: Any) -> Spikformer:
    """Spikformer on CIFAR-10 images (32x32, T=4, 10 classes), 4.16M parameters."""
    return _create(_CIFAR, kwargs, num_classes=10, depth=4, embed_dim=256, num_heads=16)


@register_model(
    **_CIFAR_INFO,
    dataset="cifar10",
    num_classes=10,
    reported_top1=94.80,
    official_config="spikformer/spikformer-2-384-cifar10",
    official_params=5768122,
    official_unused_params=_unused_block_norms(2, 384),
    notes="Paper ablation size; 12 heads assumed. Top-1 unverified (CIFAR-100: 76.95, unverified).",
)
def spikformer_2_384_cifar10(**kwargs: Any) -> Spikformer:
    """Spikformer on CIFAR-10 images (32x32, T=4, 10 classes), 5.77M parameters."""
    return _create(_CIFAR, kwargs, num_classes=10, depth=2, embed_dim=384, num_heads=12)


@register_model(
    **_IMAGENET_INFO,
    reported_top1=70.24,
    official_config="spikformer/spikformer-8-384-imagenet",
    official_params=16828312,
    official_unused_params=_unused_block_norms(8, 384),
    notes="8 heads as in the Spikingformer energy tool (param_counts.json used 12; params do not depend on heads). "
    "Top-1 and 7.73 mJ as quoted by a third party (not read in the paper).",
)
def spikformer_8_384(**kwargs: Any) -> Spikformer:
    """Spikformer on ImageNet-1k images (224x224, T=4, 1000 classes), 16.82M parameters."""
    return _create(_IMAGENET, kwargs, depth=8, embed_dim=384, num_heads=8)


@register_model(
    **_IMAGENET_INFO,
    reported_top1=73.38,
    official_config="spikformer/spikformer-8-512-imagenet",
    official_params=29705768,
    official_unused_params=_unused_block_norms(8, 512),
    notes="The official imagenet/model.py factory. 11.58 mJ as quoted by a third party.",
)
def spikformer_8_512(**kwargs: Any) -> Spikformer:
    """Spikformer on ImageNet-1k images (224x224, T=4, 1000 classes), 29.69M parameters."""
    return _create(_IMAGENET, kwargs, depth=8, embed_dim=512, num_heads=8)


@register_model(
    **_IMAGENET_INFO,
    reported_top1=73.68,
    official_config="spikformer/spikformer-10-512-imagenet",
    official_params=36025896,
    official_unused_params=_unused_block_norms(10, 512),
    notes="13.90 mJ as quoted by a third party.",
)
def spikformer_10_512(**kwargs: Any) -> Spikformer:
    """Spikformer on ImageNet-1k images (224x224, T=4, 1000 classes), 36.01M parameters."""
    return _create(_IMAGENET, kwargs, depth=10, embed_dim=512, num_heads=8)


@register_model(
    **_IMAGENET_INFO,
    reported_top1=74.81,
    official_config="spikformer/spikformer-8-768-imagenet",
    official_params=66363208,
    official_unused_params=_unused_block_norms(8, 768),
    notes="12 heads (pending a check against the paper; params do not depend on heads). 21.48 mJ as quoted by a "
    "third party.",
)
def spikformer_8_768(**kwargs: Any) -> Spikformer:
    """Spikformer on ImageNet-1k images (224x224, T=4, 1000 classes), 66.34M parameters."""
    return _create(_IMAGENET, kwargs, depth=8, embed_dim=768, num_heads=12)


@register_model(
    **_DVS_INFO,
    dataset="cifar10-dvs",
    num_classes=10,
    reported_top1=80.9,
    official_config="spikformer/spikformer-2-256-cifar10dvs",
    official_params=2585610,
    official_unused_params=_unused_dvs(2, 256),
    notes="The official cifar10dvs/model.py factory, T=16 frames. Top-1 unverified (78.9 at T=10, unverified).",
)
def spikformer_2_256_cifar10dvs(**kwargs: Any) -> Spikformer:
    """Spikformer on CIFAR10-DVS event frames (128x128, T=16, 10 classes), 2.57M parameters."""
    return _create(_DVS, kwargs, num_classes=10, depth=2, embed_dim=256, num_heads=16)


@register_model(
    **_DVS_INFO,
    dataset="dvs128-gesture",
    num_classes=11,
    reported_top1=98.3,
    official_config="spikformer/spikformer-2-256-dvs128gesture",
    official_params=2585867,
    official_unused_params=_unused_dvs(2, 256),
    notes="The repository has no DVS128 Gesture code; the CIFAR10-DVS model with 11 classes. Top-1 at T=16 "
    "unverified (96.9 at T=10, unverified).",
)
def spikformer_2_256_dvs128gesture(**kwargs: Any) -> Spikformer:
    """Spikformer on DVS128 Gesture event frames (128x128, T=16, 11 classes), 2.57M parameters."""
    return _create(_DVS, kwargs, num_classes=11, depth=2, embed_dim=256, num_heads=16)
