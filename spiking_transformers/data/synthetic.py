"""SYNTHETIC event data: real images seen by a simulated event camera, as N-MNIST was recorded.

N-MNIST was made by showing MNIST digits to a DVS sensor that moved in three saccades along a triangle
(Orchard et al. 2015). :func:`simulate_saccades` imitates that in software:

1. Each image (intensity in [0, 1]) is scaled to ``digit_size`` x ``digit_size`` (bilinear) and centred on a
   ``sensor`` x ``sensor`` black canvas.
2. The image moves along a closed triangle with vertices ``(0, 0) -> (A, A) -> (2A, 0) -> (0, 0)`` (then centred on
   its mean position), pixel offsets ``(dx, dy)`` with amplitude ``A = amplitude``; each of the three saccades lasts
   ``saccade_us`` µs and is sampled in ``steps_per_saccade`` sub-pixel (bilinear) renderings.
3. Every pixel tracks ``L = log(I + eps)`` against a reference level; whenever ``L`` moves ``C`` (the contrast
   threshold, per pixel ``C * (1 + mismatch * N(0, 1))`` as in real sensors) above or below the reference, it emits
   an ON or OFF event and moves its reference by ``C``. Several crossings in one step give several events, with
   timestamps interpolated linearly inside the step.

The result is deterministic for a given seed. It is synthetic data, derived from the images, and is labelled as such
wherever it appears (``dataset_info("synthetic-events").synthetic``).

:func:`write_synthetic_folder` writes the bundled digits this way as N-MNIST ``.bin`` files in the N-MNIST folder
layout (``Train/<digit>/<n>.bin``, ``Test/<digit>/<n>.bin``, the digits split), so the data set is read back through
the same reader as real N-MNIST.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .events import EVENT_DTYPE, make_events, write_nmnist_bin

__all__ = ["SaccadeConfig", "simulate_saccades", "write_synthetic_folder"]


@dataclass(frozen=True)
class SaccadeConfig:
    """Settings of the simulated event camera (see the module docstring).

    Attributes:
        sensor: sensor width = height in pixels.
        digit_size: size the image is scaled to before it is centred on the sensor.
        amplitude: saccade amplitude A in pixels.
        saccade_us: duration of one saccade in µs.
        steps_per_saccade: renderings per saccade.
        threshold: contrast threshold C in log-intensity units.
        mismatch: relative per-pixel spread of the threshold.
        eps: offset inside the logarithm (black pixels stay finite).
        seed: base seed; image i uses ``seed + i``.
    """

    sensor: int = 16
    digit_size: int = 12
    amplitude: float = 1.5
    saccade_us: int = 100_000
    steps_per_saccade: int = 20
    threshold: float = 0.2
    mismatch: float = 0.05
    eps: float = 0.1
    seed: int = 0


def _render(images: torch.Tensor, cfg: SaccadeConfig, dx: float, dy: float) -> torch.Tensor:
    """Images ``[N, h, w]`` in [0, 1] shifted by (dx, dy) pixels on the sensor canvas -> ``[N, S, S]``."""
    n = images.shape[0]
    s, d = cfg.sensor, cfg.digit_size
    # affine_grid works in normalised coordinates: a shift of dx pixels on an S-pixel canvas is 2*dx/S; the scale
    # S/d makes the d-pixel image occupy d of the S canvas pixels.
    theta = torch.tensor([[s / d, 0.0, -2.0 * dx / d], [0.0, s / d, -2.0 * dy / d]], dtype=torch.float64)
    grid = F.affine_grid(theta[None], [1, 1, s, s], align_corners=False).expand(n, s, s, 2)  # same for all images
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def simulate_saccades(images: np.ndarray, cfg: SaccadeConfig = SaccadeConfig(), *,
                      first_index: int = 0) -> list[np.ndarray]:
    """Turn images into event streams with a simulated event camera moving in three saccades.

    Args:
        images: ``[N, h, w]`` intensities in [0, 1] (any h, w; scaled to ``cfg.digit_size``).
        cfg: camera settings.
        first_index: index of ``images[0]`` in the whole set (seeds the per-image threshold mismatch).

    Returns:
        ``N`` :data:`~spiking_transformers.data.events.EVENT_DTYPE` arrays, sorted by time, ``t`` in
        ``[0, 3 * saccade_us]`` µs, ``x, y`` in ``0..sensor-1``.
    """
    imgs = torch.as_tensor(np.asarray(images, np.float64))
    if imgs.ndim != 3:
        raise ValueError(f"images must be [N, h, w], got shape {tuple(imgs.shape)}")
    n, s, a = imgs.shape[0], cfg.sensor, cfg.amplitude
    verts = np.array([(0.0, 0.0), (a, a), (2 * a, 0.0), (0.0, 0.0)])
    verts -= verts[:3].mean(0)  # centre the triangle on the canvas
    k = cfg.steps_per_saccade
    path = np.concatenate([verts[j] + (verts[j + 1] - verts[j]) * (np.arange(k) / k)[:, None] for j in range(3)]
                          + [verts[3:4]])  # 3k + 1 positions, the last one closing the triangle
    times = np.arange(3 * k + 1) * (cfg.saccade_us / k)
    thr = np.stack([cfg.threshold * (1 + cfg.mismatch * np.random.default_rng(cfg.seed + first_index + i)
                                     .standard_normal((s, s))) for i in range(n)]).clip(cfg.threshold * 0.5)
    log_prev = torch.log(_render(imgs, cfg, *path[0]) + cfg.eps).numpy()
    ref = log_prev.copy()
    chunks: list[tuple[np.ndarray, ...]] = []
    for step in range(1, len(path)):
        log_now = torch.log(_render(imgs, cfg, *path[step]) + cfg.eps).numpy()
        diff = log_now - ref
        n_on = np.floor(np.maximum(diff, 0) / thr).astype(np.int64)
        n_off = np.floor(np.maximum(-diff, 0) / thr).astype(np.int64)
        for count, sign in ((n_on, 1), (n_off, -1)):
            idx = np.flatnonzero(count)
            if idx.size == 0:
                continue
            reps = count.reshape(-1)[idx]
            flat = np.repeat(idx, reps)  # one entry per event
            j = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps) + 1  # 1..count per pixel
            level = ref.reshape(-1)[flat] + sign * j * thr.reshape(-1)[flat]
            lp, ln = log_prev.reshape(-1)[flat], log_now.reshape(-1)[flat]
            frac = np.clip((level - lp) / np.where(ln != lp, ln - lp, 1.0), 0.0, 1.0)
            t = times[step - 1] + frac * (times[step] - times[step - 1])
            img, rest = np.divmod(flat, s * s)
            yy, xx = np.divmod(rest, s)
            chunks.append((img, xx, yy, np.round(t).astype(np.int64), np.full(flat.size, int(sign > 0))))
        ref = ref + (n_on - n_off) * thr
        log_prev = log_now
    out = []
    if chunks:
        img, xx, yy, tt, pp = (np.concatenate(c) for c in zip(*chunks))
        order = np.lexsort((tt, img))  # by image, then time (stable within equal times)
        img, xx, yy, tt, pp = img[order], xx[order], yy[order], tt[order], pp[order]
        bounds = np.searchsorted(img, np.arange(n + 1))
        for i in range(n):
            sl = slice(bounds[i], bounds[i + 1])
            out.append(make_events(xx[sl], yy[sl], tt[sl], pp[sl]))
    else:
        out = [np.empty(0, EVENT_DTYPE) for _ in range(n)]
    return out


def _folder_key(cfg: SaccadeConfig) -> str:
    blob = json.dumps({"generator": "digits-saccades-v1", **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_synthetic_folder(root: str | os.PathLike, cfg: SaccadeConfig = SaccadeConfig()) -> Path:
    """Write the bundled digits as synthetic N-MNIST recordings; returns the folder (reused if already complete).

    The folder is ``root/digits-saccades-<hash of cfg>/`` with ``Train/<digit>/<index>.bin`` and
    ``Test/<digit>/<index>.bin`` (the digits split of :func:`spiking_transformers.data.images.stratified_split`;
    ``index`` is the position in the bundled array) and a ``COMPLETE`` marker written last, after an atomic rename,
    so an interrupted run is never mistaken for a finished one.
    """
    from .images import load_digits_arrays, stratified_split

    root = Path(root)
    out = root / f"digits-saccades-{_folder_key(cfg)}"
    if (out / "COMPLETE").is_file():
        return out
    images, labels = load_digits_arrays()
    train_idx, _ = stratified_split(labels, 0.2)
    in_train = np.zeros(len(labels), bool)
    in_train[train_idx] = True
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-synth-", dir=root))
    try:
        streams = simulate_saccades(images.astype(np.float64) / 16.0, cfg)
        for i, (ev, y) in enumerate(zip(streams, labels)):
            d = tmp / ("Train" if in_train[i] else "Test") / str(int(y))
            d.mkdir(parents=True, exist_ok=True)
            write_nmnist_bin(d / f"{i:05d}.bin", ev)
        (tmp / "README.txt").write_text(
            "SYNTHETIC event data generated by spiking_transformers.data.synthetic from the UCI digits (CC BY 4.0).\n"
            f"Settings: {json.dumps(asdict(cfg), sort_keys=True)}\n")
        (tmp / "COMPLETE").write_text("ok\n")
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: keep theirs
            if not (out / "COMPLETE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
