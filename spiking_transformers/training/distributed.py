"""Data-parallel training through ``torchrun`` (``torch.distributed``): process set-up, sharding, reductions.

``torchrun --nproc-per-node 2 -m spiking_transformers train ...`` starts one process per rank with the usual
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_distributed`
reads it and joins the process group (``gloo`` on CPU, ``nccl`` on CUDA). Without that environment everything here
degrades to a single process.

BatchNorm: by default each rank normalises with the statistics of its own shard (as the official Spikformer and
SDT code do, and what torch's DDP does without ``SyncBatchNorm``), so a 2-process run is *not* numerically equal to
one process with the same global batch. ``sync_bn=True`` replaces every BatchNorm with a synchronised one
(:class:`torch.nn.SyncBatchNorm` on GPU; :class:`CPUSyncBatchNorm` on CPU, where torch's does not run), whose
statistics are those of the global batch: then data-parallel training equals single-process training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

__all__ = [
    "DistEnv",
    "init_distributed",
    "all_reduce_sum",
    "ResumableSampler",
    "ShardSampler",
    "CPUSyncBatchNorm",
    "convert_sync_batchnorm",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size``, its ``local_rank``, and the device it uses."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the ``torchrun`` process group if the environment names one; pick the device.

    ``device="auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a list of numbers over all ranks (float64; identity for one process)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` whose epoch order is a pure function of ``(seed, epoch)``, and that can start
    part-way through an epoch (``set_position(epoch, start_batch, batch_size)``) to resume exactly.

    With ``num_replicas=1`` it is a seeded shuffler for single-process runs, so that one process and ``W``
    processes see the same global batches: rank ``r`` takes ``perm[r::W]``, and batch ``i`` of every rank
    together hold ``perm[i*B : (i+1)*B]`` of the global order when ``B`` is the global batch.
    """

    def __init__(self, dataset, *, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start_batch: int, local_batch_size: int) -> None:
        """Next iteration yields epoch ``epoch`` from its batch ``start_batch`` on."""
        self.set_epoch(epoch)
        self.start = start_batch * local_batch_size

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


class ShardSampler(torch.utils.data.Sampler[int]):
    """Evaluation sharding without padding: rank ``r`` takes indices ``r, r+W, ...`` (every sample counted once)."""

    def __init__(self, n: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, n, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _GlobalMoments(torch.autograd.Function):
    # All-reduce of per-rank sums whose backward all-reduces the gradient too (each rank's loss depends on every
    # rank's inputs through the shared statistics).
    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        g = g.clone()
        dist.all_reduce(g)
        return g


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch over all ranks (works on CPU / gloo).

    Per rank it computes the per-channel sum and sum of squares of its shard, all-reduces them (with a
    differentiable all-reduce), and normalises with the global mean and biased variance; the running variance
    gets the unbiased global variance, as :class:`torch.nn.BatchNorm2d` does. Without a process group (or in eval
    mode) it is an ordinary BatchNorm. Channels on dim 1: ``[N, C, ...]``.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        n_local = x.numel() // x.shape[1]
        xf = x.float()
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_tensor([float(n_local)])])
        stats = _GlobalMoments.apply(stats)
        C = x.shape[1]
        total = stats[-1]
        mean = stats[:C] / total
        var = (stats[C : 2 * C] / total - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / max(float(total) - 1.0, 1.0)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        shape = [1, C] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm by a synchronised one (torch's on GPU, :class:`CPUSyncBatchNorm` on CPU).

    Parameters and buffers are carried over under the same names, so state dicts stay compatible.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
            new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            return new
        for name, child in module.named_children():
            setattr(module, name, convert(child))
        return module

    return convert(model)

