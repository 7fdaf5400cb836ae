"""Building blocks shared by many model families.

Shape legend (see :mod:`._shapes`): ``T`` time, ``B`` batch, ``N`` tokens, ``C`` channels, ``H, W`` spatial size,
``h`` heads, ``d`` channels per head. Token tensors are ``[T, B, N, C]``; feature maps are ``[T, B, C, H, W]``.

* :mod:`._shapes`: folding time into batch, :class:`TimeDistributed`, the direct encoding.
* :mod:`.ops`: :func:`folded` (stateless layers over folded time), the channel-major head split.
* :mod:`.spikformer_blocks`: Spikformer's SPS tokenizer, spiking self-attention, MLP and SEW block (the lineage's root:
  the neuron-factory type :data:`SpikeLayer` and the attention threshold live here).
* :mod:`.sdt_blocks`: SDT V1's MS-SPS, spike-driven self-attention, MS MLP and block (shared with STAtten).
* :mod:`.qk_attention`: QKFormer's Q-K token and channel attention.
* :mod:`.metaformer`: Meta-SpikeFormer's (SDT V2) conv and transformer blocks (shared with QSD-Transformer).
* :mod:`.quant`: LSQ weight-quantized conv / linear layers (QSD-Transformer).
"""

from ._shapes import TimeDistributed, fold_time, repeat_over_time, unfold_time
from .metaformer import (
    BNAndPad,
    ConvFactory,
    MSAttentionRepConv,
    MSConvBlock,
    MSDownsampling,
    MSMlp,
    MSTransformerBlock,
    RepConv,
    SepConv,
    SpikeFactory,
)
from .ops import folded, merge_heads, split_heads
from .qk_attention import PointwiseProjections, QKChannelAttention, QKTokenAttention
from .quant import (
    LSQConv1d,
    LSQConv2d,
    LSQLinear,
    LSQWeightMixin,
    lsq_fake_quantize,
    lsq_levels,
    reset_step_sizes,
)
from .sdt_blocks import MSMLP, MSSPS, Erode, MSBlock, SDTProjections, SpikeDrivenSelfAttention, resolve_spike_layer
from .spikformer_blocks import (
    ATTN_V_THRESHOLD,
    SpikeLayer,
    SpikformerBlock,
    SpikingMlp,
    SpikingPatchSplitting,
    SpikingSelfAttention,
    SPSStages,
    folded_bn_spike,
    linear_bn_spike,
)

__all__ = [
    # layout
    "TimeDistributed",
    "fold_time",
    "unfold_time",
    "repeat_over_time",
    "folded",
    "split_heads",
    "merge_heads",
    # Spikformer
    "SpikeLayer",
    "ATTN_V_THRESHOLD",
    "SPSStages",
    "SpikingPatchSplitting",
    "SpikingSelfAttention",
    "SpikingMlp",
    "SpikformerBlock",
    "linear_bn_spike",
    "folded_bn_spike",
    # SDT V1 / STAtten
    "resolve_spike_layer",
    "Erode",
    "MSSPS",
    "SDTProjections",
    "SpikeDrivenSelfAttention",
    "MSMLP",
    "MSBlock",
    # QKFormer
    "PointwiseProjections",
    "QKTokenAttention",
    "QKChannelAttention",
    # Meta-SpikeFormer (SDT V2) / QSD-Transformer
    "SpikeFactory",
    "ConvFactory",
    "BNAndPad",
    "RepConv",
    "SepConv",
    "MSConvBlock",
    "MSDownsampling",
    "MSAttentionRepConv",
    "MSMlp",
    "MSTransformerBlock",
    # LSQ weight quantization (QSD-Transformer)
    "LSQWeightMixin",
    "LSQConv2d",
    "LSQConv1d",
    "LSQLinear",
    "lsq_fake_quantize",
    "lsq_levels",
    "reset_step_sizes",
]
