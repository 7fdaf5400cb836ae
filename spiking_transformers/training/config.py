"""The run configuration (:class:`TrainConfig`) and the packaged training recipes.

A run is fully described by one frozen :class:`TrainConfig`. It is built in layers, each overriding the one
before: the dataclass defaults (the quick bundled-digits run), then a recipe (``--recipe NAME``: one YAML file per
official training recipe, in ``spiking_transformers/recipes/``), then the command-line flags. The resolved
configuration is saved as ``config.json`` in the run folder, so any result can be rebuilt from its folder.

Batch size convention: ``batch_size`` is the *global* batch of one forward pass, summed over all processes of a
data-parallel run (each process gets ``batch_size // world_size``); one optimiser step sees
``batch_size * grad_accum`` samples. Official recipes state "per-GPU batch x GPUs"; our recipes store the product.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import functools
import json
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

__all__ = ["TrainConfig", "list_recipes", "load_recipe", "recipe_path", "recipes_for_model", "resolve_config"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Model and data:
        model: registered model name; ``model_args``: constructor overrides (``num_classes``, ``img_size`` and
            ``in_chans`` default to the data set's). ``T``: time steps (``None``: the model's default).
        data, data_dir, data_args: data set name, root folder of a user's files, and options for ``get_dataset``.
    Optimisation:
        opt ("adamw" | "sgd" | "lamb"), lr, weight_decay, momentum (SGD), betas, wd_exclude_1d (no decay on 1-D
        parameters: norms and biases), epochs (cosine length), warmup_epochs, warmup_lr, min_lr,
        cooldown_epochs (extra epochs at ``min_lr`` after the cosine), batch_size (global, see module doc),
        grad_accum, clip_grad (max global L2 norm; 0: off), ema_decay (0: off), amp ("none" | "bf16" | "fp16").
    Loss and mixing:
        label_smoothing, mixup (Beta alpha; 0 off), cutmix (alpha; 0 off), mixup_prob, mixup_switch_prob
        (chance of cutmix when both are on), mixup_off_epoch (mixing stops from this epoch; 0 never),
        tet (TET loss on per-step logits), tet_lambda, tet_means.
    Run:
        seed, threads (CPU threads per process; 0: ``min(2, cpu_count)``), num_workers, device ("auto"),
        out (run folder), save_every_steps (mid-epoch checkpoints; 0: only at epoch ends), keep_last, sync_bn,
        grad_checkpointing (memory mode: ``model.set_grad_checkpointing(True)``, same numbers, less memory),
        progress (tqdm bar), tensorboard (write event files when tensorboard is installed), recipe (name of the
        recipe this config started from), augment (the recipe's official augmentation: on image data the
        policy of :class:`~spiking_transformers.data.augment.AugmentPolicy` (RandAugment, random erasing, random
        resized crop, flips, colour jitter, evaluation crop) is applied; on event data the data set's standard
        augmentation; empty: none), notes.
    """

    model: str = "spikformer_4_384_cifar10"
    model_args: dict[str, Any] = field(default_factory=dict)
    T: int | None = None
    data: str = "digits"
    data_dir: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)

    opt: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    wd_exclude_1d: bool = False
    epochs: int = 10
    warmup_epochs: float = 1.0
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    cooldown_epochs: int = 0
    batch_size: int = 64
    grad_accum: int = 1
    clip_grad: float = 0.0
    ema_decay: float = 0.0
    amp: str = "none"

    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_off_epoch: int = 0
    tet: bool = False
    tet_lambda: float = 1e-3
    tet_means: float = 1.0

    seed: int = 0
    threads: int = 0
    num_workers: int = 0
    device: str = "auto"
    out: str | None = None
    save_every_steps: int = 0
    keep_last: int = 2
    sync_bn: bool = False
    grad_checkpointing: bool = False
    progress: bool = True
    tensorboard: bool = True
    recipe: str | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.opt not in ("adamw", "sgd", "lamb"):
            raise ValueError(f"opt must be 'adamw', 'sgd' or 'lamb', got {self.opt!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {self.amp!r}")
        for name in ("epochs", "batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.T is not None and self.T < 1:
            raise ValueError(f"T must be >= 1, got {self.T}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {self.keep_last}")
        if self.augment:
            from ..data.augment import validate_augment

            validate_augment(self.augment)  # a bad policy string or key fails here, before any data is read
        # YAML/JSON give lists; keep the frozen dataclass hashable-ish and JSON round-trippable.
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def total_epochs(self) -> int:
        """Epochs actually run: the cosine schedule plus the cool-down at ``min_lr``."""
        return self.epochs + self.cooldown_epochs

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (unknown names raise ``ValueError``)."""
        _check_keys(changes, "config")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        _check_keys(d, "config")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_keys(d: Mapping[str, Any], what: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")


# --------------------------------------------------------------------------------------------------- recipes
# A recipe file is YAML with: `name`, `source` (where the numbers come from), `models` (glob patterns of the
# registered variants it trains), and `config` (TrainConfig fields). Other top-level keys are documentation.

def _recipe_dir() -> Path:
    return Path(str(resources.files("spiking_transformers"))) / "recipes"


def list_recipes() -> list[str]:
    """Names of the packaged recipes (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in _recipe_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """Path of a packaged recipe, or of a YAML file given by path."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = _recipe_dir() / f"{name}.yaml"
    if not p.exists():
        raise ValueError(f"unknown recipe {name!r}; packaged recipes: {', '.join(list_recipes())}")
    return p


def _read_recipe(name: str) -> dict[str, Any]:
    path = recipe_path(name)
    return copy.deepcopy(_parse_recipe(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _parse_recipe(path: str, _mtime: int) -> dict[str, Any]:
    # Cached per (file, modification time): recipes_for_model reads every recipe for every model.
    import yaml

    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise ValueError(f"recipe {path} must be a mapping with a 'config' mapping")
    return doc


def load_recipe(name: str) -> dict[str, Any]:
    """The ``config`` mapping of a recipe (TrainConfig fields), checked against :class:`TrainConfig`."""
    doc = _read_recipe(name)
    cfg = dict(doc["config"])
    _check_keys(cfg, f"recipe {name!r}")
    cfg.setdefault("recipe", Path(name).stem if Path(name).suffix else name)
    return cfg


def recipes_for_model(model: str) -> list[str]:
    """Recipes whose ``models`` patterns match the registered name ``model``."""
    out = []
    for name in list_recipes():
        patterns = _read_recipe(name).get("models") or []
        if any(fnmatch.fnmatchcase(model, pat) for pat in patterns):
            out.append(name)
    return out


def resolve_config(recipe: str | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the recipe (if any), then ``overrides`` (``None`` values are ignored: flag not given).

    ``model_args`` / ``data_args`` / ``augment`` given in ``overrides`` are merged into the recipe's, key by key.
    """
    merged: dict[str, Any] = {}
    if recipe:
        merged.update(load_recipe(recipe))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("model_args", "data_args", "augment") and isinstance(value, Mapping):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return TrainConfig.from_dict(merged)
