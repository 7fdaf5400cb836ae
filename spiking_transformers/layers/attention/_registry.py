"""The attention registry: name -> constructor and the facts a comparison table needs."""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

__all__ = [
    "AttentionInfo",
    "register_attention",
    "create_attention",
    "list_attentions",
    "attention_info",
    "resolve_attention",
    "backbone_options",
]


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


def resolve_attention(attn: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """A registered attention's constructor from its name; a class or factory is returned unchanged.

    Backbones call this when they are built (not when their file is imported), so an attention registered by a file
    that loads later (another family's) can be named too.
    """
    return attention_info(attn).build if isinstance(attn, str) else attn


def backbone_options(build: Callable[..., nn.Module], **facts: Any) -> dict[str, Any]:
    """The facts about a backbone (``num_tokens=N``, the token count of its configured input) that the constructor
    ``build`` names as parameters: a backbone passes them so that an attention sized by its input (STMixer's token
    mixing) needs no option from the user. Facts the constructor does not name are left out."""
    try:
        params = inspect.signature(build).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no named parameters to fill
        return {}
    return {k: v for k, v in facts.items() if k in params}
