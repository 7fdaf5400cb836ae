"""``spiking-transformers train``: train a registered model (one process, or many under ``torchrun``).

With no arguments it runs the packaged ``digits`` recipe: a small Spikformer on the bundled UCI digits, a few
minutes on 2 CPU cores. ``--recipe NAME`` starts from an official training recipe; any flag given overrides the
recipe's field; the resolved configuration is saved as ``RUN/config.json``. Data-parallel::

    torchrun --nproc-per-node 2 -m spiking_transformers train --recipe ... --batch-size 128
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a model (default: a small spiking transformer on the bundled digits, a few minutes on CPU)"

DEFAULT_RECIPE = "digits"

log = logging.getLogger(__name__)


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    # No ArgumentDefaultsHelpFormatter: the defaults come from the recipe, and the help strings say them once.
    g = p.add_argument_group("what to train")
    g.add_argument("--recipe", help=f"training recipe (name from --list-recipes, or a YAML path); default "
                                    f"{DEFAULT_RECIPE!r} when --model is not given either")
    g.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")
    g.add_argument("--task", choices=("classification", "speech"), default="classification",
                   help="speech: spoken-digit classification with a speech model (DyTr-SNN; needs the [speech] "
                        "extra), confusion matrix, optional CTC (--set ctc_epochs=N); see training/speech.py")
    g.add_argument("--model", help="registered model name (`spiking-transformers models`)")
    g.add_argument("--model-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="model constructor override, repeatable (e.g. embed_dim=64)")
    g.add_argument("--data", help="data set name (default digits, bundled)")
    g.add_argument("--data-dir", help="folder with your copy of the data set's files")
    g.add_argument("--data-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="data set option, repeatable (e.g. img_size=16)")
    g.add_argument("--T", type=int, help="time steps (default: the model's)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs of the cosine schedule")
    g.add_argument("--cooldown-epochs", type=int, help="extra epochs at --min-lr")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up length (epochs, may be fractional)")
    g.add_argument("--batch-size", type=int, help="global batch (over all processes)")
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step")
    g.add_argument("--opt", choices=("adamw", "sgd", "lamb"))
    g.add_argument("--lr", type=float)
    g.add_argument("--min-lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--clip-grad", type=float, help="max gradient norm (0: off)")
    g.add_argument("--ema-decay", type=float, help="EMA of weights (0: off)")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (bf16 works on CPU)")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--mixup", type=float, help="mixup alpha (0: off)")
    g.add_argument("--cutmix", type=float, help="cutmix alpha (0: off)")
    g.add_argument("--tet", action=argparse.BooleanOptionalAction, default=None, help="TET loss on per-step logits")
    g.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="synchronise BatchNorm statistics over processes (default: per-process statistics)")
    g.add_argument("--grad-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="memory mode: recompute each block's activations in backward (same gradients, less memory)")
    g.add_argument("--set", action="append", type=_key_value, default=[], metavar="FIELD=VALUE",
                   help="set any configuration field (see docs/training.md), repeatable")

    g = p.add_argument_group("run")
    g.add_argument("--out", help="run folder (default runs/<model>-<data>-<time>)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest good checkpoint")
    g.add_argument("--seed", type=int)
    g.add_argument("--threads", type=int, help="CPU threads per process (default min(2, cpu count))")
    g.add_argument("--num-workers", type=int, help="data loader worker processes")
    g.add_argument("--device", help="cpu, cuda, cuda:1 or auto")
    g.add_argument("--save-every-steps", type=int, help="also checkpoint every N optimiser steps")
    g.add_argument("--keep-last", type=int, help="checkpoints kept (besides the best)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (default: a bar when stderr is a terminal; one line per epoch in a log)")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
                   help="no TensorBoard event files even if tensorboard is installed")


_FLAG_FIELDS = (
    "model", "data", "data_dir", "T", "epochs", "cooldown_epochs", "warmup_epochs", "batch_size", "grad_accum", "opt",
    "lr", "min_lr", "weight_decay", "clip_grad", "ema_decay", "amp", "label_smoothing", "mixup", "cutmix", "tet",
    "sync_bn", "grad_checkpointing", "seed", "threads", "num_workers", "device", "save_every_steps", "keep_last",
    "progress", "tensorboard", "out",
)


def _stderr_is_terminal() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def config_from_args(args: argparse.Namespace):
    """The resolved :class:`TrainConfig`: defaults, then the recipe, then the flags that were given."""
    from ..training.config import TrainConfig, resolve_config

    overrides: dict[str, Any] = {f: getattr(args, f) for f in _FLAG_FIELDS}
    if overrides["progress"] is None and not _stderr_is_terminal():
        overrides["progress"] = False  # a redirected log gets the per-epoch lines, not thousands of bar redraws
    overrides.update(dict(args.set))
    if args.model_arg:
        overrides["model_args"] = dict(args.model_arg)
    if args.data_arg:
        overrides["data_args"] = dict(args.data_arg)
    recipe = args.recipe or (DEFAULT_RECIPE if args.model is None else None)
    config = resolve_config(recipe, overrides)
    if config.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        config = config.replace(out=str(Path("runs") / f"{config.model}-{config.data}-{stamp}"))
    assert isinstance(config, TrainConfig)
    return config


def run(args: argparse.Namespace) -> int:
    from ..training.config import TrainConfig, list_recipes, recipe_path

    if args.list_recipes:
        import yaml

        for name in list_recipes():
            doc = yaml.safe_load(recipe_path(name).read_text())
            print(f"{name:32s} {', '.join(doc.get('models') or [])[:60]:60s} {doc.get('source', '')}")
        return 0

    if getattr(args, "task", "classification") == "speech":
        from ..training.speech import run_speech

        return run_speech(args)

    from ..training.distributed import init_distributed
    from ..training.run import build_datasets, build_model
    from ..runtime import release_freed_memory, tune_cpu_allocator
    from ..training.trainer import Trainer, configure_threads, seed_everything

    if args.resume:
        cfg_path = Path(args.resume) / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume {args.resume}: no config.json there (not a run folder)")
        config = TrainConfig.from_json(cfg_path).replace(out=str(args.resume))
        # Only settings that cannot change the numbers may differ on resume.
        changes = {k: getattr(args, k) for k in ("threads", "progress", "num_workers", "device", "tensorboard",
                                                 "grad_checkpointing")
                   if getattr(args, k) is not None}
        if args.progress is None and not _stderr_is_terminal():
            changes["progress"] = False
        config = config.replace(**changes)
    else:
        config = config_from_args(args)

    if config.grad_checkpointing:  # memory mode: freed tensors go back to the system (runtime.py)
        release_freed_memory()
    else:
        tune_cpu_allocator()  # keep large freed blocks for reuse: ~20 % faster steps (runtime.py)
    threads = configure_threads(config.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    env = init_distributed(config.device)
    seed_everything(config.seed + env.rank)
    model = build_model(config)
    train_set, test_set = build_datasets(config)
    if env.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        log.info("training %s (%.3fM parameters, T=%s) on %s (%d train / %d test), %d epoch(s), batch %d, "
                 "%d process(es) x %d thread(s); run folder %s", config.model, n_params / 1e6,
                 getattr(model, "T", "?"), config.data, len(train_set), len(test_set), config.total_epochs,
                 config.batch_size, env.world_size, threads, config.out)
    trainer = Trainer(model, config, train_set, test_set, out_dir=config.out, env=env)
    metrics = trainer.fit(resume=bool(args.resume))
    if env.is_main:
        _explain_chance(metrics, trainer, config)
        print(
            f"test accuracy {metrics['test_top1']:.2f}% (top-5 {metrics['test_top5']:.2f}%), "
            f"mean firing rate {metrics['firing_rate']:.4f}, best {metrics['best_top1']:.2f}% at epoch "
            f"{metrics['best_epoch']}; training time {metrics['train_time_s']:.0f} s; run folder {config.out}"
        )
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


def _explain_chance(metrics: dict[str, Any], trainer: Any, config: Any) -> None:
    """Say why a run whose training accuracy is far above its test accuracy (a short run) scores near chance.

    BatchNorm's running statistics (momentum 0.1) trail weights that moved fast; in eval mode the shifted
    normalisation silences most neurons (see ``training/bn_stats.py``). ``eval --recalibrate-bn`` re-estimates them.
    """
    history = getattr(getattr(trainer, "log", None), "history", None) or []
    if not history or metrics.get("test_top1") is None:
        return
    train_top1, test_top1 = float(history[-1].get("train_top1", 0.0)), float(metrics["test_top1"])
    classes = max(int(getattr(trainer.model, "num_classes", 10)), 2)
    if test_top1 < 2.0 * 100.0 / classes and train_top1 > test_top1 + 25.0:
        log.warning(
            "test accuracy %.1f%% is near chance while training accuracy is %.1f%%: after a short run BatchNorm's "
            "running statistics trail the weights and silence the neurons in eval mode (firing rate %.3f). "
            "`spiking-transformers eval %s --recalibrate-bn 20` re-estimates them; more epochs avoid it",
            test_top1, train_top1, float(metrics.get("firing_rate") or 0.0), config.out)
