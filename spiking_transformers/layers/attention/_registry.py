"""The attention registry: name -> constructor and the facts a comparison table needs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

__all__ = ["AttentionInfo", "register_attention", "create_attention", "list_attentions", "attention_info"]


@dataclass(frozen=True)
class AttentionInfo:
    """What is known about a registered attention.

    Attributes:
        name: registry name (``"ssa"``, ``"sdsa"``, ...).
        build: ``build(dim, num_heads, *, spike_layer=..., **options) -> nn.Module`` mapping ``[T, B, N, C]`` tokens
            to ``[T, B, N, C]``.
        description: one line for ``spiking-transformers models --attention``.
        paper: short citation (``"Spikformer (ICLR 2023)"``).
        spike_driven: whether every product inside takes binary spikes (``None``: depends on options).
        reference: ``"official"`` (reproduces official code) or ``"paper"`` (built from the paper alone).
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    paper: str
    spike_driven: bool | None
    reference: str = "official"


_ATTENTIONS: dict[str, AttentionInfo] = {}


def register_attention(
    name: str, *, description: str, paper: str, spike_driven: bool | None, reference: str = "official"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator registering an attention under ``name`` (duplicate names raise)."""
    if reference not in ("official", "paper"):
        raise ValueError(f"reference must be 'official' or 'paper', got {reference!r}")

    def wrap(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ATTENTIONS:
            raise ValueError(f"attention {name!r} is registered twice")
        _ATTENTIONS[name] = AttentionInfo(name, build, description, paper, spike_driven, reference)
        return build

    return wrap


def _ensure_loaded() -> None:
    # Attention classes register on import; the models package imports every family (and so every attention).
    from ...models import _load_all  # noqa: F401


def list_attentions(pattern: str = "*") -> list[str]:
    """Registered attention names matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _ATTENTIONS if fnmatch.fnmatchcase(n, pattern))


def attention_info(name: str) -> AttentionInfo:
    """The registry entry of attention ``name`` (``ValueError`` listing the known names otherwise)."""
    _ensure_loaded()
    try:
        return _ATTENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(sorted(_ATTENTIONS))}") from None


def create_attention(name: str, dim: int, num_heads: int, **options: Any) -> nn.Module:
    """Build attention ``name`` for ``dim`` channels and ``num_heads`` heads (``options``: ``spike_layer``, ...)."""
    return attention_info(name).build(dim, num_heads, **options)
