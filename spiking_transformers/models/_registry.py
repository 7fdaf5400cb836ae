"""The model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Each registered variant is a factory function in its family's file, decorated with :func:`register_model` and
the facts about the published configuration (paper, dataset, default ``T``, reported accuracy, official
parameter count). The registry is the only module-level mutable state of the library; duplicate names raise.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

__all__ = [
    "Paper",
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "count_parameters",
]


@dataclass(frozen=True)
class Paper:
    """A publication and its official code."""

    title: str
    venue: str
    year: int
    arxiv: str | None = None
    repo: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered variant.

    Attributes:
        name: registry name.
        family: model family (the file it lives in), e.g. ``"spikformer"``.
        paper: the publication.
        lineage: the parent family this one builds on (``None`` for a root).
        spike_driven: True when every synaptic input after the encoding is a binary spike (membrane shortcut);
            False for integer-driven (spike-element-wise shortcut) or multi-level models.
        default_T: time steps of the paper configuration.
        input_kind: ``"image"`` (static ``[B, C, H, W]``, repeated over T) or ``"events"`` (``[T, B, C, H, W]``).
        dataset: data set of the paper configuration.
        num_classes, img_size, in_chans: input/output of the paper configuration (``img_size`` an int for a
            square input, else ``(H, W)``).

        ``default_T``, ``input_kind``, ``num_classes``, ``img_size``, ``in_chans`` and ``params`` are read from the
        model the variant builds (:func:`model_info` builds it on the meta device), so they cannot drift from it.
        A family may still state them in :func:`register_model`; a test checks every stated value against the
        model.
        reported_top1: top-1 accuracy reported by the paper or official README (percent), or ``None``.
        params: parameter count of our model for this variant (filled in by :func:`model_info`).
        official_config: key of the matching entry in the official ``param_counts.json``, or ``None``.
        official_params: parameter count of the official model, every registered parameter included.
        official_unused_params: how many of those the official forward never uses (our model leaves them out).
        official_family: the ``from_official`` family whose checkpoints this variant loads, or ``None``.
        notes: free text (ambiguities and our reading of them).
        task: what the model does: ``"classification"`` (the default; logits ``[B, K]``), ``"tracking"``, ...
            The registry-wide classifier tests take ``list_models(task="classification")``.
        tiny_overrides: constructor overrides giving a small, fast instance of the same architecture (for the
            generic tests and smoke runs), e.g. ``dict(depth=1, embed_dim=32, T=2)``.
    """

    name: str
    family: str
    paper: Paper
    lineage: str | None
    spike_driven: bool
    dataset: str
    default_T: int | None = None
    input_kind: str | None = None
    num_classes: int | None = None
    img_size: int | tuple[int, int] | None = None
    in_chans: int | None = None
    reported_top1: float | None = None
    params: int | None = None
    official_config: str | None = None
    official_params: int | None = None
    official_unused_params: int = 0
    official_family: str | None = None
    notes: str = ""
    task: str = "classification"
    tiny_overrides: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def venue(self) -> str:
        return f"{self.paper.venue} {self.paper.year}"


@dataclass
class _Entry:
    factory: Callable[..., nn.Module]
    info: ModelInfo  # as registered (stated facts only)
    derived: dict[str, Any] | None = field(default=None)  # read from the built model by model_info


_REGISTRY: dict[str, _Entry] = {}


def register_model(**info: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a variant factory under its function name with the facts of :class:`ModelInfo`.

    Example::

        @register_model(family="spikformer", paper=SPIKFORMER, lineage=None, spike_driven=False, default_T=4,
                        input_kind="image", dataset="cifar10", num_classes=10, img_size=32, in_chans=3)
        def spikformer_4_384_cifar10(**kwargs) -> Spikformer:
            return Spikformer(**{**dict(depth=4, embed_dim=384, num_heads=12), **kwargs})
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if info.get("input_kind", "image") not in ("image", "events"):
            raise ValueError(f"{name}: input_kind must be 'image' or 'events', got {info.get('input_kind')!r}")
        _REGISTRY[name] = _Entry(fn, ModelInfo(name=name, **info))
        return fn

    return wrap


def _ensure_loaded() -> None:
    # Importing the models package imports every family file, which registers its variants.
    from . import _load_all  # noqa: F401


def list_models(pattern: str = "*", *, task: str | None = None) -> list[str]:
    """Registered variant names matching a shell-style ``pattern``, sorted; ``task`` keeps one task's models
    (``"classification"``, ``"tracking"``, ...)."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items()
                  if fnmatch.fnmatchcase(n, pattern) and (task is None or e.info.task == task))


def _entry(name: str) -> _Entry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
        similar = sorted(fnmatch.filter(_REGISTRY, f"*{name.split('_')[0]}*"))[:8]
        hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
                else f"; similar: {', '.join(similar)}" if similar else "")
        raise ValueError(f"unknown model {name!r}{hint} `spiking-transformers models` lists them all") from None


def create_model(name: str, *, checkpoint: str | None = None, **overrides: Any) -> nn.Module:
    """Build a registered variant; ``overrides`` replace constructor arguments (``num_classes``, ``T``, ...).

    ``checkpoint``: load these weights (ours or an official checkpoint of the variant's family, any file or folder
    that :func:`spiking_transformers.loading.load_any_checkpoint` reads); the model comes back in eval mode. A
    mismatch raises one line naming the keys and shapes.
    """
    if checkpoint is not None:
        from ..loading import load_any_checkpoint

        return load_any_checkpoint(checkpoint, model=name, model_args=overrides).model
    entry = _entry(name)
    model = entry.factory(**overrides)
    model.model_name = name  # type: ignore[assignment]
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


# ModelInfo fields read from the model a variant builds (the model attribute of the same meaning in brackets).
DERIVED_FIELDS = ("default_T", "input_kind", "num_classes", "img_size", "in_chans", "params")


def architecture_facts(model: nn.Module) -> dict[str, Any]:
    """The :data:`DERIVED_FIELDS` of a built model: ``T``, ``input_kind``, ``num_classes``, ``img_size`` (an int
    when square), ``in_chans`` (``model.in_chans``, else the first convolution's input channels) and the parameter
    count. A fact the model does not expose is left out."""
    facts: dict[str, Any] = {"params": count_parameters(model)}
    for field_name, attr in (("default_T", "T"), ("input_kind", "input_kind"), ("num_classes", "num_classes")):
        if getattr(model, attr, None) is not None:
            facts[field_name] = getattr(model, attr)
    size = getattr(model, "img_size", None)
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        facts["img_size"] = int(h) if h == w else (int(h), int(w))
    chans = getattr(model, "in_chans", None)
    if chans is None:
        chans = next((m.in_channels for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if chans is not None:
        facts["in_chans"] = int(chans)
    return facts


def model_info(name: str) -> ModelInfo:
    """Facts about a registered variant; :data:`DERIVED_FIELDS` come from the model it builds (on the meta
    device, so that even the largest variants cost no memory)."""
    entry = _entry(name)
    if entry.derived is None:
        with torch.device("meta"):
            entry.derived = architecture_facts(entry.factory())
    return replace(entry.info, **entry.derived)


def stated_info(name: str) -> ModelInfo:
    """The facts as the family registered them, before :func:`model_info` fills in the derived ones (what the
    metadata-against-model test compares)."""
    return _entry(name).info
