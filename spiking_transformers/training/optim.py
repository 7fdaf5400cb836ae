"""Optimisers (AdamW, SGD, LAMB) and the cosine learning-rate schedule with warm-up and cool-down."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["Lamb", "build_optimizer", "param_groups", "CosineSchedule"]


class Lamb(torch.optim.Optimizer):
    r"""LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes").

    Adam moments with bias correction, decoupled weight decay added to the update, and a per-tensor trust ratio
    :math:`\|w\| / \|u\|` scaling the step. ``trust_clip`` clips the ratio at 1 (the variant the SDT V1/V2, QSD and
    V3 recipes use through timm); ``grad_clip_norm`` first rescales all gradients to that global norm (1.0 in those
    recipes; ``None`` off). Where either norm is zero the ratio is 1.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        trust_clip: bool = True,
        grad_clip_norm: float | None = 1.0,
    ) -> None:
        if lr < 0 or eps < 0:
            raise ValueError(f"invalid lr {lr} or eps {eps}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, trust_clip=trust_clip)
        super().__init__(params, defaults)
        self.grad_clip_norm = grad_clip_norm

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        scale = 1.0
        if self.grad_clip_norm is not None and grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            scale = torch.clamp(self.grad_clip_norm / (norm + 1e-12), max=1.0)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad * scale
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update.add(p, alpha=group["weight_decay"])
                w_norm = torch.linalg.vector_norm(p)
                u_norm = torch.linalg.vector_norm(update)
                ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                if group["trust_clip"]:
                    ratio = ratio.clamp(max=1.0)
                p.add_(update * ratio, alpha=-group["lr"])
        return loss


def param_groups(model: nn.Module, weight_decay: float, exclude_1d: bool) -> list[dict]:
    """Parameter groups: with ``exclude_1d``, 1-D parameters (norm scales, biases, thresholds) get no decay."""
    if not exclude_1d or weight_decay == 0:
        return [dict(params=[p for p in model.parameters() if p.requires_grad], weight_decay=weight_decay)]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def build_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """The optimiser named by ``config.opt`` with ``config.lr`` / ``weight_decay`` / ``momentum`` / ``betas``."""
    groups = param_groups(model, config.weight_decay, config.wd_exclude_1d)
    if config.opt == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.opt == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.opt == "lamb":
        return Lamb(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.opt!r}")


class CosineSchedule:
    """Per-step learning rate: linear warm-up, half-cosine to ``min_lr``, then a cool-down at ``min_lr``.

    ``lr(step)`` for optimiser step ``step`` (0-based):

    * ``step < warmup``: ``warmup_lr + (base - warmup_lr) * step / warmup``;
    * ``warmup <= step < cosine_end``: ``min_lr + (base - min_lr) * (1 + cos(pi * s / (cosine_end - warmup))) / 2``
      with ``s = step - warmup``;
    * afterwards (the cool-down epochs): ``min_lr``.

    The schedule is a pure function of the step, so its whole state is the step counter. Each parameter group's
    rate is scaled by its ``lr_scale`` (default 1).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        base_lr: float,
        min_lr: float,
        warmup_lr: float,
        warmup_steps: int,
        cosine_steps: int,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr, self.min_lr, self.warmup_lr = base_lr, min_lr, warmup_lr
        self.warmup_steps = max(0, int(warmup_steps))
        self.cosine_steps = max(self.warmup_steps + 1, int(cosine_steps))
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
        if step < self.cosine_steps:
            s = (step - self.warmup_steps) / (self.cosine_steps - self.warmup_steps)
            return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * s))
        return self.min_lr

    def _apply(self) -> None:
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    @property
    def lr(self) -> float:
        return self.lr_at(self.step_count)

    def step(self) -> None:
        """Advance one optimiser step and set the groups' rates for the next one."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()

