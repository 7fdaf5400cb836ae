"""Building a run from its configuration (model + data), and loading a finished run or checkpoint back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig

__all__ = ["model_overrides", "build_model", "build_datasets", "load_run"]


def _data_info(config: TrainConfig):
    from ..data import dataset_info

    try:
        return dataset_info(config.data)
    except KeyError as exc:  # the data registry raises KeyError; the CLI reports ValueErrors
        raise ValueError(str(exc).strip("'\"")) from None


def model_overrides(config: TrainConfig) -> dict[str, Any]:
    """Constructor overrides: the data set's classes, channels and image size, ``T``, then ``model_args``."""
    info = _data_info(config)
    out: dict[str, Any] = {}
    if info.num_classes:
        out["num_classes"] = info.num_classes
    out["in_chans"] = info.in_chans
    out["img_size"] = int(config.data_args.get("img_size", info.img_size))
    if config.T is not None:
        out["T"] = config.T
    elif info.input_kind == "events":
        out["T"] = int(config.data_args.get("T", info.default_T))
    out.update(config.model_args)
    return out


def build_model(config: TrainConfig) -> nn.Module:
    """The registered model ``config.model`` with :func:`model_overrides` applied."""
    from ..models import create_model

    overrides = model_overrides(config)
    try:
        return create_model(config.model, **overrides)
    except TypeError as exc:
        raise ValueError(f"cannot build {config.model!r} with {overrides}: {exc}") from None


def build_datasets(config: TrainConfig, *, train: bool = True, test: bool = True):
    """``(train_set, test_set)`` from ``config.data`` / ``data_dir`` / ``data_args`` (``None`` where not asked).

    Event data sets get ``T`` frames (the model's ``T``) unless ``data_args`` says otherwise; the training split
    gets the data set's standard augmentation when the recipe lists an ``augment`` section.
    """
    from ..data import get_dataset

    info = _data_info(config)
    opts = dict(config.data_args)
    if info.input_kind == "events" and "T" not in opts:
        opts["T"] = config.T or info.default_T
    try:
        tr = get_dataset(config.data, "train", root=config.data_dir, **opts,
                         **({"augment": True} if config.augment and "augment" not in opts else {})) if train else None
        te = get_dataset(config.data, "test", root=config.data_dir, **opts) if test else None
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    return tr, te


def load_run(path: str | Path, *, ema: bool = False) -> tuple[TrainConfig, nn.Module, Path]:
    """Rebuild the model of a run folder, a checkpoint folder, or a ``.safetensors`` file, with its weights.

    The configuration comes from ``config.json`` (run folder, or the folder above a checkpoint / weights file) or
    from the checkpoint's ``state.json``. Returns ``(config, model, weights_path)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder, checkpoint or weights file")
    weights_name = "model_ema.safetensors" if ema else "model.safetensors"
    config: TrainConfig | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    weights = path
    if path.is_dir() and (path / "state.json").is_file():  # a checkpoint folder
        files, meta = load_checkpoint(path)
        key = "ema" if ema else "model"
        if key not in files:
            raise CheckpointError(f"{path}: this checkpoint has no {'EMA ' if ema else ''}weights")
        state_dict, config = files[key], TrainConfig.from_dict(meta["config"])
        weights = path / f"{key}.safetensors"
    elif path.is_dir():
        weights = path / weights_name
        if not weights.is_file():
            raise FileNotFoundError(f"{path}: no {weights_name} (is it a run folder of `spiking-transformers train`?)")
    for folder in (weights.parent, weights.parent.parent, weights.parent.parent.parent):
        if config is None and (folder / "config.json").is_file():
            config = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
    if config is None:
        raise FileNotFoundError(f"{path}: no config.json found next to the weights or in the run folder above")
    if state_dict is None:
        try:
            state_dict = load_file(str(weights))
        except Exception as exc:
            raise CheckpointError(f"{weights}: unreadable safetensors file ({exc})") from None
    model = build_model(config)
    model.load_state_dict(state_dict)
    return config, model, weights
