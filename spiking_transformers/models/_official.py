"""Interoperability with the official implementations: build, convert and load their checkpoints.

Each family file registers an :class:`OfficialFamily` naming one official model file: how to build our model
from the official constructor's keyword arguments, how to map official state-dict keys to ours, and which
official parameters the official forward never uses (dropped explicitly, never silently).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

__all__ = [
    "KeyConverter",
    "OfficialFamily",
    "OfficialCheckpointError",
    "register_official_family",
    "official_families",
    "get_official_family",
    "from_official",
    "convert_official_state_dict",
    "load_official_state_dict",
    "load_official_checkpoint",
    "unwrap_checkpoint",
]


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be read or does not match the model (names the key or file)."""


# The one key-converter type: maps one official state-dict key and its tensor to ``(our_key, tensor)`` (renamed,
# reshaped), or to ``None`` for a key it does not know (another family's checkpoint).
KeyConverter = Callable[[str, Tensor], "tuple[str, Tensor] | None"]


@dataclass(frozen=True)
class OfficialFamily:
    """One official model file.

    Attributes:
        name: family name used by :func:`from_official` (``"spikformer"``, ``"sdt"``, ...).
        source: repository, file and commit the port was checked against.
        build: ``build(**official_kwargs) -> nn.Module`` (our model, equal to the official constructor).
        convert_key: maps one official key and tensor to ours (renamed, reshaped); ``None`` if unknown.
        unused: regular expressions of official parameter/buffer keys that the official forward never uses.
    """

    name: str
    source: str
    build: Callable[..., nn.Module]
    convert_key: KeyConverter
    unused: tuple[str, ...] = field(default_factory=tuple)

    def is_unused(self, key: str) -> bool:
        """Whether ``key`` names a parameter the official forward never uses (dropped by the converter)."""
        return any(re.fullmatch(p, key) for p in self.unused)


_FAMILIES: dict[str, OfficialFamily] = {}


def register_official_family(family: OfficialFamily) -> OfficialFamily:
    if family.name in _FAMILIES:
        raise ValueError(f"official family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def official_families() -> list[str]:
    from . import _load_all  # noqa: F401

    return sorted(_FAMILIES)


def get_official_family(name: str) -> OfficialFamily:
    from . import _load_all  # noqa: F401

    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown official family {name!r}; known: {', '.join(sorted(_FAMILIES))}") from None


def from_official(family: str, official_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Build our model equal to the official constructor of ``family`` called with ``official_kwargs``.

    The model remembers its family (``model.official_family``) so :func:`load_official_state_dict` needs no hint.
    """
    fam = get_official_family(family)
    model = fam.build(**dict(official_kwargs or {}))
    model.official_family = family  # type: ignore[assignment]
    return model


def unwrap_checkpoint(obj: Any) -> dict[str, Tensor]:
    """Take the state dict out of a training checkpoint (``state_dict``/``model``/``state_dict_ema`` entries) and
    strip a DistributedDataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise OfficialCheckpointError("checkpoint holds no state dict of tensors (looked in state_dict, model)")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def convert_official_state_dict(
    family: str, state_dict: Mapping[str, Tensor], strict: bool = True
) -> dict[str, Tensor]:
    """Official keys -> ours: renamed, reshaped, with the parameters the official forward never uses dropped.

    Args:
        family: official family name.
        state_dict: official state dict (or a partial one, such as a dict of gradients, with ``strict=False``).
        strict: raise :class:`OfficialCheckpointError` on a key the converter does not know.
    """
    fam = get_official_family(family)
    state_dict = unwrap_checkpoint(state_dict) if strict else dict(state_dict)
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if fam.is_unused(key):
            continue
        converted = fam.convert_key(key, value)
        if converted is None:
            unknown.append(key)
            continue
        new_key, new_value = converted
        out[new_key] = new_value
    if unknown and strict:
        raise OfficialCheckpointError(
            f"{len(unknown)} key(s) unknown to the {family!r} converter, e.g. {unknown[:5]}; "
            "is this a checkpoint of another family?"
        )
    return out


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """Load an official state dict into a model built by :func:`from_official` (strict: every key must match).

    Tensors are cast to each of the model's parameter dtypes.
    """
    family = getattr(model, "official_family", None)
    if family is None:
        raise OfficialCheckpointError(
            "model has no official_family: build it with st.from_official(family, kwargs) "
            "or set model.official_family"
        )
    converted = convert_official_state_dict(family, state_dict, strict=True)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    extra = sorted(set(converted) - set(own))
    if missing or extra:
        raise OfficialCheckpointError(
            f"official {family!r} state dict does not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}"
        )
    for key, value in converted.items():
        if own[key].shape != value.shape:
            raise OfficialCheckpointError(
                f"shape mismatch for {key!r}: checkpoint {tuple(value.shape)}, model {tuple(own[key].shape)}; "
                "were the model's official kwargs the checkpoint's?"
            )
        converted[key] = value.to(own[key].dtype)
    model.load_state_dict(converted, strict=True)
    return model


def load_official_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read an official ``.pth`` file safely (``weights_only=True``: no code is unpickled) and unwrap it."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise OfficialCheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # pickle errors, truncated zip files, code objects refused by weights_only
        raise OfficialCheckpointError(f"{path}: cannot read as a weights-only torch checkpoint ({exc})") from None
    try:
        return unwrap_checkpoint(obj)
    except OfficialCheckpointError as exc:
        raise OfficialCheckpointError(f"{path}: {exc}") from None
