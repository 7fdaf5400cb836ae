r"""A C++ CPU back end for LIF and IF: one pass over memory per call and direction, vectorised.

The ``fused`` back end runs the T-step loop in Python with one ATen kernel per operation (charge, compare, copy,
reset: about six passes over the tensor per step, and as many in backward). Here the whole time loop runs in one
compiled function, forward and backward: ``at::parallel_for`` splits the elements, each thread walks blocks of 512
elements through the T steps with the membrane (or ``dL/dV``) of the block kept in a small buffer, and the loop over
a block's elements is the inner one, so the compiler vectorises it (the settings -- charge form, reset, surrogate,
``detach_reset``, whether ``H`` is saved -- are template parameters: no branch per element). The forward reads ``X``
and writes the spikes (in ``X``'s dtype, directly) and, when training, ``H``; the backward reads ``dL/dS`` and ``H``
and writes ``dL/dX``.

Forward values use the reference's floating-point operations in the same order, so spikes are bit-identical (compiled
with ``-ffp-contract=off``: no fused multiply-adds that would change rounding; ``-fno-trapping-math`` only lets
compares become vector selects). Gradients agree to rounding: the sigmoid / erf surrogates use a vectorisable
``exp`` (Cephes' range reduction, within a few ulp), as ``std::exp`` is a scalar libm call that made the
backward several times slower.

The extension also provides ``pack_uint8``: an integer-valued tensor as ``uint8`` in one pass over it, with the
integrality check in the same pass (used by :mod:`.spike_ops` once the extension is loaded).

The extension is compiled with the machine's C++ compiler the first time the back end is *used* (not at import;
``torch.utils.cpp_extension.load_inline``, cached under ``TORCH_EXTENSIONS_DIR``), which takes a minute once; with
``-mavx2`` where the CPU has it (the extension's name says which, so a cache shared between machines stays valid).
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

from ..surrogate import KERNEL_CODES, Surrogate, get_surrogate
from .fused import if_multistep_fused, lif_multistep_fused

__all__ = ["lif_multistep_cpp", "if_multistep_cpp", "cpp_available", "load_extension", "loaded_extension",
           "pack_uint8_if_integral"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

// Elements of one block: the time loop runs over a block held in registers / L1 (v, dL/dV), and the loop over the
// block's elements is the inner one, so that the compiler vectorises it (no per-element branches: selects only).
constexpr int64_t kBlock = 512;
// Elements per task of at::parallel_for: small tensors stay on the calling thread.
constexpr int64_t kGrain = 16384;

// exp(x) from +, *, / and a bit cast only, so that the compiler vectorises it (std::exp is a scalar libm call, which
// made the sigmoid surrogate's backward several times slower than the rest). Cephes' range reduction and polynomial
// (float) / a Taylor series (double): within a few ulp of exp, ample for a surrogate gradient (tests: 1e-6 / 1e-13).
static inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);  // keeps 2^n normal; exp(-87) ~ 1.6e-38 stands in for 0
  const float shifted = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds x log2(e) to an integer n
  const float n = shifted - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n: n + 127 sits in the low mantissa bits of shifted + 127; shifting them into the exponent field builds it
  // without a float -> int conversion (which SSE2 lacks for doubles and stops vectorisation).
  const float biased = shifted + 127.0f;
  uint32_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  bits <<= 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline double fast_exp(double x) {
  x = std::min(std::max(x, -708.0), 709.0);
  const double shifted = x * 1.4426950408889634073599 + 6755399441055744.0;  // 1.5 * 2^52
  const double n = shifted - 6755399441055744.0;
  const double r = (x - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6;
  // Taylor series to r^13: |r| <= ln(2) / 2 leaves a remainder below 1e-17 relative
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const double biased = shifted + 1023.0;
  uint64_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  bits <<= 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Surrogate derivative sg'(x), the formulas of neurons/surrogate.py.
template <typename S, int SG>
static inline S surrogate_grad(S x, S alpha) {
  if constexpr (SG == 0) { S s = S(1) / (S(1) + fast_exp(-(x * alpha))); return (S(1) - s) * s * alpha; }
  else if constexpr (SG == 1) { S u = S(M_PI / 2) * alpha * x; return alpha / S(2) / (S(1) + u * u); }
  else if constexpr (SG == 2) { return (std::abs(x) < alpha / S(2)) ? S(1) / alpha : S(0); }
  else if constexpr (SG == 3) { S u = S(1) + alpha * std::abs(x); return S(1) / (u * u); }
  else { S u = alpha * x; return alpha / S(std::sqrt(M_PI)) * fast_exp(-(u * u)); }
}

struct Params {
  double tau, v_th, v_reset;
};

// CHARGE: 0 LIF decay_input, 1 LIF without, 2 IF. RESET: 0 hard to v_reset == 0, 1 hard to v_reset != 0 (the charge
// then has the rest-relative form), 2 soft. SAVE: write H. The charges are the reference's (lif.py) operations in
// the same order.
template <typename S, int CHARGE, int RESET, bool SAVE>
static void forward_range(const S* __restrict xp, S* __restrict sp, S* __restrict hp, int64_t T, int64_t N, int64_t b,
                          int64_t e, const Params& p) {
  const S th = S(p.v_th), vr = S(p.v_reset), ts = S(p.tau), keep = S(1.0 - 1.0 / p.tau);
  const S v0 = RESET == 2 ? S(0) : vr;
  alignas(64) S v[kBlock];
  for (int64_t b0 = b; b0 < e; b0 += kBlock) {
    const int64_t n = std::min(kBlock, e - b0);
    for (int64_t j = 0; j < n; ++j) v[j] = v0;
    for (int64_t t = 0; t < T; ++t) {
      const S* __restrict xt = xp + t * N + b0;
      S* __restrict st = sp + t * N + b0;
      S* __restrict ht = SAVE ? hp + t * N + b0 : nullptr;
      for (int64_t j = 0; j < n; ++j) {
        const S vj = v[j], x = xt[j];
        S h;
        if constexpr (CHARGE == 2) h = vj + x;
        else if constexpr (CHARGE == 0) h = RESET == 1 ? vj + (x - (vj - vr)) / ts : vj + (x - vj) / ts;
        else h = RESET == 1 ? (vj - (vj - vr) / ts) + x : vj * keep + x;
        const bool fired = h >= th;
        st[j] = fired ? S(1) : S(0);
        if constexpr (SAVE) ht[j] = h;
        v[j] = fired ? (RESET == 2 ? h - th : vr) : h;
      }
    }
  }
}

// Backward over time of one block range: dL/dH_t = dL/dS_t sg'(H_t - th) + dL/dV_t dV_t/dH_t, dL/dX_t = dL/dH_t cx,
// dL/dV_{t-1} = dL/dH_t cv. RESET as above (0 and 1 are both hard), DETACH: detach_reset.
template <typename S, int SG, int RESET, bool DETACH>
static void backward_range(const S* __restrict gp, const S* __restrict hp, S* __restrict gx, int64_t T, int64_t N,
                           int64_t b, int64_t e, S th, S vr, S a, S cv, S cx) {
  alignas(64) S gv[kBlock];
  for (int64_t b0 = b; b0 < e; b0 += kBlock) {
    const int64_t n = std::min(kBlock, e - b0);
    for (int64_t t = T - 1; t >= 0; --t) {
      const S* __restrict gt = gp + t * N + b0;
      const S* __restrict ht = hp + t * N + b0;
      S* __restrict xt = gx + t * N + b0;
      if (t == T - 1) {
        for (int64_t j = 0; j < n; ++j) {
          const S gh = gt[j] * surrogate_grad<S, SG>(ht[j] - th, a);
          xt[j] = gh * cx;
          gv[j] = gh * cv;
        }
        continue;
      }
      for (int64_t j = 0; j < n; ++j) {
        const S h = ht[j];
        const S sg = surrogate_grad<S, SG>(h - th, a);
        S gh = gt[j] * sg;
        const S g = gv[j];
        if constexpr (RESET != 2) {
          const bool fired = h >= th;
          if constexpr (DETACH) gh += fired ? S(0) : g;
          else gh += g * ((fired ? S(0) : S(1)) + (vr - h) * sg);
        } else {
          if constexpr (DETACH) gh += g;
          else gh += g * (S(1) - th * sg);
        }
        xt[j] = gh * cx;
        gv[j] = gh * cv;
      }
    }
  }
}

template <typename S, int CHARGE, int RESET>
static void forward_dispatch_save(const S* xp, S* sp, S* hp, int64_t T, int64_t N, const Params& p) {
  at::parallel_for(0, N, kGrain, [&](int64_t b, int64_t e) {
    if (hp) forward_range<S, CHARGE, RESET, true>(xp, sp, hp, T, N, b, e, p);
    else forward_range<S, CHARGE, RESET, false>(xp, sp, hp, T, N, b, e, p);
  });
}

template <typename S, int CHARGE>
static void forward_dispatch_reset(const S* xp, S* sp, S* hp, int64_t T, int64_t N, const Params& p, int reset) {
  if (reset == 0) forward_dispatch_save<S, CHARGE, 0>(xp, sp, hp, T, N, p);
  else if (reset == 1) forward_dispatch_save<S, CHARGE, 1>(xp, sp, hp, T, N, p);
  else forward_dispatch_save<S, CHARGE, 2>(xp, sp, hp, T, N, p);
}

static int reset_mode(bool hard, double v_reset) { return hard ? (v_reset == 0.0 ? 0 : 1) : 2; }

// x: [T, ...] contiguous float/double. Returns spikes (x's dtype, 0/1) and, when save_h, the pre-fire membrane H.
std::vector<torch::Tensor> forward(torch::Tensor x, int64_t kind, double tau, double v_th, bool hard, double v_reset,
                                   bool save_h) {
  TORCH_CHECK(x.is_contiguous() && x.dim() >= 1, "x must be contiguous [T, ...]");
  const int64_t T = x.size(0);
  const int64_t N = T ? x.numel() / T : 0;
  auto spikes = torch::empty_like(x);
  auto h_seq = save_h ? torch::empty_like(x) : torch::empty({0}, x.options());
  const Params p{tau, v_th, hard ? v_reset : 0.0};
  const int reset = reset_mode(hard, v_reset);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    using S = scalar_t;
    const S* xp = x.data_ptr<S>();
    S* sp = spikes.data_ptr<S>();
    S* hp = save_h ? h_seq.data_ptr<S>() : nullptr;
    if (kind == 0) forward_dispatch_reset<S, 0>(xp, sp, hp, T, N, p, reset);
    else if (kind == 1) forward_dispatch_reset<S, 1>(xp, sp, hp, T, N, p, reset);
    else forward_dispatch_reset<S, 2>(xp, sp, hp, T, N, p, reset);
  });
  return {spikes, h_seq};
}

template <typename S, int SG, int RESET, bool DETACH>
static void backward_run(const S* gp, const S* hp, S* gx, int64_t T, int64_t N, S th, S vr, S a, S cv, S cx) {
  at::parallel_for(0, N, kGrain, [&](int64_t b, int64_t e) {
    backward_range<S, SG, RESET, DETACH>(gp, hp, gx, T, N, b, e, th, vr, a, cv, cx);
  });
}

template <typename S, int SG>
static void backward_dispatch(const S* gp, const S* hp, S* gx, int64_t T, int64_t N, S th, S vr, S a, S cv, S cx,
                              int reset, bool detach) {
  if (reset != 2) {
    if (detach) backward_run<S, SG, 0, true>(gp, hp, gx, T, N, th, vr, a, cv, cx);
    else backward_run<S, SG, 0, false>(gp, hp, gx, T, N, th, vr, a, cv, cx);
  } else {
    if (detach) backward_run<S, SG, 2, true>(gp, hp, gx, T, N, th, vr, a, cv, cx);
    else backward_run<S, SG, 2, false>(gp, hp, gx, T, N, th, vr, a, cv, cx);
  }
}

// grad_s: dL/dS [T, ...] (any layout; copied when not contiguous), h_seq: the saved H. Returns dL/dX.
torch::Tensor backward(torch::Tensor grad_s, torch::Tensor h_seq, double dh_dv, double dh_dx, double v_th, bool hard,
                       double v_reset, bool detach_reset, int64_t sg_code, double alpha) {
  grad_s = grad_s.contiguous();
  TORCH_CHECK(h_seq.is_contiguous() && grad_s.sizes() == h_seq.sizes() && grad_s.scalar_type() == h_seq.scalar_type(),
              "grad and H must match");
  const int64_t T = h_seq.size(0);
  const int64_t N = T ? h_seq.numel() / T : 0;
  auto grad_x = torch::empty_like(h_seq);
  const int reset = reset_mode(hard, v_reset);
  AT_DISPATCH_FLOATING_TYPES(h_seq.scalar_type(), "lif_backward", [&] {
    using S = scalar_t;
    const S* gp = grad_s.data_ptr<S>();
    const S* hp = h_seq.data_ptr<S>();
    S* gx = grad_x.data_ptr<S>();
    const S th = S(v_th), vr = S(hard ? v_reset : 0.0), a = S(alpha), cv = S(dh_dv), cx = S(dh_dx);
    switch (sg_code) {
      case 0: backward_dispatch<S, 0>(gp, hp, gx, T, N, th, vr, a, cv, cx, reset, detach_reset); break;
      case 1: backward_dispatch<S, 1>(gp, hp, gx, T, N, th, vr, a, cv, cx, reset, detach_reset); break;
      case 2: backward_dispatch<S, 2>(gp, hp, gx, T, N, th, vr, a, cv, cx, reset, detach_reset); break;
      case 3: backward_dispatch<S, 3>(gp, hp, gx, T, N, th, vr, a, cv, cx, reset, detach_reset); break;
      default: backward_dispatch<S, 4>(gp, hp, gx, T, N, th, vr, a, cv, cx, reset, detach_reset); break;
    }
  });
  return grad_x;
}

// Writes x[i] as a byte to out[i]; returns non-zero when some element is not an integer in [0, 255] (or is NaN).
template <typename S>
static int32_t pack_range(const S* __restrict xp, uint8_t* __restrict op, int64_t n) {
  int32_t bad = 0;  // an int, not a bool, so that the loop vectorises as an or-reduction
  for (int64_t i = 0; i < n; ++i) {
    const S v = xp[i];
    const S c = (v >= S(0) && v <= S(255)) ? v : S(0);  // NaN and out-of-range -> 0, flagged below
    const int32_t q = static_cast<int32_t>(c);
    bad |= static_cast<int32_t>(static_cast<S>(q) != v);
    op[i] = static_cast<uint8_t>(q);
  }
  return bad;
}

// x as uint8 when every element is an integer in [0, 255], in one pass over x (x's layout kept when it is dense;
// once a block finds a non-integer the others stop early). Returns (packed, ok); packed is meaningless unless ok.
std::tuple<torch::Tensor, bool> pack_uint8(torch::Tensor x) {
  if (!x.is_non_overlapping_and_dense()) x = x.contiguous();
  auto out = at::empty_strided(x.sizes(), x.strides(), x.options().dtype(torch::kUInt8));
  const int64_t n = x.numel();
  std::atomic<bool> bad{false};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pack_uint8", [&] {
    using S = scalar_t;
    const S* xp = x.data_ptr<S>();
    uint8_t* op = out.data_ptr<uint8_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t b0 = b; b0 < e && !bad.load(std::memory_order_relaxed); b0 += 8 * kBlock) {
        if (pack_range<S>(xp + b0, op + b0, std::min(e - b0, 8 * kBlock))) bad.store(true, std::memory_order_relaxed);
      }
    });
  });
  return {out, !bad.load()};
}
"""

_lock = threading.Lock()
_state: dict[str, Any] = {"module": None, "failed": None}


def cpp_available() -> bool:
    """Whether a C++ compiler and ninja are present (the extension may still fail to build)."""
    from torch.utils import cpp_extension

    return shutil.which("c++") is not None and cpp_extension.is_ninja_available()


def _vector_flags() -> tuple[str, list[str]]:
    """Name suffix and flags for the widest vector unit the build may assume (AVX2 where the CPU reports it)."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch: no query, stay with the compiler's default (SSE2 on x86-64)
        capability = "DEFAULT"
    if capability in ("AVX2", "AVX512"):
        return "avx2", ["-mavx2"]
    return "base", []


def load_extension(verbose: bool = False) -> Any | None:
    """Compile (once per machine, then cached) and return the extension, or ``None`` when that is impossible."""
    if _state["module"] is not None:  # the per-call fast path: no lock once loaded
        return _state["module"]
    with _lock:
        if _state["module"] is not None or _state["failed"] is not None:
            return _state["module"]
        try:
            if not cpp_available():
                raise RuntimeError("no C++ compiler or ninja found")
            from torch.utils.cpp_extension import load_inline

            suffix, flags = _vector_flags()
            _state["module"] = load_inline(
                name=f"spiking_transformers_neuron_cpp_{suffix}",
                cpp_sources=[_SOURCE],
                functions=["forward", "backward", "pack_uint8"],
                extra_cflags=["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp", *flags],
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


def loaded_extension() -> Any | None:
    """The extension if this process has already loaded it (by using the back end or :func:`load_extension`), else
    ``None``; never compiles."""
    return _state["module"]


def pack_uint8_if_integral(x: Tensor) -> Tensor | None:
    """``x`` as ``uint8`` when every element is an integer in ``[0, 255]``, else ``None``: one pass over ``x``.

    ``x``: float32 / float64 on the CPU, any shape (its layout is kept when dense, else it is made contiguous).
    Raises ``RuntimeError`` when the extension is not loaded (see :func:`loaded_extension`).
    """
    ext = _state["module"]
    if ext is None:
        raise RuntimeError("the cpp extension is not loaded")
    packed, ok = ext.pack_uint8(x)
    return packed if ok else None


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
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or sg.name not in KERNEL_CODES:
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
           KERNEL_CODES[sg.name], float(sg.alpha), dh_dv, dh_dx)
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
