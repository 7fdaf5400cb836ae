"""MST, the Masked Spiking Transformer (Wang et al., ICCV 2023): a Swin-T converted from a QCFS ANN to an SNN.

"Masked Spiking Transformer", arXiv 2210.01208. Ported from bic-L/Masked-Spiking-Transformer ``models/mst.py``,
``modules_QCFS.py`` and ``utils_QCFS.py`` (commit 368c9a54aa23) and checked against the ``mst_snn_small`` fixture
(float64: exact spike counts, per-step logits and gradients of the converted SNN).

The model lives in two modes, one class:

* **ANN** (``mode="ann"``, what is trained): every activation site is a :class:`QCFS` function (quantisation-clip-
  floor-shift: ``clamp(floor(x / up * L + 1/2) / L, 0, 1) * up`` with a learnable clip ``up``, ``L`` levels and a
  straight-through floor). The model runs one step (``T = 1``).
* **SNN** (``mode="snn"``, after :func:`convert_to_snn`): every QCFS site becomes a :class:`ScaledIF` neuron, a
  soft-reset integrate-and-fire neuron on ``x / up`` with threshold 1 whose membrane starts at 1/2, emitting
  ``spike * up``. The same image is presented at each of ``T = sim_len`` steps; ``forward_timesteps`` gives the
  per-step logits ``[T, B, K]`` the official ``snn_validate`` accumulates.

Architecture (Swin-T with BatchNorm, all of it time-major ``[T, B, L, C]``):

* stem: 4x4/4 conv -> BN1d -> site ``patch_embed.proj_if``;
* block: ``x = x + WindowAttention(site(BN1d(x)))``; then ``x = BN1d(x)`` and ``x = x + MLP(site(x))`` -- the second
  residual adds the *normalised* x (official order);
* window attention: ``q, k, v = split(qkv(x))``, ``Q = site(q)``, ``K = site(k)``, ``A = site(Q K^T * d^-1/2)``,
  ``softmax(A + relative-position bias [+ -100 shift mask]) @ site(v)`` -> site -> proj -> site;
  Random Spike Masking (RSM) drops each element of ``Q``, ``K`` and ``A`` with probability ``masking_ratio``;
* MLP: fc1 -> (BN1d if ``mlp_bn``) -> site -> fc2 -> (BN1d) -> site;
* patch merging: BN1d(4C) -> Linear(4C -> 2C, no bias) -> site;
* end: LayerNorm -> token mean -> Linear head (analog: MST is not spike-driven).

Readings of the official code (they change outputs):

* BatchNorm in training mode normalises each time step with that step's batch statistics (the official SNN calls
  the whole network once per step); in eval mode all steps share the running statistics.
* RSM masks are drawn afresh at every forward call and time step, in ANN and SNN mode alike (the official
  ``Masking_Spike`` has no training switch). The official code draws ``rand > r`` even at ``r = 0``, which keeps an
  element unless the draw is exactly 0; we skip the draw at ``r = 0`` (the fixture checked this is bit-identical).
  The mask is applied inside the site module, after the neuron, so the spikes a site reports (and the energy
  analysis counts) are the ones it transmits. ``mask_mlp=True`` also masks the MLP sites, as the paper's figure
  draws it; the official code (and our default) does not.
* Official ``ScaledNeuron`` primes its IF node with a constant 0.5 on the first step; the priming call never spikes,
  so it equals starting the membrane at 0.5.
* ``drop_path`` is drawn per (time step, sample): the official network is called once per step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..layers.windows import relative_position_index, shifted_window_mask, window_partition, window_reverse
from ..neurons.lif import Neuron, if_multistep
from ..neurons.surrogate import get_surrogate
from ._base import SpikingModel
from ._common import known_keys_converter, make_head, to_2tuple, trunc_normal_init
from ._official import OfficialFamily, register_official_family
from ._registry import Paper, register_model

__all__ = [
    "MST_PAPER",
    "QCFS",
    "ScaledIF",
    "random_spike_mask",
    "SpikingWindowAttention",
    "MaskedSpikingTransformerBlock",
    "MaskedSpikingTransformer",
    "convert_to_snn",
    "qcfs_sites",
    "build_official_mst",
    "MST_KEY_PATTERNS",
]

MST_PAPER = Paper(
    title="Masked Spiking Transformer",
    venue="ICCV",
    year=2023,
    arxiv="2210.01208",
    repo="bic-L/Masked-Spiking-Transformer",
    commit="368c9a54aa2307c345b03c14d8dd51c74c71e765",
)


# --------------------------------------------------------------------------------------------------------------
# Activation sites: QCFS (ANN) and the scaled IF neuron (SNN), both with Random Spike Masking
# --------------------------------------------------------------------------------------------------------------


def random_spike_mask(x: Tensor, ratio: float) -> Tensor:
    """Random Spike Masking: zero each element of ``x`` independently with probability ``ratio`` (any shape)."""
    if ratio <= 0.0:
        return x
    return x * (torch.rand_like(x) > ratio).to(x.dtype)


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity backward (the QCFS straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.floor()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation (Bu et al., ICLR 2022), the ANN form of one MST site.

    ``y = clamp(floor(x / up * levels + 0.5) / levels, 0, 1) * up``, then Random Spike Masking. Any shape.

    Args:
        up: initial clip value (the official ``--threshold``, 2.0); learnable, stored as a 1-element parameter.
        levels: quantisation steps ``L`` (the official ``t``, 16).
        rsm: whether this is a Random Spike Masking site (Q, K, scores; MLP with ``mask_mlp``).
        mask_ratio: probability of zeroing an output element (used only at RSM sites).
    """

    def __init__(self, up: float = 2.0, levels: int = 16, rsm: bool = False, mask_ratio: float = 0.0) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"QCFS levels must be >= 1, got {levels}")
        self.up = nn.Parameter(torch.tensor([float(up)]))
        self.init_up = float(up)
        self.levels = int(levels)
        self.rsm = bool(rsm)
        self.mask_ratio = float(mask_ratio) if rsm else 0.0

    def forward(self, x: Tensor) -> Tensor:
        y = x / self.up
        y = _FloorSTE.apply(y * self.levels + 0.5) / self.levels
        y = torch.clamp(y, 0, 1) * self.up
        return random_spike_mask(y, self.mask_ratio)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, rsm={self.rsm}, mask_ratio={self.mask_ratio}"


class ScaledIF(Neuron):
    """The SNN form of one MST site: soft-reset IF on ``x / scale`` (threshold 1, membrane starting at 1/2),
    output ``spike * scale``, then Random Spike Masking. ``[T, B, ...]`` -> same.

    The official ``ScaledNeuron`` wraps spikingjelly's ``IFNode(v_reset=None)`` (sigmoid surrogate, alpha 4, reset
    not detached) and primes it with 0.5 on the first step. ``spike_scale = 1 / scale``: ``output * spike_scale``
    is the spike count.

    Args:
        scale: the QCFS clip ``up`` of the site (a Python float, as the official conversion reads ``up.item()``).
        rsm: whether this is a Random Spike Masking site.
        mask_ratio: probability of zeroing an output spike (used only at RSM sites).
    """

    def __init__(self, scale: float, rsm: bool = False, mask_ratio: float = 0.0) -> None:
        super().__init__()
        scale = float(scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"ScaledIF scale (the QCFS clip 'up') must be a positive number, got {scale}")
        self.scale = scale
        self.spike_scale = 1.0 / scale
        self.rsm = bool(rsm)
        self.mask_ratio = float(mask_ratio) if rsm else 0.0
        self.surrogate = get_surrogate("sigmoid", alpha=4.0)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"ScaledIF takes time-major input [T, B, ...], got shape {tuple(x.shape)}")
        u = x / self.scale
        # Membrane starts at 0.5: adding it to the first input gives the same float sums as charging 0.5 first.
        u = torch.cat([u[:1] + 0.5, u[1:]]) if u.shape[0] > 1 else u + 0.5
        out = if_multistep(u, v_threshold=1.0, v_reset=None, surrogate=self.surrogate, detach_reset=False)
        out = out * self.scale
        return random_spike_mask(out, self.mask_ratio)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, rsm={self.rsm}, mask_ratio={self.mask_ratio}"


def qcfs_sites(model: nn.Module) -> dict[str, QCFS | ScaledIF]:
    """Every activation site of an MST model, by module name, in construction order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (QCFS, ScaledIF))}


def convert_to_snn(
    model: "MaskedSpikingTransformer", sim_len: int | None = None, neuron_scales: Mapping[str, float] | None = None
) -> "MaskedSpikingTransformer":
    """ANN -> SNN in place (the official ``replace_activation_by_neuron``): each :class:`QCFS` site becomes a
    :class:`ScaledIF` with ``scale = up`` (or ``neuron_scales[name]``), and the model runs ``sim_len`` steps.

    Args:
        model: an MST model in ANN mode (or in SNN mode, to change ``sim_len`` only).
        sim_len: simulation length ``T`` (default: the model's ``sim_len``).
        neuron_scales: optional site name -> threshold; when given it must name every site.

    Returns:
        the same model, now ``mode == "snn"`` with ``model.T == sim_len``.
    """
    sim_len = int(model.sim_len if sim_len is None else sim_len)
    if sim_len < 1:
        raise ValueError(f"sim_len must be >= 1, got {sim_len}")
    sites = qcfs_sites(model)
    if neuron_scales is not None:
        missing, extra = sorted(set(sites) - set(neuron_scales)), sorted(set(neuron_scales) - set(sites))
        if missing or extra:
            raise ValueError(f"neuron_scales must name every site: missing {missing[:4]}, unknown {extra[:4]}")
    for name, site in sites.items():
        if isinstance(site, ScaledIF) and neuron_scales is None:
            continue
        if neuron_scales is not None:
            scale = float(neuron_scales[name])
        else:
            # (a model built on the meta device, e.g. to count parameters, keeps the initial clip)
            scale = site.init_up if site.up.is_meta else float(site.up.detach().reshape(-1)[0].item())
        new = ScaledIF(scale, rsm=site.rsm, mask_ratio=site.mask_ratio)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    model.T = sim_len
    model.sim_len = sim_len
    return model


# --------------------------------------------------------------------------------------------------------------
# Layers over time-major tokens
# --------------------------------------------------------------------------------------------------------------


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the channels of tokens ``[T, B, L, C]`` (official layout ``[B, C, L]`` per step).

    In training mode each time step is normalised with its own batch statistics (the official SNN runs the whole
    network once per step); in eval mode the steps are folded into the batch.
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        T, B, L, C = x.shape
        if self.training and T > 1:
            return torch.stack([super(TokenBatchNorm, self).forward(x[t].transpose(1, 2).contiguous())
                                .transpose(1, 2) for t in range(T)])
        y = super().forward(x.reshape(T * B, L, C).transpose(1, 2).contiguous())
        return y.transpose(1, 2).reshape(T, B, L, C)


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth on ``[T, B, ...]``: drop whole samples per time step with probability ``p``."""
    if p <= 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[:2] + (1,) * (x.dim() - 2)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


def _site(levels: int, threshold: float, mask_ratio: float | None = None) -> QCFS:
    """A QCFS site; an RSM site when ``mask_ratio`` is given (even 0, so that the ratio can be changed later)."""
    return QCFS(threshold, levels, rsm=mask_ratio is not None, mask_ratio=mask_ratio or 0.0)


class SpikingWindowAttention(nn.Module):
    """Window multi-head self-attention with spiking Q, K, V and scores and a real softmax.

    ``[T, B_w, N, C]`` window tokens (``B_w`` = windows x batch, ``N = ws * ws``) -> ``[T, B_w, N, C]``.

    Args:
        dim: channels ``C``.
        window_size: window side ``ws``.
        num_heads: heads ``h`` (``C % h == 0``).
        qkv_bias: bias on the qkv projection.
        qk_scale: score scale (default ``d ** -0.5``).
        masking_ratio: RSM ratio on Q, K and the score spikes.
        levels, threshold: QCFS levels and initial clip of the sites.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 masking_ratio: float = 0.0, levels: int = 16, threshold: float = 2.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.masking_ratio = masking_ratio
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_if = _site(levels, threshold, masking_ratio)
        self.k_if = _site(levels, threshold, masking_ratio)
        self.v_if = _site(levels, threshold)
        self.attn_drop = nn.Dropout(attn_drop)
        self.attn_if = _site(levels, threshold, masking_ratio)
        self.attn_v_if = _site(levels, threshold)
        self.proj = nn.Linear(dim, dim)
        self.proj_if = _site(levels, threshold)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x [T, B_w, N, C]``; ``mask [nW, N, N]`` (0 / -100) or ``None``."""
        T, Bw, N, C = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(T, Bw, N, 3, h, C // h).permute(3, 0, 1, 4, 2, 5)  # [3, T, B_w, h, N, d]
        q, k, v = qkv[0], qkv[1], qkv[2]
        q_spk, k_spk = self.q_if(q), self.k_if(k)
        attn_spk = self.attn_if((q_spk @ k_spk.transpose(-2, -1)) * self.scale)
        v_spk = self.v_if(v)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        attn = attn_spk + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.view(T, Bw // nW, nW, h, N, N) + mask.unsqueeze(1).unsqueeze(0)).view(T, Bw, h, N, N)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v_spk).transpose(2, 3).reshape(T, Bw, N, C)
        x = self.proj_if(self.proj(self.attn_v_if(x)))
        return self.proj_drop(x)


class SpikingMlp(nn.Module):
    """fc1 -> (BN) -> site -> fc2 -> (BN) -> site on ``[T, B, L, C]``."""

    def __init__(self, dim: int, hidden: int, *, drop: float = 0.0, bn: bool = True, levels: int = 16,
                 threshold: float = 2.0, mask_ratio: float | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.norm1 = TokenBatchNorm(hidden) if bn else None
        self.fc1_if = _site(levels, threshold, mask_ratio)
        self.fc2 = nn.Linear(hidden, dim)
        self.norm2 = TokenBatchNorm(dim) if bn else None
        self.fc2_if = _site(levels, threshold, mask_ratio)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        x = self.drop(self.fc1_if(self.norm1(x) if self.norm1 is not None else x))
        x = self.fc2(x)
        return self.drop(self.fc2_if(self.norm2(x) if self.norm2 is not None else x))


class MaskedSpikingTransformerBlock(nn.Module):
    """One (shifted-)window block on ``[T, B, H*W, C]`` (see the module docstring for the order)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, *, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, masking_ratio: float = 0.0,
                 mlp_bn: bool = True, mask_mlp: bool = False, levels: int = 16, threshold: float = 2.0) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:  # the window covers the map: no partition, no shift
            shift_size, window_size = 0, min(input_resolution)
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size {window_size})")
        H, W = input_resolution
        if H % window_size or W % window_size:
            raise ValueError(f"feature map {H}x{W} is not a multiple of window_size {window_size}")
        self.window_size, self.shift_size, self.drop_path = window_size, shift_size, drop_path
        self.norm1 = TokenBatchNorm(dim)
        self.shortcut1_if = _site(levels, threshold)
        self.attn = SpikingWindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                           attn_drop=attn_drop, proj_drop=drop, masking_ratio=masking_ratio,
                                           levels=levels, threshold=threshold)
        self.norm2 = TokenBatchNorm(dim)
        self.shortcut2_if = _site(levels, threshold)
        self.mlp = SpikingMlp(dim, int(dim * mlp_ratio), drop=drop, bn=mlp_bn, levels=levels, threshold=threshold,
                              mask_ratio=masking_ratio if mask_mlp else None)
        attn_mask = shifted_window_mask(H, W, window_size, shift_size) if shift_size > 0 else None
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x: Tensor) -> Tensor:
        T, B, L, C = x.shape
        H, W = self.input_resolution
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.shortcut1_if(self.norm1(x)).reshape(T * B, H, W, C)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(T, -1, ws * ws, C)
        windows = self.attn(windows, mask=self.attn_mask)
        x = window_reverse(windows.reshape(-1, ws, ws, C), ws, H, W)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + _drop_path(x.reshape(T, B, L, C), self.drop_path, self.training)
        x = self.norm2(x)
        return x + _drop_path(self.mlp(self.shortcut2_if(x)), self.drop_path, self.training)


class SpikingPatchMerging(nn.Module):
    """``[T, B, H*W, C]`` -> ``[T, B, H/2*W/2, 2C]``: 2x2 neighbours concatenated, BN, Linear (no bias), site."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, *, levels: int = 16,
                 threshold: float = 2.0) -> None:
        super().__init__()
        H, W = input_resolution
        if H % 2 or W % 2:
            raise ValueError(f"patch merging needs an even feature map, got {H}x{W}")
        self.input_resolution = input_resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = TokenBatchNorm(4 * dim)
        self.reduction_if = _site(levels, threshold)

    def forward(self, x: Tensor) -> Tensor:
        T, B, L, C = x.shape
        H, W = self.input_resolution
        x = x.reshape(T * B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        x = self.norm(x.view(T, B, -1, 4 * C))
        return self.reduction_if(self.reduction(x))


class SpikingPatchEmbed(nn.Module):
    """``[B, C, H, W]`` (repeated over T) or ``[T, B, C, H, W]`` -> tokens ``[T, B, H/p*W/p, E]``."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int, *,
                 norm: bool = True, levels: int = 16, threshold: float = 2.0) -> None:
        super().__init__()
        self.img_size = img_size
        self.patches_resolution = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.proj_if = _site(levels, threshold)
        self.norm = TokenBatchNorm(embed_dim) if norm else None

    def forward(self, x: Tensor, T: int) -> Tensor:
        if x.shape[-2:] != self.img_size:
            raise ValueError(f"input image size {tuple(x.shape[-2:])} does not match the model's {self.img_size}")
        if x.dim() == 4:  # static image: the conv output is the same at every step, compute it once
            y = self.proj(x).flatten(2).transpose(1, 2)
            y = y.unsqueeze(0).expand(T, *y.shape)
        else:
            Tx, B = x.shape[:2]
            y = self.proj(x.flatten(0, 1)).flatten(2).transpose(1, 2)
            y = y.reshape(Tx, B, *y.shape[1:])
        if self.norm is not None:
            y = self.norm(y)
        return self.proj_if(y)


# --------------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------------


class MaskedSpikingTransformer(SpikingModel):
    """MST: Swin with BatchNorm and QCFS sites (ANN) or scaled IF neurons (SNN), with Random Spike Masking.

    Input ``[B, C, H, W]`` (the same image at each of ``T`` steps) or ``[T, B, C, H, W]``; ``forward`` returns
    ``[B, K]`` (the mean of the per-step logits, whose argmax is that of the official running sum) and
    ``forward_timesteps`` ``[T, B, K]``.

    Args:
        img_size, patch_size, in_chans, num_classes, embed_dim, depths, num_heads, window_size, mlp_ratio,
            qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, ape, patch_norm: as the official
            constructor (Swin's).
        masking_ratio: RSM ratio ``r`` (0, 0.25, 0.5, 0.75 in the paper).
        mlp_bn: BatchNorm after fc1 and fc2 (official ``dataset == 'imagenet'``; the CIFAR settings drop them).
        mask_mlp: also mask the MLP sites (the paper's figure; not the official code).
        levels: QCFS quantisation levels ``L`` (official ``t = 16``).
        threshold: initial QCFS clip ``up`` (official 2.0).
        mode: ``"snn"`` (converted, ``T = sim_len`` steps) or ``"ann"`` (QCFS, one step; train this one).
        T: simulation length of the SNN (the official ``sim_len``; :func:`convert_to_snn` uses it).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        masking_ratio: float = 0.0,
        mlp_bn: bool = True,
        mask_mlp: bool = False,
        levels: int = 16,
        threshold: float = 2.0,
        mode: str = "snn",
        T: int = 128,
    ) -> None:
        super().__init__()
        if mode not in ("ann", "snn"):
            raise ValueError(f"mode must be 'ann' or 'snn', got {mode!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        if not 0.0 <= masking_ratio < 1.0:
            raise ValueError(f"masking_ratio must be in [0, 1), got {masking_ratio}")
        if int(T) < 1:
            raise ValueError(f"T (sim_len) must be >= 1, got {T}")
        img = to_2tuple(img_size)
        if img[0] % patch_size or img[1] % patch_size:
            raise ValueError(f"img_size {img} is not a multiple of patch_size {patch_size}")
        self.num_classes = num_classes
        self.num_layers = len(depths)
        self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
        self.masking_ratio = float(masking_ratio)
        self.sim_len = int(T)
        self.T = 1
        self.ape = ape
        site = dict(levels=levels, threshold=threshold)
        self.patch_embed = SpikingPatchEmbed(img, patch_size, in_chans, embed_dim, norm=patch_norm, **site)
        res = self.patch_embed.patches_resolution
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, res[0] * res[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [float(v) for v in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = int(embed_dim * 2**i)
            r = (res[0] // 2**i, res[1] // 2**i)
            stage = nn.Module()
            stage.blocks = nn.ModuleList([
                MaskedSpikingTransformerBlock(
                    dim, r, heads, window_size=window_size, shift_size=0 if j % 2 == 0 else window_size // 2,
                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                    attn_drop=attn_drop_rate, drop_path=dpr[sum(depths[:i]) + j], masking_ratio=masking_ratio,
                    mlp_bn=mlp_bn, mask_mlp=mask_mlp, **site)
                for j in range(depth)
            ])
            stage.downsample = SpikingPatchMerging(r, dim, **site) if i < self.num_layers - 1 else None
            self.layers.append(stage)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = make_head(self.num_features, num_classes)
        # timm's Swin initialisation: truncated-normal linears with zero bias (LayerNorms keep ones / zeros)
        self.apply(trunc_normal_init(nn.Linear))
        if mode == "snn":
            convert_to_snn(self, self.sim_len)

    @property
    def mode(self) -> str:
        """``"snn"`` once converted (scaled IF neurons), ``"ann"`` while the sites are QCFS functions."""
        return "snn" if any(isinstance(m, ScaledIF) for m in self.modules()) else "ann"

    def set_masking_ratio(self, ratio: float) -> None:
        """Change the RSM ratio of every masked site (Q, K, scores; the MLP too if it was built masked)."""
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"masking ratio must be in [0, 1), got {ratio}")
        for m in qcfs_sites(self).values():
            if m.rsm:
                m.mask_ratio = float(ratio)
        self.masking_ratio = float(ratio)

    def forward_features(self, x: Tensor) -> Tensor:
        """Image ``[B, C, H, W]`` or frames ``[T, B, C, H, W]`` -> normalised tokens ``[T, B, L, C_last]``."""
        if x.dim() not in (4, 5):
            raise ValueError(f"MST takes [B, C, H, W] images or [T, B, C, H, W] frames, got {tuple(x.shape)}")
        x = self.patch_embed(x, self.T)
        if self.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for stage in self.layers:
            for blk in stage.blocks:
                x = blk(x)
            if stage.downsample is not None:
                x = stage.downsample(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Tokens ``[T, B, L, C]`` -> logits ``[B, K]`` (time mean) or per-step ``[T, B, K]``."""
        x = self.head(x.mean(dim=2))
        return x.mean(0) if reduce_time else x


# --------------------------------------------------------------------------------------------------------------
# Official interface
# --------------------------------------------------------------------------------------------------------------

MST_OFFICIAL_KWARGS: dict[str, Any] = dict(
    img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96, depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True, qk_scale=None, drop_rate=0.0,
    attn_drop_rate=0.0, drop_path_rate=0.1, norm_layer="nn.LayerNorm", ape=False, patch_norm=True,
    use_checkpoint=False, fused_window_process=False, masking_ratio=0.0, dataset="imagenet",
)
# The conversion arguments of main.py / utils_QCFS: QCFS levels ``t`` and initial clip ``threshold``
# (replace_activation_by_floor), and the SNN simulation length with optional per-site thresholds.
MST_CONVERSION_KWARGS: dict[str, Any] = dict(t=16, threshold=2.0, sim_len=None, neuron_scales=None)


def build_official_mst(**kwargs: Any) -> MaskedSpikingTransformer:
    """Our model equal to ``MaskedSpikingTransformer(**kwargs)`` of the official ``models/mst.py`` after
    ``replace_activation_by_floor(t, threshold)`` and, when ``sim_len`` is given, ``replace_activation_by_neuron``
    with the per-site thresholds ``neuron_scales`` (default: each site's ``up``).

    Without ``sim_len`` the result is the QCFS ANN (the trained form, whose state dict has the ``*.up`` keys of the
    released checkpoints); convert it later with :func:`convert_to_snn`. ``use_checkpoint`` and
    ``fused_window_process`` do not change outputs. ``norm_layer`` must be LayerNorm (given as the class or the
    string ``"nn.LayerNorm"``). The official constructor swallows unknown keyword arguments; ours raises.
    """
    unknown = sorted(set(kwargs) - set(MST_OFFICIAL_KWARGS) - set(MST_CONVERSION_KWARGS))
    if unknown:
        raise TypeError(f"build_official_mst() got unexpected keyword argument(s) {unknown}")
    a = {**MST_OFFICIAL_KWARGS, **MST_CONVERSION_KWARGS, **kwargs}
    norm = a["norm_layer"]
    if norm not in ("nn.LayerNorm", "LayerNorm", nn.LayerNorm):
        raise ValueError(f"norm_layer must be nn.LayerNorm (the final norm), got {norm!r}")
    model = MaskedSpikingTransformer(
        img_size=a["img_size"], patch_size=a["patch_size"], in_chans=a["in_chans"], num_classes=a["num_classes"],
        embed_dim=a["embed_dim"], depths=tuple(a["depths"]), num_heads=tuple(a["num_heads"]),
        window_size=a["window_size"], mlp_ratio=a["mlp_ratio"], qkv_bias=a["qkv_bias"], qk_scale=a["qk_scale"],
        drop_rate=a["drop_rate"], attn_drop_rate=a["attn_drop_rate"], drop_path_rate=a["drop_path_rate"],
        ape=a["ape"], patch_norm=a["patch_norm"], masking_ratio=a["masking_ratio"],
        mlp_bn=a["dataset"] == "imagenet", levels=a["t"], threshold=a["threshold"], mode="ann",
        T=a["sim_len"] or 128,
    )
    if a["sim_len"] is not None:
        convert_to_snn(model, int(a["sim_len"]), a["neuron_scales"])
    elif a["neuron_scales"] is not None:
        raise ValueError("neuron_scales needs sim_len (they are the thresholds of the converted SNN)")
    return model


_BN = r"(?:weight|bias|running_mean|running_var|num_batches_tracked)"
_SITE = r"(?:proj_if|shortcut1_if|shortcut2_if|q_if|k_if|v_if|attn_if|attn_v_if|fc1_if|fc2_if|reduction_if)\.up"
MST_KEY_PATTERNS = (
    rf"patch_embed\.proj\.(?:weight|bias)",
    rf"patch_embed\.norm\.{_BN}",
    r"absolute_pos_embed",
    rf"layers\.\d+\.blocks\.\d+\.(?:norm1|norm2|mlp\.norm1|mlp\.norm2)\.{_BN}",
    r"layers\.\d+\.blocks\.\d+\.attn\.(?:qkv|proj)\.(?:weight|bias)",
    r"layers\.\d+\.blocks\.\d+\.attn\.relative_position_(?:bias_table|index)",
    r"layers\.\d+\.blocks\.\d+\.mlp\.fc[12]\.(?:weight|bias)",
    r"layers\.\d+\.blocks\.\d+\.attn_mask",
    rf"layers\.\d+\.downsample\.norm\.{_BN}",
    r"layers\.\d+\.downsample\.reduction\.weight",
    r"norm\.(?:weight|bias)",
    r"head\.(?:weight|bias)",
    rf"(?:.*\.)?{_SITE}",
)

register_official_family(
    OfficialFamily(
        name="mst",
        source="bic-L/Masked-Spiking-Transformer models/mst.py + utils_QCFS.py @ 368c9a54aa23",
        build=build_official_mst,
        convert_key=known_keys_converter(MST_KEY_PATTERNS),
        unused=(),
    )
)


# --------------------------------------------------------------------------------------------------------------
# Registered variants: Swin-T (configs/mst/MST.yaml), converted SNNs
# --------------------------------------------------------------------------------------------------------------

_COMMON = dict(
    family="mst",
    paper=MST_PAPER,
    lineage=None,
    spike_driven=False,
    default_T=128,
    input_kind="image",
    img_size=224,
    in_chans=3,
    official_family="mst",
    # The 124 QCFS clips ``up`` (one per site) are parameters of the official QCFS ANN; the converted SNN holds
    # them as Python thresholds, so the registered (SNN) model counts 124 fewer.
    official_unused_params=124,
    # Small clips (0.1 instead of 2.0): with the official trunc-normal(0.02) init an untrained model's sites stay
    # silent at clip 2.0, and the generic tests need firing neurons.
    tiny_overrides=dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4,
                        num_classes=10, T=4, threshold=0.1),
)
_NOTE = (
    "Registered as the converted SNN (mode='snn', T = the code's default sim_len 128); mode='ann' gives the QCFS "
    "ANN that is trained (with the 124 clip parameters). Conversion top-1 from the official model zoo; the time "
    "step behind it was not retrieved."
)


def _create(num_classes: int, mlp_bn: bool, kwargs: dict[str, Any]) -> MaskedSpikingTransformer:
    return MaskedSpikingTransformer(**{**dict(num_classes=num_classes, mlp_bn=mlp_bn, drop_path_rate=0.2), **kwargs})


@register_model(**_COMMON, dataset="imagenet", num_classes=1000, reported_top1=78.51,
                official_config="mst/mst-swin-t-imagenet", official_params=28_332_638, notes=_NOTE)
def mst_swin_t_imagenet(**kwargs: Any) -> MaskedSpikingTransformer:
    return _create(1000, True, kwargs)


@register_model(**_COMMON, dataset="cifar100", num_classes=100, reported_top1=86.91,
                official_config="mst/mst-swin-t-cifar100", official_params=27_596_378,
                notes=_NOTE + " CIFAR images resized to 224; no BatchNorm in the MLP.")
def mst_swin_t_cifar100(**kwargs: Any) -> MaskedSpikingTransformer:
    return _create(100, False, kwargs)


@register_model(**_COMMON, dataset="cifar10", num_classes=10, reported_top1=97.27,
                official_config="mst/mst-swin-t-cifar10", official_params=27_527_168,
                notes=_NOTE + " CIFAR images resized to 224; no BatchNorm in the MLP.")
def mst_swin_t_cifar10(**kwargs: Any) -> MaskedSpikingTransformer:
    return _create(10, False, kwargs)
