r"""A C++ CPU back end for LIF and IF: one pass over memory per call instead of several per time step.

The ``fused`` back end runs the T-step loop in Python with one ATen kernel per operation (charge, compare, copy,
reset: about six passes over the tensor per step, and as many in backward). Here each element's whole time loop
runs in one compiled loop (``at::parallel_for`` over elements, the T steps inside), forward and backward, with the
same floating-point operations in the same order as the reference, so spikes are bit-identical (compiled with
``-ffp-contract=off``: no fused multiply-adds that would change rounding); gradients agree to rounding.

The extension is compiled with the machine's C++ compiler the first time the back end is *used* (not at import;
``torch.utils.cpp_extension.load_inline``, cached under ``TORCH_EXTENSIONS_DIR``), which takes a minute once.
When no compiler or ``ninja`` is available, or the build fails, the back end warns once and runs the ``fused``
Python implementation instead, with the same results. Parametric LIF always uses ``fused`` (its ``w`` gradient).
"""

from __future__ import annotations

import math
import shutil
import threading
import warnings
from typing import Any

import torch
from torch import Tensor

from ..surrogate import Surrogate, get_surrogate
from .fused import if_multistep_fused, lif_multistep_fused

__all__ = ["lif_multistep_cpp", "if_multistep_cpp", "cpp_available", "load_extension"]

# Surrogate names -> the integer code of the C++ switch.
_SURROGATE_CODE = {"sigmoid": 0, "atan": 1, "rectangle": 2, "fast_sigmoid": 3, "erf": 4}

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// Surrogate derivative sg'(x), the formulas of neurons/surrogate.py.
template <typename S>
static inline S surrogate_grad(S x, int code, S alpha) {
  switch (code) {
    case 0: { S s = S(1) / (S(1) + std::exp(-(x * alpha))); return (S(1) - s) * s * alpha; }
    case 1: { S u = S(M_PI / 2) * alpha * x; return alpha / S(2) / (S(1) + u * u); }
    case 2: return (std::abs(x) < alpha / S(2)) ? S(1) / alpha : S(0);
    case 3: { S u = S(1) + alpha * std::abs(x); return S(1) / (u * u); }
    default: { S u = alpha * x; return alpha / S(std::sqrt(M_PI)) * std::exp(-(u * u)); }
  }
}

// kind: 0 LIF decay_input, 1 LIF without decay_input, 2 IF. hard: hard reset to v_reset, else soft.
std::vector<torch::Tensor> forward(torch::Tensor x, int64_t kind, double tau, double v_th, bool hard, double v_reset,
                                   bool save_h) {
  TORCH_CHECK(x.is_contiguous() && x.dim() >= 1, "x must be contiguous [T, ...]");
  const int64_t T = x.size(0);
  const int64_t N = T ? x.numel() / T : 0;
  auto spikes = torch::empty_like(x);
  auto h_seq = save_h ? torch::empty_like(x) : torch::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    using S = scalar_t;
    const S* xp = x.data_ptr<S>();
    S* sp = spikes.data_ptr<S>();
    S* hp = save_h ? h_seq.data_ptr<S>() : nullptr;
    const S th = S(v_th), vr = S(v_reset), ts = S(tau), keep = S(1.0 - 1.0 / tau);
    const bool zero_rest = !hard || v_reset == 0.0;
    at::parallel_for(0, N, 2048, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        S v = hard ? vr : S(0);
        for (int64_t t = 0; t < T; ++t) {
          const S xt = xp[t * N + i];
          S h;
          if (kind == 2) h = v + xt;
          else if (kind == 0) h = zero_rest ? v + (xt - v) / ts : v + (xt - (v - vr)) / ts;
          else h = zero_rest ? v * keep + xt : (v - (v - vr) / ts) + xt;
          const bool fired = h >= th;
          sp[t * N + i] = fired ? S(1) : S(0);
          if (hp) hp[t * N + i] = h;
          v = fired ? (hard ? vr : h - th) : h;
        }
      }
    });
  });
  return {spikes, h_seq};
}

torch::Tensor backward(torch::Tensor grad_s, torch::Tensor h_seq, double dh_dv, double dh_dx, double v_th, bool hard,
                       double v_reset, bool detach_reset, int64_t sg_code, double alpha) {
  grad_s = grad_s.contiguous();
  const int64_t T = h_seq.size(0);
  const int64_t N = T ? h_seq.numel() / T : 0;
  auto grad_x = torch::empty_like(h_seq);
  AT_DISPATCH_FLOATING_TYPES(h_seq.scalar_type(), "lif_backward", [&] {
    using S = scalar_t;
    const S* gp = grad_s.data_ptr<S>();
    const S* hp = h_seq.data_ptr<S>();
    S* gx = grad_x.data_ptr<S>();
    const S th = S(v_th), vr = S(v_reset), a = S(alpha), cv = S(dh_dv), cx = S(dh_dx);
    at::parallel_for(0, N, 2048, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        S gv = S(0);
        for (int64_t t = T - 1; t >= 0; --t) {
          const S h = hp[t * N + i];
          const S sg = surrogate_grad<S>(h - th, (int)sg_code, a);
          S gh = gp[t * N + i] * sg;
          if (t < T - 1) {
            const bool fired = h >= th;
            if (hard) gh += detach_reset ? (fired ? S(0) : gv) : gv * ((fired ? S(0) : S(1)) + (vr - h) * sg);
            else gh += detach_reset ? gv : gv * (S(1) - th * sg);
          }
          gx[t * N + i] = gh * cx;
          gv = gh * cv;
        }
      }
    });
  });
  return grad_x;
}
"""

_lock = threading.Lock()
_state: dict[str, Any] = {"module": None, "failed": None}


def cpp_available() -> bool:
    """Whether a C++ compiler and ninja are present (the extension may still fail to build)."""
    from torch.utils import cpp_extension

    return shutil.which("c++") is not None and cpp_extension.is_ninja_available()


def load_extension(verbose: bool = False) -> Any | None:
    """Compile (once per machine, then cached) and return the extension, or ``None`` when that is impossible."""
    with _lock:
        if _state["module"] is not None or _state["failed"] is not None:
            return _state["module"]
        try:
            if not cpp_available():
                raise RuntimeError("no C++ compiler or ninja found")
            from torch.utils.cpp_extension import load_inline

            _state["module"] = load_inline(
                name="spiking_transformers_lif_cpp",
                cpp_sources=[_SOURCE],
                functions=["forward", "backward"],
                extra_cflags=["-O3", "-ffp-contract=off", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=verbose,
            )
        except Exception as exc:  # any build problem: fall back, say why once
            _state["failed"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"the 'cpp' neuron back end could not be compiled ({_state['failed'][:300]}); "
                "using the 'fused' Python implementation instead (same results)",
                RuntimeWarning,
                stacklevel=3,
            )
        return _state["module"]


class _CppNeuron(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, ext: Any, cfg: tuple) -> Tensor:  # type: ignore[override]
        kind, tau, v_th, hard, v_reset, detach_reset, sg_code, alpha, dh_dv, dh_dx = cfg
        spikes, h_seq = ext.forward(x.contiguous(), kind, tau, v_th, hard, v_reset, True)
        ctx.save_for_backward(h_seq)
        ctx.ext, ctx.cfg = ext, cfg
        return spikes

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        kind, tau, v_th, hard, v_reset, detach_reset, sg_code, alpha, dh_dv, dh_dx = ctx.cfg
        gx = ctx.ext.backward(grad, h_seq, dh_dv, dh_dx, v_th, hard, v_reset, detach_reset, sg_code, alpha)
        return gx, None, None


def _run(x: Tensor, kind: int, tau: float, v_threshold: float, v_reset: float | None, sg: Surrogate,
         detach_reset: bool) -> Tensor | None:
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or sg.name not in _SURROGATE_CODE:
        return None
    ext = load_extension()
    if ext is None:
        return None
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    hard = v_reset is not None
    if kind == 2:
        dh_dv, dh_dx = 1.0, 1.0
    else:
        dh_dv, dh_dx = 1.0 - 1.0 / tau, (1.0 / tau if kind == 0 else 1.0)
    cfg = (kind, float(tau), float(v_threshold), hard, float(v_reset or 0.0), bool(detach_reset),
           _SURROGATE_CODE[sg.name], float(sg.alpha), dh_dv, dh_dx)
    if torch.is_grad_enabled() and x.requires_grad:
        return _CppNeuron.apply(x, ext, cfg)
    with torch.no_grad():
        return ext.forward(x.contiguous(), kind, float(tau), float(v_threshold), hard, float(v_reset or 0.0),
                           False)[0]


def lif_multistep_cpp(
    x: Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """LIF over ``x: [T, B, ...]`` in compiled C++ (falls back to ``fused`` where the extension cannot run)."""
    sg = get_surrogate(surrogate)
    out = _run(x, 0 if decay_input else 1, tau, v_threshold, v_reset, sg, detach_reset)
    if out is None:
        return lif_multistep_fused(x, tau=tau, v_threshold=v_threshold, v_reset=v_reset, surrogate=sg,
                                   detach_reset=detach_reset, decay_input=decay_input)
    return out


def if_multistep_cpp(
    x: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
) -> Tensor:
    """IF over ``x: [T, B, ...]`` in compiled C++ (falls back to ``fused`` where the extension cannot run)."""
    sg = get_surrogate(surrogate)
    out = _run(x, 2, math.inf, v_threshold, v_reset, sg, detach_reset)
    if out is None:
        return if_multistep_fused(x, v_threshold=v_threshold, v_reset=v_reset, surrogate=sg,
                                  detach_reset=detach_reset)
    return out
