r"""Fused multi-step neurons: one autograd node for all T steps instead of a per-step graph.

The reference back end (``neurons/lif.py``) lets autograd record every charge, fire and reset operation of every
time step: about ten saved tensors per step and as many small backward kernels. This back end runs the forward
loop without a graph, saves only the pre-fire membrane ``H`` (spikes and the post-reset membrane are recomputed
from it), and runs a hand-written backward recursion over time:

    dL/dH_t = dL/dS_t * sg'(H_t - V_th) + dL/dV_t * dV_t/dH_t
    dL/dX_t = dL/dH_t * dH/dX,      dL/dV_{t-1} = dL/dH_t * dH/dV

with ``dV_t/dH_t = 1 - S_t`` for a detached hard reset (plus ``(V_reset - H_t) sg'`` when the reset is not detached;
``1`` and ``- V_th sg'`` for a soft reset). One function covers the three charges of ``lif.py``:

=========  ==============================  ============  ===========================
neuron     charge ``H = f(V, X)``          ``dH/dV``     ``dH/dX``
=========  ==============================  ============  ===========================
LIF        ``V + (X - (V - V_r)) / tau``   ``1 - 1/tau`` ``1/tau`` (``1`` without
                                                         decay_input)
IF         ``V + X``                       ``1``         ``1``
PLIF       ``V + (X - (V - V_r)) k``,      ``1 - k``     ``k`` (``1`` without
           ``k = sigmoid(w)``                            decay_input)
=========  ==============================  ============  ===========================

For PLIF the parameter gradient is ``dL/dw = k (1 - k) sum_t sum dL/dH_t * dH_t/dk`` with ``dH/dk = X - (V - V_r)``
(decay_input) or ``-(V - V_r)``; that needs the input ``X`` as well, so PLIF also saves it.

Forward values are bit-identical to the reference (the same floating-point operations in the same order);
gradients agree to rounding. Without autograd (``torch.no_grad``, or an input that does not need a gradient) the
loop runs with nothing saved: that is the inference path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..surrogate import Surrogate, get_surrogate

__all__ = ["lif_multistep_fused", "if_multistep_fused", "plif_multistep_fused", "NeuronSpec"]


@dataclass(frozen=True)
class NeuronSpec:
    """Hyper-parameters of one fused neuron call.

    Attributes:
        kind: ``"lif"`` (fixed ``tau``), ``"if"`` (no leak) or ``"plif"`` (``k = sigmoid(w)`` passed as a tensor).
        tau: LIF time constant (unused for the other kinds).
        v_threshold, v_reset, surrogate, detach_reset, decay_input: as in :func:`~..lif.lif_multistep`.
    """

    kind: str
    tau: float
    v_threshold: float
    v_reset: float | None
    surrogate: Surrogate
    detach_reset: bool
    decay_input: bool


def _charge_(h: Tensor, v: Tensor, x_t: Tensor, spec: NeuronSpec, k: Tensor | None) -> None:
    """Write ``H = charge(V, X)`` into ``h`` with the reference's operations (``lif._lif_charge`` etc.)."""
    zero_rest = spec.v_reset is None or spec.v_reset == 0.0
    if spec.kind == "if":
        torch.add(v, x_t, out=h)  # reference: v + x
        return
    if spec.decay_input:
        # LIF reference: v + (x - v) / tau  or  v + (x - (v - v_reset)) / tau; PLIF: the same with "* k"
        if zero_rest:
            torch.sub(x_t, v, out=h)
        else:
            torch.sub(x_t, v - spec.v_reset, out=h)
        if spec.kind == "lif":
            h.div_(spec.tau)
        else:
            h.mul_(k)
        h.add_(v)
        return
    if spec.kind == "lif":
        # reference: v * (1 - 1/tau) + x   or   v - (v - v_reset) / tau + x
        if zero_rest:
            torch.mul(v, 1.0 - 1.0 / spec.tau, out=h)
        else:
            torch.sub(v, (v - spec.v_reset) / spec.tau, out=h)
    else:
        # reference: v * (1 - k) + x   or   v - (v - v_reset) * k + x
        if zero_rest:
            torch.mul(v, 1.0 - k, out=h)
        else:
            torch.sub(v, (v - spec.v_reset) * k, out=h)
    h.add_(x_t)


def _reset(h: Tensor, fired: Tensor, spec: NeuronSpec) -> Tensor:
    """Membrane after firing: ``(1 - S) H + S V_reset`` (hard) or ``H - S V_th`` (soft), exactly, without products."""
    if spec.v_reset is None:
        return torch.where(fired, h - spec.v_threshold, h)
    return h.masked_fill(fired, spec.v_reset)


def _forward_loop(x: Tensor, spec: NeuronSpec, k: Tensor | None, h_seq: Tensor | None) -> Tensor:
    """Run the neuron over T steps; writes ``H`` into ``h_seq`` when given (for backward). Returns spikes."""
    spikes = torch.empty_like(x)
    v = torch.full_like(x[0], 0.0 if spec.v_reset is None else spec.v_reset)
    h_buf = None if h_seq is not None else torch.empty_like(x[0])  # inference: one reused buffer, nothing kept
    for t in range(x.shape[0]):
        h = h_seq[t] if h_seq is not None else h_buf
        _charge_(h, v, x[t], spec, k)
        fired = h >= spec.v_threshold  # == (h - v_th >= 0) for finite values
        spikes[t] = fired
        if t + 1 < x.shape[0]:
            v = _reset(h, fired, spec)  # a new tensor, so the reused inference buffer h is free to overwrite
    return spikes


class _FusedNeuron(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor | None, spec: NeuronSpec) -> Tensor:  # type: ignore[override]
        x = x.contiguous()
        k = w.sigmoid() if w is not None else None  # as the reference: k = w.sigmoid()
        h_seq = torch.empty_like(x)
        spikes = _forward_loop(x, spec, k, h_seq)
        if spec.kind == "plif":
            ctx.save_for_backward(h_seq, x, k)
        else:
            ctx.save_for_backward(h_seq)
        ctx.spec = spec
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        spec: NeuronSpec = ctx.spec
        saved = ctx.saved_tensors
        h_seq = saved[0]
        x, k = (saved[1], saved[2]) if spec.kind == "plif" else (None, None)
        if spec.kind == "lif":
            dh_dv, dh_dx = 1.0 - 1.0 / spec.tau, (1.0 / spec.tau if spec.decay_input else 1.0)
        elif spec.kind == "if":
            dh_dv, dh_dx = 1.0, 1.0
        else:
            dh_dv, dh_dx = 1.0 - k, (k if spec.decay_input else 1.0)
        rest = 0.0 if spec.v_reset is None else spec.v_reset
        T = h_seq.shape[0]
        grad_x = torch.empty_like(h_seq)
        grad_k_acc: Tensor | None = None
        grad_v: Tensor | None = None
        for t in range(T - 1, -1, -1):
            h = h_seq[t]
            sg = spec.surrogate.grad(h - spec.v_threshold)
            grad_h = grad_spikes[t] * sg
            if grad_v is not None:
                fired = h >= spec.v_threshold
                if spec.v_reset is None:
                    if not spec.detach_reset:
                        grad_h.addcmul_(grad_v, 1.0 - spec.v_threshold * sg)
                    else:
                        grad_h.add_(grad_v)
                else:
                    if spec.detach_reset:
                        grad_h.add_(grad_v.masked_fill(fired, 0.0))  # dV/dH = 1 - S
                    else:
                        grad_h.addcmul_(grad_v, (~fired).to(h.dtype) + (spec.v_reset - h) * sg)
            torch.mul(grad_h, dh_dx, out=grad_x[t])
            if x is not None:
                # dH_t/dk with V_{t-1} recomputed from H_{t-1} (bit-identical to the forward's V)
                if t == 0:
                    v_prev: Tensor | float = rest
                else:
                    h_prev = h_seq[t - 1]
                    v_prev = _reset(h_prev, h_prev >= spec.v_threshold, spec)
                zero_rest = spec.v_reset is None or spec.v_reset == 0.0
                v_rel = v_prev if zero_rest else v_prev - spec.v_reset
                dh_dk = x[t] - v_rel if spec.decay_input else -v_rel
                term = grad_h * dh_dk
                grad_k_acc = term if grad_k_acc is None else grad_k_acc.add_(term)
            if t > 0:
                grad_v = grad_h * dh_dv
        grad_w = None
        if grad_k_acc is not None:
            grad_w = grad_k_acc.sum() * ((1.0 - k) * k)  # sigmoid'(w) = k (1 - k)
        return grad_x, grad_w, None


def _run(x: Tensor, w: Tensor | None, spec: NeuronSpec) -> Tensor:
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"neuron input must be time-major [T, B, ...] with T >= 1, got shape {tuple(x.shape)}")
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (w is not None and w.requires_grad))
    if not needs_grad:
        # Inference: no autograd node, no saved membrane (an eval path without bookkeeping).
        with torch.no_grad():
            k = w.sigmoid() if w is not None else None
            return _forward_loop(x.contiguous(), spec, k, None)
    return _FusedNeuron.apply(x, w, spec)


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
    spec = NeuronSpec("lif", float(tau), v_threshold, v_reset, get_surrogate(surrogate), detach_reset, decay_input)
    return _run(x, None, spec)


def if_multistep_fused(
    x: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
) -> Tensor:
    """Fused IF over ``x: [T, B, ...]``: same results as :func:`~spiking_transformers.neurons.if_multistep`."""
    spec = NeuronSpec("if", 0.0, v_threshold, v_reset, get_surrogate(surrogate), detach_reset, True)
    return _run(x, None, spec)


def plif_multistep_fused(
    x: Tensor,
    w: Tensor,
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate | str = "sigmoid",
    detach_reset: bool = True,
    decay_input: bool = True,
) -> Tensor:
    """Fused parametric LIF over ``x: [T, B, ...]`` with ``1/tau = sigmoid(w)``; gradients flow to ``x`` and ``w``.

    Same results as :func:`~spiking_transformers.neurons.plif_multistep` (``w`` a 0-d tensor in ``x``'s dtype).
    """
    spec = NeuronSpec("plif", 0.0, v_threshold, v_reset, get_surrogate(surrogate), detach_reset, decay_input)
    return _run(x, w, spec)
