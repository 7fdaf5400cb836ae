"""One loader for anything a user points at, and Hugging-Face-hub-like model folders.

:func:`load` (also ``st.load``) takes

* a **model folder** written by :func:`save_pretrained` or ``spiking-transformers convert``: ``model.safetensors``
  + ``config.json`` saying how to rebuild the model (the layout of a Hugging Face hub repository, so the folder can
  be published as it is);
* a **run folder** of ``spiking-transformers train`` (``config.json`` + ``model.safetensors``; a run that was
  stopped before its end falls back to its best or newest checkpoint);
* a **checkpoint folder** (``RUN/checkpoints/best`` or ``step-*``: verified by hash before use);
* a ``.safetensors`` **file**: rebuilt from a ``config.json`` beside it (or in the run folder above), from ``model=``
  when given, else from the registered variant whose parameter shapes it matches;
* an **official checkpoint** (``.pth``/``.pt``/``.tar``, read weights-only: no code is unpickled): converted with
  ``family=`` (an official family, with the official constructor's ``model_args``) or ``model=`` (a registered
  variant), else with the registered variant whose converted shapes match.

Every failure raises :class:`LoadError` (a ``ValueError``) with one line naming the file, the key or shape at fault
and what to do, e.g. another ``--model-arg``.

The ``config.json`` of a model folder::

    {"format": "spiking-transformers", "format_version": 1,
     "builder": "registry", "model": "sdt_2_256_cifar10", "model_args": {"embed_dim": 64, ...}}
    {"format": "spiking-transformers", "format_version": 1,
     "builder": "official", "official_family": "spikformer", "official_kwargs": {...}}

plus facts for readers (``T``, ``num_classes``, ``input_kind``, ``in_chans``, ``img_size``, ``params``, ``source``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

__all__ = [
    "LoadError",
    "Loaded",
    "load",
    "load_any_checkpoint",
    "save_pretrained",
    "from_pretrained",
    "build_from_spec",
    "read_weights_file",
    "load_weights_into",
    "matching_variants",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "spiking-transformers"
FORMAT_VERSION = 1


class LoadError(ValueError):
    """Weights or a model folder that cannot be read or do not fit the model (one line, names file/key/shape)."""


@dataclass
class Loaded:
    """What :func:`load_any_checkpoint` found.

    Attributes:
        model: the model, weights loaded, in eval mode.
        kind: ``"pretrained"`` (model folder), ``"run"``, ``"checkpoint"``, ``"safetensors"`` or ``"official"``.
        weights: the file (or checkpoint folder) the weights came from.
        spec: how the model was built (the ``builder`` part of a model folder's ``config.json``).
        train_config: the run's :class:`~spiking_transformers.training.config.TrainConfig` for runs and
            training checkpoints, else ``None``.
        notes: remarks for the user (fallbacks taken, family detected).
    """

    model: nn.Module
    kind: str
    weights: Path
    spec: dict[str, Any]
    train_config: Any = None
    notes: list[str] = field(default_factory=list)
    data: str | None = None  # the data set the weights were trained on, where recorded

    @property
    def kind_text(self) -> str:
        """The kind in words (for messages)."""
        return {"pretrained": "model folder", "run": "run folder", "checkpoint": "checkpoint folder",
                "safetensors": "weights file", "official": "official checkpoint"}.get(self.kind, self.kind)

    @property
    def name(self) -> str:
        """A readable name: the registered variant, or ``official:<family>``."""
        if self.spec.get("builder") == "official":
            return f"official:{self.spec['official_family']}"
        return str(self.spec.get("model"))


# ------------------------------------------------------------------------------------------------ reading files
def _sniff(path: Path) -> str:
    """``"empty"``, ``"safetensors"``, ``"torch"`` (zip or pickle), ``"text"`` or ``"unknown"`` from the first bytes."""
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 0 < n < size:
            return "safetensors"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text"
    return "unknown"


def read_weights_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str]:
    """Read a weights file: ``(state_dict, "safetensors" | "torch")``.

    Torch files are read with ``weights_only=True`` and unwrapped (``state_dict`` / ``model`` entries, a DDP
    ``module.`` prefix). Empty, text, truncated and corrupt files raise :class:`LoadError` saying which.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    if path.is_dir():
        raise LoadError(f"{path}: is a folder; give the folder itself to load(), not to read_weights_file()")
    kind = _sniff(path)
    size = path.stat().st_size
    if kind == "empty":
        raise LoadError(f"{path}: empty file (0 bytes), not weights; was the download or copy interrupted?")
    if kind == "text":
        with open(path, "rb") as f:
            first = f.read(40).decode("utf-8", "replace").splitlines()[0] if size else ""
        raise LoadError(f"{path}: a text file (starts {first!r}), not weights; expected model.safetensors or a "
                        f"torch .pth checkpoint")
    if kind == "safetensors" or path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), "safetensors"
        except Exception as exc:  # safetensors raises its own error types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LoadError(f"{path}: corrupt or truncated safetensors file ({size} bytes: {reason})") from None
    from .models import OfficialCheckpointError, load_official_checkpoint

    try:
        return load_official_checkpoint(path), "torch"
    except OfficialCheckpointError as exc:
        msg = str(exc).splitlines()[0]
        raise LoadError(msg if str(path) in msg else f"{path}: {msg}") from None


# ------------------------------------------------------------------------------------------------ building
def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """The model described by a model folder's ``config.json`` (``builder`` ``"registry"`` or ``"official"``)."""
    from .models import create_model, from_official

    builder = spec.get("builder")
    try:
        if builder == "official":
            model = from_official(str(spec["official_family"]), dict(spec.get("official_kwargs") or {}))
        elif builder == "registry":
            model = create_model(str(spec["model"]), **dict(spec.get("model_args") or {}))
        else:
            raise LoadError(f"config builder must be 'registry' or 'official', got {builder!r}")
    except KeyError as exc:
        raise LoadError(f"config.json lacks the field {exc.args[0]!r} (builder {builder!r})") from None
    except TypeError as exc:
        import re

        missing = re.findall(r"'(\w+)'", str(exc)) if "missing" in str(exc) else []
        if builder == "official" and missing:
            raise LoadError(f"the official {spec.get('official_family')!r} constructor needs "
                            + " ".join(f"--model-arg {m}=VALUE" for m in missing)
                            + " (the official constructor's keyword arguments, as in its training script)") from None
        what = "official kwargs" if builder == "official" else "model_args"
        raise LoadError(f"cannot build {_describe(spec)} ({exc}); check its {what}") from None
    model._st_spec = dict(spec)  # type: ignore[assignment]  # so that save_pretrained can write it back
    return model


def _shape_report(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: weights {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    return missing, unexpected, shapes


def _mismatch_text(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> str:
    missing, unexpected, shapes = _shape_report(own, state)
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es), first {shapes[0]}")
    if missing:
        parts.append(f"{len(missing)} key(s) missing from the weights, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
    return "; ".join(parts)


def load_weights_into(model: nn.Module, state: Mapping[str, Tensor], *, source: str, what: str,
                      hint: str = "") -> nn.Module:
    """Strictly load our-format ``state`` into ``model``, or raise one line naming keys and shapes.

    ``what`` names the model built (e.g. ``"sdt_2_256_cifar10 with {'embed_dim': 64}"``); ``hint`` is appended.
    Tensors are cast to the model's dtypes.
    """
    own = model.state_dict()
    if set(own) != set(state) or any(tuple(own[k].shape) != tuple(state[k].shape) for k in own):
        text = _mismatch_text(own, state)
        if not hint:
            found = matching_variants(state)
            if found:
                hint = f"these weights fit {found[0][0]}" + (f" with --model-arg {_args_text(found[0][1])}"
                                                             if found[0][1] else "")
        raise LoadError(f"{source}: weights do not fit {what}: {text}" + (f"; {hint}" if hint else ""))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model


def _args_text(args: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in args.items())


def _meta_state(name: str, **overrides: Any) -> dict[str, Tensor] | None:
    from .models import create_model

    try:
        with torch.device("meta"):
            return create_model(name, **overrides).state_dict()
    except Exception:  # a variant that cannot take these overrides is simply no candidate
        return None


def matching_variants(state: Mapping[str, Tensor], *, official_family: str | None = None,
                      limit: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """Registered variants whose parameters have exactly the shapes of ``state`` (our key format).

    A variant that differs only in its classifier gets ``num_classes`` from the weights. With ``official_family``,
    only variants loading that family's checkpoints are tried. Returns ``[(name, overrides), ...]``; built on the
    meta device, so it costs no memory, but it builds every candidate: call it on error paths only.
    """
    from .models import list_models
    from .models._registry import _entry

    found: list[tuple[str, dict[str, Any]]] = []
    keys = set(state)
    head = state.get("head.weight")
    # Building every variant, even on the meta device, takes minutes on a loaded machine: first compare the key
    # structure (block indices blanked) with one variant per family, then build only the families that fit.
    pattern = {_blank_digits(k) for k in keys}
    by_family: dict[str, list[str]] = {}
    for name in list_models():
        info = _entry(name).info
        if official_family is not None and info.official_family != official_family:
            continue
        by_family.setdefault(info.family, []).append(name)
    # the families with most variants (the common ones) first; stop at ``limit`` matches
    for names in sorted(by_family.values(), key=len, reverse=True):
        probe = _meta_state(names[0], **_entry(names[0]).info.tiny_overrides)  # small: same key structure
        if probe is None:
            continue
        theirs = {_blank_digits(k) for k in probe}
        if len(theirs & pattern) < 0.8 * max(len(theirs | pattern), 1):
            continue
        for name in names:
            own = _meta_state(name)
            if own is None or set(own) != keys:
                continue
            overrides: dict[str, Any] = {}
            if head is not None and head.dim() == 2 and tuple(own["head.weight"].shape) != tuple(head.shape):
                overrides = {"num_classes": int(head.shape[0])}
                own = _meta_state(name, **overrides)
                if own is None:
                    continue
            if all(tuple(own[k].shape) == tuple(state[k].shape) for k in keys):
                found.append((name, overrides))
                if len(found) >= limit:
                    return found
    return found


def _blank_digits(key: str) -> str:
    import re

    return re.sub(r"\d+", "#", key)


# ------------------------------------------------------------------------------------------------ model folders
def _spec_of(model: nn.Module, model_name: str | None, model_args: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = getattr(model, "_st_spec", None)
    if model_name is None and spec is not None and model_args is None:
        return dict(spec)
    name = model_name or getattr(model, "model_name", None)
    if name is None:
        raise LoadError("save_pretrained: the model does not say how it was built; pass model_name= (a registered "
                        "variant) and model_args=, or build it with create_model / st.load")
    spec = {"builder": "registry", "model": name, "model_args": dict(model_args or {})}
    expected = _meta_state(name, **spec["model_args"])
    own = model.state_dict()
    if expected is None or {k: tuple(v.shape) for k, v in expected.items()} != {k: tuple(v.shape)
                                                                                 for k, v in own.items()}:
        raise LoadError(f"save_pretrained: {name} with model_args {spec['model_args']} does not build this model's "
                        f"shapes; pass the model_args it was created with")
    return spec


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise LoadError(f"model argument value {value!r} ({type(value).__name__}) cannot be written to config.json; "
                    "use a number, string, list or dict")


def save_pretrained(model: nn.Module, directory: str | os.PathLike[str], *, model_name: str | None = None,
                    model_args: Mapping[str, Any] | None = None, source: str | None = None,
                    data: str | None = None) -> Path:
    """Write ``directory/model.safetensors`` + ``directory/config.json`` (a Hugging-Face-hub-like model folder).

    The model must say how it was built: a model from :func:`load`, :func:`from_pretrained` or
    ``spiking-transformers convert`` remembers it; for one from ``create_model(name, **args)`` pass
    ``model_args=args`` (checked against the model's shapes). Returns the folder.
    """
    from safetensors.torch import save_file

    spec = _spec_of(model, model_name, model_args)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, **_jsonable(spec)}
    facts = {k: getattr(model, k) for k in ("T", "num_classes", "input_kind", "img_size") if hasattr(model, k)}
    in_chans = _first_in_channels(model)
    if in_chans is not None:
        facts["in_chans"] = in_chans
    facts["params"] = sum(p.numel() for p in model.parameters())
    if source:
        facts["source"] = source
    if data:
        facts["data"] = data  # the data set it was trained on: `eval DIR` defaults to it
    config.update({k: _jsonable(v) for k, v in facts.items() if k not in config})
    tmp = directory / f".{WEIGHTS_NAME}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt", "library": FORMAT})
    os.replace(tmp, directory / WEIGHTS_NAME)
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
    return directory


def _first_in_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Conv3d)):
            return int(m.in_channels)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LoadError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _is_model_config(data: Mapping[str, Any]) -> bool:
    return data.get("format") == FORMAT and "builder" in data


def from_pretrained(directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a model folder (``config.json`` + ``model.safetensors``), weights loaded, eval mode."""
    directory = Path(directory)
    cfg = directory / CONFIG_NAME
    if not cfg.is_file():
        raise LoadError(f"{directory}: no {CONFIG_NAME} (a model folder holds {WEIGHTS_NAME} + {CONFIG_NAME})")
    data = _read_json(cfg)
    if not _is_model_config(data):
        raise LoadError(f"{cfg}: not a model-folder config (no \"format\": \"{FORMAT}\" and \"builder\"); "
                        "for a run folder use st.load(path)")
    return _load_model_folder(directory, data).model.to(map_location)


def _load_model_folder(directory: Path, data: Mapping[str, Any]) -> Loaded:
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise LoadError(f"{directory}: no {WEIGHTS_NAME} beside {CONFIG_NAME}")
    state, _ = read_weights_file(weights)
    spec = {k: data[k] for k in ("builder", "model", "model_args", "official_family", "official_kwargs") if k in data}
    model = build_from_spec(spec)
    load_weights_into(model, state, source=str(weights), what=_describe(spec))
    return Loaded(model.eval(), "pretrained", weights, spec, data=data.get("data"))


def _describe(spec: Mapping[str, Any]) -> str:
    if spec.get("builder") == "official":
        return f"official family {spec['official_family']!r} with kwargs {dict(spec.get('official_kwargs') or {})}"
    args = dict(spec.get("model_args") or {})
    return f"{spec.get('model')}" + (f" with {args}" if args else "")


# ------------------------------------------------------------------------------------------------ runs
def _train_spec(config: Any) -> dict[str, Any]:
    from .training.run import model_overrides

    return {"builder": "registry", "model": config.model, "model_args": _jsonable(model_overrides(config))}


def _from_train_config(config: Any, state: Mapping[str, Tensor], source: str, kind: str, weights: Path) -> Loaded:
    from .training.run import build_model

    spec = _train_spec(config)
    model = build_model(config)
    model._st_spec = spec  # type: ignore[assignment]
    hint = ("the run's config.json and its weights disagree (was the weights file replaced?)"
            if kind in ("run", "checkpoint") else "")
    load_weights_into(model, state, source=source, what=_describe(spec), hint=hint)
    return Loaded(model.eval(), kind, weights, spec, train_config=config, data=config.data)


def _load_checkpoint_folder(path: Path, ema: bool, config: Any = None) -> Loaded:
    from .training.checkpoint import CheckpointError, load_checkpoint
    from .training.config import TrainConfig

    try:
        files, meta = load_checkpoint(path)
    except CheckpointError as exc:
        raise LoadError(str(exc).splitlines()[0]) from None
    key = "ema" if ema else "model"
    if key not in files:
        raise LoadError(f"{path}: this checkpoint has no {'EMA ' if ema else ''}weights")
    if config is None:
        config = TrainConfig.from_dict(meta["config"])
    return _from_train_config(config, files[key], str(path / f"{key}.safetensors"), "checkpoint", path)


def _load_run(path: Path, data: Mapping[str, Any], ema: bool) -> Loaded:
    from .training.checkpoint import CheckpointError, CheckpointManager
    from .training.config import TrainConfig

    try:
        config = TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise LoadError(f"{path / CONFIG_NAME}: not a run configuration ({exc})") from None
    weights = path / ("model_ema.safetensors" if ema else WEIGHTS_NAME)
    if weights.is_file():
        state, _ = read_weights_file(weights)
        return _from_train_config(config, state, str(weights), "run", weights)
    # A run stopped before its end has no final weights: its best checkpoint, else the newest good one.
    candidates = []
    best = path / "checkpoints" / "best"
    if (best / "state.json").is_file():
        candidates.append(best)
    candidates += list(reversed(CheckpointManager(path).step_dirs()))
    errors = []
    for ckpt in candidates:
        try:
            loaded = _load_checkpoint_folder(ckpt, ema, config)
        except LoadError as exc:
            errors.append(str(exc))
            continue
        loaded.notes.append(f"{weights.name} absent (the run did not finish): using checkpoint {ckpt.name}")
        return loaded
    if errors:
        raise LoadError(f"{path}: no {weights.name} and no usable checkpoint ({errors[0]})")
    raise LoadError(f"{path}: no {weights.name} and no checkpoint: the run never finished an epoch")


# ------------------------------------------------------------------------------------------------ entry point
def load_any_checkpoint(path: str | os.PathLike[str], *, model: str | None = None, family: str | None = None,
                        model_args: Mapping[str, Any] | None = None, ema: bool = False) -> Loaded:
    """Load whatever ``path`` is (see the module docstring): a :class:`Loaded` with the model in eval mode.

    Args:
        path: model folder, run folder, checkpoint folder, ``.safetensors`` file or official torch checkpoint.
        model: registered variant to build for a bare weights file (ignored for folders that say what they hold).
        family: official family of an official checkpoint (``model_args`` are then the official kwargs).
        model_args: constructor overrides of ``model``, or official kwargs with ``family``.
        ema: the EMA weights of a run or checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such run folder, model folder or weights file")
    margs = dict(model_args or {})
    if path.is_dir():
        if (path / "state.json").is_file():
            return _load_checkpoint_folder(path, ema)
        cfg = path / CONFIG_NAME
        if not cfg.is_file():
            if (path / WEIGHTS_NAME).is_file():
                return load_any_checkpoint(path / WEIGHTS_NAME, model=model, family=family, model_args=margs)
            raise LoadError(f"{path}: neither a model folder ({WEIGHTS_NAME} + {CONFIG_NAME}), a run folder of "
                            "`spiking-transformers train`, nor a checkpoint folder (state.json)")
        data = _read_json(cfg)
        if _is_model_config(data):
            return _load_model_folder(path, data)
        return _load_run(path, data, ema)

    if path.suffix == ".json":
        raise LoadError(f"{path}: a JSON file; give the folder that holds it (model, run or checkpoint folder)")
    state, fmt = read_weights_file(path)
    if family is not None:
        return _load_official(path, state, family, margs)
    if fmt == "safetensors":
        # The configuration beside the weights (a model folder or a run folder above) says what they are; a
        # MODEL named on the command line that agrees with it (the main job's `energy sdt_2_256_cifar10
        # --checkpoint RUN/model.safetensors`) takes the run's overrides too.
        for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
            cfg = folder / CONFIG_NAME
            if not cfg.is_file():
                continue
            data = _read_json(cfg)
            if _is_model_config(data):
                spec = {k: data[k] for k in ("builder", "model", "model_args", "official_family",
                                             "official_kwargs") if k in data}
                if model is None or (model == spec.get("model") and not margs):
                    m = build_from_spec(spec)
                    load_weights_into(m, state, source=str(path), what=_describe(spec))
                    return Loaded(m.eval(), "pretrained", path, spec)
            elif model is None or (model == data.get("model") and not margs):
                from .training.config import TrainConfig

                return _from_train_config(TrainConfig.from_dict(data), state, str(path), "run", path)
            break
    if model is not None:
        return _load_registered(path, state, model, margs)
    found = matching_variants(state)
    if found:
        name, overrides = found[0]
        loaded = _load_registered(path, state, name, overrides)
        loaded.notes.append(f"no config.json: weights matched the shapes of {name}"
                            + (f" with {overrides}" if overrides else ""))
        return loaded
    if fmt == "torch":
        return _detect_official(path, state)
    raise LoadError(f"{path}: no config.json beside it and its shapes match no registered variant; "
                    "pass the model (eval/energy MODEL --checkpoint FILE, or --model NAME --model-arg K=V)")


def _load_registered(path: Path, state: Mapping[str, Tensor], name: str, margs: Mapping[str, Any]) -> Loaded:
    from .models import load_official_state_dict, model_info

    spec = {"builder": "registry", "model": name, "model_args": _jsonable(dict(margs))}
    m = build_from_spec(spec)
    own = m.state_dict()
    hint = ""
    for folder in (path.parent, path.parent.parent):
        if (folder / CONFIG_NAME).is_file():
            data = _read_json(folder / CONFIG_NAME)
            hint = (f"{folder / CONFIG_NAME} says they belong to {data.get('model')}"
                    + (f" with {data.get('model_args')}" if data.get("model_args") else "")
                    + f": give the folder {folder} itself instead of MODEL + checkpoint")
            break
    if set(own) == set(state):
        load_weights_into(m, state, source=str(path), what=_describe(spec), hint=hint)
        return Loaded(m.eval(), "safetensors", path, spec)
    fam = model_info(name).official_family
    ours = len(set(own) & set(state)) >= len(state) / 2
    if fam is None or path.suffix == ".safetensors" or ours:  # our key format, another architecture or size
        load_weights_into(m, state, source=str(path), what=_describe(spec), hint=hint)  # raises: key report
    from .models import OfficialCheckpointError

    m.official_family = fam  # type: ignore[assignment]
    try:
        load_official_state_dict(m, state)
    except OfficialCheckpointError as exc:
        raise LoadError(f"{path}: as an official {fam!r} checkpoint for {_describe(spec)}: "
                        f"{str(exc).splitlines()[0]}; pass --model-arg for another size") from None
    return Loaded(m.eval(), "official", path, spec)


def _load_official(path: Path, state: Mapping[str, Tensor], family: str, kwargs: Mapping[str, Any]) -> Loaded:
    from .models import OfficialCheckpointError, convert_official_state_dict

    spec = {"builder": "official", "official_family": family, "official_kwargs": _jsonable(dict(kwargs))}
    m = build_from_spec(spec)
    try:
        converted = convert_official_state_dict(family, state, strict=True)
    except OfficialCheckpointError as exc:
        raise LoadError(f"{path}: {str(exc).splitlines()[0]}") from None
    own = m.state_dict()
    hint = ""
    if set(own) == set(converted) and any(tuple(own[k].shape) != tuple(converted[k].shape) for k in own):
        hint = ("the official constructor's kwargs differ from the checkpoint's: pass them with --model-arg "
                "(e.g. embed_dims=..., depths=..., num_classes=...)")
    elif set(own) != set(converted):
        hint = "another depth or another family? pass depths=... with --model-arg, or another --family"
    load_weights_into(m, converted, source=str(path), what=_describe(spec), hint=hint)
    return Loaded(m.eval(), "official", path, spec)


def _detect_official(path: Path, state: Mapping[str, Tensor]) -> Loaded:
    from .models import OfficialCheckpointError, convert_official_state_dict, official_families

    tried = []
    for fam in official_families():
        try:
            converted = convert_official_state_dict(fam, state, strict=True)
        except (OfficialCheckpointError, Exception):
            continue
        tried.append(fam)
        found = matching_variants(converted, official_family=fam, limit=1)
        if found:
            name, overrides = found[0]
            loaded = _load_registered(path, state, name, overrides)
            loaded.notes.append(f"official checkpoint: family {fam!r} detected, shapes of {name}"
                                + (f" with {overrides}" if overrides else ""))
            return loaded
    if tried:
        raise LoadError(f"{path}: an official checkpoint whose keys fit the family {tried[0]!r} but no registered "
                        f"size; convert it with `spiking-transformers convert {path} --family {tried[0]} "
                        "--model-arg K=V ...` (the official constructor's kwargs)")
    raise LoadError(f"{path}: keys match no registered variant and no official family; name the model "
                    "(MODEL --checkpoint FILE) or the official family (--family F)")


def load(path: str | os.PathLike[str], *, model: str | None = None, family: str | None = None,
         model_args: Mapping[str, Any] | None = None, ema: bool = False) -> nn.Module:
    """``st.load(path)``: the model (eval mode, weights loaded) of anything :func:`load_any_checkpoint` reads."""
    return load_any_checkpoint(path, model=model, family=family, model_args=model_args, ema=ema).model
