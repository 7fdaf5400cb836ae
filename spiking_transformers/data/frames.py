"""Frame integration of event streams, and the on-disk frame cache.

:func:`events_to_frames` turns an event array into ``T`` frames of event counts ``[T, 2, H, W]`` (channel 0 = OFF,
channel 1 = ON), as the field does it. The two ways of cutting the stream into ``T`` slices are defined exactly:

* ``split_by="count"`` (spikingjelly's ``integrate_events_by_fixed_frames_number(split_by="number")``): with the
  events in time order (a stable sort by t), ``d = N // T``; frame ``i < T - 1`` holds events ``[i*d, (i+1)*d)``, and
  the last frame holds ``[(T-1)*d, N)``, so it also takes the ``N mod T`` remainder. Every event is counted. With
  ``N < T`` the first ``T - 1`` frames are empty.
* ``split_by="time"``: with ``t0 = min t`` and ``D = max t - t0 + 1`` µs (the inclusive span), event ``k`` goes to
  frame ``floor((t_k - t0) * T / D)``: ``T`` equal windows of ``D / T`` µs that together cover every event, the last
  one included (unlike tonic's ``n_time_bins``, which drops the final event). Windows with no events stay empty.

Down-sampling to ``size`` x ``size`` sums events into coarser pixels (``x' = x * size // W``), so counts are
conserved and stay integers (the official SDT pipeline instead interpolates float frames; apply
``transforms.Resize`` to the output for that).

:class:`FrameCache` stores integrated frames as ``.npy`` files named by a SHA-256 of *every* setting that shapes
them (the reader and its options, the source file's path, size and modification time, the time window, T,
split_by, size and a format version), so a changed setting or a changed file can never return a stale entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .events import as_events

__all__ = ["events_to_frames", "frames_to_rgb_strip", "FrameCache", "default_cache_dir", "CACHE_VERSION"]

#: Bumped whenever the meaning of cached frames changes; part of every cache key.
CACHE_VERSION = 1


def events_to_frames(events: np.ndarray, *, T: int, sensor_size: tuple[int, int], split_by: str = "count",
                     size: int | None = None) -> np.ndarray:
    """Integrate events into ``T`` frames of counts.

    Args:
        events: structured array with fields x, y, t, p (any order of events; p > 0 is ON).
        T: number of frames.
        sensor_size: ``(width, height)`` of the sensor.
        split_by: ``"count"`` (equal event counts) or ``"time"`` (equal time windows); see the module docstring.
        size: down-sample to ``size`` x ``size`` by summing into coarser pixels; ``None`` keeps the sensor size.

    Returns:
        int32 array ``[T, 2, H, W]`` (H, W = sensor height and width, or ``size``); channel 1 counts ON events.

    Raises:
        ValueError: bad arguments, or an event outside the sensor.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if split_by not in ("count", "time"):
        raise ValueError(f"split_by must be 'count' or 'time', got {split_by!r}")
    w, h = int(sensor_size[0]), int(sensor_size[1])
    ho, wo = (h, w) if size is None else (int(size), int(size))
    if min(w, h, ho, wo) < 1:
        raise ValueError(f"sensor and output sizes must be positive, got sensor {sensor_size}, size {size}")
    ev = as_events(events)
    n = len(ev)
    out = np.zeros((T, 2, ho, wo), np.int32)
    if n == 0:
        return out
    x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
    if x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h:
        raise ValueError(f"events outside the {w}x{h} sensor: x in {x.min()}..{x.max()}, y in {y.min()}..{y.max()}")
    t = ev["t"].astype(np.int64)
    p = (ev["p"] > 0).astype(np.int64)
    if split_by == "count":
        order = np.argsort(t, kind="stable")
        frame = np.empty(n, np.int64)
        frame[order] = np.minimum(np.arange(n) // max(n // T, 1), T - 1) if n >= T else T - 1
    else:
        t0 = t.min()
        span = int(t.max() - t0) + 1
        frame = ((t - t0) * T) // span  # in 0..T-1 since t - t0 < span
    if size is not None:
        x, y = (x * wo) // w, (y * ho) // h
    flat = ((frame * 2 + p) * ho + y) * wo + x
    out += np.bincount(flat, minlength=out.size).reshape(out.shape).astype(np.int32)
    return out


def frames_to_rgb_strip(frames: np.ndarray, *, gap: int = 1) -> np.ndarray:
    """Render frames ``[T, 2, H, W]`` as one uint8 RGB image ``[H, T*W + (T-1)*gap, 3]`` (e.g. for a PNG).

    ON counts are drawn in red, OFF counts in blue on black, each scaled by the 99th percentile of the
    non-zero counts over all frames (so one hot pixel does not wash out the rest); frames are separated by grey
    columns of width ``gap``.
    """
    f = np.asarray(frames, np.float64)
    if f.ndim != 4 or f.shape[1] != 2:
        raise ValueError(f"frames must be [T, 2, H, W], got shape {f.shape}")
    t, _, h, w = f.shape
    nz = f[f > 0]
    scale = float(np.percentile(nz, 99)) if nz.size else 1.0
    v = np.clip(f / max(scale, 1e-12), 0, 1)
    out = np.full((h, t * w + (t - 1) * gap, 3), 128, np.uint8)
    for i in range(t):
        tile = np.zeros((h, w, 3))
        tile[..., 0] = v[i, 1]  # ON -> red
        tile[..., 2] = v[i, 0]  # OFF -> blue
        out[:, i * (w + gap): i * (w + gap) + w] = np.round(tile * 255).astype(np.uint8)
    return out


def default_cache_dir() -> Path:
    """``$SPIKING_TRANSFORMERS_CACHE``, else ``$XDG_CACHE_HOME/spiking_transformers``, else ``~/.cache/...``."""
    env = os.environ.get("SPIKING_TRANSFORMERS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spiking_transformers"


class FrameCache:
    """Integrated frames on disk, one ``.npy`` per (file, window, settings).

    Args:
        directory: where entries live (created on first write).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(source: str | os.PathLike, settings: dict[str, object]) -> str:
        """SHA-256 over the cache version, the resolved source path, its size and mtime, and ``settings``."""
        path = Path(source).resolve()
        st = path.stat()
        blob = json.dumps({"v": CACHE_VERSION, "path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                           "settings": settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached frames, or ``None`` if absent or unreadable (a damaged entry is recomputed, not trusted)."""
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, frames: np.ndarray) -> None:
        """Store frames atomically (write to a temporary file, then rename) in the smallest integer type that fits."""
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        m = int(frames.max(initial=0))
        arr = frames.astype(np.uint8 if m < 256 else np.uint16 if m < 65536 else np.int32)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr, allow_pickle=False)
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
