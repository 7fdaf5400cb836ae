r"""Spike-TransCNN: a hybrid spiking Transformer + CNN for event-based object detection. **A reconstruction.**

"Spiking Transformer-CNN for Event-based Object Detection", ICLR 2025 submission (rejected; openreview zweyouirw7).
**The paper's code is not public** (the reviews say it was in the supplementary material, which is not available), so
nothing here is checked against an official model: it is our reading of the description in the spec
(``specs/table-models.md`` section 16: reviews and ablation digests). Every ambiguity and our reading follows.

Architecture (our reading)
--------------------------

Input: event frames ``[T, B, 2, H, W]`` (OFF / ON counts per time bin), H and W multiples of 32.

* **Stem** (SEW-ResNet style): conv 3x3 / 2 + BN + LIF, conv 3x3 / 2 + BN + LIF -> spikes at stride 4.
* **Four stages** at strides 4, 8, 16, 32 (a conv 3x3 / 2 + BN + LIF downsampling before stages 2-4), each of
  ``depths[i]`` :class:`TransCNNBlock`:

  - **STB** (spiking Transformer block) on the tokens: a Spikformer encoder block
    (:class:`~spiking_transformers.layers.residual.SpikformerBlock`: ``z = x + Attn(x)``, ``z + MLP(z)``, SEW
    shortcuts). Stages 1-2 use **STS** (spike-driven token selection,
    :class:`~spiking_transformers.layers.attention.sts.SpikeTokenSelection`: SSA on the most active tokens); stages
    3-4 plain **SSA**.
  - **SCB** (spiking CNN block, :class:`SpikingCNNBlock`): parallel conv 3x3 + BN and conv 5x5 + BN on the spikes,
    selected per time step and channel by **TCJA** weights (:class:`TCJA`), then LIF; SEW shortcut ``x + SCB(x)``.
  - **Intra-stage fusion**: SEW addition of the two branches, then conv 1x1 + BN + LIF (spikes out).
* **Inter-stage fusion** (:class:`TopDownFusion`): FPN top-down path from stride 32 to stride 4, lateral conv 1x1 +
  BN of each stage's spikes plus the nearest-upsampled coarser sum (real-valued, membrane-style additions).
* **Detection head** (:class:`FCOSHead`): FCOS-style, anchor-free, one level at stride 4: LIF, ``head_convs`` x
  (conv 3x3 + BN + LIF), then a 1x1 conv to ``K`` class logits, 4 box distances (left, top, right, bottom) and 1
  centre-ness logit, averaged over T. :meth:`SpikeTransCNN.forward` returns this raw map ``[B, K + 5, H/4, W/4]``;
  :func:`spiking_transformers.detection.decode_detections` turns it into boxes.

Ambiguities and our readings
----------------------------

1. *STS rule*: not given. A token's score is its spike count over time and channels; the top ``sts_keep`` fraction
   (0.5) is kept, the same tokens at every step; dropped tokens get no attention output (shortcut only).
2. *SCB kernels and selection*: "multi-scale local convolutions (e.g. parallel 3x3 / 5x5) selected by TCJA". We use
   exactly 3x3 and 5x5, and a selective-kernel gate: ``a = TCJA(U3 + U5)`` in (0, 1) per (t, b, c), output
   ``LIF(a U3 + (1 - a) U5)``.
3. *TCJA* (Zhu et al., TCJA-SNN): squeeze by spatial mean to ``[B, T, C]``; one 1-D conv across channels with the T
   steps as its channels (kernel ``tcja_kernel``), one 1-D conv across time with the C channels as its channels (same
   kernel); the gate is the sigmoid of their product. Its temporal conv has T input channels, so the model is tied
   to its ``T`` (another T raises).
4. *Fusion*: "SEW addition followed by a 1x1 conv" (spec 16.7): ``LIF(BN(conv1x1(STB(x) + (x + SCB(x)))))``; both
   branches keep their own shortcut, so the block's input reaches the fusion twice.
5. *Inter-stage fusion*: "fusion across scales" without details: FPN top-down sums (real-valued); the head reads
   spikes of the finest (stride 4) sum.
6. *Head*: "not described in the sources". We use an FCOS-style single-level anchor-free head (class focal loss,
   GIoU box loss, centre-ness BCE; see :mod:`spiking_transformers.detection.losses`); box distances are
   ``exp(r) * stride`` with ``r`` clamped to [-8, 8].
7. *Input*: the paper's Gen1 representation is not given; we take ``T`` time bins of ON/OFF counts (the Gen1 reader
   bins a 50 ms window before each label into ``T = 5`` frames).
8. *Paper size*: no configuration was retrieved; a reviewer says about 2x SFOD's parameters. Our ``gen1``
   configuration (widths 64-128-256-512, depths 1-1-2-1) is our choice, not the paper's.

Neurons are the library's LIF (tau 2, threshold 1, hard reset; attention neurons 0.5).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.attention import map_to_tokens, tokens_to_map
from ..layers.attention.sts import SpikeTokenSelection
from ..layers.attention.ssa import SpikingSelfAttention
from ..layers.ops import folded, folded_bn_spike
from ..layers.residual import SpikformerBlock
from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ._registry import ModelInfo, Paper, register_model

__all__ = [
    "SpikeTransCNN",
    "TransCNNBlock",
    "SpikingCNNBlock",
    "TCJA",
    "TopDownFusion",
    "FCOSHead",
    "SPIKE_TRANSCNN_PAPER",
    "SPIKE_TRANSCNN_GEN1_KWARGS",
    "SPIKE_TRANSCNN_TINY_KWARGS",
    "spike_transcnn_gen1",
]

SPIKE_TRANSCNN_PAPER = Paper(
    title="Spiking Transformer-CNN for Event-based Object Detection (ICLR 2025 submission, openreview zweyouirw7)",
    venue="ICLR (submission)",
    year=2025,
    repo=None,
    commit=None,
)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)


class TCJA(nn.Module):
    """Temporal-channel joint attention gate (TCJA-SNN's reading, see ambiguity 3 of the module docstring).

    Args:
        T: time steps (the temporal conv's channels).
        channels: C (the channel conv's channels).
        kernel: 1-D kernel size of both convs (odd).

    Shape: ``x: [T, B, C, H, W]`` -> gate ``[T, B, C, 1, 1]`` in (0, 1).
    """

    def __init__(self, T: int, channels: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"TCJA kernel must be a positive odd number, got {kernel}")
        self.T = int(T)
        self.conv_t = nn.Conv1d(T, T, kernel, padding=kernel // 2, bias=False)  # across C, time steps as channels
        self.conv_c = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, bias=False)  # across T

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] != self.T:
            raise ValueError(f"TCJA was built for T={self.T} time steps, got an input with T={x.shape[0]}")
        z = x.mean(dim=(3, 4)).permute(1, 0, 2)  # [B, T, C]
        a_t = self.conv_t(z)  # [B, T, C]
        a_c = self.conv_c(z.transpose(1, 2)).transpose(1, 2)  # [B, T, C]
        return torch.sigmoid(a_t * a_c).permute(1, 0, 2)[..., None, None]


class SpikingCNNBlock(nn.Module):
    """SCB: parallel conv 3x3 + BN and conv 5x5 + BN, a TCJA gate selecting between them, then LIF.

    Shape: ``x: [T, B, C, H, W]`` (spikes or small integers) -> spikes ``[T, B, C, H, W]`` (the branch only; the
    caller adds the shortcut).
    """

    def __init__(self, dim: int, T: int, *, tcja_kernel: int = 3, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER
                 ) -> None:
        super().__init__()
        self.conv3, self.bn3 = _conv_bn(dim, dim, 3)
        self.conv5, self.bn5 = _conv_bn(dim, dim, 5)
        self.tcja = TCJA(T, dim, tcja_kernel)
        self.lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        u3 = folded(x, self.conv3, self.bn3)
        u5 = folded(x, self.conv5, self.bn5)
        a = self.tcja(u3 + u5)
        return self.lif(u5 + a * (u3 - u5))  # a * u3 + (1 - a) * u5


class TransCNNBlock(nn.Module):
    """One block of a stage: STB and SCB in parallel, fused by SEW addition then conv 1x1 + BN + LIF.

    Args:
        dim: channels C.
        num_heads: attention heads.
        T: time steps (for TCJA).
        mlp_ratio: STB MLP width ratio.
        token_selection: use STS (True, stages 1-2) or plain SSA (False).
        sts_keep: kept token fraction of STS.
        attn_scale: SSA scale.
        tcja_kernel: TCJA kernel.
        spike_layer: neuron factory.

    Shape: ``x: [T, B, C, H, W]`` -> spikes ``[T, B, C, H, W]``.
    """

    def __init__(self, dim: int, num_heads: int, T: int, *, mlp_ratio: float = 4.0, token_selection: bool = False,
                 sts_keep: float = 0.5, attn_scale: float = 0.125, tcja_kernel: int = 3,
                 spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        if token_selection:
            attn, opts = SpikeTokenSelection, dict(keep_ratio=sts_keep, attn_scale=attn_scale)
        else:
            attn, opts = SpikingSelfAttention, dict(attn_scale=attn_scale, kv_first=True)
        self.stb = SpikformerBlock(dim, num_heads, mlp_ratio=mlp_ratio, attn_layer=attn, attn_options=opts,
                                   spike_layer=spike_layer)
        self.scb = SpikingCNNBlock(dim, T, tcja_kernel=tcja_kernel, spike_layer=spike_layer)
        self.fuse_conv, self.fuse_bn = _conv_bn(dim, dim, 1)
        self.fuse_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        t = tokens_to_map(self.stb(map_to_tokens(x), (H, W)), (H, W))  # integers (SEW)
        c = x + self.scb(x)  # SEW shortcut
        return folded_bn_spike(t + c, self.fuse_conv, self.fuse_bn, self.fuse_lif)


class TopDownFusion(nn.Module):
    """Inter-stage fusion: FPN top-down sums from the coarsest stage to the finest.

    ``p_3 = BN(conv1x1(o_3))``, ``p_i = BN(conv1x1(o_i)) + up2(p_{i+1})`` (nearest), output ``p_0``.

    Shape: stage spikes ``[T, B, C_i, H/2^i, W/2^i]`` (finest first) -> ``[T, B, D, H, W]`` (real-valued).
    """

    def __init__(self, in_dims: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList([nn.Sequential(*_conv_bn(c, dim, 1)) for c in in_dims])

    def forward(self, feats: list[Tensor]) -> Tensor:
        p = folded(feats[-1], self.lateral[-1])
        for i in range(len(feats) - 2, -1, -1):
            T, B = p.shape[:2]
            up = F.interpolate(p.flatten(0, 1), scale_factor=2.0, mode="nearest")
            p = folded(feats[i], self.lateral[i]) + up.reshape(T, B, *up.shape[1:])
        return p


class FCOSHead(nn.Module):
    """Single-level FCOS-style head: LIF, ``depth`` x (conv 3x3 + BN + LIF), conv 1x1 to ``K + 5``, mean over T.

    Output channels: ``[0, K)`` class logits, ``[K, K + 4)`` raw box distances (``exp`` taken at decoding),
    ``K + 4`` centre-ness logit. The class bias starts at ``-log((1 - p) / p)``, ``p = 0.01`` (RetinaNet's prior).

    Shape: ``[T, B, D, h, w]`` -> ``[B, K + 5, h, w]``.
    """

    def __init__(self, dim: int, num_classes: int, depth: int = 1, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER
                 ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_lif = spike_layer()
        self.convs = nn.ModuleList([nn.Conv2d(dim, dim, 3, 1, 1, bias=False) for _ in range(depth)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(dim) for _ in range(depth)])
        self.lifs = nn.ModuleList([spike_layer() for _ in range(depth)])
        self.pred = nn.Conv2d(dim, num_classes + 5, 1)
        with torch.no_grad():
            self.pred.bias.zero_()
            self.pred.bias[:num_classes] = -math.log(99.0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.in_lif(x)
        for conv, bn, lif in zip(self.convs, self.bns, self.lifs):
            h = folded_bn_spike(h, conv, bn, lif)
        return folded(h, self.pred).mean(0)


class SpikeTransCNN(nn.Module):
    """Spike-TransCNN detector (a reconstruction; see the module docstring for every reading).

    Args:
        num_classes: object classes K (2 for Gen1: car, pedestrian).
        img_size: ``(H, W)`` or an int (square) of the input frames, multiples of 32 (320 x 256: Gen1's 304 x 240
            padded).
        in_chans: input channels (2: OFF / ON counts).
        T: time bins.
        embed_dims: channels of the four stages.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        mlp_ratio: STB MLP ratio.
        sts_keep: kept token fraction of STS (stages 1-2).
        neck_dim: width of the fusion and head.
        head_convs: conv layers of the head tower.
        tcja_kernel: TCJA kernel.
        spike_layer: neuron factory or name (LIF).

    Shape: ``x: [T, B, C, H, W]`` -> raw head map ``[B, K + 5, H / 4, W / 4]`` (see :class:`FCOSHead`).
    """

    input_kind = "events"
    stride = 4

    def __init__(self, *, num_classes: int = 2, img_size: int | tuple[int, int] = (256, 320), in_chans: int = 2,
                 T: int = 5, embed_dims: tuple[int, int, int, int] = (64, 128, 256, 512),
                 depths: tuple[int, int, int, int] = (1, 1, 2, 1), num_heads: tuple[int, int, int, int] = (1, 2, 4, 8),
                 mlp_ratio: float = 4.0, sts_keep: float = 0.5, neck_dim: int = 128, head_convs: int = 2,
                 tcja_kernel: int = 3, spike_layer: str | SpikeFactory | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(embed_dims) != 4 or len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"embed_dims, depths and num_heads need 4 entries (one per stage), got "
                             f"{embed_dims}, {depths}, {num_heads}")
        for d, h in zip(embed_dims, num_heads):
            if d % h:
                raise ValueError(f"stage width {d} is not divisible by its {h} heads")
        H, W = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if H % 32 or W % 32:
            raise ValueError(f"img_size must be multiples of 32 (four stride-2 stages after the stride-4 stem), "
                             f"got {H}x{W}")
        sl = resolve_spike_layer(spike_layer)
        self.num_classes, self.in_chans, self.T = num_classes, in_chans, int(T)
        self.img_size = H if H == W else (H, W)
        c0 = embed_dims[0]
        self.stem_conv1, self.stem_bn1 = _conv_bn(in_chans, max(c0 // 2, 1), 3, 2)
        self.stem_lif1 = sl()
        self.stem_conv2, self.stem_bn2 = _conv_bn(max(c0 // 2, 1), c0, 3, 2)
        self.stem_lif2 = sl()
        self.down_convs = nn.ModuleList()
        self.down_bns = nn.ModuleList()
        self.down_lifs = nn.ModuleList()
        for i in range(1, 4):
            conv, bn = _conv_bn(embed_dims[i - 1], embed_dims[i], 3, 2)
            self.down_convs.append(conv)
            self.down_bns.append(bn)
            self.down_lifs.append(sl())
        self.stages = nn.ModuleList([
            nn.ModuleList([TransCNNBlock(embed_dims[i], num_heads[i], self.T, mlp_ratio=mlp_ratio,
                                         token_selection=i < 2, sts_keep=sts_keep, tcja_kernel=tcja_kernel,
                                         spike_layer=sl) for _ in range(depths[i])])
            for i in range(4)
        ])
        self.fusion = TopDownFusion(tuple(embed_dims), neck_dim)
        self.head = FCOSHead(neck_dim, num_classes, head_convs, sl)

    def expected_in_chans(self) -> int:
        return self.in_chans

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Stage outputs (spikes) ``[T, B, C_i, H / 2^(i+2), W / 2^(i+2)]``, i = 0..3."""
        self._check(x)
        h = folded_bn_spike(x, self.stem_conv1, self.stem_bn1, self.stem_lif1)
        h = folded_bn_spike(h, self.stem_conv2, self.stem_bn2, self.stem_lif2)
        feats = []
        for i, blocks in enumerate(self.stages):
            if i > 0:
                h = folded_bn_spike(h, self.down_convs[i - 1], self.down_bns[i - 1], self.down_lifs[i - 1])
            for blk in blocks:
                h = blk(h)
            feats.append(h)
        return feats

    def forward(self, x: Tensor) -> Tensor:
        """Event frames ``[T, B, C, H, W]`` -> raw head map ``[B, K + 5, H / 4, W / 4]``."""
        return self.head(self.fusion(self.forward_features(x)))

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"SpikeTransCNN takes time-major event frames [T, B, C, H, W], got {shape}")
        T, _, C, H, W = x.shape
        if T != self.T:
            raise ValueError(f"SpikeTransCNN was built for T={self.T} time bins (TCJA's temporal conv), got T={T}")
        if C != self.in_chans:
            raise ValueError(f"SpikeTransCNN expects {self.in_chans} input channels, got {C} (shape {tuple(x.shape)})")
        if H % 32 or W % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {H}x{W}")


# --------------------------------------------------------------------------------------------------------------------
# Configurations

# Gen1 (304 x 240 padded to 320 x 256, 2 classes, T = 5 bins of 10 ms): our choice of size (no configuration was
# retrieved; see ambiguity 8).
SPIKE_TRANSCNN_GEN1_KWARGS: dict[str, Any] = dict(
    num_classes=2, img_size=(256, 320), in_chans=2, T=5, embed_dims=(64, 128, 256, 512), depths=(1, 1, 2, 1),
    num_heads=(1, 2, 4, 8), mlp_ratio=4.0, sts_keep=0.5, neck_dim=128, head_convs=2,
)
# A small instance of the same architecture (synthetic 64 x 64 set, 3 classes, T = 4) for tests and CPU runs.
SPIKE_TRANSCNN_TINY_KWARGS: dict[str, Any] = dict(
    num_classes=3, img_size=64, in_chans=2, T=4, embed_dims=(16, 32, 64, 64), depths=(1, 1, 1, 1),
    num_heads=(1, 2, 2, 4), mlp_ratio=2.0, sts_keep=0.5, neck_dim=64, head_convs=2,
)

_GEN1_INFO: dict[str, Any] = dict(
    family="spike_transcnn", paper=SPIKE_TRANSCNN_PAPER, lineage="spikformer", spike_driven=False, default_T=5,
    input_kind="events", dataset="gen1", num_classes=2, img_size=(256, 320), in_chans=2,
    tiny_overrides=dict(SPIKE_TRANSCNN_TINY_KWARGS),
    notes="RECONSTRUCTION: the paper's code is not public (ICLR 2025 submission, openreview zweyouirw7), so "
    "no official reference exists and nothing is parity-checked. Detection model: output the raw FCOS-style "
    "head map [B, K+5, H/4, W/4] (class logits, exp-encoded box distances, centre-ness); decode with "
    "spiking_transformers.detection.decode_detections. Our readings (module docstring): STS = SSA on the 50% "
    "tokens with most spikes (stages 1-2), SCB = 3x3/5x5 convs gated by TCJA, fusion = SEW add + 1x1 conv, "
    "FPN top-down inter-stage fusion, single-level FCOS head (the paper's head is not described), sizes our "
    "choice. Paper (reviews): Gen1 mAP 0.336 at 5.49 mJ, 1Mpx mAP 0.250.",
)  # fmt: skip


def spike_transcnn_gen1(**kwargs: Any) -> SpikeTransCNN:
    """Spike-TransCNN (reconstruction) at our Gen1 configuration (320 x 256 input, 2 classes, T = 5)."""
    return SpikeTransCNN(**{**SPIKE_TRANSCNN_GEN1_KWARGS, **kwargs})


# Registered with task="detection" so that the registry-wide classifier tests leave it out.
if "task" in ModelInfo.__dataclass_fields__:
    register_model(**_GEN1_INFO, task="detection")(spike_transcnn_gen1)
