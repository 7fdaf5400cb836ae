"""Event tracking sequences on disk, in the layout of STNet's preprocessed FE108 (FE240hz) test set.

STNet's test loader (``videoanalyst/engine/tester/tester_impl/utils/got_benchmark_helper.py``) reads, for every
frame of a sequence, 5 event images per polarity named ``<frame>_<k>.jpg`` (``k = 1..5``) from the positive and the
negative folder, and the ground truth one ``x,y,w,h`` line per frame (GOT-10k style). The folder names inside a
sequence are not in the repository; this module reads and writes (our reading)::

    <root>/<sequence>/groundtruth_rect.txt     one "x,y,w,h" line per frame (commas or whitespace)
    <root>/<sequence>/pos/<frame>_<k>.<ext>    k = 1..T_e, ext png or jpg; <frame> sorts in frame order
    <root>/<sequence>/neg/<frame>_<k>.<ext>

Images are read as 3-channel 0..255 arrays (grey images are repeated on 3 channels).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .synthetic import TrackingSequence

__all__ = ["read_tracking_folder", "read_tracking_sequence", "write_tracking_folder", "TrackingFolderError"]

_NAME = re.compile(r"^(?P<frame>.+)_(?P<k>\d+)\.(?:png|jpg|jpeg)$", re.IGNORECASE)


class TrackingFolderError(ValueError):
    """A malformed tracking folder (the message names the file and the problem)."""


def _read_gt(path: Path) -> np.ndarray:
    if not path.is_file():
        raise TrackingFolderError(f"{path}: ground-truth file missing")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise TrackingFolderError(f"{path}:{i}: expected 4 numbers x,y,w,h, got {line.strip()!r}") from None
        if len(vals) != 4:
            raise TrackingFolderError(f"{path}:{i}: expected 4 numbers x,y,w,h, got {len(vals)}")
        rows.append(vals)
    if not rows:
        raise TrackingFolderError(f"{path}: no ground-truth boxes")
    return np.asarray(rows, np.float64)


def _read_polarity(folder: Path, n_frames: int, event_steps: int) -> np.ndarray:
    from PIL import Image

    if not folder.is_dir():
        raise TrackingFolderError(f"{folder}: event-frame folder missing")
    groups: dict[str, dict[int, Path]] = {}
    for f in folder.iterdir():
        m = _NAME.match(f.name)
        if m:
            groups.setdefault(m["frame"], {})[int(m["k"])] = f
    names = sorted(groups)
    if len(names) != n_frames:
        raise TrackingFolderError(f"{folder}: {len(names)} frames of event images, ground truth has {n_frames}")
    out = None
    for i, name in enumerate(names):
        ks = groups[name]
        if sorted(ks) != list(range(1, event_steps + 1)):
            raise TrackingFolderError(f"{folder}: frame {name!r} has event images {sorted(ks)}, expected "
                                      f"1..{event_steps}")
        for k in range(1, event_steps + 1):
            try:
                img = np.asarray(Image.open(ks[k]).convert("RGB"), np.uint8)
            except OSError as exc:
                raise TrackingFolderError(f"{ks[k]}: not a readable image ({exc})") from None
            if out is None:
                out = np.zeros((n_frames, event_steps, 3, *img.shape[:2]), np.uint8)
            if img.shape[:2] != out.shape[-2:]:
                raise TrackingFolderError(f"{ks[k]}: size {img.shape[1]}x{img.shape[0]} differs from the first "
                                          f"image's {out.shape[-1]}x{out.shape[-2]}")
            out[i, k - 1] = img.transpose(2, 0, 1)
    assert out is not None
    return out


def read_tracking_sequence(folder: str | os.PathLike, event_steps: int = 5) -> TrackingSequence:
    """One sequence folder -> :class:`TrackingSequence` (``pos, neg [F, T_e, 3, H, W]`` uint8, ``boxes [F, 4]``)."""
    folder = Path(folder)
    boxes = _read_gt(folder / "groundtruth_rect.txt")
    pos = _read_polarity(folder / "pos", len(boxes), event_steps)
    neg = _read_polarity(folder / "neg", len(boxes), event_steps)
    if pos.shape != neg.shape:
        raise TrackingFolderError(f"{folder}: positive frames {pos.shape[-2:]} and negative {neg.shape[-2:]} differ")
    return TrackingSequence(folder.name, pos, neg, boxes)


def read_tracking_folder(root: str | os.PathLike, event_steps: int = 5) -> list[TrackingSequence]:
    """Every sequence folder (one with a ``groundtruth_rect.txt``) under ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such tracking data folder")
    seqs = [read_tracking_sequence(d, event_steps) for d in sorted(root.iterdir())
            if d.is_dir() and (d / "groundtruth_rect.txt").exists()]
    if not seqs:
        raise TrackingFolderError(f"{root}: no sequence folders (with groundtruth_rect.txt) found")
    return seqs


def write_tracking_folder(root: str | os.PathLike, sequences: list[TrackingSequence]) -> Path:
    """Write sequences in the layout above (PNG, lossless) and return ``root``."""
    from PIL import Image

    root = Path(root)
    for seq in sequences:
        d = root / seq.name
        for pol, frames in (("pos", seq.pos), ("neg", seq.neg)):
            (d / pol).mkdir(parents=True, exist_ok=True)
            for i, steps in enumerate(frames):
                for k, img in enumerate(steps, 1):
                    Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(d / pol / f"{i:06d}_{k}.png")
        np.savetxt(d / "groundtruth_rect.txt", seq.boxes, fmt="%.3f", delimiter=",")
    return root
