"""The Prophesee Gen1 automotive detection layout: ``.dat`` event files and ``_bbox.npy`` box arrays.

File format (as the Prophesee automotive dataset toolbox reads and writes it):

* ``<name>_td.dat``: text header lines, each starting with ``"% "`` (``% Version 2``, ``% Date ...``,
  ``% Height 240``, ``% Width 304``, ...); then one byte *event type* (0 = ``Event2D``) and one byte *event size* (8);
  then the events, 8 bytes each, little-endian: ``uint32`` timestamp in microseconds, then a 32-bit word packing
  ``x`` (bits 0-13), ``y`` (bits 14-27) and the polarity (bit 28).
* ``<name>_bbox.npy``: a NumPy structured array, one row per box: ``ts`` (``uint64`` µs; older files call it
  ``t``), ``x, y, w, h`` (``float32``, top-left corner and size in pixels), ``class_id`` (``uint8``; Gen1: 0 = car,
  1 = pedestrian), ``confidence`` (``float32``), ``track_id`` (``uint32``). Boxes of one timestamp label the events
  *before* it.
* A data set folder holds ``train/``, ``val/`` and ``test/``, each with pairs of these files.

:class:`Gen1Detection` turns each labelled timestamp into one sample: the events of the ``window_us`` before it,
binned into ``T`` equal time bins of OFF / ON counts ``[T, 2, H, W]`` (padded with zeros to ``size``), and its boxes.
The Gen1 protocol drops boxes with a diagonal under 30 px or a side under 10 px (``min_diag``, ``min_side``).

Every malformed file raises :class:`~spiking_transformers.data.errors.DataFormatError` with one line naming the file,
the byte (where known) and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data.errors import DataFormatError
from ..data.events import EVENT_DTYPE

__all__ = [
    "BBOX_DTYPE",
    "GEN1_CLASSES",
    "GEN1_SENSOR",
    "Gen1Detection",
    "bin_events",
    "read_bbox_npy",
    "read_dat",
    "write_bbox_npy",
    "write_dat",
]

#: The box array of the Prophesee toolbox (version 2 layout).
BBOX_DTYPE = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "u1"),
                       ("confidence", "<f4"), ("track_id", "<u4")])
GEN1_CLASSES = ("car", "pedestrian")
#: Gen1 sensor ``(width, height)`` (ATIS).
GEN1_SENSOR = (304, 240)
_EV_RECORD = np.dtype([("t", "<u4"), ("w", "<u4")])
_X_MASK, _Y_MASK, _P_MASK = 0x3FFF, 0xFFFC000, 0x10000000


def write_dat(path: str | os.PathLike, events: np.ndarray, width: int = GEN1_SENSOR[0],
              height: int = GEN1_SENSOR[1]) -> None:
    """Write events (fields ``x, y, t, p``; ``p > 0`` = ON) as a Gen1 ``.dat`` file (``Event2D``, 8-byte records)."""
    if max(width, height) > 0x3FFF:
        raise ValueError(f"sensor {width}x{height} exceeds the 14-bit coordinates of the .dat format")
    x, y, t = (np.asarray(events[k]).astype(np.int64) for k in ("x", "y", "t"))
    if len(x) and (x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height):
        raise ValueError(f"events outside the {width}x{height} sensor")
    if len(t) and (t.min() < 0 or t.max() > 0xFFFFFFFF):
        raise ValueError("timestamps must fit in uint32 microseconds")
    rec = np.empty(len(x), _EV_RECORD)
    rec["t"] = t
    rec["w"] = x | (y << 14) | ((np.asarray(events["p"]) > 0).astype(np.int64) << 28)
    header = (f"% Data file containing Event2D events.\n% Version 2\n% Date 2026-01-01 00:00:00\n"
              f"% Height {height}\n% Width {width}\n")
    with open(path, "wb") as f:
        f.write(header.encode("latin-1"))
        f.write(bytes([0, _EV_RECORD.itemsize]))
        f.write(rec.tobytes())


def read_dat(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Read a Gen1 ``.dat`` file.

    Returns:
        ``(events, sensor)``: an :data:`~spiking_transformers.data.events.EVENT_DTYPE` array (``p`` 1 = ON, 0 = OFF)
        in file order, and ``(width, height)`` from the header (``None`` where the header gives no size).

    Raises:
        DataFormatError: missing file, an event type other than ``Event2D`` (0 or 12), a record size other than 8, a
            truncated record, coordinates outside the header's sensor, or decreasing timestamps.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found", expected="a Gen1 .dat event file")
    data = path.read_bytes()
    pos, size = 0, {}
    while data.startswith(b"% ", pos) or data.startswith(b"%\n", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            raise DataFormatError(path, "header line without an end of line", offset=pos,
                                  expected="'% ' header lines, then the event type and size bytes")
        words = data[pos:end].decode("latin-1").split()
        if len(words) >= 3 and words[1] in ("Height", "Width"):
            try:
                size[words[1]] = int(words[2])
            except ValueError:
                raise DataFormatError(path, f"bad {words[1]} value {words[2]!r} in the header", offset=pos,
                                      expected="an integer") from None
        pos = end + 1
    if pos == 0:
        raise DataFormatError(path, "no '% ' header line", offset=0,
                              expected="a Prophesee .dat file (text header lines starting with '% ')")
    if len(data) < pos + 2:
        raise DataFormatError(path, "file ends after the header", offset=pos,
                              expected="one event-type byte and one event-size byte")
    ev_type, ev_size = data[pos], data[pos + 1]
    if ev_type not in (0, 12):
        raise DataFormatError(path, f"event type {ev_type}", offset=pos, expected="0 or 12 (Event2D, CD events)")
    if ev_size != 8:
        raise DataFormatError(path, f"event size {ev_size} bytes", offset=pos + 1, expected="8-byte events")
    body = pos + 2
    n, rest = divmod(len(data) - body, 8)
    if rest:
        raise DataFormatError(path, f"truncated event record ({rest} trailing bytes)", offset=body + 8 * n,
                              expected="8-byte (timestamp, packed x/y/polarity) records")
    rec = np.frombuffer(data, _EV_RECORD, count=n, offset=body)
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = rec["t"]
    ev["x"] = rec["w"] & _X_MASK
    ev["y"] = (rec["w"] & _Y_MASK) >> 14
    ev["p"] = (rec["w"] & _P_MASK) >> 28
    sensor = (size["Width"], size["Height"]) if {"Width", "Height"} <= size.keys() else None
    if sensor is not None and n:
        bad = (ev["x"] >= sensor[0]) | (ev["y"] >= sensor[1])
        if bad.any():
            i = int(np.argmax(bad))
            raise DataFormatError(path, f"event {i} at ({ev['x'][i]}, {ev['y'][i]}) is outside the "
                                  f"{sensor[0]}x{sensor[1]} sensor of the header", offset=body + 8 * i)
    if n > 1:
        dec = np.diff(rec["t"].astype(np.int64)) < 0
        if dec.any():
            i = int(np.argmax(dec)) + 1
            raise DataFormatError(path, f"timestamp of event {i} goes back in time", offset=body + 8 * i,
                                  expected="non-decreasing timestamps")
    return ev, sensor


def write_bbox_npy(path: str | os.PathLike, boxes: np.ndarray) -> None:
    """Save boxes (any array with the :data:`BBOX_DTYPE` fields) as a Gen1 ``_bbox.npy`` file."""
    out = np.zeros(len(boxes), BBOX_DTYPE)
    for name in BBOX_DTYPE.names:
        if name in boxes.dtype.names:
            out[name] = boxes[name]
    np.save(path, out, allow_pickle=False)


def read_bbox_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a Gen1 ``_bbox.npy`` box array -> :data:`BBOX_DTYPE` (a ``t`` field is read as ``ts``).

    Raises:
        DataFormatError: missing or unreadable file, not a structured array, a missing field, non-finite or
            negative sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found", expected="a Gen1 _bbox.npy box array")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(path, f"not a readable .npy array ({type(e).__name__})",
                              expected="a NumPy structured array") from None
    names = arr.dtype.names
    if names is None or arr.ndim != 1:
        raise DataFormatError(path, f"array of dtype {arr.dtype} and shape {arr.shape} is not a 1-D structured array",
                              expected=f"fields {', '.join(BBOX_DTYPE.names)}")
    ts_name = "ts" if "ts" in names else "t" if "t" in names else None
    missing = [f for f in ("x", "y", "w", "h", "class_id") if f not in names] + ([] if ts_name else ["ts"])
    if missing:
        raise DataFormatError(path, f"missing field(s) {', '.join(missing)} (has {', '.join(names)})",
                              expected=f"fields {', '.join(BBOX_DTYPE.names)}")
    out = np.zeros(len(arr), BBOX_DTYPE)
    out["ts"] = arr[ts_name]
    for f in ("x", "y", "w", "h", "class_id", "confidence", "track_id"):
        if f in names:
            out[f] = arr[f]
    geo = np.stack([out[f] for f in ("x", "y", "w", "h")], 1) if len(out) else np.zeros((0, 4))
    if not np.isfinite(geo).all() or (geo[:, 2:] < 0).any():
        raise DataFormatError(path, "box with a non-finite coordinate or a negative size",
                              expected="finite x, y and w, h >= 0")
    return out


def bin_events(events: np.ndarray, t0: int, t1: int, T: int, height: int, width: int) -> np.ndarray:
    """Events with ``t0 <= t < t1`` -> counts ``[T, 2, height, width]`` float32 in ``T`` equal time bins
    (channel 0 OFF, 1 ON); events outside the frame are dropped."""
    out = np.zeros((T, 2, height, width), np.float32)
    if t1 <= t0:
        raise ValueError(f"empty time window [{t0}, {t1})")
    t = events["t"].astype(np.int64)
    keep = (t >= t0) & (t < t1) & (events["x"] < width) & (events["y"] < height) & (events["x"] >= 0) \
        & (events["y"] >= 0)
    ev = events[keep]
    b = ((ev["t"].astype(np.int64) - t0) * T // (t1 - t0)).clip(0, T - 1)
    np.add.at(out, (b, (ev["p"] > 0).astype(np.int64), ev["y"].astype(np.int64), ev["x"].astype(np.int64)), 1)
    return out


def boxes_to_xyxy(rows: np.ndarray, sensor: tuple[int, int], min_diag: float = 0.0, min_side: float = 0.0
                  ) -> tuple[Tensor, Tensor]:
    """Box rows (:data:`BBOX_DTYPE`) -> ``(boxes [n, 4] xyxy clipped to the sensor, labels [n])``, dropping boxes
    under ``min_diag`` / ``min_side`` pixels (after clipping)."""
    W, H = sensor
    x0 = np.clip(rows["x"], 0, W)
    y0 = np.clip(rows["y"], 0, H)
    x1 = np.clip(rows["x"] + rows["w"], 0, W)
    y1 = np.clip(rows["y"] + rows["h"], 0, H)
    w, h = x1 - x0, y1 - y0
    keep = (w > 0) & (h > 0) & (np.hypot(w, h) >= min_diag) & (np.minimum(w, h) >= min_side)
    boxes = torch.from_numpy(np.stack([x0, y0, x1, y1], 1)[keep].astype(np.float32)).reshape(-1, 4)
    return boxes, torch.from_numpy(rows["class_id"][keep].astype(np.int64))


class Gen1Detection(Dataset):
    """Samples of a Gen1-layout folder: ``(frames [T, 2, H, W] float32, {"boxes": [n, 4] xyxy, "labels": [n]})``.

    Args:
        root: the data set folder (holding ``split``), or directly a folder of ``*_td.dat`` / ``*_bbox.npy`` pairs.
        split: ``train``, ``val`` or ``test`` (ignored when ``root`` itself holds the files).
        T: time bins per sample.
        window_us: events of this many microseconds before each labelled timestamp.
        size: ``(H, W)`` output frame size (zeros padded right and below; default: the sensor size rounded up to a
            multiple of 32).
        num_classes: classes kept (boxes of other classes raise).
        min_diag, min_side: drop smaller boxes (the Gen1 protocol: 30 and 10 pixels).

    Raises:
        DataFormatError: no file pairs, a ``.dat`` without its ``_bbox.npy``, a malformed file (see :func:`read_dat`,
            :func:`read_bbox_npy`), or a class outside ``0..num_classes-1``.
    """

    class_names = GEN1_CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 5, window_us: int = 50_000,
                 size: tuple[int, int] | None = None, num_classes: int = 2, min_diag: float = 30.0,
                 min_side: float = 10.0) -> None:
        root = Path(root)
        folder = root / split if (root / split).is_dir() else root
        if not folder.is_dir():
            raise DataFormatError(folder, "folder not found", expected="a Gen1 folder with train/ val/ test/")
        dats = sorted(folder.glob("*_td.dat"))
        if not dats:
            raise DataFormatError(folder, "no *_td.dat event files", expected="pairs <name>_td.dat + <name>_bbox.npy")
        if T < 1 or window_us < T:
            raise ValueError(f"need T >= 1 and window_us >= T, got T={T}, window_us={window_us}")
        self.T, self.window_us, self.num_classes = int(T), int(window_us), int(num_classes)
        self.min_diag, self.min_side = float(min_diag), float(min_side)
        self.files: list[tuple[Path, np.ndarray]] = []
        self.samples: list[tuple[int, int]] = []  # (file index, timestamp)
        sensor = None
        for dat in dats:
            npy = dat.with_name(dat.name[: -len("_td.dat")] + "_bbox.npy")
            if not npy.is_file():
                raise DataFormatError(npy, f"box file of {dat.name} is missing")
            rows = read_bbox_npy(npy)
            bad = rows["class_id"] >= num_classes
            if bad.any():
                raise DataFormatError(npy, f"class_id {int(rows['class_id'][bad][0])} is not a class",
                                      expected=f"0..{num_classes - 1}")
            self.files.append((dat, rows))
            for ts in np.unique(rows["ts"]):
                if int(ts) >= self.window_us:
                    self.samples.append((len(self.files) - 1, int(ts)))
            if sensor is None:
                sensor = _dat_sensor(dat)
        self.sensor = sensor or GEN1_SENSOR
        W, H = self.sensor
        self.size = size if size is not None else (-(-H // 32) * 32, -(-W // 32) * 32)
        if self.size[0] < H or self.size[1] < W:
            raise ValueError(f"size {self.size} is smaller than the {W}x{H} sensor")
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        if not 0 <= i < len(self.samples):
            raise IndexError(f"index {i} out of range for {len(self.samples)} samples")
        f, ts = self.samples[i]
        if self._cache is None or self._cache[0] != f:
            self._cache = (f, read_dat(self.files[f][0])[0])
        events = self._cache[1]
        H, W = self.size
        frames = bin_events(events, ts - self.window_us, ts, self.T, H, W)
        rows = self.files[f][1]
        boxes, labels = boxes_to_xyxy(rows[rows["ts"] == ts], self.sensor, self.min_diag, self.min_side)
        return torch.from_numpy(frames), {"boxes": boxes, "labels": labels}


def _dat_sensor(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a ``.dat`` header (reads only the header)."""
    size = {}
    with open(path, "rb") as fh:
        while True:
            line = fh.readline()
            if not line.startswith(b"%"):
                break
            words = line.decode("latin-1").split()
            if len(words) >= 3 and words[1] in ("Height", "Width") and words[2].isdigit():
                size[words[1]] = int(words[2])
    return (size["Width"], size["Height"]) if len(size) == 2 else None
