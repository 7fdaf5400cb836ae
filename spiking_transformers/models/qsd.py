"""QSD-Transformer, the quantized spike-driven transformer (Qiu et al., ICLR 2025).

"Quantized Spike-driven Transformer", arXiv 2501.13492. Ported from bollossom/QSD-Transformer
``classification/models.py`` + ``quan_w.py`` (commit cd7338338eb2) and checked against the ``qsd_small`` fixture
(float64: exact spike counts, logits and gradients).

QSD is Meta-SpikeFormer (:class:`~spiking_transformers.models.sdt_v2.MetaSpikeFormer`) built with other
arguments, not another copy of its blocks:

* every neuron is the released IE-LIF (official ``Multispike``): stateless, ``floor(clamp(4x, 0, 4) + 0.5) / 4``
  (levels 0, 1/4, ..., 1); the attention neuron divides by 2 instead (levels 0, 1/2, ..., 2);
* attention scale 0.25 (V2: 0.125);
* per-channel layer scales (init 1e-6) on both branches of every transformer block;
* every Conv2d/Conv1d/Linear, the 7x7 encoding conv and the classifier included, has 4-bit per-output-channel
  LSQ weights (:mod:`spiking_transformers.layers.quant`); BatchNorms stay full precision;
* block counts ``int(0.75 depth)`` + ``int(0.25 depth)``; the head reads the IE-LIF spikes of the token mean; no
  distillation head.

Readings and choices:

* The neurons are stateless, so ``T > 1`` repeats the same computation (the official default is 1).
* Step sizes are initialised at construction (per output channel, ``2 mean|w_c| / sqrt(7)``); the official code
  leaves them uninitialised until its first training step. Official checkpoints load exactly (alpha included).
* Parameter count: the LSQ step sizes are used by the forward and are counted; the ``ActLSQ`` dummies
  (``*.act.alpha``, ``*.act.zero_point``; their forward is the identity) are not built, so
  ``ours == official - params_unused_actlsq`` of ``param_counts.json``. The ``init_state``/``act.*`` buffers are
  dropped by the converter.
* The paper's IE-LIF "information enhancement" and its fine-grained distillation are not in the released code;
  the distillation loss is :mod:`spiking_transformers.training.distill` (our reading of the paper).
* Not spike-driven in the binary sense: activations are 4-level integers (spike-driven only after the
  integer-to-binary expansion over 4 virtual steps, :mod:`spiking_transformers.neurons.multispike`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

from torch import Tensor, nn

from ..layers.quant import LSQConv1d, LSQConv2d, LSQLinear, LSQWeightMixin, reset_step_sizes
from ..neurons.multispike import IELIF
from ._common import known_keys_converter, official_builder
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model
from .sdt_v2 import METAFORMER_KEY_PATTERNS, METAFORMER_OFFICIAL_KWARGS, MetaSpikeFormer, metaformer_official_args

__all__ = [
    "QSDTransformer",
    "QSD_PAPER",
    "build_official_qsd",
    "convert_qsd_key",
    "export_integer_weights",
    "dequantize_model",
]

QSD_PAPER = Paper(
    title="Quantized Spike-driven Transformer",
    venue="ICLR",
    year=2025,
    arxiv="2501.13492",
    repo="bollossom/QSD-Transformer",
    commit="cd7338338eb25eb8c396f0e9522bbcef23ae952b",
)


class QSDTransformer(MetaSpikeFormer):
    """QSD-Transformer classifier: Meta-SpikeFormer with IE-LIF neurons, 4-bit LSQ weights and layer scales.

    Args:
        num_classes, img_size, in_chans, T, embed_dim, num_heads, mlp_ratio: as :class:`MetaSpikeFormer`.
        depths: transformer blocks in stages 3 and 4 (official: ``int(0.75 d)``, ``int(0.25 d)`` of ``depths=d``).
        bits: weight bit width of every conv/linear layer (4).
        layer_scale_init: initial layer scale of the transformer branches (1e-6 officially).

    Shapes: input ``[B, C, H, W]`` or ``[T, B, C, H, W]``; logits ``[B, K]``.
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
        bits: int = 4,
        layer_scale_init: float = 1e-6,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            img_size=img_size,
            in_chans=in_chans,
            T=T,
            embed_dim=embed_dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            depths=depths,
            kd=False,
            attn_scale=0.25,
            layer_scale_init=layer_scale_init,
            spike_layer=IELIF,
            attn_spike_layer=partial(IELIF, norm=2.0),
            conv_layer=partial(LSQConv2d, bits=bits),
            conv1d_layer=partial(LSQConv1d, bits=bits),
            linear_layer=partial(LSQLinear, bits=bits),
        )
        self.bits = bits
        # The Linear initialisation re-drew the classifier's weights after its step size was set: derive it again.
        reset_step_sizes(self)


# --------------------------------------------------------------------------------------------------------------
# Integer export
# --------------------------------------------------------------------------------------------------------------


def export_integer_weights(model: nn.Module) -> dict[str, Tensor]:
    """Integer weights and their scales of every LSQ layer of ``model``.

    Returns:
        ``{f"{layer}.weight_int": int8 [C_out, ...] (signed, within the layer's bits),
        f"{layer}.weight_scale": [C_out] step sizes}``; ``weight_int * weight_scale`` (broadcast per output
        channel) is the weight the quantized model computes with. Everything else the model needs (biases,
        BatchNorms, layer scales) is in its ordinary ``state_dict``.
    """
    out: dict[str, Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, LSQWeightMixin):
            w_int, scale = module.integer_weight()
            out[f"{name}.weight_int"] = w_int
            out[f"{name}.weight_scale"] = scale
    return out


def _plain_twin(layer: nn.Module) -> nn.Module:
    # A plain conv/linear layer of the same geometry as an LSQ layer.
    if isinstance(layer, LSQConv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, layer.groups, layer.bias is not None)
    if isinstance(layer, LSQConv1d):
        return nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, layer.groups, layer.bias is not None)
    if isinstance(layer, LSQLinear):
        return nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
    raise TypeError(f"not an LSQ layer: {type(layer).__name__}")


def dequantize_model(model: nn.Module, integer_weights: dict[str, Tensor]) -> nn.Module:
    """Replace, in place, every LSQ layer of ``model`` by a plain layer whose weight is ``weight_int * weight_scale``
    from :func:`export_integer_weights` (biases kept). The result computes what the quantized model computes, with
    ordinary layers (e.g. for ONNX export). Returns ``model``."""
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, LSQWeightMixin)]
    for name, layer in targets:
        twin = _plain_twin(layer).to(device=layer.weight.device, dtype=layer.weight.dtype)
        w_int = integer_weights[f"{name}.weight_int"].to(layer.weight.dtype)
        scale = integer_weights[f"{name}.weight_scale"].to(layer.weight.dtype)
        twin.weight.data.copy_(w_int * scale.view(-1, *([1] * (w_int.dim() - 1))))
        if layer.bias is not None:
            twin.bias.data.copy_(layer.bias.detach())
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, twin)
    return model


# --------------------------------------------------------------------------------------------------------------
# Official interop (family "qsd": classification/models.py, class Spiking_vit_MetaFormer)
# --------------------------------------------------------------------------------------------------------------


@official_builder(METAFORMER_OFFICIAL_KWARGS)
def build_official_qsd(**official: Any) -> QSDTransformer:
    """Our model equal to QSD's official ``Spiking_vit_MetaFormer(**kwargs)`` (official defaults, which do not build
    there either). ``T`` is 1 after construction, as officially.

    Ignored, because the official forward never uses them: ``patch_size``, ``qkv_bias``, ``qk_scale`` (scale
    hard-coded 0.25), ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate`` (drop path was removed), ``norm_layer``
    (class or string), ``sr_ratios``; ``img_size_h``/``img_size_w`` only give the nominal ``img_size``.
    """
    kwargs, d = metaformer_official_args("qsd", **official)
    return QSDTransformer(**kwargs, depths=(int(d * 0.75), int(d * 0.25)))


# Official QSD key -> ours: the V2 keys (no ``head_kd``), identity; the unused quantizer state is dropped before this.
convert_qsd_key = known_keys_converter(METAFORMER_KEY_PATTERNS)


register_official_family(
    OfficialFamily(
        name="qsd",
        source="bollossom/QSD-Transformer classification/models.py Spiking_vit_MetaFormer @ cd7338338eb2",
        build=build_official_qsd,
        convert_key=convert_qsd_key,
        unused=(
            # ActLSQ of every quantized layer: parameters alpha, zero_point and buffers init_state, signed; its
            # forward returns the input unchanged.
            r".*\.act\.(alpha|zero_point|init_state|signed)",
            # The lazy-initialisation flag of the weight step sizes (ours are initialised at construction).
            r".*\.init_state",
        ),
    )
)


# --------------------------------------------------------------------------------------------------------------
# Registered variants (official factory spikformer_<depth>_<C2 or size>_CAFormer; named here by parameter count)
# --------------------------------------------------------------------------------------------------------------

_COMMON = dict(
    family="qsd",
    paper=QSD_PAPER,
    lineage="sdt_v2",
    spike_driven=False,
    default_T=1,
    input_kind="image",
    dataset="imagenet",
    num_classes=1000,
    img_size=224,
    in_chans=3,
    official_family="qsd",
    tiny_overrides=dict(embed_dim=(16, 32, 64, 80), num_heads=2, depths=(1, 1), img_size=32, num_classes=10),
)
_COUNT_NOTE = (
    " Parameter count: weights and LSQ step sizes; the official count also holds the unused ActLSQ alpha/zero_point"
    " (official_unused_params)."
)


def _create(embed_dim: tuple[int, int, int, int], depth: int, kwargs: dict[str, Any]) -> QSDTransformer:
    args = dict(embed_dim=embed_dim, num_heads=8, mlp_ratio=4, depths=(int(depth * 0.75), int(depth * 0.25)))
    return QSDTransformer(**{**args, **kwargs})


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_8_256_CAFormer",
    official_params=8_432_142,
    official_unused_params=63_094,
    notes="Official factory spikformer_8_256_CAFormer, widths [48,96,192,256] (8.34M float weights)." + _COUNT_NOTE,
)
def qsd_8m(**kwargs: Any) -> QSDTransformer:
    return _create((48, 96, 192, 256), 8, kwargs)


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_8_15M_CAFormer",
    official_params=15_245_862,
    official_unused_params=85_430,
    notes=(
        "Official factory spikformer_8_15M_CAFormer (defined twice, identically), widths [64,128,256,360]; the "
        "configuration of train.sh." + _COUNT_NOTE
    ),
)
def qsd_15m(**kwargs: Any) -> QSDTransformer:
    return _create((64, 128, 256, 360), 8, kwargs)


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_8_384_CAFormer",
    official_params=31_527_302,
    official_unused_params=123_942,
    notes="Official factory spikformer_8_384_CAFormer, widths [96,192,384,480]." + _COUNT_NOTE,
)
def qsd_31m(**kwargs: Any) -> QSDTransformer:
    return _create((96, 192, 384, 480), 8, kwargs)


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_8_512_CAFormer",
    official_params=55_607_830,
    official_unused_params=165_254,
    notes=(
        "Official factory spikformer_8_512_CAFormer, widths [128,256,512,640]. The abstract's 80.3% top-1 (with "
        "8.1x smaller model size) most likely belongs to this size (inferred, not stated)." + _COUNT_NOTE
    ),
)
def qsd_55m(**kwargs: Any) -> QSDTransformer:
    return _create((128, 256, 512, 640), 8, kwargs)


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_12_512_CAFormer",
    official_params=75_022_870,
    official_unused_params=239_238,
    notes="Official factory spikformer_12_512_CAFormer: widths [128,256,512,640], 9 + 3 blocks." + _COUNT_NOTE,
)
def qsd_75m(**kwargs: Any) -> QSDTransformer:
    return _create((128, 256, 512, 640), 12, kwargs)


@register_model(
    **_COMMON,
    official_config="qsd_transformer/spikformer_8_768_CAFormer",
    official_params=124_127_030,
    official_unused_params=247_878,
    notes="Official factory spikformer_8_768_CAFormer, widths [192,384,768,960]." + _COUNT_NOTE,
)
def qsd_124m(**kwargs: Any) -> QSDTransformer:
    return _create((192, 384, 768, 960), 8, kwargs)
