"""Fused multi-step LIF: one autograd node for all T steps instead of a per-step graph.

The reference back end (``neurons/lif.py``) lets autograd record every charge, fire and reset operation of every
time step: about ten saved tensors per step and as many small backward kernels. This back end runs the forward
loop without a graph, saves only the pre-fire membrane ``H`` (spikes are recomputed from it as ``H >= V_th``), and
runs a hand-written backward recursion over time:

    dL/dH_t = dL/dS_t * sg'(H_t - V_th) + dL/dV_t * dV_t/dH_t
    dL/dX_t = dL/dH_t * dH/dX,      dL/dV_{t-1} = dL/dH_t * dH/dV

with ``dV_t/dH_t = 1 - S_t`` for a detached hard reset (plus ``(V_reset - H_t) sg'`` when the reset is not detached;
``1`` and ``- V_th sg'`` for a soft reset). Forward values are bit-identical to the reference (the same
floating-point operations in the same order); gradients agree to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..surrogate import Surrogate, get_surrogate

__all__ = ["lif_multistep_fused"]


def _charge_coefficients(tau: float, decay_input: bool) -> tuple[float, float]:
    """(dH/dV, dH/dX) of the LIF charge."""
    return (1.0 - 1.0 / tau, 1.0 / tau if decay_input else 1.0)


def _charge_(h: Tensor, v: Tensor, x_t: Tensor, tau: float, v_reset: float | None, decay_input: bool) -> None:
    """Write H = charge(V, X) into ``h`` with the reference's operations (see ``lif._lif_charge``)."""
    zero_rest = v_reset is None or v_reset == 0.0
    if decay_input:
        # reference: v + (x - v) / tau   or   v + (x - (v - v_reset)) / tau
        if zero_rest:
            torch.sub(x_t, v, out=h)
        else:
            torch.sub(x_t, v - v_reset, out=h)
        h.div_(tau).add_(v)
    else:
        # reference: v * (1 - 1/tau) + x   or   v - (v - v_reset) / tau + x
        if zero_rest:
            torch.mul(v, 1.0 - 1.0 / tau, out=h)
        else:
            torch.sub(v, (v - v_reset) / tau, out=h)
        h.add_(x_t)


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, tau: float, v_threshold: float, v_reset: float | None, surrogate: Surrogate,
                detach_reset: bool, decay_input: bool) -> Tensor:  # type: ignore[override]
        x = x.contiguous()
        h_seq = torch.empty_like(x)
        spikes = torch.empty_like(x)
        v = torch.full_like(x[0], 0.0 if v_reset is None else v_reset)
        for t in range(x.shape[0]):
            h = h_seq[t]
            _charge_(h, v, x[t], tau, v_reset, decay_input)
            fired = h >= v_threshold  # == (h - v_th >= 0) for finite values
            spikes[t] = fired
            # (1 - S) H + S V_reset (hard) or H - S V_th (soft), exactly, without the multiplications
            v = torch.where(fired, h - v_threshold, h) if v_reset is None else h.masked_fill(fired, v_reset)
        ctx.save_for_backward(h_seq)
        ctx.params = (tau, v_threshold, v_reset, surrogate, detach_reset, decay_input)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        tau, v_threshold, v_reset, surrogate, detach_reset, decay_input = ctx.params
        dh_dv, dh_dx = _charge_coefficients(tau, decay_input)
        grad_x = torch.empty_like(h_seq)
        grad_v: Tensor | None = None
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            sg = surrogate.grad(h - v_threshold)
            grad_h = grad_spikes[t] * sg
            if grad_v is not None:
                fired = h >= v_threshold
                if v_reset is None:
                    dv_dh = torch.ones_like(h) if detach_reset else 1.0 - v_threshold * sg
                else:
                    dv_dh = (~fired).to(h.dtype)
                    if not detach_reset:
                        dv_dh = dv_dh + (v_reset - h) * sg
                grad_h = grad_h + grad_v * dv_dh
            torch.mul(grad_h, dh_dx, out=grad_x[t])
            grad_v = grad_h * dh_dv
        return grad_x, None, None, None, None, None, None


def lif_multistep_fused(
    x: Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """Fused LIF over ``x: [T, B, ...]``: same results as :func:`~spiking_transformers.neurons.lif_multistep`."""
    sg = get_surrogate(surrogate)
    if not x.requires_grad or not torch.is_grad_enabled():
        with torch.no_grad():
            return _FusedLIF.forward(_NoCtx(), x, tau, v_threshold, v_reset, sg, detach_reset, decay_input)
    return _FusedLIF.apply(x, tau, v_threshold, v_reset, sg, detach_reset, decay_input)


class _NoCtx:
    """Stand-in for autograd's ctx when no backward will run (inference): saves nothing."""

    def save_for_backward(self, *tensors: Tensor) -> None:
        pass
