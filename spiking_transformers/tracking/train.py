"""Training STNet on tracking sequences with the SiamFC++ losses (:mod:`.losses`).

A training sample is a (template, search) pair from one sequence: the template crop around the target of frame
``i``, the search crop of frame ``j`` (``|i - j| <= max_gap``) around the target centre moved by a random offset of
up to ``jitter`` of the score map's reach, so that the target is not always in the middle. The search SNN starts at
rest, as in the official ``train_forward``. The official training schedule is not public (the repository is
inference only); :func:`train_tracker`'s optimiser (Adam) and defaults are ours.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from ..models.stnet import STNet
from .boxes import cxywh2xyxy, xywh2cxywh
from .crop import get_crop
from .losses import densebox_target, siamfcpp_loss
from .synthetic import TrackingSequence
from .tracker import TrackerConfig

__all__ = ["sample_pairs", "train_tracker"]

log = logging.getLogger(__name__)


def sample_pairs(sequences: list[TrackingSequence], n: int, cfg: TrackerConfig, rng: np.random.Generator,
                 max_gap: int = 3, jitter: float = 0.75) -> dict[str, torch.Tensor]:
    """``n`` random training pairs -> ``z_pos, z_neg [T_e, n, 3, z, z]``, ``x_pos, x_neg [T_e, n, 3, x, x]`` (float32,
    0..255) and ``gt [n, 4]`` (the search target's x0, y0, x1, y1 in the search crop)."""
    reach = (cfg.x_size - 1 - (cfg.score_size - 1) * cfg.total_stride) // 2  # crop pixels from the edge to the map
    reach = cfg.x_size // 2 - reach  # crop pixels from the centre to the map's edge
    zs_p, zs_n, xs_p, xs_n, gts = [], [], [], [], []
    for _ in range(n):
        seq = sequences[int(rng.integers(len(sequences)))]
        i = int(rng.integers(len(seq)))
        j = int(np.clip(i + rng.integers(-max_gap, max_gap + 1), 0, len(seq) - 1))
        zi = xywh2cxywh(seq.boxes[i])
        xj = xywh2cxywh(seq.boxes[j])
        frames = {k: torch.as_tensor(getattr(seq, k)[f]).float() for k, f in (("pos", i), ("neg", i))}
        avg = frames["pos"][-1].double().mean(dim=(1, 2))
        zp, _ = get_crop(frames["pos"], zi[:2], zi[2:], cfg.z_size, avg_chans=avg, context_amount=cfg.context_amount)
        zn, _ = get_crop(frames["neg"], zi[:2], zi[2:], cfg.z_size, avg_chans=avg, context_amount=cfg.context_amount)
        xp_f, xn_f = torch.as_tensor(seq.pos[j]).float(), torch.as_tensor(seq.neg[j]).float()
        scale0 = cfg.z_size / np.sqrt(np.prod(xj[2:] + cfg.context_amount * xj[2:].sum()))
        centre = xj[:2] + rng.uniform(-1, 1, size=2) * jitter * reach / scale0
        xp, scale = get_crop(xp_f, centre, xj[2:], cfg.z_size, cfg.x_size, avg, cfg.context_amount)
        xn, _ = get_crop(xn_f, centre, xj[2:], cfg.z_size, cfg.x_size, avg, cfg.context_amount)
        box = np.concatenate([(xj[:2] - centre) * scale + cfg.x_size // 2, xj[2:] * scale])
        zs_p.append(zp), zs_n.append(zn), xs_p.append(xp), xs_n.append(xn)
        gts.append(cxywh2xyxy(box))
    return dict(z_pos=torch.stack(zs_p, 1), z_neg=torch.stack(zs_n, 1), x_pos=torch.stack(xs_p, 1),
                x_neg=torch.stack(xs_n, 1), gt=torch.as_tensor(np.stack(gts), dtype=torch.float32))


def train_tracker(model: STNet, sequences: list[TrackingSequence], cfg: TrackerConfig, *, steps: int = 100,
                  batch: int = 8, lr: float = 1e-3, seed: int = 0,
                  callback: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train ``model`` (float32) with Adam on random pairs; returns the per-step losses."""
    if steps < 0 or batch < 1:
        raise ValueError(f"steps must be >= 0 and batch >= 1, got {steps}, {batch}")
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for step in range(steps):
        data = sample_pairs(sequences, batch, cfg, rng)
        kernels = model.template(data["z_pos"], data["z_neg"])
        cls, ctr, box, _ = model.track_logits(data["x_pos"], data["x_neg"], None, kernels)
        targets = densebox_target(data["gt"], cfg.x_size, cfg.score_size, cfg.total_stride)
        loss, parts = siamfcpp_loss(cls, ctr, box, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        parts["loss"] = float(loss.detach())
        history.append(parts)
        if callback is not None:
            callback(step, parts)
    model.eval()
    return history
