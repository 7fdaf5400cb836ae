"""Losses (soft-target cross-entropy, TET, STMixer's SML self-distillation), mixup / cutmix, and the distillation
hook protocol."""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "one_hot_smooth",
    "soft_cross_entropy",
    "tet_loss",
    "sml_loss",
    "Mixup",
    "DistillHook",
    "LogitDistillation",
]


def one_hot_smooth(target: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Class indices ``[B]`` -> smoothed one-hot ``[B, K]``: ``1 - s + s/K`` on the class, ``s/K`` elsewhere."""
    off = smoothing / num_classes
    out = torch.full((target.shape[0], num_classes), off, device=target.device)
    return out.scatter_(1, target.long().unsqueeze(1), 1.0 - smoothing + off)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of ``-sum_k target_k log softmax(logits)_k``. ``logits, target: [B, K]``."""
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def tet_loss(per_step_logits: Tensor, target: Tensor, *, lam: float = 1e-3, means: float = 1.0) -> Tensor:
    r"""Temporal Efficient Training loss (Deng et al., ICLR 2022), as SDT V1 uses it.

    .. math:: (1-\lambda)\,\frac1T\sum_t \mathrm{CE}(o_t, y) + \lambda\,\mathrm{MSE}(o, \phi)

    with ``phi = means`` everywhere. ``per_step_logits: [T, B, K]``; ``target: [B, K]`` soft targets.
    """
    if per_step_logits.dim() != 3:
        raise ValueError(f"TET needs per-step logits [T, B, K], got {tuple(per_step_logits.shape)}")
    ce = torch.stack([soft_cross_entropy(o, target) for o in per_step_logits]).mean()
    mse = F.mse_loss(per_step_logits.float(), torch.full_like(per_step_logits, means, dtype=torch.float32))
    return (1.0 - lam) * ce + lam * mse


def sml_loss(
    outputs: Sequence[Tensor], target: Tensor, *, temperature: float = 3.0, alpha: float = 0.5, lamb: float = 0.9
) -> Tensor:
    r"""STMixer's self-distillation loss over the main output and its SML side heads (official
    ``SBDistillationLoss`` with the ``train_timm.py`` settings T=3, alpha=0.5, lambda=0.9).

    With ``o_0`` the main logits, ``o_1 .. o_K`` the side heads', ``CE`` the soft-target cross-entropy and
    ``KL_T(p, q) = KL(softmax(p / T) || softmax(q / T))`` averaged over the batch (no ``T^2`` factor, as upstream):

    .. math::
        \text{hard} = \frac{CE(o_0) + \alpha \sum_k CE(o_k)}{\alpha K + 1}, \qquad
        \text{soft} = \frac{\sum_k KL_T(\mathrm{sg}(o_0), o_k) + KL_T(\mathrm{sg}(o_k), o_0)}{2K}

        \text{loss} = \lambda\, \text{soft} + (1 - \lambda)\, \text{hard}

    (``sg``: stop-gradient; with no side head the soft term is 0.)

    Args:
        outputs: ``(main [B, K], side_1 [B, K], ...)``, as ``forward_distill`` returns them.
        target: soft targets ``[B, K]``.
    """
    if len(outputs) < 1:
        raise ValueError("sml_loss needs at least the main output")
    main, sides = outputs[0], list(outputs[1:])
    hard = soft_cross_entropy(main, target)
    for side in sides:
        hard = hard + alpha * soft_cross_entropy(side, target)
    hard = hard / (alpha * len(sides) + 1)
    if not sides or lamb == 0:
        return (1.0 - lamb) * hard

    def kl(student: Tensor, teacher: Tensor) -> Tensor:
        log_q = F.log_softmax(student.float() / temperature, dim=-1)
        p = F.softmax(teacher.detach().float() / temperature, dim=-1)
        return F.kl_div(log_q, p, reduction="batchmean")

    soft = sum(kl(side, main) + kl(main, side) for side in sides) / (2 * len(sides))
    return lamb * soft + (1.0 - lamb) * hard


class Mixup:
    """Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019) on a batch, with soft smoothed targets.

    Each call draws, from its own generator (so training order and resume stay exact): whether to mix
    (``prob``), which kind (cutmix with ``switch_prob`` when both are on), ``lam ~ Beta(alpha, alpha)``; then mixes
    the batch with itself reversed (``x.flip(batch_dim)``). For CutMix ``lam`` is corrected to the box's true area.

    Args:
        mixup_alpha, cutmix_alpha: Beta parameters (0 turns that kind off).
        prob: chance of mixing a batch; switch_prob: chance of cutmix when both kinds are on.
        label_smoothing, num_classes: target smoothing.
        generator: the ``torch.Generator`` all draws use.

    Shapes: images ``x: [B, C, H, W]`` (``batch_dim=0``) or event frames ``[T, B, C, H, W]`` (``batch_dim=1``);
    ``target: [B]`` -> ``(x_mixed, soft_target [B, K])``.
    """

    def __init__(
        self,
        *,
        mixup_alpha: float,
        cutmix_alpha: float,
        prob: float,
        switch_prob: float,
        label_smoothing: float,
        num_classes: int,
        generator: torch.Generator,
    ) -> None:
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing, self.num_classes = label_smoothing, num_classes
        self.generator = generator

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def _beta(self, alpha: float) -> float:
        # Beta(a, a) from two Gammas drawn with our generator (torch's Beta sampler takes no generator).
        a = torch.full((2,), alpha, dtype=torch.float64)
        g = torch._standard_gamma(a, generator=self.generator)
        return float(g[0] / g.sum())

    def __call__(self, x: Tensor, target: Tensor, batch_dim: int = 0) -> tuple[Tensor, Tensor]:
        soft = one_hot_smooth(target, self.num_classes, self.label_smoothing)
        if not self.active or self._uniform() >= self.prob:
            return x, soft
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self._uniform() < self.switch_prob)
        lam = self._beta(self.cutmix_alpha if use_cutmix else self.mixup_alpha)
        flipped = x.flip(batch_dim)
        if use_cutmix:
            H, W = x.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(H * cut), int(W * cut)
            cy, cx = int(self._uniform() * H), int(self._uniform() * W)
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, H)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, W)
            x = x.clone()
            x[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (H * W)
        else:
            x = x * lam + flipped * (1.0 - lam)
        return x, soft * lam + soft.flip(0) * (1.0 - lam)


class DistillHook(Protocol):
    """Called once per training micro-batch after the supervised loss; returns the loss to optimise.

    Args:
        model: the student (unwrapped from DDP).
        inputs: the (possibly mixed) batch the student saw.
        outputs: student logits ``[B, K]`` (``[T, B, K]`` when TET is on).
        targets: soft targets ``[B, K]``.
        loss: the supervised loss (a scalar).

    A hook that needs features registers forward hooks on ``model`` (or calls its ``forward_features``).
    """

    def __call__(self, model: nn.Module, inputs: Tensor, outputs: Tensor, targets: Tensor, loss: Tensor) -> Tensor:
        ...


class LogitDistillation:
    """Distillation from a teacher's logits (DeiT-style, as Meta-SpikeFormer and E-SpikeFormer use it).

    ``hard``: ``(1 - alpha) * loss + alpha * CE(student, argmax teacher)``; ``soft``:
    ``(1 - alpha) * loss + alpha * tau^2 * KL(softmax(teacher / tau) || softmax(student / tau))``. The teacher runs
    in eval mode without gradients. Per-step student logits ``[T, B, K]`` are averaged over time first.
    """

    def __init__(self, teacher: nn.Module, *, kind: str = "hard", alpha: float = 0.5, tau: float = 1.0) -> None:
        if kind not in ("hard", "soft"):
            raise ValueError(f"kind must be 'hard' or 'soft', got {kind!r}")
        self.teacher, self.kind, self.alpha, self.tau = teacher.eval(), kind, alpha, tau

    def __call__(self, model: nn.Module, inputs: Tensor, outputs: Tensor, targets: Tensor, loss: Tensor) -> Tensor:
        with torch.no_grad():
            t = self.teacher(inputs).float()
        s = (outputs.mean(0) if outputs.dim() == 3 else outputs).float()
        if self.kind == "hard":
            kd = F.cross_entropy(s, t.argmax(-1))
        else:
            kd = F.kl_div(F.log_softmax(s / self.tau, -1), F.log_softmax(t / self.tau, -1), reduction="batchmean",
                          log_target=True) * self.tau**2
        return (1.0 - self.alpha) * loss + self.alpha * kd
