"""SYNTHETIC event tracking sequences: a textured object moving over a textured background, seen by a simulated
event camera, with its ground-truth box in every frame.

The camera is the sensor model of :mod:`spiking_transformers.data.synthetic` (which animates still images in
N-MNIST's saccades): every pixel follows ``L = log(I + eps)`` against a reference level and emits an ON (OFF)
event each time ``L`` rises (falls) by its contrast threshold ``C * (1 + mismatch * N(0, 1))``, moving its reference
by ``C``. Here the scene is a video:

* the background is smooth random texture (low-pass noise), panning slowly (``background_speed`` px/frame), so the
  background also produces events, as a moving event camera sees;
* the object is a ``size``-pixel square of its own random texture and brightness, moving along a smooth random path
  (random acceleration, bounced off the borders), with sub-pixel (bilinear) rendering;
* each tracking frame spans ``T_e = 5`` event windows of ``substeps`` renderings each; window ``k`` gives one
  ON-frame and one OFF-frame, ``min(events, 3) * 85`` as 0..255 values on 3 channels (the 3-channel event images
  STNet takes);
* the ground truth of a frame is the object's ``(x, y, w, h)`` at the end of its last window.

Deterministic for a given seed; labelled synthetic wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SyntheticTrackingConfig", "TrackingSequence", "make_tracking_sequences", "events_to_frame"]


@dataclass(frozen=True)
class SyntheticTrackingConfig:
    """Settings of the synthetic tracking set.

    Attributes:
        height, width: sensor size in pixels.
        size: object side in pixels.
        frames: tracking frames per sequence.
        event_steps: event windows per frame (``T_e``, 5 for STNet).
        substeps: renderings per event window.
        speed: typical object speed, pixels per frame.
        background_speed: background panning speed, pixels per frame.
        threshold, mismatch, eps: the event camera (contrast threshold, its per-pixel spread, log offset).
        seed: base seed; sequence i uses ``seed + i``.
    """

    height: int = 96
    width: int = 128
    size: int = 20
    frames: int = 12
    event_steps: int = 5
    substeps: int = 2
    speed: float = 3.0
    background_speed: float = 0.5
    threshold: float = 0.15
    mismatch: float = 0.05
    eps: float = 0.1
    seed: int = 0


@dataclass
class TrackingSequence:
    """One sequence: event frames ``pos, neg [F, T_e, 3, H, W]`` uint8 and ground truth ``boxes [F, 4]`` xywh."""

    name: str
    pos: np.ndarray
    neg: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Random texture in [0, 1]: noise on a coarse grid of ``cell``-pixel cells, bicubically upsampled."""
    coarse = torch.as_tensor(rng.random((1, 1, h // cell + 3, w // cell + 3)))
    up = F.interpolate(coarse, size=((h // cell + 3) * cell, (w // cell + 3) * cell), mode="bicubic",
                       align_corners=False)[0, 0]
    up = up[:h, :w]
    up = (up - up.min()) / (up.max() - up.min() + 1e-12)
    return up.numpy()


def _sample(img: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``img [h, w]`` at pixel coordinates ``xs [W]``, ``ys [H]`` (zeros outside)."""
    h, w = img.shape
    gx = 2 * (xs + 0.5) / w - 1
    gy = 2 * (ys + 0.5) / h - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    return F.grid_sample(img[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]


def events_to_frame(count: np.ndarray) -> np.ndarray:
    """Event counts ``[H, W]`` -> a 3-channel 0..255 event image ``[3, H, W]`` uint8 (``min(count, 3) * 85``)."""
    v = (np.minimum(count, 3) * 85).astype(np.uint8)
    return np.repeat(v[None], 3, axis=0)


def _one_sequence(cfg: SyntheticTrackingConfig, index: int) -> TrackingSequence:
    rng = np.random.default_rng(cfg.seed + index)
    H, W, S = cfg.height, cfg.width, cfg.size
    pan = int(np.ceil(cfg.background_speed * cfg.frames)) + 4
    bg = torch.as_tensor(0.15 + 0.5 * _smooth_noise(rng, H + pan, W + pan, 8))
    tex = torch.as_tensor(0.35 + 0.65 * _smooth_noise(rng, S, S, 4)) * float(rng.uniform(0.7, 1.0))
    ones = torch.ones(S, S, dtype=torch.float64)
    pan_dir = rng.normal(size=2)
    pan_dir /= np.linalg.norm(pan_dir) + 1e-12

    renders = cfg.frames * cfg.event_steps * cfg.substeps + 1
    dt = 1.0 / (cfg.event_steps * cfg.substeps)  # in frames
    pos = np.array([rng.uniform(S, W - 2 * S), rng.uniform(S, H - 2 * S)])
    vel = rng.normal(size=2)
    vel *= cfg.speed / (np.linalg.norm(vel) + 1e-12)
    path = []
    for _ in range(renders):
        path.append(pos.copy())
        vel += rng.normal(size=2) * cfg.speed * 0.4 * np.sqrt(dt)
        speed = np.linalg.norm(vel)
        if speed > 2 * cfg.speed:
            vel *= 2 * cfg.speed / speed
        pos = pos + vel * dt
        for d, lim in ((0, W - S), (1, H - S)):
            if pos[d] < 0 or pos[d] > lim:
                vel[d] = -vel[d]
                pos[d] = min(max(pos[d], 0.0), float(lim))

    xs = torch.arange(W, dtype=torch.float64)
    ys = torch.arange(H, dtype=torch.float64)

    def render(k: int) -> torch.Tensor:
        t = k * dt
        off = pan_dir * cfg.background_speed * t + pan / 2
        frame = _sample(bg, xs + off[0], ys + off[1])
        x0, y0 = path[k]
        mask = _sample(ones, xs - x0, ys - y0)
        obj = _sample(tex, xs - x0, ys - y0)
        return frame * (1 - mask) + obj

    thr = (cfg.threshold * (1 + cfg.mismatch * rng.standard_normal((H, W)))).clip(cfg.threshold * 0.5)
    ref = torch.log(render(0) + cfg.eps).numpy()
    pos_frames = np.zeros((cfg.frames, cfg.event_steps, 3, H, W), np.uint8)
    neg_frames = np.zeros_like(pos_frames)
    boxes = np.zeros((cfg.frames, 4))
    k = 0
    for f in range(cfg.frames):
        for e in range(cfg.event_steps):
            on = np.zeros((H, W), np.int64)
            off = np.zeros((H, W), np.int64)
            for _ in range(cfg.substeps):
                k += 1
                diff = torch.log(render(k) + cfg.eps).numpy() - ref
                n_on = np.floor(np.maximum(diff, 0) / thr).astype(np.int64)
                n_off = np.floor(np.maximum(-diff, 0) / thr).astype(np.int64)
                on += n_on
                off += n_off
                ref = ref + (n_on - n_off) * thr
            pos_frames[f, e] = events_to_frame(on)
            neg_frames[f, e] = events_to_frame(off)
        boxes[f] = [path[k][0], path[k][1], S, S]
    return TrackingSequence(f"synthetic-{cfg.seed + index:04d}", pos_frames, neg_frames, boxes)


def make_tracking_sequences(n: int, cfg: SyntheticTrackingConfig = SyntheticTrackingConfig()) -> list[TrackingSequence]:
    """``n`` synthetic sequences (sequence ``i`` seeded ``cfg.seed + i``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if cfg.size * 3 > min(cfg.height, cfg.width):
        raise ValueError(f"object size {cfg.size} too large for a {cfg.height}x{cfg.width} sensor (at most 1/3)")
    return [_one_sequence(cfg, i) for i in range(n)]
