r"""QSD-Transformer's fine-grained distillation (FGD) of the quantized spike-driven self-attention.

The QSD paper (Qiu et al., ICLR 2025) trains the 4-bit student with a bi-level scheme; its upper level is a
"fine-grained distillation" that aligns the information distribution inside the student's quantized
self-attention (Q-SDSA) with that of the counterpart ANN teacher. The released code contains no FGD (no teacher,
no extra loss), and we could not check the paper's exact equation, so this is **our reading**, stated precisely:

* Taps: the query and key spike maps of each attention block of the student (outputs of ``attn.q_lif`` and
  ``attn.k_lif``, ``[T, B, C, H, W]``, averaged over T) and the matching query/key activations of the teacher
  (``[B, N, C']`` tokens or ``[B, C', H, W]`` maps; the widths may differ, the token counts N must agree).
* Each tap ``X`` (``[B, N, C]``) becomes its token-similarity matrix with L2-normalised rows,

  .. math:: G(X) = \operatorname{rownorm}(X X^\top) \in \mathbb{R}^{B \times N \times N},

  which is independent of the channel width and of the student's level normaliser (this is what makes the
  comparison "distributional" rather than value-by-value).
* The loss is the mean over tap pairs of ``mean_b ||G(X_s) - G(X_t)||_F^2 / N``:

  .. math::
      \mathcal L_{FGD} = \frac{1}{P} \sum_{p=1}^{P} \frac{1}{B N} \sum_b
      \lVert G(X^s_{p,b}) - G(X^t_{p,b})\rVert_F^2

  and the training objective is ``loss + weight * L_FGD`` (the supervised loss unchanged).

:class:`FineGrainedDistillation` is a :class:`~spiking_transformers.training.losses.DistillHook`: it records the
student's taps with forward hooks registered at construction, runs the teacher (eval, no gradients) on the same
batch, and returns the combined loss.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "similarity_matrix",
    "fine_grained_distillation_loss",
    "attention_qk_taps",
    "FineGrainedDistillation",
]


def similarity_matrix(x: Tensor) -> Tensor:
    """Token-similarity matrix with L2-normalised rows: ``[B, N, C] -> [B, N, N]`` (float32 or wider)."""
    if x.dim() != 3:
        raise ValueError(f"similarity_matrix expects tokens [B, N, C], got shape {tuple(x.shape)}")
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return F.normalize(x @ x.transpose(1, 2), p=2, dim=-1)


def _as_tokens(x: Tensor, time_major: bool) -> Tensor:
    # student [T, B, C, H, W] / [T, B, C, N] (mean over T); teacher [B, C, H, W] or [B, N, C] -> [B, N, C]
    if time_major:
        x = x.mean(0)
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 3:
        return x
    raise ValueError(f"teacher tap must be [B, C, H, W] or [B, N, C], got shape {tuple(x.shape)}")


def fine_grained_distillation_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Mean over tap pairs of ``mean_b ||G(s_b) - G(t_b)||_F^2 / N`` (module docstring).

    Args:
        student: tokens ``[B, N, C_s]`` per tap.
        teacher: tokens ``[B, N, C_t]`` per tap, same order; N must match the student's.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"need the same positive number of student and teacher taps, got {len(student)}, "
                         f"{len(teacher)}")
    terms = []
    for i, (s, t) in enumerate(zip(student, teacher)):
        if s.shape[:2] != t.shape[:2]:
            raise ValueError(f"tap {i}: student [B, N] {tuple(s.shape[:2])} != teacher {tuple(t.shape[:2])}")
        gs = similarity_matrix(s)
        gt = similarity_matrix(t.detach()).to(gs.dtype)
        terms.append((gs - gt).square().sum((1, 2)).mean() / s.shape[1])
    return torch.stack(terms).mean()


def attention_qk_taps(model: nn.Module) -> list[str]:
    """Names of the query and key neurons of every Meta-SpikeFormer/QSD attention block, in forward order
    (``block3.0.attn.q_lif``, ``block3.0.attn.k_lif``, ...)."""
    names = [n for n, _ in model.named_modules() if n.endswith(("attn.q_lif", "attn.k_lif"))]
    if not names:
        raise ValueError("model has no attn.q_lif / attn.k_lif modules (not a Meta-SpikeFormer-style model)")
    return names


class _Recorder:
    """Forward hooks storing the outputs of named modules (last call wins)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.names = list(names)
        self.outputs: dict[str, Tensor] = {}
        modules = dict(model.named_modules())
        missing = [n for n in self.names if n not in modules]
        if missing:
            raise ValueError(f"no module named {missing[:3]} in {type(model).__name__}")
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inp: object, out: Tensor) -> None:
            self.outputs[name] = out

        return hook

    def take(self) -> list[Tensor]:
        missing = [n for n in self.names if n not in self.outputs]
        if missing:
            raise RuntimeError(f"taps not recorded in the last forward: {missing[:3]}")
        out = [self.outputs[n] for n in self.names]
        self.outputs.clear()
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


class FineGrainedDistillation:
    """QSD's FGD as a training hook: ``loss + weight * L_FGD(student taps, teacher taps)``.

    Args:
        student: the student model; hooks on ``student_taps`` are registered now (call :meth:`close` to remove).
        teacher: the ANN teacher, run in eval mode without gradients on the student's input batch.
        teacher_taps: teacher module names, one per student tap (e.g. its per-block query and key projections).
        student_taps: student neuron names; default :func:`attention_qk_taps` of ``student``.
        weight: the factor of ``L_FGD``.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        teacher_taps: Sequence[str],
        *,
        student_taps: Sequence[str] | None = None,
        weight: float = 1.0,
    ) -> None:
        student_taps = list(student_taps) if student_taps is not None else attention_qk_taps(student)
        if len(student_taps) != len(teacher_taps):
            raise ValueError(f"{len(student_taps)} student taps but {len(teacher_taps)} teacher taps")
        self.teacher = teacher.eval()
        self.weight = float(weight)
        self._student = _Recorder(student, student_taps)
        self._teacher_taps = list(teacher_taps)

    def teacher_tokens(self, inputs: Tensor) -> list[Tensor]:
        """Teacher taps ``[B, N, C]`` for a batch (the teacher sees a static image; time-major input is averaged)."""
        recorder = _Recorder(self.teacher, self._teacher_taps)
        try:
            with torch.no_grad():
                self.teacher(inputs.mean(0) if inputs.dim() == 5 else inputs)
            return [_as_tokens(t, time_major=False) for t in recorder.take()]
        finally:
            recorder.remove()

    def __call__(self, model: nn.Module, inputs: Tensor, outputs: Tensor, targets: Tensor, loss: Tensor) -> Tensor:
        student = [_as_tokens(s, time_major=True) for s in self._student.take()]
        teacher = self.teacher_tokens(inputs)
        return loss + self.weight * fine_grained_distillation_loss(student, teacher)

    def close(self) -> None:
        """Remove the student hooks."""
        self._student.remove()
