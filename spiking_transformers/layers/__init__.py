"""Building blocks shared by many model families, one file per concern.

Shape legend (see :mod:`._shapes`): ``T`` time, ``B`` batch, ``N`` tokens, ``C`` channels, ``H, W`` spatial size,
``h`` heads, ``d`` channels per head. Token tensors are ``[T, B, N, C]``; feature maps are ``[T, B, C, H, W]``.

* :mod:`._shapes`: folding time into batch, :class:`TimeDistributed`, the direct encoding.
* :mod:`.ops`: :func:`folded` (stateless layers over folded time), the fused Linear/Conv -> BN -> neuron chains, the
  channel-major head split.
* :mod:`.tokenizers`: SPS (Spikformer), MS-SPS (SDT V1), the Meta-SpikeFormer conv stem.
* :mod:`.attention`: the attention registry and one file per attention family, all under one contract
  (``cls(dim, num_heads, *, spike_layer=..., **options)``, tokens ``[T, B, N, C]`` -> ``[T, B, N, C]``).
* :mod:`.mlp`: the channel MLPs. :mod:`.conv`: RepConv / SepConv of the V2 lineage.
* :mod:`.residual`: the encoder blocks by residual style (SEW, membrane shortcut, Meta-SpikeFormer's).
* :mod:`.quant`: LSQ weight-quantized conv / linear layers (QSD-Transformer).

A block lives here once two families use it, in its family's file otherwise (``CONTRIBUTING.md``). The neuron-factory
type of every ``spike_layer`` argument is :data:`spiking_transformers.neurons.SpikeFactory` (``SpikeLayer`` is the
same object under its older name).
"""

from ..neurons import SpikeFactory, resolve_spike_layer
from ._shapes import TimeDistributed, batch_axis, fold_time, repeat_over_time, unfold_time
from .attention import (
    ATTN_V_THRESHOLD,
    SDSA,
    QKChannelAttention,
    QKTokenAttention,
    SpatioTemporalAttention,
    SpikeDrivenSelfAttention,
    SpikingSelfAttention,
    attend,
)
from .attention.qk import PointwiseProjections
from .attention.sdsa import Erode, SDTProjections
from .attention.sdsa_v2 import MSAttentionRepConv
from .conv import BNAndPad, ConvFactory, RepConv, SepConv
from .mlp import MSMLP, MSMlp, SpikingMlp
from .ops import folded, folded_bn_spike, linear_bn_spike, merge_heads, split_heads
from .quant import (
    LSQConv1d,
    LSQConv2d,
    LSQLinear,
    LSQWeightMixin,
    lsq_fake_quantize,
    lsq_levels,
    reset_step_sizes,
)
from .residual import MSBlock, MSConvBlock, MSTransformerBlock, SpikformerBlock
from .tokenizers import MSSPS, MSDownsampling, SpikingPatchSplitting, SPSStages

# The older name of the neuron-factory type (one type, two names while family files move over).
SpikeLayer = SpikeFactory

__all__ = [
    # layout
    "TimeDistributed",
    "fold_time",
    "unfold_time",
    "repeat_over_time",
    "batch_axis",
    "folded",
    "split_heads",
    "merge_heads",
    "linear_bn_spike",
    "folded_bn_spike",
    # neurons
    "SpikeFactory",
    "SpikeLayer",
    "resolve_spike_layer",
    # tokenizers
    "SPSStages",
    "SpikingPatchSplitting",
    "MSSPS",
    "MSDownsampling",
    # attention
    "ATTN_V_THRESHOLD",
    "attend",
    "SpikingSelfAttention",
    "Erode",
    "SDTProjections",
    "SpikeDrivenSelfAttention",
    "SDSA",
    "SpatioTemporalAttention",
    "PointwiseProjections",
    "QKTokenAttention",
    "QKChannelAttention",
    "MSAttentionRepConv",
    # MLPs, convs, blocks
    "SpikingMlp",
    "MSMLP",
    "MSMlp",
    "ConvFactory",
    "BNAndPad",
    "RepConv",
    "SepConv",
    "SpikformerBlock",
    "MSBlock",
    "MSConvBlock",
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
