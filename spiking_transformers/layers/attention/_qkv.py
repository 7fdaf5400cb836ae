"""The pieces every attention built like Spikformer's SSA shares: Linear-BN-neuron branches under the official names.

Spikformer's SSA (``ssa.py``) projects tokens through three branches ``q``, ``k``, ``v`` (``nn.Linear``,
``nn.BatchNorm1d`` over channels, a neuron: modules ``q_linear``, ``q_bn``, ``q_lif``, ...), splits heads
channel-major, spikes the attention result with ``attn_lif`` (threshold 0.5) and projects it through a fourth branch
``proj``. The attentions that change only the middle (α-XNOR, A²OS²A, DISTA, STFormer, TIM) or add branches (SEMM's
router) build on :class:`QKVAttention` / :func:`add_branch`, so that their module names, registration order (hence
seeded initialisation and state-dict key order) and arithmetic stay those of SSA.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..ops import linear_bn_spike
from ._layout import ATTN_V_THRESHOLD

__all__ = ["add_branch", "QKVAttention"]


def add_branch(
    module: nn.Module,
    name: str,
    in_dim: int,
    out_dim: int,
    *,
    bias: bool,
    neuron: Callable[[], nn.Module],
    neuron_name: str = "lif",
) -> None:
    """Register ``{name}_linear`` (``nn.Linear(in_dim, out_dim)``), ``{name}_bn`` (``nn.BatchNorm1d(out_dim)``) and
    ``{name}_{neuron_name}`` (``neuron()``, built last, as the official files do) on ``module``."""
    setattr(module, f"{name}_linear", nn.Linear(in_dim, out_dim, bias=bias))
    setattr(module, f"{name}_bn", nn.BatchNorm1d(out_dim))
    setattr(module, f"{name}_{neuron_name}", neuron())


class QKVAttention(nn.Module):
    """Base of SSA-like token attentions: head bookkeeping, the q/k/v and output branches, and the shared steps.

    A subclass calls ``super().__init__(dim, num_heads)`` (which checks ``dim % num_heads``), builds its branches
    with :meth:`add_qkv` / :func:`add_branch` and its output with :meth:`add_output` at the point where the official
    file builds them, and in ``forward`` uses :meth:`branch` (``[T, B, N, C_in]`` -> ``[T, B, N, C_out]``),
    :meth:`_heads` (``[T, B, N, C]`` -> ``[T, B, h, N, d]``) and :meth:`output` (``[T, B, h, N, d]`` -> spikes
    ``[T, B, N, C]``).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads

    def add_qkv(self, dim: int, *, bias: bool, neuron: Callable[[], nn.Module]) -> None:
        """The ``q``, ``k``, ``v`` branches, ``dim -> dim`` each, in that order."""
        for name in ("q", "k", "v"):
            add_branch(self, name, dim, dim, bias=bias, neuron=neuron)

    def add_output(
        self,
        dim: int,
        *,
        neuron: Callable[..., nn.Module],
        attn_neuron: nn.Module | None = None,
        bias: bool = True,
    ) -> None:
        """``attn_lif`` (``attn_neuron``; default ``neuron(v_threshold=0.5)``), then the ``proj`` branch
        ``dim -> dim``."""
        self.attn_lif = neuron(v_threshold=ATTN_V_THRESHOLD) if attn_neuron is None else attn_neuron
        add_branch(self, "proj", dim, dim, bias=bias, neuron=neuron)

    def branch(self, name: str, x: Tensor) -> Tensor:
        """Linear, BatchNorm and neuron of branch ``name`` (fused in training): ``[T, B, N, C_in]`` ->
        ``[T, B, N, C_out]``."""
        return linear_bn_spike(x, getattr(self, f"{name}_linear"), getattr(self, f"{name}_bn"),
                               getattr(self, f"{name}_lif"))

    def _heads(self, x: Tensor) -> Tensor:
        """Channel-major head split: ``[T, B, N, C]`` -> ``[T, B, h, N, d]`` (channel ``c = head * d + j``)."""
        T, B, N, C = x.shape
        return x.reshape(T, B, N, self.num_heads, C // self.num_heads).transpose(2, 3)

    def output(self, y: Tensor) -> Tensor:
        """Merge heads ``[T, B, h, N, d]`` -> ``[T, B, N, C]``, spike with ``attn_lif``, project through ``proj``."""
        T, B, h, N, d = y.shape
        return self.branch("proj", self.attn_lif(y.transpose(2, 3).reshape(T, B, N, h * d)))
