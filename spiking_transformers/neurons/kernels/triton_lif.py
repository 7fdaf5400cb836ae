r"""A Triton GPU back end for LIF and IF: each element's whole time loop in one kernel, forward and backward.

The ``fused`` back end (:mod:`.fused`, whose docstring has the maths) runs the T-step loop in Python with about six
element-wise kernels per step; on a GPU that is six launches and six passes over memory per step. Here the input is
viewed as ``x: [T, N]`` and each Triton program takes a block of ``N`` and loops over ``T`` in registers:

* forward: charge, fire, reset per step; writes the spikes (``x``'s dtype) and, when a gradient is needed, the
  pre-fire membrane ``H`` (the only tensor kept for backward, as in ``fused``);
* backward: the reverse-time recursion of :mod:`.fused` from ``dL/dS`` and ``H`` to ``dL/dX``.

Exactness. The forward does the reference's floating-point operations in the reference's order with FMA contraction
switched off (``enable_fp_fusion=False``), so float32 / float64 spikes are bit-identical to the ``torch`` and
``fused`` back ends on the same device. One device detail is mirrored: ATen's CUDA kernels divide by a Python scalar
as a multiplication by its reciprocal (``x * (1 / tau)``), its CPU kernels divide; the kernel does the same as ATen on
the device it runs on (the reciprocal on CUDA, a true division in the interpreter on CPU tensors). For ``tau = 2``
(every official model) the two agree anyway. Gradients agree with the reference to rounding.

Half precision (bfloat16 / float16 inputs, e.g. under ``torch.autocast``): every operation is computed in float32 and
its result rounded to the input's dtype, as ATen's element-wise kernels do, so spikes match the reference back ends
in that dtype too (checked for the official settings: thresholds and rest potentials exact in that dtype); ``H`` is
stored in the input's dtype (exact: it was rounded to it). The backward recursion runs in float32 throughout (no
intermediate rounding) and writes ``dL/dX`` in the input's dtype.

Where it runs. Compiled kernels need a CUDA (or ROCm) tensor. With ``TRITON_INTERPRET=1`` in the environment, the
same kernels run in Triton's CPU interpreter on CPU tensors (how the tests check them without a GPU). Anywhere else
(a CPU tensor outside the interpreter, another dtype, an unknown surrogate) the call warns once and runs
:mod:`.fused` with the same results, so ``set_backend(model, "triton")`` never breaks a CPU user. Parametric LIF
always uses ``fused`` (its ``w`` gradient is a reduction); the registration in :mod:`.` arranges that.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..surrogate import KERNEL_CODES, Surrogate, get_surrogate
from .fused import if_multistep_fused, lif_multistep_fused

__all__ = ["lif_multistep_triton", "if_multistep_triton", "interpreting", "triton_usable"]

# Charge kinds: LIF with decay_input, LIF without, IF.
_LIF_DECAY, _LIF_NO_DECAY, _IF = 0, 1, 2
_HALF = (torch.float16, torch.bfloat16)
_SUPPORTED = (torch.float32, torch.float64) + _HALF
_BLOCK = 1024  # elements per program: 8 per thread at 4 warps, enough in flight for a memory-bound loop


# The kernels are plain functions here and jit-wrapped on first use (see _kernels): Triton decides between the
# compiler and its interpreter when a function is wrapped, and the tests switch the interpreter on at run time.
# They call no helper functions and only builtins of ``tl`` (not the @jit ones of triton.language.standard, such as
# tl.zeros, which are wrapped for one mode when triton is imported), so either wrapper works in any process. T is a
# compile-time constant (one compiled variant per number of time steps; the interpreter of triton < 3.9 cannot loop
# over a run-time argument).
def _forward_kernel(
    x_ptr, s_ptr, h_ptr, p_ptr, N, T: tl.constexpr,
    KIND: tl.constexpr, ZERO_REST: tl.constexpr, HARD: tl.constexpr, RECIP: tl.constexpr, SAVE_H: tl.constexpr,
    CT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Spikes (and H) of ``x: [T, N]``. Params ``p``: [v_th, v_reset, tau or 1/tau, 1 - 1/tau] in ``CT``.

    ``CT`` is the compute dtype; every result is rounded to the storage dtype ``ST`` (a no-op when they agree).
    """
    ST = x_ptr.dtype.element_ty
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    th = tl.load(p_ptr + 0)
    vr = tl.load(p_ptr + 1).to(ST).to(CT)  # the rest potential as a tensor of x's dtype holds it (full_like)
    tau = tl.load(p_ptr + 2)
    keep = tl.load(p_ptr + 3)
    v = tl.full([BLOCK], 0.0, CT)
    if HARD:
        v = v + vr
    xp = x_ptr + offs
    sp = s_ptr + offs
    hp = h_ptr + offs
    for _t in range(T):
        xt = tl.load(xp, mask=mask, other=0.0).to(CT)
        # Charge: the reference's operations in its order (lif._lif_charge / fused._charge_).
        if KIND == 2:
            h = (v + xt).to(ST).to(CT)
        elif KIND == 0:
            if ZERO_REST:
                d = (xt - v).to(ST).to(CT)
            else:
                d = (xt - (v - vr).to(ST).to(CT)).to(ST).to(CT)
            if RECIP:
                d = (d * tau).to(ST).to(CT)
            else:
                d = (d / tau).to(ST).to(CT)
            h = (v + d).to(ST).to(CT)
        else:
            if ZERO_REST:
                h = ((v * keep).to(ST).to(CT) + xt).to(ST).to(CT)
            else:
                d = (v - vr).to(ST).to(CT)
                if RECIP:
                    d = (d * tau).to(ST).to(CT)
                else:
                    d = (d / tau).to(ST).to(CT)
                h = ((v - d).to(ST).to(CT) + xt).to(ST).to(CT)
        fired = h >= th
        tl.store(sp, tl.where(fired, 1.0, 0.0).to(ST), mask=mask)  # (bool -> bf16 breaks the interpreter)
        if SAVE_H:
            tl.store(hp, h.to(ST), mask=mask)
        # Reset: H where silent, V_reset (hard) or H - V_th (soft) where fired.
        if HARD:
            v = tl.where(fired, vr, h)
        else:
            v = tl.where(fired, (h - th).to(ST).to(CT), h)
        xp += N
        sp += N
        hp += N


def _backward_kernel(
    g_ptr, h_ptr, gx_ptr, p_ptr, N, LAST, T: tl.constexpr,
    HARD: tl.constexpr, DETACH: tl.constexpr, SG: tl.constexpr, CT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """``dL/dX: [T, N]`` from ``dL/dS`` and ``H``; ``LAST = (T - 1) N``.

    Params ``p``: [v_th, v_reset, dH/dV, dH/dX, a0, a1] in ``CT`` (a0, a1: surrogate constants, see _surrogate_consts).
    """
    ST = gx_ptr.dtype.element_ty
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    th = tl.load(p_ptr + 0)
    vr = tl.load(p_ptr + 1)
    cv = tl.load(p_ptr + 2)
    cx = tl.load(p_ptr + 3)
    a0 = tl.load(p_ptr + 4)
    a1 = tl.load(p_ptr + 5)
    gv = tl.full([BLOCK], 0.0, CT)  # dL/dV_t, zero after the last step
    gp = g_ptr + LAST + offs
    hp = h_ptr + LAST + offs
    xp = gx_ptr + LAST + offs
    for _i in range(T):
        h = tl.load(hp, mask=mask, other=0.0).to(CT)
        g = tl.load(gp, mask=mask, other=0.0).to(CT)
        u = h - th
        # sg'(u): the formulas of surrogate.py
        if SG == 0:  # sigmoid: (1 - s) s alpha, s = sigmoid(alpha u)
            s = 1.0 / (1.0 + tl.exp(-(u * a0)))
            sg = (1.0 - s) * s * a0
        elif SG == 1:  # atan: alpha/2 / (1 + (pi/2 alpha u)^2)
            w = a0 * u
            sg = a1 / (1.0 + w * w)
        elif SG == 2:  # rectangle: 1/alpha on |u| < alpha/2
            sg = tl.where(tl.abs(u) < a0, a1, 0.0)
        elif SG == 3:  # fast sigmoid: 1 / (1 + alpha |u|)^2
            w = 1.0 + a0 * tl.abs(u)
            sg = 1.0 / (w * w)
        else:  # erf: alpha / sqrt(pi) exp(-(alpha u)^2)
            w = a0 * u
            sg = a1 * tl.exp(-(w * w))
        gh = g * sg
        # dV_t/dH_t: 1 - S (+ (V_reset - H) sg' if the reset is not detached); soft: 1 (- V_th sg')
        if HARD:
            fired = h >= th
            if DETACH:
                gh = gh + tl.where(fired, 0.0, gv)
            else:
                gh = gh + gv * (tl.where(fired, 0.0, 1.0) + (vr - h) * sg)
        else:
            if DETACH:
                gh = gh + gv
            else:
                gh = gh + gv * (1.0 - th * sg)
        tl.store(xp, (gh * cx).to(ST), mask=mask)
        gv = gh * cv
        gp -= N
        hp -= N
        xp -= N


def interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``), read at call time."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


_lock = threading.Lock()
_jitted: dict[bool, tuple[Any, Any]] = {}
_params_cache: dict[tuple, Tensor] = {}
_warned: set[str] = set()


def _kernels(interpret: bool) -> tuple[Any, Any]:
    """The (forward, backward) kernels, compiled or interpreted, wrapped once each."""
    with _lock:
        if interpret not in _jitted:
            if interpret:
                from triton.runtime.interpreter import InterpretedFunction

                wrap: Callable[[Any], Any] = InterpretedFunction
            else:
                from triton.runtime.jit import JITFunction

                wrap = JITFunction
            _jitted[interpret] = (wrap(_forward_kernel), wrap(_backward_kernel))
        return _jitted[interpret]


def _params(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """The kernel's scalar parameters as a small tensor of the compute dtype (Triton's float arguments are float32,
    which would round float64 ones), cached so that a CUDA call makes no host-to-device copy after the first."""
    key = (values, dtype, device)
    p = _params_cache.get(key)
    if p is None:
        # Python float -> dtype: the same rounding as ATen's scalar arguments
        p = torch.tensor(values, dtype=dtype, device=device)
        _params_cache[key] = p
    return p


def _surrogate_consts(sg: Surrogate) -> tuple[float, float]:
    """(a0, a1) of the backward kernel's surrogate branch, computed in double as surrogate.py does."""
    a = float(sg.alpha)
    if sg.name == "sigmoid":
        return a, 0.0
    if sg.name == "atan":
        return math.pi / 2 * a, a / 2
    if sg.name == "rectangle":
        return a / 2, 1.0 / a
    if sg.name == "fast_sigmoid":
        return a, 0.0
    return a, a / math.sqrt(math.pi)  # erf


def triton_usable(x: Tensor, sg: Surrogate) -> str | None:
    """``None`` when the Triton kernels can take ``x``, else why not (the reason of the fallback warning)."""
    if x.dtype not in _SUPPORTED:
        return f"dtype {x.dtype} is not supported"
    if sg.name not in KERNEL_CODES:
        return f"surrogate {sg.name!r} has no kernel"
    if x.device.type != "cuda" and not interpreting():
        return f"a {x.device.type} tensor needs a GPU (or TRITON_INTERPRET=1)"
    return None


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(
            f"the 'triton' neuron back end cannot run here ({reason}); using the 'fused' implementation instead "
            "(same results)",
            RuntimeWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class _Config:
    kind: int
    tau: float
    v_threshold: float
    v_reset: float | None
    surrogate: Surrogate
    detach_reset: bool


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF else dtype


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, _BLOCK),)


def _launch_forward(x: Tensor, cfg: _Config, save_h: bool) -> tuple[Tensor, Tensor | None]:
    interpret = interpreting()
    fwd, _ = _kernels(interpret)
    T = x.shape[0]
    N = x.numel() // T
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if save_h else None
    if N == 0:
        return spikes, h_seq
    ct = _compute_dtype(x.dtype)
    # ATen on CUDA multiplies by the scalar's reciprocal, computed in the compute dtype; on CPU it divides.
    recip = x.device.type == "cuda"
    tau = float(cfg.tau) if cfg.kind != _IF else 1.0
    if recip:
        tau_param = float(1.0 / torch.tensor(tau, dtype=ct))
    else:
        tau_param = tau
    hard = cfg.v_reset is not None
    values = (float(cfg.v_threshold), float(cfg.v_reset or 0.0), tau_param, 1.0 - 1.0 / tau)
    p = _params(values, ct, x.device)
    zero_rest = not hard or cfg.v_reset == 0.0
    fwd[_grid(N)](
        x, spikes, h_seq if save_h else spikes, p, N, T,
        KIND=cfg.kind, ZERO_REST=zero_rest, HARD=hard, RECIP=recip, SAVE_H=save_h,
        CT=_TL_DTYPE[ct], BLOCK=_BLOCK,
        enable_fp_fusion=False,  # no FMA contraction: the reference rounds after every multiplication
    )  # fmt: skip
    return spikes, h_seq


def _launch_backward(grad_s: Tensor, h_seq: Tensor, cfg: _Config) -> Tensor:
    _, bwd = _kernels(interpreting())
    T = h_seq.shape[0]
    N = h_seq.numel() // T
    grad_x = torch.empty_like(h_seq)
    if N == 0:
        return grad_x
    grad_s = grad_s.to(h_seq.dtype).contiguous()
    ct = _compute_dtype(h_seq.dtype)
    if cfg.kind == _IF:
        dh_dv, dh_dx = 1.0, 1.0
    else:
        dh_dv, dh_dx = 1.0 - 1.0 / cfg.tau, (1.0 / cfg.tau if cfg.kind == _LIF_DECAY else 1.0)
    a0, a1 = _surrogate_consts(cfg.surrogate)
    values = (float(cfg.v_threshold), float(cfg.v_reset or 0.0), dh_dv, dh_dx, a0, a1)
    p = _params(values, ct, h_seq.device)
    bwd[_grid(N)](
        grad_s, h_seq, grad_x, p, N, (T - 1) * N, T,
        HARD=cfg.v_reset is not None, DETACH=bool(cfg.detach_reset), SG=KERNEL_CODES[cfg.surrogate.name],
        CT=_TL_DTYPE[ct], BLOCK=_BLOCK,
    )  # fmt: skip
    return grad_x


_TL_DTYPE = {torch.float32: tl.float32, torch.float64: tl.float64}


class _TritonNeuron(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, cfg: _Config) -> Tensor:  # type: ignore[override]
        spikes, h_seq = _launch_forward(x, cfg, save_h=True)
        ctx.save_for_backward(h_seq)
        ctx.cfg = cfg
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        return _launch_backward(grad_spikes, h_seq, ctx.cfg), None


def _run(x: Tensor, cfg: _Config) -> Tensor | None:
    """Spikes from the Triton kernels, or ``None`` (after one warning per reason) where they cannot run."""
    reason = triton_usable(x, cfg.surrogate)
    if reason is not None:
        _warn_once(reason)
        return None
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    x = x.contiguous()
    # Triton launches on the current CUDA device: make it x's (several GPUs in one process)
    ctx = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with ctx:
        if torch.is_grad_enabled() and x.requires_grad:
            return _TritonNeuron.apply(x, cfg)
        return _launch_forward(x, cfg, save_h=False)[0]


def lif_multistep_triton(
    x: Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """LIF over ``x: [T, B, ...]`` in Triton kernels: same results as :func:`~..lif.lif_multistep` (spikes
    bit-identical, gradients to rounding); falls back to ``fused`` where Triton cannot run (see the module doc)."""
    sg = get_surrogate(surrogate)
    cfg = _Config(_LIF_DECAY if decay_input else _LIF_NO_DECAY, float(tau), float(v_threshold),
                  None if v_reset is None else float(v_reset), sg, bool(detach_reset))
    out = _run(x, cfg)
    if out is None:
        return lif_multistep_fused(x, tau=tau, v_threshold=v_threshold, v_reset=v_reset, surrogate=sg,
                                   detach_reset=detach_reset, decay_input=decay_input)
    return out


def if_multistep_triton(
    x: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
) -> Tensor:
    """IF over ``x: [T, B, ...]`` in Triton kernels: same results as :func:`~..lif.if_multistep`; falls back to
    ``fused`` where Triton cannot run."""
    sg = get_surrogate(surrogate)
    cfg = _Config(_IF, math.inf, float(v_threshold), None if v_reset is None else float(v_reset), sg,
                  bool(detach_reset))
    out = _run(x, cfg)
    if out is None:
        return if_multistep_fused(x, v_threshold=v_threshold, v_reset=v_reset, surrogate=sg,
                                  detach_reset=detach_reset)
    return out
