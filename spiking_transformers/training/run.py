"""Building a run from its configuration (model + data), and loading a finished run or checkpoint back."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from torch import nn

from .config import TrainConfig

__all__ = ["model_overrides", "build_model", "build_datasets", "load_run"]

log = logging.getLogger(__name__)


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

    Event data sets get ``T`` frames (the model's ``T``) unless ``data_args`` says otherwise.

    Augmentation, from the recipe's ``config.augment`` section:

    * image data: the official policy (:class:`~spiking_transformers.data.augment.AugmentPolicy`: random resized
      crop, flips, RandAugment or colour jitter, random erasing) becomes the training split's transform, and the
      evaluation resize + centre crop (``crop_pct`` / ``eval_resize``) the test split's;
    * event data: the data set's standard augmentation (flip / roll), as the event recipes' policies
      (``snn_augment_wide``, ...) are recorded, not reproduced;
    * an empty section: no augmentation; ``augment`` or ``transform`` in ``data_args``: that choice, no policy.
    """
    from ..data import get_dataset

    info = _data_info(config)
    _check_data_dir(config, info)
    opts = dict(config.data_args)
    if info.input_kind == "events" and "T" not in opts:
        opts["T"] = config.T or info.default_T
    explicit = "augment" in opts or "transform" in opts
    policy = None
    if config.augment and info.input_kind == "image" and not explicit:
        from ..data.augment import AugmentPolicy

        policy = AugmentPolicy.from_dict(config.augment)
    img_size = int(opts.get("img_size") or info.img_size)
    try:
        tr = te = None
        if train:
            standard = {"augment": True} if config.augment and policy is None and not explicit else {}
            tr = get_dataset(config.data, "train", root=config.data_dir, **opts, **standard)
            if policy is not None:
                _set_train_policy(tr, policy, config.data)
        if test:
            te = _test_set(config, opts, info, policy, img_size)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    return tr, te


def _check_data_dir(config: TrainConfig, info) -> None:
    """A ``data_dir`` that does not exist is an error; one that the data set never reads is said, not ignored."""
    if config.data_dir is None:
        return
    folder = Path(config.data_dir)
    if info.needs_root and not folder.is_dir():
        raise FileNotFoundError(f"--data-dir {folder}: no such folder (data set {info.name!r} reads its files there)")
    if not info.needs_root and not info.synthetic:
        if not folder.exists():
            raise FileNotFoundError(f"--data-dir {folder}: no such folder; besides, data set {info.name!r} is "
                                    f"bundled and reads no folder: drop --data-dir or name your data set with --data")
        log.warning("data set %r is bundled: --data-dir %s is not read", info.name, folder)


def _set_train_policy(ds, policy, data: str) -> None:
    """Replace the training split's transform by the policy's pipeline (before the data set's normalisation)."""
    from ..data.augment import build_train_transform

    if not (hasattr(ds, "transform") and hasattr(ds, "normalize")):
        raise ValueError(f"data set {data!r} takes no transform, so the recipe's augment policy cannot be applied; "
                         f"pass --data-arg augment=false to train without it")
    size = int(ds.info.img_size)
    ds.transform = build_train_transform(policy, img_size=size, mean=ds.normalize.mean, std=ds.normalize.std)
    log.info("train augmentation: %r", ds.transform)


def _test_set(config: TrainConfig, opts: dict[str, Any], info, policy, img_size: int):
    from ..data import get_dataset

    if policy is None:
        return get_dataset(config.data, "test", root=config.data_dir, **opts)
    from ..data.augment import build_eval_transform, eval_scale_size
    from ..data.transforms import CenterCrop

    evaluation = build_eval_transform(policy, img_size=img_size)
    if evaluation is None:
        return get_dataset(config.data, "test", root=config.data_dir, **opts)
    if info.name == "imagefolder":
        # The reader resizes each file's shorter side and centre-crops a square: read at the resize size, then crop,
        # which equals timm's Resize(scale) + CenterCrop(img_size) on the original file.
        te = get_dataset(config.data, "test", root=config.data_dir, **{**opts, "img_size": eval_scale_size(
            policy, img_size)})
        te.transform = CenterCrop(img_size)
        te.info = dataclasses.replace(te.info, img_size=img_size)
    else:
        te = get_dataset(config.data, "test", root=config.data_dir, **opts)
        te.transform = evaluation
    log.info("test transform: %r", te.transform)
    return te


def load_run(path: str | Path, *, ema: bool = False) -> tuple[TrainConfig, nn.Module, Path]:
    """Rebuild the model of a run folder, a checkpoint folder, or a ``.safetensors`` file of a run, with its weights.

    A thin front of :func:`spiking_transformers.loading.load_any_checkpoint` for callers that need the run's
    configuration. Returns ``(config, model, weights_path)``; raises
    :class:`~spiking_transformers.loading.LoadError` (one line) for anything else or anything unreadable.
    """
    from ..loading import LoadError, load_any_checkpoint

    loaded = load_any_checkpoint(path, ema=ema)
    if loaded.train_config is None:
        raise LoadError(f"{path}: a {loaded.kind}, not a run of `spiking-transformers train` (no run config.json)")
    return loaded.train_config, loaded.model, loaded.weights
