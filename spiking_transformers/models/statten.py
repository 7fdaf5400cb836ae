"""STAtten: spatio-temporal attention on the Spike-driven Transformer V1 backbone.

"Spiking Transformer with Spatial-Temporal Attention", CVPR 2025, arXiv:2409.19764.
Upstream: https://github.com/Intelligent-Computing-Lab-Yale/STAtten (``model/spikeformer.py``, ``module/ms_conv.py``),
checked against commit e9048a18b02cdaf824ac2ad82f2e6f5bfcf50134 with the official fixture ``statten_cifar_small``.

The model is SDT V1 (:class:`~spiking_transformers.models.sdt.SpikeDrivenTransformer`) with one change: the
attention groups ``chunk_size`` consecutive time steps and lets every query token of a group attend to every
key token of the group (:class:`~spiking_transformers.layers.attention.SpatioTemporalAttention`, registered as
``"statten"``, so any backbone can take it: ``create_model("spikformer_4_256_cifar10", attn="statten")``). It adds no parameters, so SDT V1 checkpoints have the
same keys.

Readings of the official code:
    * Default scale ``1 / H`` (H = token-grid height: 1/8 for CIFAR, 1/14 for ImageNet 224); with ``dvs_mode``
      ``1 / (H * H * chunk_size)``. The code writes ``H * H``, i.e. N for the square grids of every config.
    * ``chunk_size`` must divide T. Upstream a non-dividing chunk fails inside a ``view`` with a shape error; here
      the constructor (and the forward, for inputs with another T) raise a ``ValueError`` saying so.
    * ``dvs_mode``: Q, K, V and the shortcut spikes ``S`` pass through the 3x3 max filter; after the attention
      neuron ``Y <- Y * P + P`` with ``P = Erode(S)``.
    * The attention's neurons are LIF whatever ``spike_mode`` says (only the tokenizer, MLP and head neurons follow
      it). This was read in public forks of the repository, not at the pinned commit; the fixture (LIF) cannot
      tell. :func:`build_official` reproduces it through ``attn_spike_layer``.
    * ``attention_mode="SDT"`` (the repository's plain SDSA) is supported without ``dvs_mode``; with ``dvs_mode``
      that path also filters Q, unlike SDT V1, and is not ported (``NotImplementedError``).
    * The ``talking_heads`` Conv1d is built upstream and never used: not built here, dropped by the converter.
"""

from __future__ import annotations

from typing import Any


from ..layers.attention import SpatioTemporalAttention
from ..neurons import SpikeFactory, resolve_spike_layer
from ._common import known_keys_converter, official_builder
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model
from .sdt import SDT_BASE_KWARGS, SDT_KEY_PATTERNS, SpikeDrivenTransformer, official_model_kwargs

__all__ = [
    "SpatioTemporalAttention",
    "STAtten",
    "STATTEN_PAPER",
    "build_official",
    "convert_official_key",
    "STATTEN_OFFICIAL_KWARGS",
]

STATTEN_PAPER = Paper(
    title="Spiking Transformer with Spatial-Temporal Attention",
    venue="CVPR",
    year=2025,
    arxiv="2409.19764",
    repo="Intelligent-Computing-Lab-Yale/STAtten",
    commit="e9048a18b02cdaf824ac2ad82f2e6f5bfcf50134",
)


class STAtten(SpikeDrivenTransformer):
    """SDT V1 with the spatio-temporal attention (``attn="statten"``) in every block.

    Args:
        chunk_size: time steps per attention group; must divide ``T``.
        attn_spike_layer: neuron type of the attention (``None``: the same as ``spike_layer``). The official code
            keeps LIF there even with ``spike_mode="plif"``.
        **kwargs: every other argument of :class:`~spiking_transformers.models.sdt.SpikeDrivenTransformer`
            (``num_classes``, ``img_size``, ``in_chans``, ``T``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``,
            ``pool_stages``, ``dvs_mode``, ``spike_layer``, ``input_kind``), except ``attn`` / ``attn_options``.
    """

    def __init__(
        self, *, chunk_size: int = 2, attn_spike_layer: str | SpikeFactory | None = None, **kwargs: Any
    ) -> None:
        if "attn" in kwargs or "attn_options" in kwargs:
            raise TypeError("STAtten sets its attention itself; build SpikeDrivenTransformer(attn=...) for another")
        T = kwargs.get("T", 4)
        if chunk_size < 1 or T % chunk_size:
            raise ValueError(f"chunk_size {chunk_size} must be >= 1 and divide T={T}")
        options: dict[str, Any] = {"chunk_size": chunk_size}
        if attn_spike_layer is not None:
            options["spike_layer"] = resolve_spike_layer(attn_spike_layer)
        super().__init__(attn="statten", attn_options=options, **kwargs)
        self.chunk_size = chunk_size


# --------------------------------------------------------------------------------------------------------------------
# Official interop


# The official STAtten constructor's keyword arguments: SDT V1's (without get_embed and cml) plus the time chunk
# and the attention switch.
STATTEN_OFFICIAL_KWARGS: dict[str, Any] = dict(SDT_BASE_KWARGS, chunk_size=2, attention_mode="STAtten")


@official_builder(STATTEN_OFFICIAL_KWARGS)
def build_official(*, chunk_size: int, attention_mode: str, **kwargs: Any) -> SpikeDrivenTransformer:
    """Our model equal to the official STAtten ``SpikeDrivenTransformer(**kwargs)`` (timm name ``sdt``).

    ``attention_mode="STAtten"`` (the default, and the only value the official train.py ever uses) gives
    :class:`STAtten`; ``"SDT"`` gives SDT V1's attention with LIF attention neurons (not with ``dvs_mode``).
    Ignored because they have no effect upstream: ``patch_size``, ``qkv_bias``, ``qk_scale``, ``drop_*``,
    ``norm_layer``, ``sr_ratios``, ``attn_mode``, ``pretrained``, ``pretrained_cfg``; ``TET`` only changes the
    official output rank (use ``forward_timesteps``). Unknown keyword arguments raise ``TypeError``.
    """
    common = official_model_kwargs(**kwargs)
    if attention_mode == "STAtten":
        return STAtten(chunk_size=chunk_size, attn_spike_layer="lif", **common)
    if attention_mode == "SDT":
        if common["dvs_mode"]:
            raise NotImplementedError(
                "STAtten's attention_mode='SDT' with dvs_mode also filters Q (unlike SDT V1) and is not ported"
            )

        return SpikeDrivenTransformer(attn="sdsa", attn_options={"spike_layer": "lif"}, **common)
    raise ValueError(f"attention_mode must be 'STAtten' or 'SDT', got {attention_mode!r}")


# Same names as SDT V1, plus the attention output neuron attn_lif (used here). A known key maps to itself.
convert_official_key = known_keys_converter((*SDT_KEY_PATTERNS, r"block\.\d+\.attn\.attn_lif\.w"))


register_official_family(
    OfficialFamily(
        name="statten",
        source="Intelligent-Computing-Lab-Yale/STAtten@e9048a18b02cdaf824ac2ad82f2e6f5bfcf50134 model/spikeformer.py",
        build=build_official,
        convert_key=convert_official_key,
        unused=(
            # Built but never called in STAtten mode: the talking-heads Conv1d (heads^2 weights per block); and in
            # PLIF checkpoints the tau of the unused rpe_lif.
            r"block\.\d+\.attn\.talking_heads\.weight",
            r"patch_embed\.rpe_lif\.w",
        ),
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Registered variants

_TINY = dict(depth=1, embed_dim=32, num_heads=4, img_size=32, T=2, chunk_size=2)
_COMMON = dict(
    family="statten", paper=STATTEN_PAPER, lineage="sdt", spike_driven=True, official_family="statten",
    tiny_overrides=_TINY,
)  # fmt: skip
# In DVS mode the official attention gates its output as Y*P + P, so the projection after it receives values in
# {0, 1, 2}: those variants are integer-driven, not spike-driven (the energy audit finds it; a test checks it).
_COMMON_DVS = {**_COMMON, "spike_driven": False}
_UNUSED_NOTE = "Official count includes the unused talking_heads Conv1d (heads^2 per block), left out here. "
_NO_ACC = "No accuracy recorded: the CVPR tables were not retrieved."
_CIFAR = dict(input_kind="image", img_size=32, in_chans=3, default_T=4)
_CIFAR_ARCH = dict(num_heads=8, mlp_ratio=4.0, pool_stages=(False, False, True, True), img_size=32, T=4, chunk_size=2)
_IMAGENET = dict(input_kind="image", dataset="imagenet", num_classes=1000, img_size=224, in_chans=3, default_T=4)
_IMAGENET_ARCH = dict(num_heads=8, mlp_ratio=4.0, pool_stages=(True,) * 4, img_size=224, T=4, chunk_size=2)
_DVS_ARCH = dict(
    num_heads=8, mlp_ratio=4.0, pool_stages=(False, False, True, True), depth=2, embed_dim=256, img_size=64,
    in_chans=2, dvs_mode=True, input_kind="events",
)


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> STAtten:
    return STAtten(**{**defaults, **overrides})


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar10", num_classes=10, official_config="statten/statten-2-256-cifar10-T4",
    official_params=2567082, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10/2_256_200E_t4.yml, chunk 2. " + _NO_ACC,
)
def statten_2_256_cifar10(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR-10 images (32x32, T=4, 10 classes), 2.57M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=256, num_classes=10), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar10", num_classes=10, official_config="statten/statten-2-512-cifar10-T4",
    official_params=10233546, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10/2_512_200E_t4.yml, chunk 2. " + _NO_ACC,
)
def statten_2_512_cifar10(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR-10 images (32x32, T=4, 10 classes), 10.23M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=512, num_classes=10), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar100", num_classes=100, official_config="statten/statten-2-256-cifar100-T4",
    official_params=2590212, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar100/2_256_200E_t4.yml, chunk 2. " + _NO_ACC,
)
def statten_2_256_cifar100(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR-100 images (32x32, T=4, 100 classes), 2.59M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=256, num_classes=100), kwargs)


@register_model(
    **_COMMON, **_CIFAR, dataset="cifar100", num_classes=100, official_config="statten/statten-2-512-cifar100-T4",
    official_params=10279716, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar100/2_512_200E_t4.yml, chunk 2. " + _NO_ACC,
)
def statten_2_512_cifar100(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR-100 images (32x32, T=4, 100 classes), 10.28M parameters."""
    return _create(dict(_CIFAR_ARCH, depth=2, embed_dim=512, num_classes=100), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, official_config="statten/statten-8-512-imagenet-T4", official_params=29689896,
    official_unused_params=8 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/8_512_200E_t4.yml, chunk 2. " + _NO_ACC,
)
def statten_8_512(**kwargs: Any) -> STAtten:
    """STAtten on ImageNet-1k images (224x224, T=4, 1000 classes), 29.69M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=8, embed_dim=512, num_classes=1000), kwargs)


@register_model(
    **_COMMON, **_IMAGENET, official_config="statten/statten-8-768-imagenet-T4", official_params=66339144,
    official_unused_params=8 * 64,
    notes=_UNUSED_NOTE + "conf/imagenet/8_768_200E_t4.yml, chunk 2. The earlier arXiv version's abstract reports "
    "78.39% on ImageNet without naming the configuration; not recorded as this variant's accuracy.",
)
def statten_8_768(**kwargs: Any) -> STAtten:
    """STAtten on ImageNet-1k images (224x224, T=4, 1000 classes), 66.34M parameters."""
    return _create(dict(_IMAGENET_ARCH, depth=8, embed_dim=768, num_classes=1000), kwargs)


_DVS10 = dict(input_kind="events", dataset="cifar10-dvs", num_classes=10, img_size=64, in_chans=2)


@register_model(
    **_COMMON_DVS, **_DVS10, default_T=10, official_config="statten/statten-2-256-cifar10-dvs-T10",
    official_params=2566794, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10-dvs/2_256_200E_t10_TET.yml: 64x64 frames, chunk 5, dvs_mode, trained with "
    "the TET loss (forward_timesteps gives per-step logits). " + _NO_ACC,
)
def statten_2_256_cifar10dvs_t10(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR10-DVS event frames (64x64, T=10, 10 classes), 2.57M parameters."""
    return _create(dict(_DVS_ARCH, num_classes=10, T=10, chunk_size=5), kwargs)


@register_model(
    **_COMMON_DVS, **_DVS10, default_T=16, official_config="statten/statten-2-256-cifar10-dvs-T16",
    official_params=2566794, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/cifar10-dvs/2_256_200E_t16_TET.yml: 64x64 frames, chunk 4, dvs_mode, TET loss. "
    + _NO_ACC,
)
def statten_2_256_cifar10dvs_t16(**kwargs: Any) -> STAtten:
    """STAtten on CIFAR10-DVS event frames (64x64, T=16, 10 classes), 2.57M parameters."""
    return _create(dict(_DVS_ARCH, num_classes=10, T=16, chunk_size=4), kwargs)


_NCAL = dict(input_kind="events", dataset="n-caltech101", num_classes=101, img_size=64, in_chans=2)


@register_model(
    **_COMMON_DVS, **_NCAL, default_T=10, official_config="statten/statten-2-256-ncaltech101-T10",
    official_params=2590181, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/ncaltech101/2_256_200E_t10.yml: 64x64 frames, chunk 5, dvs_mode, no TET. " + _NO_ACC,
)
def statten_2_256_ncaltech101_t10(**kwargs: Any) -> STAtten:
    """STAtten on N-Caltech101 event frames (64x64, T=10, 101 classes), 2.59M parameters."""
    return _create(dict(_DVS_ARCH, num_classes=101, T=10, chunk_size=5), kwargs)


@register_model(
    **_COMMON_DVS, **_NCAL, default_T=16, official_config="statten/statten-2-256-ncaltech101-T16",
    official_params=2590181, official_unused_params=2 * 64,
    notes=_UNUSED_NOTE + "conf/ncaltech101/2_256_200E_t16.yml: 64x64 frames, chunk 4, dvs_mode, no TET. " + _NO_ACC,
)
def statten_2_256_ncaltech101_t16(**kwargs: Any) -> STAtten:
    """STAtten on N-Caltech101 event frames (64x64, T=16, 101 classes), 2.59M parameters."""
    return _create(dict(_DVS_ARCH, num_classes=101, T=16, chunk_size=4), kwargs)
