"""SYNTHETIC event detection set: moving shapes seen by a simulated event camera, with their boxes.

Each sample is a short recording of ``window_us`` microseconds on a ``size x size`` sensor:

* a static background of smooth random texture (a still camera: the background alone makes no events);
* 1 to ``max_objects`` shapes, each a random class of :data:`SHAPE_CLASSES` (disc, square, triangle), side
  ``min_size..max_size`` pixels, its own brightness (brighter or darker than the background), moving in a straight
  line at ``speed`` pixels per time bin in a random direction, rendered with anti-aliased edges; final boxes overlap
  little (IoU at most ``max_overlap``, best of 10 placements);
* the event camera of :mod:`spiking_transformers.data.synthetic` (the N-MNIST saccade simulator): every pixel
  follows ``L = log(I + eps)`` against a reference and emits one ON (OFF) event per contrast threshold ``C`` crossed
  (per-pixel ``C * (1 + mismatch * N(0, 1))``); ``substeps`` renderings per time bin, events stamped at their
  rendering; plus uniform noise events (``noise_rate`` per pixel per recording), as real sensors have;
* the label of a sample, as in Gen1, is the boxes at the **end** of the window (timestamp ``window_us``).

:func:`make_sample` gives ``(events, boxes)`` in the Gen1 layout
(:data:`~spiking_transformers.detection.gen1.BBOX_DTYPE` rows), :class:`SyntheticEventDetection` the binned frames and
targets, and :func:`write_synthetic_gen1` writes recordings as Gen1 ``_td.dat`` / ``_bbox.npy`` pairs, so the same
samples are read back by :class:`~spiking_transformers.detection.gen1.Gen1Detection`. Deterministic per seed;
labelled synthetic wherever used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data.events import make_events
from .gen1 import BBOX_DTYPE, bin_events, boxes_to_xyxy, write_bbox_npy, write_dat

__all__ = ["SHAPE_CLASSES", "SyntheticDetectionConfig", "SyntheticEventDetection", "make_sample",
           "write_synthetic_gen1"]

SHAPE_CLASSES = ("disc", "square", "triangle")


@dataclass(frozen=True)
class SyntheticDetectionConfig:
    """Settings of the synthetic detection set (see the module docstring).

    Attributes:
        size: sensor side in pixels.
        T: time bins per sample.
        substeps: renderings per bin.
        window_us: recording length in µs (the label time).
        max_objects: up to this many shapes (at least 1).
        min_size, max_size: shape side in pixels.
        speed: pixels per time bin.
        threshold, mismatch, eps: the event camera.
        noise_rate: noise events per pixel per recording.
        max_overlap: largest IoU of a new shape's final box with an earlier one (10 placement tries).
    """

    size: int = 64
    T: int = 4
    substeps: int = 2
    window_us: int = 40_000
    max_objects: int = 3
    min_size: float = 10.0
    max_size: float = 22.0
    speed: float = 1.5
    threshold: float = 0.15
    mismatch: float = 0.05
    eps: float = 0.1
    noise_rate: float = 0.02
    max_overlap: float = 0.1


def _texture(rng: np.random.Generator, n: int, cell: int = 8) -> np.ndarray:
    """Smooth random texture ``[n, n]`` in [0, 1] (bilinear upsampling of coarse noise)."""
    m = n // cell + 2
    coarse = torch.as_tensor(rng.random((1, 1, m, m)))
    up = torch.nn.functional.interpolate(coarse, size=(m * cell, m * cell), mode="bilinear", align_corners=False)
    up = up[0, 0, :n, :n]
    return ((up - up.min()) / (up.max() - up.min() + 1e-12)).numpy()


def _coverage(kind: int, cx: float, cy: float, s: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape of side ``s`` centred at ``(cx, cy)`` (pixel centres xx, yy)."""
    dx, dy = xx - cx, yy - cy
    r = s / 2
    if kind == 0:  # disc of diameter s
        sd = np.hypot(dx, dy) - r
    elif kind == 1:  # axis-aligned square
        sd = np.maximum(np.abs(dx), np.abs(dy)) - r
    else:  # upward triangle with base s and height s, bounding box = s x s
        k = 2.0  # slope of the sides: |dx| = (dy + r) / 2
        side = (np.abs(dx) - (dy + r) / k) / math.sqrt(1 + 1 / k**2)
        sd = np.maximum(np.maximum(side, dy - r), -r - dy)
    return np.clip(0.5 - sd, 0.0, 1.0)


def _iou(c1: np.ndarray, s1: float, c2: np.ndarray, s2: float) -> float:
    """IoU of two axis-aligned squares given by centre and side."""
    lo = np.maximum(c1 - s1 / 2, c2 - s2 / 2)
    hi = np.minimum(c1 + s1 / 2, c2 + s2 / 2)
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / (s1 * s1 + s2 * s2 - inter)


def make_sample(cfg: SyntheticDetectionConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One recording: ``(events EVENT_DTYPE sorted by time, boxes BBOX_DTYPE at ts = window_us)``."""
    rng = np.random.default_rng(seed)
    S = cfg.size
    ys, xs = np.meshgrid(np.arange(S) + 0.5, np.arange(S) + 0.5, indexing="ij")
    bg = 0.2 + 0.3 * _texture(rng, S)
    steps = cfg.T * cfg.substeps
    objs = []
    for _ in range(int(rng.integers(1, cfg.max_objects + 1))):
        kind = int(rng.integers(0, len(SHAPE_CLASSES)))
        s = float(rng.uniform(cfg.min_size, cfg.max_size))
        ang = rng.uniform(0, 2 * math.pi)
        v = np.array([math.cos(ang), math.sin(ang)]) * cfg.speed / cfg.substeps  # per rendering
        # the end position stays inside the sensor and overlaps earlier shapes little (IoU <= max_overlap, a few
        # tries), so that no box labels a hidden shape
        for _ in range(10):
            end = rng.uniform(s / 2 + 1, S - s / 2 - 1, size=2)
            if all(_iou(end, s, o[2] + o[3] * steps, o[1]) <= cfg.max_overlap for o in objs):
                break
        start = end - v * steps
        bright = float(rng.choice([rng.uniform(0.65, 1.0), rng.uniform(0.0, 0.08)]))
        objs.append((kind, s, start, v, bright))

    def render(k: int) -> np.ndarray:
        img = bg.copy()
        for kind, s, start, v, bright in objs:  # later objects occlude earlier ones
            c = start + v * k
            a = _coverage(kind, c[0], c[1], s, xs, ys)
            img = img * (1 - a) + bright * a
        return img

    thr = (cfg.threshold * (1 + cfg.mismatch * rng.standard_normal((S, S)))).clip(cfg.threshold * 0.5)
    ref = np.log(render(0) + cfg.eps)
    chunks = []
    dt = cfg.window_us / steps
    for k in range(1, steps + 1):
        diff = np.log(render(k) + cfg.eps) - ref
        n_on = np.floor(np.maximum(diff, 0) / thr).astype(np.int64)
        n_off = np.floor(np.maximum(-diff, 0) / thr).astype(np.int64)
        ref = ref + (n_on - n_off) * thr
        t = int(round((k - 0.5) * dt))  # inside bin (k - 1) // substeps
        for count, pol in ((n_on, 1), (n_off, 0)):
            idx = np.flatnonzero(count)
            flat = np.repeat(idx, count.reshape(-1)[idx])
            yy, xx = np.divmod(flat, S)
            chunks.append((xx, yy, np.full(len(flat), t), np.full(len(flat), pol)))
    n_noise = int(rng.poisson(cfg.noise_rate * S * S))
    chunks.append((rng.integers(0, S, n_noise), rng.integers(0, S, n_noise), rng.integers(0, cfg.window_us, n_noise),
                   rng.integers(0, 2, n_noise)))
    x, y, t, p = (np.concatenate(c) for c in zip(*chunks))
    order = np.argsort(t, kind="stable")
    events = make_events(x[order], y[order], t[order], p[order])
    boxes = np.zeros(len(objs), BBOX_DTYPE)
    for i, (kind, s, start, v, _) in enumerate(objs):
        c = start + v * steps
        boxes[i] = (cfg.window_us, c[0] - s / 2, c[1] - s / 2, s, s, kind, 1.0, i)
    return events, boxes


class SyntheticEventDetection(Dataset):
    """``n`` synthetic samples ``(frames [T, 2, S, S] float32, {"boxes": [n, 4] xyxy, "labels": [n]})``.

    Sample ``i`` is :func:`make_sample` with seed ``seed + i`` (two seeds far apart give disjoint sets); the frames
    are the events binned into ``T`` bins of OFF / ON counts. All samples are made at construction.
    """

    class_names = SHAPE_CLASSES
    num_classes = len(SHAPE_CLASSES)

    def __init__(self, n: int = 256, cfg: SyntheticDetectionConfig = SyntheticDetectionConfig(), seed: int = 0
                 ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if cfg.size % 32:
            raise ValueError(f"size must be a multiple of 32 (the detector's input), got {cfg.size}")
        if 2 * cfg.max_size + 4 > cfg.size:
            raise ValueError(f"max_size {cfg.max_size} is too large for a {cfg.size}-pixel sensor")
        self.cfg, self.seed, self.T, self.size = cfg, seed, cfg.T, (cfg.size, cfg.size)
        self.items = []
        for i in range(n):
            ev, rows = make_sample(cfg, seed + i)
            frames = bin_events(ev, 0, cfg.window_us, cfg.T, cfg.size, cfg.size)
            boxes, labels = boxes_to_xyxy(rows, (cfg.size, cfg.size))
            self.items.append((torch.from_numpy(frames), {"boxes": boxes, "labels": labels}))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.items[i]


def write_synthetic_gen1(root: str | os.PathLike, n: int, cfg: SyntheticDetectionConfig = SyntheticDetectionConfig(),
                         seed: int = 0) -> Path:
    """Write ``n`` synthetic recordings as Gen1 pairs ``root/synthetic_<i>_td.dat`` + ``_bbox.npy``; returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ev, rows = make_sample(cfg, seed + i)
        write_dat(root / f"synthetic_{seed + i:06d}_td.dat", ev, cfg.size, cfg.size)
        write_bbox_npy(root / f"synthetic_{seed + i:06d}_bbox.npy", rows)
    return root
