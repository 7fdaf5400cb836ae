"""STNet: spiking transformers for event-based single-object tracking.

"Spiking Transformers for Event-Based Single Object Tracking", Zhang et al., CVPR 2022.
Upstream: https://github.com/Jee-King/CVPR2022_STNet (a SiamFC++ / video_analyst fork: ``videoanalyst/model/...``
``backbone/backbone_impl/snn3.py`` (SNN3), ``transfor/transfor_impl/swin_transformer.py`` (SwinTransformer),
``attention/attention_impl/interatten.py`` (Interatten), ``task_head/taskhead_impl/track_head.py`` (DenseboxHead),
``task_model/taskmodel_impl/siamese_track.py`` (SiamTrack)), checked against commit
221ab60c4fccfce5a03e8878fb168e0baa7152f4 with the official fixture ``stnet_small`` (wave 2).

STNet is a hybrid Siamese tracker. Per call (the template, then every search frame) it sees ``T_e = 5`` event frames
of each polarity, 3 channels each, raw 0..255 values:

* **Spatial branch** (ordinary, non-spiking): a 1x1 conv of the 10 concatenated frames (30 -> 3 channels), a bilinear
  resize (``align_corners=True``) to ``pretrain_img_size``, a 2-stage Swin transformer, LayerNorm of the last stage,
  then conv 3x3 (no padding) + BN + ReLU (``conv8``): ``F_s``. The template also passes a 13x13 stride-2 conv + BN +
  ReLU (``conv33_11``) so that it matches the template's SNN map.
* **Temporal branch** (spiking, :class:`STNetSNN`): three conv (stride 2, no padding) + :class:`STNetNeuron` layers
  on ``x_t = max(pos_t, neg_t)``; the feature is ``ReLU(BN(mean_t U3_t))``, the mean **membrane** of layer 3. The
  neuron state is carried from one search frame to the next and starts at rest for the template and the first frame.
* **Dynamic threshold** (:func:`entropy_threshold`): one scalar per call, from the entropy of the Swin feature.
* **Fusion** (:class:`Interatten`): channel attention on ``F_t`` (TA), a sigmoid-gated sum ``F_s + w * F_t`` (CI),
  token attention (SA).
* **SiamFC++ head** (:class:`DenseboxHead`): depthwise cross-correlation of template and search features, two towers
  of 3x3 convs, classification / centre-ness scores and ``exp``-encoded box offsets decoded on a fixed grid.

Readings of the official code (every one reproduced; the fixture checks them):
    * The neuron: ``U_t = 0.2 * U_{t-1} * (1 - S_{t-1}) + I_t``, ``S_t = [U_t > theta]`` (strict), hard reset by the
      factor ``(1 - S)`` whose gradient is **not** detached; surrogate ``1[|U - theta| < 0.5]``.
    * Float32 spikes: the official spikes are float32 tensors (``gt().float()``) even in a float64 model, so every
      gradient reaching a spike is rounded to float32 (separately for each use: the next conv and the reset), and
      the surrogate multiplies in float32. ``float32_spike_grad=True`` (default) rounds at the same places; the
      forward values are exact 0/1 in the compute dtype either way.
    * The threshold lives in a module-level global upstream; ``ActFun.backward`` reads it at backward time, so every
      neuron of a forward/backward pass uses the window of the **last** call's threshold. We pass the threshold
      explicitly; ``shared_backward_threshold=True`` (default) reproduces the upstream gradients by giving every
      call of one :meth:`STNet.forward` one :class:`ThresholdCell` that each call overwrites. With ``False`` each
      neuron's surrogate uses its own call's threshold (what the paper describes).
    * No gradient flows into the threshold (upstream it is a Python global, not an input of the spike function).
    * Swin: only the last stage is used (after its LayerNorm, ``norm{last}``); ``norm0`` is computed upstream and
      discarded, so it is not built here. Inside a window, zero-padded tokens are attended to like any other token
      (the detection-style Swin the repository copies); the shifted-window mask is -100 / 0.
    * The head decodes boxes on the grid ``fm_ctr`` built from the constructor's ``x_size`` / ``score_size`` (not from
      the input), unless ``input_size_adapt``; it is not in the state dict.
    * ``SNN3.fuse_snn_transfor``, ``SNN3.thre_w`` (the weight / bias of ``SpatialGroupEnhance``),
      ``Interatten.conv_cat`` and ``SwinTransformer.norm0`` are built upstream and never used: not built here,
      dropped by the converter.

Input layout (the official one, and what :meth:`STNet.forward` takes): template ``z_pos, z_neg: [T_e, B, 3, h, w]``;
search ``x_pos, x_neg: [F, T_e, B, 3, H, W]`` (F consecutive search frames). Sizes must satisfy: search SNN map
``== P/8 - 2`` (the Swin map after ``conv8``), template SNN map ``== (P/8 - 2 - 13)//2 + 1``; the official 303 / 127
with ``P = 280`` give 33 and 11.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.windows import relative_position_index, shifted_window_mask
from ..layers.windows import window_partition as _window_partition
from ..layers.windows import window_reverse as _window_reverse
from ..neurons import Neuron
from ._official import OfficialFamily, register_official_family
from ._registry import ModelInfo, Paper, register_model

__all__ = [
    "STNET_PAPER",
    "ThresholdCell",
    "STNetNeuron",
    "entropy_threshold",
    "STNetSNN",
    "SwinTransformer",
    "Interatten",
    "DenseboxHead",
    "STNet",
    "build_official",
    "convert_official_key",
    "snn_out_size",
]

STNET_PAPER = Paper(
    title="Spiking Transformers for Event-Based Single Object Tracking",
    venue="CVPR",
    year=2022,
    repo="Jee-King/CVPR2022_STNet",
    commit="221ab60c4fccfce5a03e8878fb168e0baa7152f4",
)

DECAY = 0.2  # membrane decay of the STNet neuron
SURROGATE_HALF_WIDTH = 0.5  # the surrogate passes gradient where |U - theta| < 0.5
THRESHOLD_SCALE = 0.3  # theta = 0.3 * SpatialGroupEnhance(F_s)
DEFAULT_THRESHOLD = 0.3  # theta when no transformer feature is given


# --------------------------------------------------------------------------------------------------------------------
# The spiking neuron


@dataclass
class ThresholdCell:
    """The threshold the surrogate reads at **backward** time (upstream: a module global).

    One cell shared by several calls, each writing its threshold into it, reproduces the official gradients: after
    the forward the cell holds the last call's value and every neuron's backward uses it.
    """

    value: Tensor | float = DEFAULT_THRESHOLD


def _round_to_float32(grad: Tensor) -> Tensor:
    return grad.to(torch.float32).to(grad.dtype) if grad.dtype != torch.float32 else grad


class _Float32Grad(torch.autograd.Function):
    """Identity forward; the backward rounds the gradient to float32 (a float32 tensor's gradient upstream)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _round_to_float32(grad)


class _STNetSpike(torch.autograd.Function):
    """``S = [U > theta]``; backward ``grad * 1[|U - theta_b| < 0.5]`` with ``theta_b`` read from a cell."""

    @staticmethod
    def forward(ctx: Any, mem: Tensor, threshold: Tensor, cell: ThresholdCell, f32: bool) -> Tensor:
        ctx.save_for_backward(mem)
        ctx.cell, ctx.f32 = cell, f32
        return (mem > threshold).to(mem.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (mem,) = ctx.saved_tensors
        thr = ctx.cell.value
        window = (mem - thr).abs() < SURROGATE_HALF_WIDTH
        if ctx.f32:  # upstream: float32 grad times float32 mask, then cast back to the membrane's dtype
            return (grad.to(torch.float32) * window.to(torch.float32)).to(grad.dtype), None, None, None
        return grad * window.to(grad.dtype), None, None, None


def float32_grad(x: Tensor, enabled: bool = True) -> Tensor:
    """``x`` unchanged; its gradient is rounded to float32 when ``enabled`` (a no-op for float32 ``x``)."""
    return _Float32Grad.apply(x) if enabled and x.dtype != torch.float32 else x


class STNetNeuron(Neuron):
    """STNet's explicit-state LIF neuron over the time axis (upstream ``snn3.mem_update`` with ``ActFun``).

    ``U_t = 0.2 * U_{t-1} * (1 - S_{t-1}) + I_t``, ``S_t = [U_t > theta]``; the reset factor keeps its gradient.
    The state ``(U_0, S_0)`` comes in and goes out explicitly (the tracker carries it across search frames).

    Args:
        float32_spike_grad: round every gradient reaching a spike to float32, as the official float32 spikes do.
    """

    def __init__(self, float32_spike_grad: bool = True) -> None:
        super().__init__()
        self.float32_spike_grad = float32_spike_grad

    def forward(
        self,
        current: Tensor,
        mem: Tensor | None = None,
        spike: Tensor | None = None,
        *,
        threshold: Tensor | float = DEFAULT_THRESHOLD,
        cell: ThresholdCell | None = None,
        membranes: list[Tensor] | None = None,
    ) -> Tensor:
        """Run the neuron over ``T`` steps.

        Args:
            current: input current ``[T, B, ...]``.
            mem, spike: state before the first step ``[B, ...]`` (``None``: at rest, zeros).
            threshold: firing threshold (a float or a 0-d tensor; no gradient flows into it).
            cell: where the backward reads its threshold (``None``: a private cell holding ``threshold``).
            membranes: if given, the membrane ``[B, ...]`` of every step is appended to it (the caller needs them
                for the mean-membrane readout and the carried state; the module's output stays the spikes).

        Returns:
            spikes ``[T, B, ...]``, exact 0.0 / 1.0 in ``current``'s dtype.
        """
        if current.dim() < 2 or current.shape[0] == 0:
            raise ValueError(f"STNetNeuron input must be time-major [T, B, ...], got shape {tuple(current.shape)}")
        if isinstance(threshold, Tensor):
            threshold = threshold.detach()
        else:
            threshold = torch.tensor(float(threshold), dtype=current.dtype, device=current.device)
        if cell is None:
            cell = ThresholdCell(threshold)
        f32 = self.float32_spike_grad
        u: Tensor | float = 0.0 if mem is None else mem
        s: Tensor | float = 0.0 if spike is None else spike
        spikes = []
        for t in range(current.shape[0]):
            # same float order as upstream: (U * 0.2) * (1 - S) + I
            keep = 1.0 - (float32_grad(s, f32) if isinstance(s, Tensor) else s)
            u = u * DECAY * keep + current[t]
            s = _STNetSpike.apply(u, threshold, cell, f32)
            spikes.append(s)
            if membranes is not None:
                membranes.append(u)
        return torch.stack(spikes)


# --------------------------------------------------------------------------------------------------------------------
# Temporal (SNN) branch and its dynamic threshold


def entropy_threshold(feature: Tensor) -> Tensor:
    """STNet's dynamic threshold ``theta = 0.3 * (mean sigmoid(x_n) + 10 * H / #non-empty bins)`` (no gradient).

    ``x_n`` is the channel mean of ``F * GAP(F)`` (``[B, 1, H, W]``); ``H`` the entropy of a 256-bin histogram of the
    batch-mean ``x_n`` map min-max normalised to 0..255 (upstream ``SpatialGroupEnhance``). One scalar per call for
    the whole batch.

    Args:
        feature: Swin feature ``F_s`` ``[B, C, H, W]``.

    Returns:
        0-d tensor.
    """
    with torch.no_grad():
        xn = (feature * F.adaptive_avg_pool2d(feature, 1)).mean(dim=1, keepdim=True)
        ent = xn.mean(dim=0).reshape(xn.shape[-2], xn.shape[-1])
        h, w = ent.shape
        ent = ent.reshape(-1)
        lo, hi = ent.min(), ent.max()
        ent = (ent - lo) / (hi - lo) * 255
        hist = torch.histc(ent, bins=256, min=0, max=255) / (h * w)
        entropy = torch.sum(hist * -torch.log(hist + 1e-8)) / torch.count_nonzero(hist)
        return (torch.sigmoid(xn).mean() + entropy * 10) * THRESHOLD_SCALE


def snn_out_size(size: int, kernels: Sequence[int] = (11, 9, 5), stride: int = 2) -> list[int]:
    """Spatial sizes after each SNN conv (no padding): ``snn_out_size(303) == [147, 70, 33]``."""
    out = []
    for k in kernels:
        size = (size - k) // stride + 1
        out.append(size)
    return out


SNN_KERNELS = (11, 9, 5)


class STNetSNN(nn.Module):
    """The temporal branch (upstream ``SNN3``): three conv + :class:`STNetNeuron` layers and the readouts.

    Args:
        channels: output channels of the three convs (official ``(64, 128, 256)``); the last is the feature width C.
        in_chans: channels of one event frame (3).
        float32_spike_grad: see :class:`STNetNeuron`.

    State: a list ``[U1, S1, U2, S2, U3, S3]`` of ``[B, C_k, H_k, W_k]`` tensors (upstream ``snn_state``).
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256), in_chans: int = 3, float32_spike_grad: bool = True):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"STNet's SNN has 3 conv layers; channels must have 3 entries, got {list(channels)}")
        c1, c2, c3 = (int(c) for c in channels)
        self.channels = (c1, c2, c3)
        self.conv1 = nn.Conv2d(in_chans, c1, kernel_size=SNN_KERNELS[0], stride=2, padding=0)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=SNN_KERNELS[1], stride=2, padding=0)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=SNN_KERNELS[2], stride=2, padding=0)
        self.neuron1 = STNetNeuron(float32_spike_grad)
        self.neuron2 = STNetNeuron(float32_spike_grad)
        self.neuron3 = STNetNeuron(float32_spike_grad)
        self.bn_tem = nn.BatchNorm2d(c3)
        self.conv33_11 = nn.Conv2d(c3, c3, kernel_size=13, stride=2, padding=0)
        self.bn_spa = nn.BatchNorm2d(c3)
        self.float32_spike_grad = float32_spike_grad

    @staticmethod
    def _conv_steps(conv: nn.Conv2d, x: Tensor) -> Tensor:
        """A conv applied to every step: ``[T, B, C, H, W] -> [T, B, C', H', W']``."""
        T, B = x.shape[:2]
        y = conv(x.flatten(0, 1))
        return y.view(T, B, *y.shape[1:])

    def forward(
        self,
        events: Tensor,
        state: Sequence[Tensor | None] | None,
        spatial: Tensor | None,
        *,
        template: bool,
        cell: ThresholdCell | None = None,
    ) -> tuple[Tensor, Tensor | None, list[Tensor]]:
        """One call (template or one search frame).

        Args:
            events: ``x_t = max(pos_t, neg_t)`` frames ``[T_e, B, 3, H, W]``.
            state: ``[U1, S1, U2, S2, U3, S3]`` before the first step (``None`` or ``None`` entries: at rest).
            spatial: the Swin feature ``F_s`` ``[B, C, h, w]`` (sets the threshold), or ``None`` (threshold 0.3).
            template: also map ``F_s`` through ``conv33_11`` + BN + ReLU (the template call).
            cell: threshold cell the surrogate reads at backward time; this call writes its threshold into it.

        Returns:
            ``(F_t, F_s', state')``: temporal feature ``ReLU(BN(mean_t U3_t))`` ``[B, C, h, w]``, the spatial feature
            (through ``conv33_11`` for the template, else ``spatial`` itself) and the state after the last step.
        """
        thr = entropy_threshold(spatial) if spatial is not None else DEFAULT_THRESHOLD
        if not isinstance(thr, Tensor):
            thr = torch.tensor(thr, dtype=events.dtype, device=events.device)
        if cell is None:
            cell = ThresholdCell()
        cell.value = thr
        state = list(state) if state is not None else [None] * 6
        if len(state) != 6:
            raise ValueError(f"SNN state must be [U1, S1, U2, S2, U3, S3], got {len(state)} tensors")
        f32 = self.float32_spike_grad
        x = events
        new_state: list[Tensor] = []
        mems3: list[Tensor] = []
        for k, (conv, neuron) in enumerate(((self.conv1, self.neuron1), (self.conv2, self.neuron2),
                                            (self.conv3, self.neuron3))):
            current = self._conv_steps(conv, float32_grad(x, f32) if k > 0 else x)
            mems: list[Tensor] = []
            x = neuron(current, state[2 * k], state[2 * k + 1], threshold=thr, cell=cell, membranes=mems)
            new_state += [mems[-1], x[-1]]
            if k == 2:
                mems3 = mems
        total = mems3[0]
        for m in mems3[1:]:
            total = total + m
        tem = F.relu(self.bn_tem(total / len(mems3)))
        spa = spatial
        if template:
            if spatial is None:
                raise ValueError("the template call needs the Swin feature (spatial) for conv33_11")
            spa = F.relu(self.bn_spa(self.conv33_11(spatial)))
        return tem, spa, new_state


# --------------------------------------------------------------------------------------------------------------------
# Spatial branch: the 2-stage Swin transformer of the official repository


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class WindowAttention(nn.Module):
    """Window self-attention with a relative-position bias table (Swin). ``[nW*B, N, C] -> [nW*B, N, C]``."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Swin stage width {dim} must be a multiple of its num_heads {num_heads}")
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        Bw, N, C = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(Bw, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.view(Bw // nW, nW, h, N, N) + mask.unsqueeze(1).unsqueeze(0)).view(-1, h, N, N)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(Bw, N, C)))


class SwinMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class SwinBlock(nn.Module):
    """One (shifted-)window Swin block on ``[B, H*W, C]`` tokens; the map is zero-padded to whole windows."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float,
                 qkv_bias: bool, qk_scale: float | None, drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.window_size, self.shift_size, self.drop_path = window_size, shift_size, drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, H: int, W: int, mask: Tensor) -> Tensor:
        B, L, C = x.shape
        ws, sh = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        pad_r, pad_b = (ws - W % ws) % ws, (ws - H % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = x.shape[1:3]
        if sh > 0:
            x = torch.roll(x, shifts=(-sh, -sh), dims=(1, 2))
        windows = _window_partition(x, ws).view(-1, ws * ws, C)
        windows = self.attn(windows, mask=mask if sh > 0 else None).view(-1, ws, ws, C)
        x = _window_reverse(windows, ws, Hp, Wp)
        if sh > 0:
            x = torch.roll(x, shifts=(sh, sh), dims=(1, 2))
        if pad_r > 0 or pad_b > 0:
            x = x[:, :H, :W, :].contiguous()
        x = shortcut + _drop_path(x.view(B, H * W, C), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchMerging(nn.Module):
    """2x2 patch merging: ``[B, H*W, C] -> [B, ceil(H/2)*ceil(W/2), 2C]`` (odd maps zero-padded)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, drop: float, attn_drop: float, drop_path: Sequence[float],
                 downsample: bool) -> None:
        super().__init__()
        self.window_size, self.shift_size = window_size, window_size // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias,
                      qk_scale, drop, attn_drop, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def _mask(self, H: int, W: int, device: torch.device) -> Tensor:
        """The shifted-window mask ``[nW, N, N]``: -100 between tokens of different regions, else 0 (float32)."""
        ws, sh = self.window_size, self.shift_size
        Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        return shifted_window_mask(Hp, Wp, ws, sh, device)

    def forward(self, x: Tensor, H: int, W: int) -> tuple[Tensor, Tensor | None, int, int]:
        mask = self._mask(H, W, x.device)
        for blk in self.blocks:
            x = blk(x, H, W, mask)
        if self.downsample is None:
            return x, None, H, W
        return x, self.downsample(x, H, W), (H + 1) // 2, (W + 1) // 2


class SwinTransformer(nn.Module):
    """STNet's spatial branch: ``convert_3`` (30 -> 3), bilinear resize to ``pretrain_img_size``, Swin, the last
    stage's LayerNorm, ``conv8`` (3x3, no pad) + BN + ReLU.

    Args mirror the official ``SwinTransformer``; ``out_dim`` is the width of ``conv8`` (official 256) and
    ``event_steps`` the frames per polarity that ``convert_3`` concatenates (official 5).

    Shape:
        ``pos, neg: [T_e, B, 3, H, W]`` -> ``F_s: [B, out_dim, P/(4*2^(L-1)) - 2, ...]``.
    """

    def __init__(self, *, pretrain_img_size: int = 224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2), num_heads: Sequence[int] = (3, 6), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2, ape: bool = False, patch_norm: bool = True,
                 out_indices: Sequence[int] = (0, 1), out_dim: int = 256, event_steps: int = 5) -> None:
        super().__init__()
        L = len(depths)
        if len(num_heads) != L:
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} must have the same length")
        if L < 1 or max(out_indices) != L - 1:
            # Upstream only the last stage listed in out_indices reaches conv8; later stages would run unused.
            raise NotImplementedError(
                f"out_indices {tuple(out_indices)} must end with the last stage ({L - 1}); other layouts are not ported"
            )
        if in_chans != 3:
            raise ValueError(f"in_chans must be 3 (convert_3 maps the event frames to 3 channels), got {in_chans}")
        self.pretrain_img_size = int(pretrain_img_size)
        self.patch_size = int(patch_size)
        self.event_steps = int(event_steps)
        self.num_features = [int(embed_dim * 2**i) for i in range(L)]
        self.convert_3 = nn.Conv2d(3 * 2 * self.event_steps, 3, kernel_size=1)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.patch_embed.norm = nn.LayerNorm(embed_dim) if patch_norm else None
        self.ape = ape
        if ape:
            res = self.pretrain_img_size // self.patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, res, res))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        # upstream: float32 linspace read back with .item() (built on the CPU so that meta-device construction works)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList(
            SwinStage(self.num_features[i], depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias, qk_scale,
                      drop_rate, attn_drop_rate, dpr[sum(depths[:i]):sum(depths[: i + 1])], downsample=i < L - 1)
            for i in range(L)
        )
        # Only the last stage's norm is used (upstream also builds norm{i} for the other out_indices and discards it).
        self.add_module(f"norm{L - 1}", nn.LayerNorm(self.num_features[-1]))
        self.conv8 = nn.Conv2d(self.num_features[-1], out_dim, kernel_size=3)
        self.bn = nn.BatchNorm2d(out_dim)

    def forward(self, pos: Tensor, neg: Tensor) -> Tensor:
        """``pos, neg: [T_e, B, 3, H, W]`` raw frames -> ``F_s [B, out_dim, h, w]``."""
        n = self.event_steps
        if pos.shape[0] < n or neg.shape[0] < n:
            raise ValueError(f"the Swin branch concatenates {n} event frames per polarity, got {pos.shape[0]}")
        x = self.convert_3(torch.cat([*pos[:n], *neg[:n]], dim=1))
        P = self.pretrain_img_size
        x = F.interpolate(x, size=(P, P), mode="bilinear", align_corners=True)
        ps = self.patch_size
        H, W = x.shape[-2:]
        if W % ps:
            x = F.pad(x, (0, ps - W % ps))
        if H % ps:
            x = F.pad(x, (0, 0, 0, ps - H % ps))
        x = self.patch_embed.proj(x)
        Wh, Ww = x.shape[-2:]
        if self.patch_embed.norm is not None:
            C = x.shape[1]
            x = self.patch_embed.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view(-1, C, Wh, Ww)
        if self.ape:
            x = x + F.interpolate(self.absolute_pos_embed, size=(Wh, Ww), mode="bicubic")
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        out = x
        for i, layer in enumerate(self.layers):
            out, down, H, W = layer(x, Wh, Ww)
            if down is not None:
                x, Wh, Ww = down, (Wh + 1) // 2, (Ww + 1) // 2
        L = len(self.layers)
        out = getattr(self, f"norm{L - 1}")(out)
        out = out.view(-1, H, W, self.num_features[-1]).permute(0, 3, 1, 2).contiguous()
        return F.relu(self.bn(self.conv8(out)))


# --------------------------------------------------------------------------------------------------------------------
# Fusion (official Interatten)


class _FilterLayer(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = out_planes // reduction
        if hidden < 1:
            raise ValueError(f"Interatten width {out_planes} must be >= {reduction} (hidden width out/16)")
        self.fc = nn.Sequential(nn.Linear(in_planes, hidden), nn.ReLU(), nn.Linear(hidden, out_planes), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        B, C = x.shape[:2]
        return self.fc(F.adaptive_avg_pool2d(x, 1).view(B, C)).view(B, -1, 1, 1)


class _FSP(nn.Module):
    """Cross-domain integrator: ``spa + sigmoid(FC(ReLU(FC(GAP([tem; spa]))))) * tem``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.filter = _FilterLayer(2 * dim, dim)

    def forward(self, tem: Tensor, spa: Tensor) -> Tensor:
        return spa + self.filter(torch.cat((tem, spa), dim=1)) * tem


class _ChannelAttention(nn.Module):
    """Temporal attention: ``gamma * softmax(rowmax(E) - E) F + F`` with ``E = F F^T`` (C x C)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        f = x.view(B, C, -1)
        energy = torch.bmm(f, f.permute(0, 2, 1))
        energy = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        out = torch.bmm(energy.softmax(dim=-1), f).view(B, C, H, W)
        return self.gamma * out + x


class _TokenAttention(nn.Module):
    """Spatial attention: ``gamma * F softmax(F^T F)^T + F`` (N x N, N = H*W)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        f = x.view(B, -1, W * H)
        attn = torch.bmm(f.permute(0, 2, 1), f).softmax(dim=-1)
        out = torch.bmm(f, attn.permute(0, 2, 1)).view(B, C, H, W)
        return self.gamma * out + x


class Interatten(nn.Module):
    """TA on the temporal feature, CI fusion into the spatial one, SA on the result: ``[B, C, h, w]`` x 2 -> one."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.inter_attention = _FSP(dim)
        self.tem_attention = _ChannelAttention()
        self.spa_attention = _TokenAttention()

    def forward(self, tem: Tensor, spa: Tensor) -> Tensor:
        if tem.shape != spa.shape:
            raise ValueError(
                f"temporal feature {tuple(tem.shape)} and spatial feature {tuple(spa.shape)} differ: the SNN map "
                "must equal the Swin map (pretrain_img_size/8 - 2; template: (that - 13)//2 + 1)"
            )
        tem = self.tem_attention(tem)
        return self.spa_attention(self.inter_attention(tem, spa))


# --------------------------------------------------------------------------------------------------------------------
# SiamFC++ head


class ConvBNReLU(nn.Module):
    """Conv (optional BN) (optional ReLU); key names ``conv`` / ``bn`` as upstream ``conv_bn_relu``."""

    def __init__(self, cin: int, cout: int, kernel: int, has_bn: bool = True, has_relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel, stride=1, padding=0)
        self.bn = nn.BatchNorm2d(cout) if has_bn else None
        self.has_relu = has_relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.has_relu else x


def xcorr_depthwise(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise cross-correlation: ``x [B, C, H, W]``, ``kernel [B, C, h, w]`` -> ``[B, C, H-h+1, W-w+1]``."""
    B, C = kernel.shape[:2]
    out = F.conv2d(x.reshape(1, B * C, *x.shape[2:]), kernel.reshape(B * C, 1, *kernel.shape[2:]), groups=B * C)
    return out.view(B, C, *out.shape[2:])


def score_grid(score_size: int, x_size: int, total_stride: int) -> Tensor:
    """Image-plane centres ``[1, score_size**2, 2]`` (x, y) of the score-map cells in the search crop (float32,
    integer-valued): ``offset + (col, row) * stride``, ``offset = (x_size - 1 - (score_size - 1) * stride) // 2``."""
    offset = (x_size - 1 - (score_size - 1) * total_stride) // 2
    r = torch.arange(score_size, dtype=torch.float64)
    ys, xs = torch.meshgrid(r, r, indexing="ij")
    grid = offset + torch.stack([xs, ys], dim=-1) * total_stride
    return grid.reshape(1, -1, 2).to(torch.float32)


class DenseboxHead(nn.Module):
    """SiamFC++ head: towers of 3x3 convs on the correlation maps, cls / ctr scores, box offsets decoded to boxes.

    Args mirror the official hyper-parameters (``total_stride``, ``score_size``, ``x_size``, ``num_conv3x3``,
    ``head_conv_bn``, ``head_width``, ``input_size_adapt``).

    Returns (``forward``): ``cls [B, HW, 1]``, ``ctr [B, HW, 1]`` (logits), ``bbox [B, HW, 4]`` (x0, y0, x1, y1 in the
    search crop).
    """

    def __init__(self, *, total_stride: int = 8, score_size: int = 17, x_size: int = 303, num_conv3x3: int = 3,
                 head_conv_bn: Sequence[bool] = (False, False, True), head_width: int = 256,
                 input_size_adapt: bool = False) -> None:
        super().__init__()
        if len(head_conv_bn) < num_conv3x3:
            raise ValueError(f"head_conv_bn needs {num_conv3x3} entries (num_conv3x3), got {list(head_conv_bn)}")
        self.total_stride, self.score_size, self.x_size = int(total_stride), int(score_size), int(x_size)
        self.num_conv3x3 = int(num_conv3x3)
        self.input_size_adapt = bool(input_size_adapt)
        self.bi = nn.Parameter(torch.tensor(0.0))
        self.si = nn.Parameter(torch.tensor(1.0))
        for i in range(self.num_conv3x3):
            setattr(self, f"cls_p5_conv{i + 1}", ConvBNReLU(head_width, head_width, 3, has_bn=bool(head_conv_bn[i])))
            setattr(self, f"bbox_p5_conv{i + 1}", ConvBNReLU(head_width, head_width, 3, has_bn=bool(head_conv_bn[i])))
        self.cls_score_p5 = ConvBNReLU(head_width, 1, 1, has_relu=False)
        self.ctr_score_p5 = ConvBNReLU(head_width, 1, 1, has_relu=False)
        self.bbox_offsets_p5 = ConvBNReLU(head_width, 4, 1, has_relu=False)
        self.register_buffer("fm_ctr", score_grid(self.score_size, self.x_size, self.total_stride), persistent=False)

    def forward(self, c_out: Tensor, r_out: Tensor, x_size: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        cls, bbox = c_out, r_out
        for i in range(self.num_conv3x3):
            cls = getattr(self, f"cls_p5_conv{i + 1}")(cls)
            bbox = getattr(self, f"bbox_p5_conv{i + 1}")(bbox)
        B = cls.shape[0]
        cls_score = self.cls_score_p5(cls).permute(0, 2, 3, 1).reshape(B, -1, 1)
        ctr_score = self.ctr_score_p5(cls).permute(0, 2, 3, 1).reshape(B, -1, 1)
        offsets = torch.exp(self.si * self.bbox_offsets_p5(bbox) + self.bi) * self.total_stride
        if self.input_size_adapt and x_size > 0:
            grid = score_grid(offsets.shape[-1], x_size, self.total_stride).to(offsets.device)
        else:
            grid = self.fm_ctr
            if offsets.shape[-1] * offsets.shape[-2] != grid.shape[1]:
                raise ValueError(
                    f"score map {tuple(offsets.shape[-2:])} does not match score_size {self.score_size}: the search "
                    f"crop (x_size {self.x_size}) and the template size give another map; set DenseboxHead score_size"
                )
        offsets = offsets.permute(0, 2, 3, 1).reshape(B, -1, 4)
        boxes = torch.cat([grid - offsets[:, :, :2], grid + offsets[:, :, 2:]], dim=2)
        return cls_score, ctr_score, boxes


# --------------------------------------------------------------------------------------------------------------------
# The tracker network


class STNet(nn.Module):
    """The STNet Siamese tracking network (upstream ``SiamTrack`` with ``SNN3``, ``SwinTransformer``, ``Interatten``,
    ``DenseboxHead``).

    Args:
        snn_channels: the SNN conv widths (official ``(64, 128, 256)``); the last is the feature width C, also the
            width of ``conv8``, the fusion and the head (``head_width`` must equal it).
        swin: keyword arguments of :class:`SwinTransformer` (official ``pretrain_img_size=280``).
        head: keyword arguments of :class:`DenseboxHead`.
        float32_spike_grad, shared_backward_threshold: reproduce the official gradients (see the module docstring).

    Calls:
        * :meth:`template` (phase ``'feature'``) -> the correlation kernels ``(c_z_k, r_z_k)``;
        * :meth:`track` (phase ``'track'``) on one search frame -> ``(score, bbox, cls_prob, ctr_prob, state)``;
        * ``forward(z_pos, z_neg, x_pos, x_neg)``: the template then every search frame, state carried; returns the
          flat list ``[score, bbox, cls_prob, ctr_prob] * F`` (the fixture's order).
    """

    T_e: int = 5
    input_kind = "events"
    #: The official pipeline feeds event images as raw 8-bit pixel values (0..255, rendered frames), not event
    #: counts: the energy analysis treats them as analog, so the layers that take them multiply
    #: (``analysis.ops.SynapticOpCounter.mark_input``).
    analog_input = True

    def __init__(self, *, snn_channels: Sequence[int] = (64, 128, 256), swin: Mapping[str, Any] | None = None,
                 head: Mapping[str, Any] | None = None, float32_spike_grad: bool = True,
                 shared_backward_threshold: bool = True) -> None:
        super().__init__()
        swin = dict(swin or {})
        head = dict(head or {})
        width = int(snn_channels[-1])
        head_width = int(head.setdefault("head_width", width))
        if head_width != width:
            raise ValueError(f"head_width {head_width} must equal the feature width snn_channels[-1] = {width}")
        self.width = width
        self.basemodel = STNetSNN(snn_channels, float32_spike_grad=float32_spike_grad)
        self.transfor = SwinTransformer(out_dim=width, **swin)
        self.atten = Interatten(width)
        self.head = DenseboxHead(**head)
        self.r_z_k = ConvBNReLU(width, width, 3, has_relu=False)
        self.c_z_k = ConvBNReLU(width, width, 3, has_relu=False)
        self.r_x = ConvBNReLU(width, width, 3, has_relu=False)
        self.c_x = ConvBNReLU(width, width, 3, has_relu=False)
        self.shared_backward_threshold = shared_backward_threshold
        self.T_e = self.transfor.event_steps

    @staticmethod
    def _check(pos: Tensor, neg: Tensor, name: str, dims: int) -> None:
        if pos.dim() != dims or pos.shape != neg.shape:
            raise ValueError(
                f"{name}_pos / {name}_neg must be equal-shaped {dims}-D tensors "
                f"({'[T_e, B, 3, H, W]' if dims == 5 else '[F, T_e, B, 3, H, W]'}), got {tuple(pos.shape)} and "
                f"{tuple(neg.shape)}"
            )
        if pos.shape[-3] != 3:
            raise ValueError(f"{name} event frames must have 3 channels, got {pos.shape[-3]} ({tuple(pos.shape)})")

    def _features(self, pos: Tensor, neg: Tensor, state: Sequence[Tensor | None] | None, template: bool,
                  cell: ThresholdCell | None) -> tuple[Tensor, list[Tensor]]:
        dtype = self.transfor.convert_3.weight.dtype
        pos, neg = pos.to(dtype), neg.to(dtype)
        spatial = self.transfor(pos, neg)
        events = torch.where(pos > neg, pos, neg)
        tem, spa, state = self.basemodel(events, state, spatial, template=template, cell=cell)
        return self.atten(tem, spa), state

    def template(self, z_pos: Tensor, z_neg: Tensor, cell: ThresholdCell | None = None) -> tuple[Tensor, Tensor]:
        """Template call: ``z_pos, z_neg [T_e, B, 3, h, w]`` -> kernels ``(c_z_k, r_z_k)`` ``[B, C, k, k]``.
        The SNN starts at rest."""
        self._check(z_pos, z_neg, "z", 5)
        f_z, _ = self._features(z_pos, z_neg, None, True, cell)
        return self.c_z_k(f_z), self.r_z_k(f_z)

    def track(self, x_pos: Tensor, x_neg: Tensor, state: Sequence[Tensor | None] | None,
              kernels: tuple[Tensor, Tensor], cell: ThresholdCell | None = None
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor]]:
        """One search frame: ``x_pos, x_neg [T_e, B, 3, H, W]``, the SNN state (``None``: at rest) and the template
        kernels -> ``score [B, HW, 1]`` (sigmoid(cls) * sigmoid(ctr)), ``bbox [B, HW, 4]`` (x0 y0 x1 y1 in the crop),
        ``cls_prob``, ``ctr_prob`` and the SNN state after the frame."""
        cls, ctr, bbox, state = self.track_logits(x_pos, x_neg, state, kernels, cell)
        cls_p, ctr_p = torch.sigmoid(cls), torch.sigmoid(ctr)
        return cls_p * ctr_p, bbox, cls_p, ctr_p, state

    def track_logits(self, x_pos: Tensor, x_neg: Tensor, state: Sequence[Tensor | None] | None,
                     kernels: tuple[Tensor, Tensor], cell: ThresholdCell | None = None
                     ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """:meth:`track` before the sigmoids (what the SiamFC++ losses take): ``cls [B, HW, 1]``, ``ctr [B, HW, 1]``
        logits, ``bbox [B, HW, 4]`` and the SNN state."""
        self._check(x_pos, x_neg, "x", 5)
        f_x, state = self._features(x_pos, x_neg, state, False, cell)
        c_z_k, r_z_k = kernels
        c_out = xcorr_depthwise(self.c_x(f_x), c_z_k)
        r_out = xcorr_depthwise(self.r_x(f_x), r_z_k)
        cls, ctr, bbox = self.head(c_out, r_out, x_pos.shape[-1])
        return cls, ctr, bbox, state

    def crop_sizes(self) -> tuple[int, int]:
        """``(z_size, x_size)``: the template and search crop sides the head's score map was built for.

        From ``score_size = (x_size - z_size) // stride + 1 - 2 num_conv3x3`` (127 / 303 for the official network).
        """
        h = self.head
        return h.x_size - (h.score_size - 1 + 2 * h.num_conv3x3) * h.total_stride, h.x_size

    def example_inputs(self, batch_size: int, *, frames: int = 2, event_rate: float = 0.1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Random event images at the network's crop sizes, an event per pixel with probability ``event_rate``.

        For analysis without data (``spiking-transformers energy``), in the layout :meth:`forward` takes. Each
        pixel is 255 (the official raw value of a pixel that saw events) with probability ``event_rate``, else 0,
        independently for the positive and negative images. Returns ``z_pos, z_neg [T_e, B, 3, z, z]`` and
        ``x_pos, x_neg [frames, T_e, B, 3, x, x]`` at :meth:`crop_sizes`.
        """
        if batch_size < 1 or frames < 1:
            raise ValueError(f"batch_size and frames must be at least 1, got {batch_size} and {frames}")
        z, x = self.crop_sizes()
        dtype = self.transfor.convert_3.weight.dtype

        def events(*shape: int) -> Tensor:
            return (torch.rand(*shape, generator=generator) < event_rate).to(dtype) * 255.0

        return dict(z_pos=events(self.T_e, batch_size, 3, z, z), z_neg=events(self.T_e, batch_size, 3, z, z),
                    x_pos=events(frames, self.T_e, batch_size, 3, x, x),
                    x_neg=events(frames, self.T_e, batch_size, 3, x, x))

    @staticmethod
    def batch_size_of(inputs: Mapping[str, Tensor]) -> int:
        """Samples in a :meth:`forward` input dict (the batch axis of ``z_pos [T_e, B, 3, h, w]``)."""
        return int(inputs["z_pos"].shape[1])

    def forward(self, z_pos: Tensor, z_neg: Tensor, x_pos: Tensor, x_neg: Tensor) -> list[Tensor]:
        """Template, then each of the ``F`` search frames with the SNN state carried from one to the next.

        Args:
            z_pos, z_neg: template frames ``[T_e, B, 3, h, w]`` (raw 0..255 values).
            x_pos, x_neg: search frames ``[F, T_e, B, 3, H, W]``.

        Returns:
            ``[score, bbox, cls_prob, ctr_prob]`` for frame 1, then frame 2, ... (``4 F`` tensors).
        """
        self._check(z_pos, z_neg, "z", 5)
        self._check(x_pos, x_neg, "x", 6)
        cell = ThresholdCell() if self.shared_backward_threshold else None
        kernels = self.template(z_pos, z_neg, cell)
        state: list[Tensor] | None = None
        outs: list[Tensor] = []
        for f in range(x_pos.shape[0]):
            score, bbox, cls_p, ctr_p, state = self.track(x_pos[f], x_neg[f], state, kernels, cell)
            outs += [score, bbox, cls_p, ctr_p]
        return outs


# --------------------------------------------------------------------------------------------------------------------
# Official interop

_SWIN_KWARGS = ("pretrain_img_size", "patch_size", "in_chans", "embed_dim", "depths", "num_heads", "window_size",
                "mlp_ratio", "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate", "ape",
                "patch_norm", "out_indices")
_SWIN_IGNORED = ("norm_layer", "use_checkpoint")
_HEAD_KWARGS = ("total_stride", "score_size", "x_size", "num_conv3x3", "head_conv_bn", "head_width",
                "input_size_adapt")
_HEAD_IGNORED = ("conv_weight_std", "pretrain_model_path")
_SIAM_IGNORED = ("pretrain_model_path", "conv_weight_std", "neck_conv_bias", "corr_fea_output", "trt_mode",
                 "trt_fea_model_path", "trt_track_model_path", "amp")


def _pick(name: str, given: Mapping[str, Any] | None, known: Sequence[str], ignored: Sequence[str]) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(known) - set(ignored))
    if unknown:
        raise TypeError(f"STNet {name}: unexpected argument(s) {unknown}")
    return {k: v for k, v in given.items() if k in known}


def build_official(
    *,
    SwinTransformer: Mapping[str, Any] | None = None,  # noqa: N803 (the official class names are the keys)
    DenseboxHead: Mapping[str, Any] | None = None,  # noqa: N803
    SiamTrack: Mapping[str, Any] | None = None,  # noqa: N803
    SNN3: Mapping[str, Any] | None = None,  # noqa: N803
    Interatten: Mapping[str, Any] | None = None,  # noqa: N803
    snn_channels: Sequence[int] = (64, 128, 256),
) -> STNet:
    """Our model equal to ``SiamTrack(SNN3(), SwinTransformer(**SwinTransformer), Interatten(), DenseboxHead())`` with
    the DenseboxHead / SiamTrack hyper-parameters given (the official fixtures' ``meta['kwargs']`` layout).

    ``snn_channels`` is the width reduction of the fixtures (upstream hard-codes ``(64, 128, 256)``, and 256 for
    ``conv8``, ``Interatten`` and the neck; all follow ``snn_channels[-1]`` here). ``SiamTrack.head_width`` and
    ``DenseboxHead.head_width`` must equal it. ``SNN3`` and ``Interatten`` take no arguments upstream. Hyper-parameters
    that only affect initialisation, TensorRT or AMP are accepted and ignored; ``frozen_stages`` other than -1 is not
    ported. ``drop_path_rate`` defaults to 0.2 as upstream (stochastic in train mode only).
    """
    if SNN3:
        raise TypeError(f"STNet SNN3 takes no arguments upstream, got {sorted(SNN3)}")
    if Interatten:
        raise TypeError(f"STNet Interatten takes no arguments upstream, got {sorted(Interatten)}")
    swin_given = dict(SwinTransformer or {})
    frozen = swin_given.pop("frozen_stages", -1)
    if frozen != -1:
        raise NotImplementedError(f"SwinTransformer frozen_stages={frozen} is not ported (only -1)")
    swin = _pick("SwinTransformer", swin_given, _SWIN_KWARGS, _SWIN_IGNORED)
    head = _pick("DenseboxHead", DenseboxHead, _HEAD_KWARGS, _HEAD_IGNORED)
    siam = _pick("SiamTrack", SiamTrack, ("head_width",), _SIAM_IGNORED)
    width = int(snn_channels[-1])
    for where, hw in (("SiamTrack", siam.get("head_width", 256)), ("DenseboxHead", head.get("head_width", 256))):
        if int(hw) != width:
            raise ValueError(f"{where} head_width {hw} must equal the feature width snn_channels[-1] = {width}")
    return STNet(snn_channels=tuple(snn_channels), swin=swin, head=head)


_KNOWN = (
    r"basemodel\.conv(?:1|2|3|33_11)\.(?:weight|bias)",
    r"basemodel\.bn_(?:tem|spa)\.(?:weight|bias|running_mean|running_var|num_batches_tracked)",
    r"transfor\..*",
    r"atten\.inter_attention\.filter\.fc\.[02]\.(?:weight|bias)",
    r"atten\.(?:tem|spa)_attention\.gamma",
    r"head\..*",
    r"(?:c|r)_(?:z_k|x)\.(?:conv|bn)\..*",
)
_KNOWN_RE = re.compile("|".join(f"(?:{p})" for p in _KNOWN))


def convert_official_key(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """Official ``SiamTrack`` keys are ours (same module paths); an unknown key gives ``None``."""
    return (key, value) if _KNOWN_RE.fullmatch(key) else None


register_official_family(
    OfficialFamily(
        name="stnet",
        source="Jee-King/CVPR2022_STNet@221ab60c4fccfce5a03e8878fb168e0baa7152f4 videoanalyst/model (SiamTrack)",
        build=build_official,
        convert_key=convert_official_key,
        unused=(
            r"basemodel\.fuse_snn_transfor\.(?:weight|bias)",
            r"basemodel\.thre_w\.(?:weight|bias)",
            r"atten\.conv_cat\..*",
            r"transfor\.norm0\.(?:weight|bias)",
        ),
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Registered variant

# The official FE240 / VisEvent configuration (experiments/test/fe240/fe240.yaml; the same network serves both).
STNET_FE240_KWARGS: dict[str, Any] = dict(
    snn_channels=(64, 128, 256),
    swin=dict(pretrain_img_size=280),
    head=dict(total_stride=8, score_size=17, x_size=303, num_conv3x3=3, head_conv_bn=(False, False, True),
              head_width=256),
)
# A small instance of the same architecture at consistent sizes: template 59, search 171 (score map 9).
STNET_TINY_KWARGS: dict[str, Any] = dict(
    snn_channels=(8, 16, 24),
    swin=dict(pretrain_img_size=152, embed_dim=16, depths=(2, 2), num_heads=(1, 2), drop_path_rate=0.0),
    head=dict(total_stride=8, score_size=9, x_size=171, head_width=24),
)
# Template / search crop sizes that go with each configuration (the tracker needs them).
CROP_SIZES = {"fe240": (127, 303), "tiny": (59, 171)}

_FE240_INFO: dict[str, Any] = dict(
    family="stnet", paper=STNET_PAPER, lineage=None, spike_driven=False, default_T=5, input_kind="events",
    dataset="fe108", num_classes=1, img_size=303, in_chans=3, official_config="stnet/stnet-fe240",
    official_params=20_534_919, official_unused_params=394_178, official_family="stnet",
    tiny_overrides=STNET_TINY_KWARGS,
    notes="Hybrid ANN-SNN Siamese tracker: only the 3-layer conv SNN spikes (STNetNeuron); the Swin branch, fusion "
    "and SiamFC++ head are real-valued. Input per call: 5 event frames per polarity, 3 channels, raw 0..255; "
    "template crop 127, search crop 303 (score map 17x17). The official count includes fuse_snn_transfor, "
    "thre_w, conv_cat and norm0, never used by the forward and left out here. No result numbers recorded: the "
    "paper's tables were not retrieved.",
)  # fmt: skip


def stnet_fe240(**kwargs: Any) -> STNet:
    """STNet at the official FE240 / VisEvent configuration (template 127, search 303), 20.14M parameters.

    ``kwargs`` override :class:`STNet`'s arguments (``snn_channels``, ``swin``, ``head``, ...)."""
    return STNet(**{**STNET_FE240_KWARGS, **kwargs})


# ModelInfo describes classifiers unless it has a ``task`` field; the generic registry tests run every registered
# model as a classifier. The tracker registers itself once the registry knows tasks (see the family's notes).
if "task" in ModelInfo.__dataclass_fields__:
    register_model(**_FE240_INFO, task="tracking")(stnet_fe240)
