"""Per-block activation checkpointing (``model.set_grad_checkpointing(True)``, as timm spells it).

A checkpointed module keeps only its input for backward; its activations are recomputed from that input when the
backward pass reaches it (``torch.utils.checkpoint`` with ``use_reentrant=False``). Two things of a spiking
transformer's forward are not pure functions of the input and would go wrong in that second forward:

* training-mode BatchNorm updates ``running_mean`` / ``running_var`` / ``num_batches_tracked`` in place, so a
  recompute would move them a second time. :func:`checkpoint_module` snapshots every BatchNorm buffer of the module
  before the recompute and writes the snapshot back after it, so the running statistics are those of one plain
  step (bit for bit; the recompute's outputs use batch statistics and are identical to the first forward's).
* forward hooks of the neuron modules (firing-rate monitors, spike recorders, distillation taps; all observers in
  this library) would see every spike twice. They are silenced during the recompute. Hooks of other modules stay
  as they are (a BatchNorm hook changes whether ``bn_spike`` fuses, and the recompute must take the same path).

Gradients are those of the plain graph: the recompute runs the same kernels on the same input (the RNG state is
restored by ``torch.utils.checkpoint``; dropout-free families do not need it).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpoint_module", "checkpoint_call", "recompute_guard"]


@contextlib.contextmanager
def recompute_guard(module: nn.Module) -> Iterator[None]:
    """During a recompute of ``module``: BatchNorm running statistics restored afterwards, neuron hooks silenced."""
    from ..neurons import Neuron

    saved: list[tuple[Tensor, Tensor]] = []
    hooks: list[tuple[nn.Module, Any]] = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked):
                if buf is not None:
                    saved.append((buf, buf.clone()))
        if isinstance(m, Neuron) and m._forward_hooks:
            hooks.append((m, m._forward_hooks))
            m._forward_hooks = OrderedDict()
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)
        for m, h in hooks:
            m._forward_hooks = h


def checkpoint_call(owner: nn.Module, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` checkpointed like :func:`checkpoint_module`, ``owner`` being the module whose BatchNorm statistics
    and neuron hooks the recompute must leave alone (``fn`` runs a part of it: e.g. one stage of a tokenizer)."""
    if not torch.is_grad_enabled():
        return fn(*args)
    return checkpoint(
        fn, *args, use_reentrant=False, context_fn=lambda: (contextlib.nullcontext(), recompute_guard(owner))
    )


def checkpoint_module(module: nn.Module, *args: Any) -> Any:
    """``module(*args)`` keeping only ``args`` for backward (recomputed there under :func:`recompute_guard`).

    Falls back to the plain call when autograd is off (eval, ``no_grad``): there is nothing to save.
    """
    if not torch.is_grad_enabled():
        return module(*args)
    return checkpoint(
        module, *args, use_reentrant=False, context_fn=lambda: (contextlib.nullcontext(), recompute_guard(module))
    )
