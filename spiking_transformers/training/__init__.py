"""Training: the loop (one process or ``torchrun``), losses, schedules, EMA, checkpoints, recipes and records.

See ``docs/training.md``. The entry points are :class:`Trainer` with a :class:`TrainConfig`, and the
``spiking-transformers train`` / ``eval`` commands built on them.
"""

from .checkpoint import CheckpointError, CheckpointManager, find_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig, list_recipes, load_recipe, recipes_for_model, resolve_config
from .distributed import CPUSyncBatchNorm, DistEnv, ResumableSampler, convert_sync_batchnorm, init_distributed
from .ema import ModelEMA
from .losses import DistillHook, LogitDistillation, Mixup, one_hot_smooth, soft_cross_entropy, tet_loss
from .optim import CosineSchedule, Lamb, build_optimizer
from ..analysis.firing import FiringRateMonitor  # the one monitor; re-exported for training code
from .records import plot_history
from .trainer import Trainer, configure_threads, evaluate, seed_everything

__all__ = [
    "Trainer",
    "TrainConfig",
    "evaluate",
    "seed_everything",
    "configure_threads",
    "resolve_config",
    "list_recipes",
    "load_recipe",
    "recipes_for_model",
    "CheckpointError",
    "CheckpointManager",
    "save_checkpoint",
    "load_checkpoint",
    "find_checkpoint",
    "DistEnv",
    "init_distributed",
    "ResumableSampler",
    "CPUSyncBatchNorm",
    "convert_sync_batchnorm",
    "ModelEMA",
    "DistillHook",
    "LogitDistillation",
    "Mixup",
    "one_hot_smooth",
    "soft_cross_entropy",
    "tet_loss",
    "CosineSchedule",
    "Lamb",
    "build_optimizer",
    "FiringRateMonitor",
    "plot_history",
]
