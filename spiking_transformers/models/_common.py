"""Helpers shared by the model family files: official-kwargs builders, key converters, initialisation, heads.

Every family file ports one or more official model files. Those files inherit one constructor signature from PVT
(``img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, num_heads, mlp_ratios, qkv_bias,
qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios``), most of whose arguments
have no effect. :func:`official_builder` writes that signature down once, as data: a builder accepts exactly the
official keyword arguments (unknown ones raise ``TypeError``, as the official constructor would), fills in the
official defaults and passes them all on, so the function body names only the arguments it uses.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable, Iterable, Mapping, TypeVar

from torch import Tensor, nn

from ._official import KeyConverter

__all__ = [
    "REQUIRED",
    "PVT_KWARGS",
    "official_builder",
    "official_int",
    "BN_KEYS",
    "known_keys_converter",
    "identity_key",
    "trunc_normal_init",
    "make_head",
    "to_2tuple",
    "check_input_kind",
    "check_sizes",
]

M = TypeVar("M", bound=nn.Module)

# Default of an official keyword argument that has no usable default (the official list defaults of
# ``embed_dims`` / ``depths`` cannot build, so our builders require a value).
REQUIRED: Any = inspect.Parameter.empty

# The PVT-derived constructor arguments of the Spikformer lineage, with the defaults of ``Spikformer`` in
# ZK-Zhou/spikformer ``cifar10/model.py``. Families override defaults and add their own arguments.
PVT_KWARGS: dict[str, Any] = dict(
    img_size_h=128,
    img_size_w=128,
    patch_size=16,
    in_channels=2,
    num_classes=11,
    embed_dims=REQUIRED,
    num_heads=REQUIRED,
    mlp_ratios=REQUIRED,
    qkv_bias=False,
    qk_scale=None,
    drop_rate=0.0,
    attn_drop_rate=0.0,
    drop_path_rate=0.0,
    norm_layer=None,
    depths=REQUIRED,
    sr_ratios=1,
)


def official_builder(official_kwargs: Mapping[str, Any]) -> Callable[[Callable[..., M]], Callable[..., M]]:
    """Decorator giving a builder exactly the keyword arguments (and defaults) of an official constructor.

    The decorated function receives every official argument by keyword, defaults filled in; it declares the ones it
    uses and takes the rest (the official dead arguments) as ``**ignored``. The returned builder has the official
    signature (``inspect.signature`` shows it) and raises ``TypeError`` on an unknown or missing argument.

    Args:
        official_kwargs: argument name -> official default (:data:`REQUIRED` where a value must be given).
    """
    signature = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
         for name, default in official_kwargs.items()]
    )

    def wrap(build: Callable[..., M]) -> Callable[..., M]:
        @functools.wraps(build)
        def builder(**kwargs: Any) -> M:
            try:
                bound = signature.bind(**kwargs)
            except TypeError as exc:  # "got an unexpected keyword argument 'x'", "missing a required argument"
                raise TypeError(f"{build.__name__}() {exc}") from None
            bound.apply_defaults()
            return build(**bound.arguments)

        builder.__signature__ = signature  # type: ignore[attr-defined]
        return builder

    return wrap


def official_int(name: str, value: Any, *, family: str) -> int:
    """``value`` if it is an int (not a bool), else ``TypeError``.

    The official class defaults of ``embed_dims`` / ``depths`` (/ ``num_heads``) are lists, a multi-stage leftover
    with which the official constructors cannot build; a model is built from one integer each.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in the official {family} constructor, got {value!r}")
    return value


# The state-dict entries of a BatchNorm layer.
BN_KEYS = r"(?:weight|bias|running_mean|running_var|num_batches_tracked)"

def known_keys_converter(patterns: Iterable[str]) -> KeyConverter:
    """A converter for official files whose keys are ours already: a key matching one of ``patterns`` (full match)
    maps to itself, any other key to ``None`` (unknown: another family's checkpoint)."""
    known = re.compile("|".join(f"(?:{p})" for p in patterns))

    def convert(key: str, value: Tensor) -> tuple[str, Tensor] | None:
        return (key, value) if known.fullmatch(key) else None

    return convert


def identity_key(key: str, value: Tensor) -> tuple[str, Tensor]:
    """A converter for official files whose module paths are ours: every key carries over unchanged (the strict
    load then checks that the key set matches the model)."""
    return key, value


def trunc_normal_init(*types: type[nn.Module], std: float = 0.02) -> Callable[[nn.Module], None]:
    """``model.apply`` function: truncated-normal weights (``std``, cut at +-2) and zero bias for modules of
    ``types``; every other module keeps PyTorch's default initialisation (the official models' scheme)."""

    def init(m: nn.Module) -> None:
        if isinstance(m, types):
            nn.init.trunc_normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    return init


def make_head(num_features: int, num_classes: int) -> nn.Module:
    """Linear classifier ``[..., num_features] -> [..., num_classes]``; ``nn.Identity`` when ``num_classes == 0``."""
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def to_2tuple(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``H`` or ``(H, W)`` -> ``(H, W)``."""
    h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w)


def check_input_kind(input_kind: str) -> str:
    """``"image"`` or ``"events"`` (see :class:`~spiking_transformers.models._base.SpikingModel`), else ValueError."""
    if input_kind not in ("image", "events"):
        raise ValueError(f"input_kind must be 'image' or 'events', got {input_kind!r}")
    return input_kind


def check_sizes(
    *,
    T: int | None = None,
    depth: int | None = None,
    min_depth: int = 0,
    num_classes: int | None = None,
    embed_dim: int | None = None,
    num_heads: int | None = None,
) -> None:
    """The size checks a model constructor shares, each a one-line ValueError naming the argument: ``T >= 1``,
    ``depth >= min_depth``, ``num_classes >= 0`` and ``embed_dim`` divisible by ``num_heads`` (``None``: not
    checked)."""
    if T is not None and T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if depth is not None and depth < min_depth:
        raise ValueError(f"depth must be >= {min_depth}, got {depth}")
    if num_classes is not None and num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    if embed_dim is not None and num_heads is not None and embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads} (it must be a multiple of "
                         f"num_heads)")
