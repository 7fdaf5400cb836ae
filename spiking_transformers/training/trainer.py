"""The training loop: one process or many (``torchrun``), exact resume, records.

:class:`Trainer` takes a model, a :class:`~spiking_transformers.training.config.TrainConfig`, and the train and test
data sets; :meth:`Trainer.fit` trains for ``config.total_epochs`` epochs, evaluating on the test split after each
(top-1, top-5, mean firing rate), checkpointing, and writing the run folder (rank 0 only):

``config.json`` (resolved configuration), ``metrics.csv`` (one row per epoch), ``metrics.json`` (final metrics),
``model.safetensors`` (final weights; ``model_ema.safetensors`` with EMA), ``curves.png`` (learning curves and
firing rates; needs matplotlib), ``checkpoints/`` (see :mod:`.checkpoint`), ``tensorboard/`` (if installed).

Exact resume: the epoch order is a pure function of ``(seed, epoch)`` (:class:`.distributed.ResumableSampler`),
the data loader draws its worker seeds from its own generator, mixup from another, and a checkpoint holds every
RNG state (torch, CUDA, numpy, Python, both generators; per rank), the optimiser, scheduler, EMA and AMP scaler, and
the position inside the epoch. Checkpoints are taken only between optimiser steps, so gradient accumulation never
straddles one. Resuming from step ``s`` then replays exactly what the uninterrupted run did after step ``s``,
bit for bit on the same machine, thread count and ``num_workers=0`` (worker processes restart their own RNG
streams, so with ``num_workers > 0`` and random augmentation a resumed epoch draws different augmentations).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..data import time_major_collate
from .checkpoint import CheckpointManager
from .config import TrainConfig
from .distributed import (
    DistEnv,
    ResumableSampler,
    ShardSampler,
    all_reduce_sum,
    convert_sync_batchnorm,
    init_distributed,
)
from .ema import ModelEMA
from .losses import DistillHook, Mixup, one_hot_smooth, sml_loss, soft_cross_entropy, tet_loss
from .optim import CosineSchedule, build_optimizer
from ..analysis.firing import FiringRateMonitor
from ..layers import batch_axis
from .records import EpochLog, TensorBoardWriter, eval_mode, plot_history, topk_correct

__all__ = ["Trainer", "evaluate", "seed_everything", "configure_threads", "autocast_context"]

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_threads(threads: int, local_world_size: int = 1) -> int:
    """Set torch's CPU threads: ``threads``, or (0) ``min(2, cpu_count)`` shared among the local processes.

    Over-subscribed OpenMP threads slow CPU training several-fold (measured, see ``docs/training.md``), hence the
    conservative default.
    """
    if threads <= 0:
        threads = max(1, min(2, os.cpu_count() or 1) // max(1, local_world_size))
    torch.set_num_threads(threads)
    return threads


def autocast_context(amp: str, device: torch.device):
    """``torch.autocast`` for ``amp`` ("bf16": bfloat16; "fp16": float16 on GPU, bfloat16 on CPU), else no-op.

    The official recipes' AMP is float16 on GPUs; CPUs autocast only to bfloat16, so a recipe's "fp16" becomes
    bfloat16 there (no loss scaling needed).
    """
    if amp == "none":
        return nullcontext()
    half = torch.float16 if (amp == "fp16" and device.type != "cpu") else torch.bfloat16
    return torch.autocast(device.type, dtype=half)


class _Forward(nn.Module):
    # DDP only synchronises gradients of computations that go through its own forward, so per-step logits for
    # TET must be requested through forward() rather than by calling model.forward_timesteps directly.
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, timesteps: bool = False, distill: bool = False) -> Tensor:  # type: ignore[override]
        if distill:  # (main, side heads...) of a self-distilling model (STMixer's SML)
            return self.model.forward_distill(x)
        return self.model.forward_timesteps(x) if timesteps else self.model(x)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    env: DistEnv | None = None,
    amp: str = "none",
    num_classes: int | None = None,
    confusion: bool = False,
) -> dict[str, Any]:
    """Top-1 / top-5 accuracy (percent), mean loss, and firing rates of ``model`` over ``loader``.

    Sums are all-reduced over ranks when ``env`` is distributed (each rank evaluating its own shard). Returns
    ``top1, top5, loss, firing_rate`` (all neurons pooled), ``layer_rates`` (per neuron module, this rank),
    ``n`` and, with ``confusion``, ``confusion`` (``[K, K]`` list of lists, rows true class, columns prediction).
    """
    env = env or DistEnv(device=device)
    K = num_classes or int(getattr(model, "num_classes", 0))
    conf = torch.zeros(K, K, dtype=torch.int64) if confusion else None
    loss_sum = c1 = c5 = n = 0.0
    with eval_mode(model), FiringRateMonitor(model) as mon:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with autocast_context(amp, device):
                out = model(x)
            out = out.float()
            loss_sum += float(torch.nn.functional.cross_entropy(out, y, reduction="sum"))
            k1, k5 = topk_correct(out, y)
            c1, c5, n = c1 + k1, c5 + k5, n + y.numel()
            if conf is not None:
                idx = y.cpu() * K + out.argmax(-1).cpu()
                conf += torch.bincount(idx, minlength=K * K).view(K, K)
    spikes, elements = mon.totals()
    loss_sum, c1, c5, n, spikes, elements = all_reduce_sum([loss_sum, c1, c5, n, spikes, float(elements)], env)
    if conf is not None and env.distributed:
        conf_t = conf.to(env.device)
        dist.all_reduce(conf_t)
        conf = conf_t.cpu()
    result: dict[str, Any] = {
        "top1": 100.0 * c1 / max(n, 1),
        "top5": 100.0 * c5 / max(n, 1),
        "loss": loss_sum / max(n, 1),
        "firing_rate": spikes / elements if elements else float("nan"),
        "layer_rates": mon.rates(),
        "n": int(n),
    }
    if conf is not None:
        result["confusion"] = conf.tolist()
    return result


class Trainer:
    """Trains ``model`` with ``config`` on ``train_set``, evaluating on ``test_set`` each epoch.

    Args:
        model: a :class:`~spiking_transformers.models.SpikingModel` (anything with ``forward`` -> ``[B, K]`` and,
            for TET, ``forward_timesteps`` -> ``[T, B, K]``), freshly built and seeded by the caller.
        config: the run configuration.
        train_set, test_set: data sets of ``(x, y)`` with ``x`` ``[C, H, W]`` or ``[T, C, H, W]``.
        out_dir: run folder (``None``: write nothing; checkpoints then need one).
        distill: optional :class:`~.losses.DistillHook` (e.g. :class:`~.losses.LogitDistillation`).
        env: the distributed environment (default: from ``torchrun``'s variables via :func:`init_distributed`).
        callbacks: callables ``(trainer) -> None`` run after every optimiser step (``trainer.global_step`` etc.).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_set: Dataset,
        test_set: Dataset | None,
        *,
        out_dir: str | Path | None = None,
        distill: DistillHook | None = None,
        env: DistEnv | None = None,
        callbacks: Sequence[Callable[["Trainer"], None]] = (),
    ) -> None:
        self.config = config
        self.env = env or init_distributed(config.device)
        self.device = self.env.device
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.distill = distill
        self.callbacks = list(callbacks)
        c, env = config, self.env

        if c.batch_size % env.world_size:
            raise ValueError(f"batch_size {c.batch_size} (global) is not divisible by the {env.world_size} processes")
        self.local_batch = c.batch_size // env.world_size

        model = model.to(self.device)
        if c.grad_checkpointing:  # memory mode: same numbers, activations recomputed block by block in backward
            if not hasattr(model, "set_grad_checkpointing"):
                raise ValueError(f"grad_checkpointing: {type(model).__name__} has no set_grad_checkpointing (memory "
                                 f"mode exists for the Spikformer and SDT V1 backbones)")
            model.set_grad_checkpointing(True)
        if c.sync_bn and env.distributed:
            model = convert_sync_batchnorm(model, self.device)
        self.model = model
        self.num_classes = int(getattr(model, "num_classes"))
        net: nn.Module = _Forward(model)
        if env.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        self.net = net

        self.sampler = ResumableSampler(train_set, num_replicas=env.world_size, rank=env.rank, seed=c.seed)
        self.loader_gen = torch.Generator()
        self.train_loader = DataLoader(
            train_set, batch_size=self.local_batch, sampler=self.sampler, collate_fn=time_major_collate,
            num_workers=c.num_workers, drop_last=True, generator=self.loader_gen,
            persistent_workers=False,
        )
        self.test_loader = None
        if test_set is not None:
            self.test_loader = DataLoader(
                test_set, batch_size=self.local_batch, sampler=ShardSampler(len(test_set), env.world_size, env.rank),
                collate_fn=time_major_collate, num_workers=c.num_workers,
            )
        self.batches_per_epoch = (self.sampler.num_samples // self.local_batch) // c.grad_accum * c.grad_accum
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the training set ({len(train_set)} samples) gives no full batch of {c.batch_size} x grad_accum "
                f"{c.grad_accum}; lower --batch-size"
            )
        self.steps_per_epoch = self.batches_per_epoch // c.grad_accum

        self.optimizer = build_optimizer(model, c)
        self.schedule = CosineSchedule(
            self.optimizer, base_lr=c.lr, min_lr=c.min_lr, warmup_lr=c.warmup_lr,
            warmup_steps=round(c.warmup_epochs * self.steps_per_epoch), cosine_steps=c.epochs * self.steps_per_epoch,
        )
        # Loss scaling only for float16 (GPU); bfloat16 has float32's exponent range.
        fp16 = c.amp == "fp16" and self.device.type != "cpu"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.ema = ModelEMA(model, c.ema_decay) if c.ema_decay > 0 else None
        self.mix_gen = torch.Generator().manual_seed(c.seed * 7919 + env.rank)
        self.mixup = Mixup(
            mixup_alpha=c.mixup, cutmix_alpha=c.cutmix, prob=c.mixup_prob, switch_prob=c.mixup_switch_prob,
            label_smoothing=c.label_smoothing, num_classes=self.num_classes, generator=self.mix_gen,
        )
        self.ckpt = CheckpointManager(self.out_dir, c.keep_last) if self.out_dir is not None else None

        # Position and running sums (all restored on resume).
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.best_top1 = -1.0
        self.best_epoch = -1
        self._sums = self._zero_sums()
        self.log = EpochLog(self._path("metrics.csv"))
        self.final_eval: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------------ helpers
    def _path(self, name: str) -> Path | None:
        return self.out_dir / name if (self.out_dir is not None and self.env.is_main) else None

    @staticmethod
    def _zero_sums() -> dict[str, float]:
        return {"loss": 0.0, "correct": 0.0, "n": 0.0, "time": 0.0}

    def _rng_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        r = self.env.rank
        tensors = {
            f"rng.{r}.torch": torch.get_rng_state(),
            f"rng.{r}.mixup": self.mix_gen.get_state(),
            f"rng.{r}.loader": self.loader_gen.get_state(),
        }
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.{r}.cuda.{i}"] = s
        np_state = np.random.get_state()
        py_state = random.getstate()
        meta = {
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]],
        }
        return tensors, meta

    def _set_rng_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        r = self.env.rank
        if f"rng.{r}.torch" not in tensors:
            log.warning("checkpoint has no RNG state for rank %d (different world size?): RNG streams re-seeded", r)
            seed_everything(self.config.seed + r + 1000 * self.global_step)
            return
        torch.set_rng_state(tensors[f"rng.{r}.torch"])
        self.mix_gen.set_state(tensors[f"rng.{r}.mixup"])
        self.loader_gen.set_state(tensors[f"rng.{r}.loader"])
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith(f"rng.{r}.cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        npm = meta["numpy"][str(r)]
        np.random.set_state((npm[0], np.asarray(npm[1], dtype=np.uint32), npm[2], npm[3], npm[4]))
        pym = meta["python"][str(r)]
        random.setstate((pym[0], tuple(pym[1]), pym[2]))

    # -------------------------------------------------------------------------------------------- checkpoints
    def _optimizer_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        sd = self.optimizer.state_dict()
        tensors: dict[str, Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, Tensor):
                    tensors[f"optimizer.{idx}.{k}"] = v
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}

    def _load_optimizer_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        state: dict[int, dict[str, Any]] = {}
        for key, v in tensors.items():
            if key.startswith("optimizer."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        for idx, d in meta["scalars"].items():
            state.setdefault(int(idx), {}).update(d)
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})

    def save_checkpoint(self, *, best: bool = False) -> None:
        """Checkpoint the complete training state (collective: every rank must call it)."""
        rng_tensors, rng_meta = self._rng_state()
        if self.env.distributed:  # rank 0 writes every rank's RNG streams
            gathered: list[Any] = [None] * self.env.world_size
            dist.all_gather_object(gathered, ({k: v.cpu() for k, v in rng_tensors.items()}, rng_meta))
        else:
            gathered = [(rng_tensors, rng_meta)]
        if self.ckpt is None or not self.env.is_main:
            return
        opt_tensors, opt_meta = self._optimizer_state()
        state_tensors = dict(opt_tensors)
        rng_json: dict[str, dict[str, Any]] = {"numpy": {}, "python": {}}
        for rank, (t, m) in enumerate(gathered):
            state_tensors.update(t)
            rng_json["numpy"][str(rank)] = m["numpy"]
            rng_json["python"][str(rank)] = m["python"]
        files = {"model": self.model.state_dict(), "state": state_tensors}
        if self.ema is not None:
            files["ema"] = self.ema.state_dict()
        meta = {
            "format": 1,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "world_size": self.env.world_size,
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "sums": self._sums,
            "history": self.log.history,
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "optimizer": opt_meta,
            "rng": rng_json,
            "config": self.config.to_dict(),
        }
        self.ckpt.save(self.global_step, files, meta, best=best)

    def resume(self, run_dir: str | Path | None = None) -> bool:
        """Restore the newest good checkpoint of ``run_dir`` (default: the output folder); False if none."""
        mgr = CheckpointManager(run_dir, self.config.keep_last) if run_dir is not None else self.ckpt
        if mgr is None:
            raise ValueError("resume needs a run folder")
        found = mgr.load_latest()
        if found is None:
            return False
        path, files, meta = found
        self.model.load_state_dict(files["model"])
        if self.ema is not None:
            if "ema" in files:
                self.ema.load_state_dict(files["ema"])
            else:
                log.warning("checkpoint has no EMA weights: EMA restarts from the current weights")
                self.ema = ModelEMA(self.model, self.config.ema_decay)
        self._load_optimizer_state(files["state"], meta["optimizer"])
        self.schedule.load_state_dict(meta["schedule"])
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.epoch, self.batch_in_epoch = int(meta["epoch"]), int(meta["batch_in_epoch"])
        self.global_step = int(meta["global_step"])
        self.best_top1, self.best_epoch = float(meta["best_top1"]), int(meta["best_epoch"])
        self._sums = dict(meta["sums"])
        self.log = EpochLog(self._path("metrics.csv"), meta["history"])
        if int(meta.get("world_size", 1)) != self.env.world_size:
            log.warning("resuming a %s-process run with %d processes: the data order changes from here on",
                        meta.get("world_size"), self.env.world_size)
        self._set_rng_state(files["state"], meta["rng"])
        if self.env.is_main:
            log.info("resumed from %s (epoch %d, batch %d, step %d)", path, self.epoch + 1, self.batch_in_epoch,
                     self.global_step)
        return True

    # ----------------------------------------------------------------------------------------------- training
    def _loss(self, x: Tensor, soft: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        # A model built with training-only side heads (model_args such as STMixer's sml: true) trains with its
        # self-distillation loss on forward_distill's (main, side...) outputs; evaluation uses forward alone.
        self_distill = bool(getattr(self.model, "self_distillation", False))
        if self_distill and c.tet:
            raise ValueError("TET and a self-distilling model (side heads) cannot be combined; set tet: false")
        with autocast_context(c.amp, self.device):
            out = self.net(x, timesteps=c.tet, distill=self_distill)
        if self_distill:
            loss = sml_loss(out, soft)
            out = out[0]
        elif c.tet:
            loss = tet_loss(out, soft, lam=c.tet_lambda, means=c.tet_means)
        else:
            loss = soft_cross_entropy(out, soft)
        if self.distill is not None:
            loss = self.distill(self.model, x, out, soft, loss)
        logits = out.mean(0) if c.tet else out
        return loss, logits.detach().float()

    def _optimizer_step(self) -> None:
        c = self.config
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if c.clip_grad > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1

    def train_epoch(self) -> None:
        """Run (the rest of) epoch ``self.epoch``."""
        c, env = self.config, self.env
        mixing = self.mixup.active and not (c.mixup_off_epoch and self.epoch >= c.mixup_off_epoch)
        self.sampler.set_position(self.epoch, self.batch_in_epoch, self.local_batch)
        self.loader_gen.manual_seed(c.seed * 1_000_003 + self.epoch)  # worker seeds: a function of the epoch
        self.net.train()
        bar = None
        if c.progress and env.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, leave=True, dynamic_ncols=True,
                       desc=f"epoch {self.epoch + 1}/{c.total_epochs}", unit="batch")
        t_last = time.perf_counter()
        for x, y in self.train_loader:
            if self.batch_in_epoch >= self.batches_per_epoch:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if mixing:
                x, soft = self.mixup(x, y, batch_axis(x, getattr(self.model, "input_kind", "image")))
            else:
                soft = one_hot_smooth(y, self.num_classes, c.label_smoothing)
            last_micro = (self.batch_in_epoch + 1) % c.grad_accum == 0
            sync = last_micro or not env.distributed
            with nullcontext() if sync else self.net.no_sync():
                loss, logits = self._loss(x, soft)
                scaled = loss / c.grad_accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            n = y.numel()
            self._sums["loss"] += float(loss.detach()) * n
            self._sums["correct"] += float((logits.argmax(-1) == y).sum())
            self._sums["n"] += n
            self.batch_in_epoch += 1
            if last_micro:
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"loss is {float(loss)} at step {self.global_step}; lower --lr?")
                self._optimizer_step()
            now = time.perf_counter()
            self._sums["time"] += now - t_last
            t_last = now
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{self._sums['loss'] / self._sums['n']:.3f}",
                                acc=f"{100 * self._sums['correct'] / self._sums['n']:.1f}",
                                img_s=f"{self._sums['n'] * env.world_size / max(self._sums['time'], 1e-9):.0f}",
                                refresh=False)
            if last_micro:
                for cb in self.callbacks:
                    cb(self)
                if (c.save_every_steps and self.global_step % c.save_every_steps == 0
                        and self.batch_in_epoch < self.batches_per_epoch):
                    self.save_checkpoint()
                    t_last = time.perf_counter()
        if bar is not None:
            bar.close()

    def end_epoch(self) -> dict[str, Any]:
        """Evaluate, record the epoch's row, checkpoint, and move to the next epoch."""
        c, env = self.config, self.env
        loss, correct, n = all_reduce_sum([self._sums["loss"], self._sums["correct"], self._sums["n"]], env)
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "lr": self.schedule.lr_at(max(self.global_step - 1, 0)),
            "train_loss": loss / max(n, 1),
            "train_top1": 100.0 * correct / max(n, 1),
            "train_samples_per_s": n / max(self._sums["time"], 1e-9),
            "epoch_time_s": self._sums["time"],
        }
        if self.test_loader is not None:
            ev = evaluate(self.model, self.test_loader, device=self.device, env=env, amp=c.amp,
                          num_classes=self.num_classes)
            self.final_eval = ev
            row.update(test_loss=ev["loss"], test_top1=ev["top1"], test_top5=ev["top5"],
                       firing_rate=ev["firing_rate"])
            if self.ema is not None:
                ev_ema = evaluate(self.ema.module, self.test_loader, device=self.device, env=env, amp=c.amp,
                                  num_classes=self.num_classes)
                row.update(test_top1_ema=ev_ema["top1"], test_top5_ema=ev_ema["top5"])
        top1 = row.get("test_top1", row["train_top1"])
        best = top1 > self.best_top1
        if best:
            self.best_top1, self.best_epoch = top1, self.epoch + 1
        if env.is_main:
            self.log.append(row)
            log.info("epoch %d/%d: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
                     self.epoch + 1, c.total_epochs)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._sums = self._zero_sums()
        self.save_checkpoint(best=best)
        return row

    def fit(self, resume: str | Path | bool | None = None) -> dict[str, Any]:
        """Train to the end (resuming first if asked); write the records; return the final metrics."""
        c = self.config
        if resume:
            self.resume(None if resume is True else resume)
        out = self._path(".")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(c.to_json() + "\n")
        tb = TensorBoardWriter(self.out_dir / "tensorboard" if (out is not None and c.tensorboard) else None)
        t0 = time.perf_counter()
        try:
            while self.epoch < c.total_epochs:
                self.train_epoch()
                row = self.end_epoch()
                tb.scalars({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])
        finally:
            tb.close()
        metrics = self._final_metrics(time.perf_counter() - t0)
        self._write_final(metrics)
        return metrics

    def _final_metrics(self, wall: float) -> dict[str, Any]:
        last = self.log.history[-1] if self.log.history else {}
        ev = self.final_eval or {}
        return {
            "model": self.config.model,
            "data": self.config.data,
            "epochs": self.epoch,
            "steps": self.global_step,
            "test_top1": last.get("test_top1"),
            "test_top5": last.get("test_top5"),
            "test_loss": last.get("test_loss"),
            "test_top1_ema": last.get("test_top1_ema"),
            "firing_rate": last.get("firing_rate"),
            "layer_firing_rates": ev.get("layer_rates", {}),
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "train_time_s": sum(r.get("epoch_time_s", 0.0) for r in self.log.history),
            "wall_time_this_session_s": wall,
            "world_size": self.env.world_size,
            "params": sum(p.numel() for p in self.model.parameters()),
        }

    def _write_final(self, metrics: dict[str, Any]) -> None:
        if self.out_dir is None or not self.env.is_main:
            return
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  str(self.out_dir / "model.safetensors"), metadata={"model": self.config.model})
        if self.ema is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.ema.state_dict().items()},
                      str(self.out_dir / "model_ema.safetensors"), metadata={"model": self.config.model})
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if self.log.history and "test_top1" in self.log.history[0]:
            plot_history(self.log.history, self.out_dir / "curves.png")
