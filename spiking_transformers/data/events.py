"""Event-camera file formats: vectorised numpy readers and writers.

Every reader returns events as a numpy structured array with fields ``x``, ``y``, ``t`` (microseconds) and ``p``
(polarity, 1 = ON / brighter, 0 = OFF), the layout tonic uses, so tonic users can pass theirs to our frame
integration. Readers accept a path or the file's bytes, never loop in Python per event, and raise
:class:`~spiking_transformers.data.errors.DataFormatError` (naming the file, the byte offset or line, and what was
expected) for anything malformed: a fuzzed byte string gives events or that error, nothing else.

Formats (byte layouts in ``../shared/specs/data.md`` part 2.2):

* N-MNIST / N-Caltech101 ``.bin``: 5 bytes per event, no header (:func:`read_nmnist_bin`, :func:`write_nmnist_bin`).
* CIFAR10-DVS original: jAER AEDAT 2.0, big-endian (address, timestamp) pairs after ``#`` header lines, DVS128
  addresses (:func:`read_aedat2`, :func:`write_aedat2`).
* DVS128 Gesture: AEDAT 3.1 packets (:func:`read_aedat3`, :func:`write_aedat3`) and the labels CSV
  (:func:`read_gesture_labels`, :func:`write_gesture_labels`).
* AEDAT 4.0: read only, through the optional ``aedat`` package (:func:`read_aedat4`); it is LZ4-compressed
  flatbuffers, which we neither re-implement nor write.

:func:`read_events` detects the format from the header; :func:`describe_events` summarises a recording.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np

from .errors import DataFormatError

__all__ = [
    "EVENT_DTYPE",
    "make_events",
    "as_events",
    "read_nmnist_bin",
    "write_nmnist_bin",
    "read_aedat2",
    "write_aedat2",
    "read_aedat3",
    "write_aedat3",
    "read_aedat4",
    "read_gesture_labels",
    "write_gesture_labels",
    "GESTURE_LABEL_DTYPE",
    "detect_format",
    "read_events",
    "describe_events",
]

#: Field layout of event arrays: x, y pixel (origin top-left), t in microseconds, p in {0 (OFF), 1 (ON)}.
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])

#: One row per labelled gesture: 0-based class, start and end time (µs, on the recording's clock), start <= t < end.
GESTURE_LABEL_DTYPE = np.dtype([("label", "<i8"), ("start", "<i8"), ("end", "<i8")])

Source = str | os.PathLike | bytes | bytearray | memoryview


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack equal-length arrays into an :data:`EVENT_DTYPE` structured array ``[N]``."""
    n = len(t)
    if not (len(x) == len(y) == len(p) == n):
        raise ValueError(f"x, y, t, p must have equal lengths, got {len(x)}, {len(y)}, {n}, {len(p)}")
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def as_events(events: np.ndarray) -> np.ndarray:
    """Convert any structured array with fields x, y, t, p (e.g. tonic's) to :data:`EVENT_DTYPE`."""
    names = events.dtype.names or ()
    missing = {"x", "y", "t", "p"} - set(names)
    if missing:
        raise ValueError(f"event array lacks fields {sorted(missing)} (has {names})")
    if events.dtype == EVENT_DTYPE:
        return events
    p = events["p"]
    return make_events(events["x"], events["y"], events["t"], (p > 0) if p.dtype == bool else p)


def _load(source: Source) -> tuple[bytes, str | None]:
    """The bytes of ``source`` (a path or bytes) and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, not a file") from None
    except OSError as e:
        raise DataFormatError(path, f"cannot read ({e})") from None


def _check_sensor(ev: np.ndarray, sensor_size: tuple[int, int] | None, name: str | None,
                  offsets: np.ndarray | None, fmt: str) -> None:
    """Raise if an event lies outside a ``(width, height)`` sensor, naming the first bad event's byte offset."""
    if sensor_size is None or len(ev) == 0:
        return
    w, h = sensor_size
    bad = (ev["x"] < 0) | (ev["x"] >= w) | (ev["y"] < 0) | (ev["y"] >= h)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(name, f"{fmt} event at x={int(ev['x'][i])}, y={int(ev['y'][i])} lies outside the "
                                    f"{w}x{h} sensor",
                              offset=None if offsets is None else int(offsets[i]),
                              expected=f"0 <= x < {w} and 0 <= y < {h}")


# ----------------------------------------------------------------------------------------------------------------------
# N-MNIST / N-Caltech101 .bin
# ----------------------------------------------------------------------------------------------------------------------

_NMNIST_OVERFLOW_Y = 240  # a record with y == 240 is a timestamp-overflow marker, not an event


def read_nmnist_bin(source: Source, *, sensor_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an N-MNIST / N-Caltech101 ``.bin`` recording.

    Layout: no header; 5 bytes per event: x (uint8), y (uint8), then 24 bits holding polarity (bit 23, 1 = ON) and a
    23-bit microsecond timestamp. Records with y == 240 are overflow markers and are dropped (they never occur in
    N-MNIST, whose recordings last about 0.3 s).

    Args:
        source: path or bytes.
        sensor_size: ``(width, height)``; when given, an event outside it raises (N-MNIST: ``(34, 34)``).

    Returns:
        :data:`EVENT_DTYPE` array ``[N]`` in file order.

    Raises:
        DataFormatError: missing file, a length that is not a multiple of 5, or an address outside the sensor.
    """
    raw, name = _load(source)
    n = len(raw)
    if n % 5:
        raise DataFormatError(name, f"{n} bytes is not a whole number of 5-byte events (truncated last record)",
                              offset=n - n % 5, expected="5 bytes per event: x, y, polarity|t[22:16], t[15:8], t[7:0]")
    r = np.frombuffer(raw, np.uint8).reshape(-1, 5)
    keep = r[:, 1] != _NMNIST_OVERFLOW_Y
    offsets = np.flatnonzero(keep) * 5
    r = r[keep]
    b2 = r[:, 2].astype(np.int64)
    t = ((b2 & 0x7F) << 16) | (r[:, 3].astype(np.int64) << 8) | r[:, 4]
    ev = make_events(r[:, 0], r[:, 1], t, b2 >> 7)
    _check_sensor(ev, sensor_size, name, offsets, "N-MNIST")
    return ev


def write_nmnist_bin(path: str | os.PathLike | io.BufferedIOBase, events: np.ndarray) -> None:
    """Write events in the N-MNIST ``.bin`` format (see :func:`read_nmnist_bin`).

    Raises:
        ValueError: an event the format cannot hold (x or y outside 0..255, y == 240, t outside 0..2**23-1,
            p not 0/1).
    """
    ev = as_events(events)
    x, y, t, p = (ev[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if len(ev) and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255 or (y == _NMNIST_OVERFLOW_Y).any()):
        raise ValueError("N-MNIST .bin holds x, y in 0..255 with y != 240 (the overflow marker)")
    if len(ev) and (t.min() < 0 or t.max() >= 2 ** 23):
        raise ValueError(f"N-MNIST .bin holds t in 0..{2 ** 23 - 1} µs, got {t.min()}..{t.max()}")
    if len(ev) and not np.isin(p, (0, 1)).all():
        raise ValueError("polarity must be 0 or 1")
    b = np.empty((len(ev), 5), np.uint8)
    b[:, 0], b[:, 1] = x, y
    b[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    b[:, 3] = (t >> 8) & 0xFF
    b[:, 4] = t & 0xFF
    _write(path, b.tobytes())


def _write(path: str | os.PathLike | io.BufferedIOBase, data: bytes) -> None:
    if hasattr(path, "write"):
        path.write(data)  # type: ignore[union-attr]
    else:
        Path(path).write_bytes(data)


# ----------------------------------------------------------------------------------------------------------------------
# AEDAT 2.0 (jAER; CIFAR10-DVS originals)
# ----------------------------------------------------------------------------------------------------------------------

_DVS128 = 128
_AEDAT2_SPECIAL = 1 << 15  # jAER DVS128: bit 15 marks an external (special) event, not a pixel


def _header_lines(b: bytes, name: str | None, first: bytes, fmt: str,
                  end: bytes | None = None) -> tuple[int, list[bytes]]:
    """Parse ``#`` header lines; return the offset of the first data byte and the lines.

    With ``end`` (AEDAT 3), the header stops after that line (binary data may begin with ``#``); otherwise it stops at
    the first line that does not start with ``#``.
    """
    if not b.startswith(first):
        raise DataFormatError(name, f"not a {fmt} file: starts with {bytes(b[:16])!r}", offset=0,
                              expected=f"a first header line starting with {first!r}")
    i, lines = 0, []
    while i < len(b) and b[i:i + 1] == b"#":
        j = b.find(b"\n", i)
        if j < 0:
            raise DataFormatError(name, "unterminated header line", offset=i, expected="header lines ending in \\n")
        line = b[i:j + 1]
        lines.append(line)
        i = j + 1
        if end is not None and line.rstrip(b"\r\n") == end:
            return i, lines
    if end is not None:
        raise DataFormatError(name, f"header has no {end.decode()} line", offset=i,
                              expected=f"'#' header lines closed by {end.decode()}")
    return i, lines


def read_aedat2(source: Source, *, orientation: str = "spikingjelly") -> np.ndarray:
    """Read a jAER AEDAT 2.0 recording from a DVS128 (the original CIFAR10-DVS files).

    Layout: ASCII header lines starting with ``#`` (the first is ``#!AER-DAT2.0``), then big-endian pairs
    (uint32 address, uint32 timestamp µs), 8 bytes per event. DVS128 address: bit 0 polarity bit, bits 1-7 x,
    bits 8-14 y. Addresses with bit 15 set are jAER external (special) events and are dropped; any bit above 15
    is an error. A timestamp that drops by more than 2**31 is a uint32 wrap and is unwrapped.

    Readers disagree on orientation and polarity (spec part 2.2), so ``orientation`` chooses:

    * ``"spikingjelly"`` (default): ``x = 127 - y_raw``, ``y = 127 - x_raw``, ``p = 1 - bit0``; the convention of
      spikingjelly's CIFAR10DVS loader, which the official Spikformer and Spike-driven Transformer trainings used.
    * ``"raw"``: ``x = x_raw``, ``y = y_raw``, ``p = bit0``.

    Args:
        source: path or bytes.
        orientation: ``"spikingjelly"`` or ``"raw"``.

    Returns:
        :data:`EVENT_DTYPE` array ``[N]`` in file order.
    """
    if orientation not in ("spikingjelly", "raw"):
        raise ValueError(f"orientation must be 'spikingjelly' or 'raw', got {orientation!r}")
    raw, name = _load(source)
    start, _ = _header_lines(raw, name, b"#!AER-DAT2", "AEDAT 2.0")
    nbytes = len(raw) - start
    if nbytes % 8:
        raise DataFormatError(name, f"{nbytes} data bytes is not a whole number of 8-byte events (truncated)",
                              offset=len(raw) - nbytes % 8,
                              expected="big-endian (uint32 address, uint32 timestamp) pairs")
    a = np.frombuffer(raw, ">u4", offset=start).reshape(-1, 2)
    addr, ts = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
    high = addr >> 16
    if high.any():
        i = int(np.argmax(high != 0))
        raise DataFormatError(name, f"address 0x{int(addr[i]):08x} is outside the DVS128 address space",
                              offset=start + 8 * i, expected="bits 0-14 (polarity, x, y) and optionally bit 15 set")
    keep = (addr & _AEDAT2_SPECIAL) == 0
    addr, ts = addr[keep], ts[keep]
    if len(ts) > 1:  # unwrap uint32 timestamp wrap-arounds (large backward jumps only; jitter stays)
        ts = ts + (np.concatenate([[0], np.cumsum(np.diff(ts) < -(1 << 31))]) << 32)
    x_raw, y_raw, bit = (addr >> 1) & 0x7F, (addr >> 8) & 0x7F, addr & 1
    if orientation == "spikingjelly":
        return make_events(127 - y_raw, 127 - x_raw, ts, 1 - bit)
    return make_events(x_raw, y_raw, ts, bit)


def write_aedat2(path: str | os.PathLike | io.BufferedIOBase, events: np.ndarray, *,
                 orientation: str = "spikingjelly") -> None:
    """Write DVS128 events as jAER AEDAT 2.0 (the inverse of :func:`read_aedat2` with the same ``orientation``).

    Raises:
        ValueError: x or y outside 0..127, t outside 0..2**32-1, p not 0/1.
    """
    if orientation not in ("spikingjelly", "raw"):
        raise ValueError(f"orientation must be 'spikingjelly' or 'raw', got {orientation!r}")
    ev = as_events(events)
    x, y, t, p = (ev[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if len(ev) and (min(x.min(), y.min()) < 0 or max(x.max(), y.max()) >= _DVS128):
        raise ValueError("AEDAT 2.0 DVS128 events need 0 <= x, y < 128")
    if len(ev) and (t.min() < 0 or t.max() >= 2 ** 32):
        raise ValueError("AEDAT 2.0 timestamps must fit in uint32")
    if len(ev) and not np.isin(p, (0, 1)).all():
        raise ValueError("polarity must be 0 or 1")
    if orientation == "spikingjelly":
        x_raw, y_raw, bit = 127 - y, 127 - x, 1 - p
    else:
        x_raw, y_raw, bit = x, y, p
    pairs = np.empty((len(ev), 2), ">u4")
    pairs[:, 0] = (y_raw << 8) | (x_raw << 1) | bit
    pairs[:, 1] = t
    header = (b"#!AER-DAT2.0\r\n# This is a raw AE data file created by spiking_transformers\r\n"
              b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
              b"# Timestamps tick is 1 us\r\n")
    _write(path, header + pairs.tobytes())


# ----------------------------------------------------------------------------------------------------------------------
# AEDAT 3.1 (DVS128 Gesture)
# ----------------------------------------------------------------------------------------------------------------------

_A3_HEADER = struct.Struct("<hhiiiiii")  # type, source, size, TSOffset, TSOverflow, capacity, number, valid
_A3_POLARITY = 1
_A3_POLARITY_EV = np.dtype([("data", "<u4"), ("ts", "<i4")])


def read_aedat3(source: Source, *, sensor_size: tuple[int, int] | None = (128, 128)) -> np.ndarray:
    """Read the polarity events of an AEDAT 3.x recording (DVS128 Gesture).

    Layout: ``#`` header lines from ``#!AER-DAT3.x`` to ``#!END-HEADER``, then packets: a 28-byte little-endian header
    (int16 eventType, int16 eventSource, int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow,
    int32 eventCapacity, int32 eventNumber, int32 eventValid) and ``eventCapacity * eventSize`` bytes. Polarity
    packets (type 1, size 8) hold (uint32 data, int32 timestamp) with data bit 0 valid, bit 1 polarity, bits 2-16 y,
    bits 17-31 x; the full time is ``(eventTSOverflow << 31) | timestamp``. Other packet types are skipped, and so are
    events whose valid bit is 0. The loop is per packet, vectorised within it.

    Args:
        source: path or bytes.
        sensor_size: ``(width, height)``; an event outside it raises. ``None`` skips the check.

    Returns:
        :data:`EVENT_DTYPE` array ``[N]`` in file order.

    Raises:
        DataFormatError: bad header, a packet header or body cut short, inconsistent packet sizes, a negative
            timestamp, or an address outside the sensor.
    """
    raw, name = _load(source)
    i, _ = _header_lines(raw, name, b"#!AER-DAT3", "AEDAT 3.x", end=b"#!END-HEADER")
    parts, offs = [], []
    n = len(raw)
    while i < n:
        if n - i < _A3_HEADER.size:
            raise DataFormatError(name, f"truncated packet header ({n - i} bytes)", offset=i,
                                  expected="a 28-byte packet header")
        etype, _src, esize, _tsoff, ovf, cap, num, _valid = _A3_HEADER.unpack_from(raw, i)
        if esize < 0 or cap < 0 or num < 0 or num > cap or (cap > 0 and esize == 0) or ovf < 0:
            raise DataFormatError(name, f"inconsistent packet header (type {etype}, size {esize}, capacity {cap}, "
                                        f"number {num}, overflow {ovf})", offset=i,
                                  expected="0 <= eventNumber <= eventCapacity, eventSize > 0, eventTSOverflow >= 0")
        body = i + _A3_HEADER.size
        end = body + cap * esize
        if end > n:
            raise DataFormatError(name, f"packet body needs {cap * esize} bytes, {n - body} left", offset=body,
                                  expected="eventCapacity * eventSize bytes after the packet header")
        if etype == _A3_POLARITY:
            if esize != 8:
                raise DataFormatError(name, f"polarity packet with eventSize {esize}", offset=i + 4,
                                      expected="eventSize 8 (uint32 data, int32 timestamp)")
            e = np.frombuffer(raw, _A3_POLARITY_EV, count=num, offset=body)
            ok = (e["data"] & 1) == 1
            d = e["data"][ok].astype(np.int64)
            ts = e["ts"][ok].astype(np.int64)
            if (ts < 0).any():
                k = int(np.flatnonzero(ok)[int(np.argmax(ts < 0))])
                raise DataFormatError(name, f"negative timestamp {int(e['ts'][k])}", offset=body + 8 * k + 4,
                                      expected="timestamps >= 0 µs")
            parts.append(make_events((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, ts | (np.int64(ovf) << 31), (d >> 1) & 1))
            offs.append(body + 8 * np.flatnonzero(ok))
        i = end
    ev = np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
    _check_sensor(ev, sensor_size, name, np.concatenate(offs) if offs else None, "AEDAT 3")
    return ev


def write_aedat3(path: str | os.PathLike | io.BufferedIOBase, events: np.ndarray, *, per_packet: int = 4096,
                 source_name: str = "DVS128") -> None:
    """Write polarity events as AEDAT 3.1 packets of at most ``per_packet`` events (all valid).

    Timestamps at or above 2**31 go into packets with the matching eventTSOverflow, so any t in 0..2**62 round-trips.

    Raises:
        ValueError: x or y outside 0..32767, negative t, p not 0/1.
    """
    ev = as_events(events)
    x, y, t, p = (ev[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if len(ev) and (min(x.min(), y.min()) < 0 or max(x.max(), y.max()) > 0x7FFF):
        raise ValueError("AEDAT 3.1 polarity events need 0 <= x, y <= 32767")
    if len(ev) and t.min() < 0:
        raise ValueError("AEDAT 3.1 timestamps must be >= 0")
    if len(ev) and not np.isin(p, (0, 1)).all():
        raise ValueError("polarity must be 0 or 1")
    out = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: " + source_name.encode() + b"\r\n#!END-HEADER\r\n"]
    ovf = t >> 31
    # a packet never mixes overflow epochs: cut at epoch changes and every per_packet events
    cuts = np.union1d(np.flatnonzero(np.diff(ovf)) + 1, np.arange(0, len(ev), per_packet))
    bounds = np.append(cuts, len(ev)).astype(np.int64)
    for s, e in zip(bounds[:-1], bounds[1:]):
        k = int(e - s)
        if k == 0:
            continue
        out.append(_A3_HEADER.pack(_A3_POLARITY, 1, 8, 4, int(ovf[s]), k, k, k))
        body = np.empty(k, _A3_POLARITY_EV)
        body["data"] = (x[s:e] << 17) | (y[s:e] << 2) | (p[s:e] << 1) | 1
        body["ts"] = t[s:e] & 0x7FFFFFFF
        out.append(body.tobytes())
    _write(path, b"".join(out))


_LABEL_HEADER = "class,startTime_usec,endTime_usec"


def read_gesture_labels(source: Source, *, num_classes: int = 11) -> np.ndarray:
    """Read a DVS128 Gesture ``*_labels.csv``: header ``class,startTime_usec,endTime_usec``, classes 1..11.

    Returns:
        :data:`GESTURE_LABEL_DTYPE` array, one row per gesture: 0-based ``label``, ``start``, ``end`` (µs); a
        gesture holds the events with ``start <= t < end``.

    Raises:
        DataFormatError: naming the line of a bad header, a row that is not three integers, a class outside
            1..num_classes, or ``end <= start``.
    """
    raw, name = _load(source)
    try:
        text = bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataFormatError(name, f"not UTF-8 text ({e.reason})", offset=e.start,
                              expected="a CSV text file") from None
    lines = text.splitlines()
    if not lines or lines[0].strip().replace(" ", "") != _LABEL_HEADER:
        raise DataFormatError(name, f"bad header {lines[0][:60] if lines else ''!r}", line=1,
                              expected=repr(_LABEL_HEADER))
    rows = []
    for ln, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            if len(cells) != 3:
                raise ValueError
            c, s, e = (int(v.strip()) for v in cells)
        except ValueError:
            raise DataFormatError(name, f"bad row {line[:60]!r}", line=ln,
                                  expected="three integers: class,startTime_usec,endTime_usec") from None
        if not 1 <= c <= num_classes:
            raise DataFormatError(name, f"class {c} out of range", line=ln, expected=f"a class in 1..{num_classes}")
        if e <= s or s < 0 or e >= 2 ** 62:
            raise DataFormatError(name, f"empty, negative or huge interval [{s}, {e})", line=ln,
                                  expected="0 <= startTime_usec < endTime_usec < 2**62")
        rows.append((c - 1, s, e))
    return np.array(rows, GESTURE_LABEL_DTYPE)


def write_gesture_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a labels CSV from a :data:`GESTURE_LABEL_DTYPE` array (0-based labels, written 1-based)."""
    lines = [_LABEL_HEADER] + [f"{int(r['label']) + 1},{int(r['start'])},{int(r['end'])}" for r in labels]
    Path(path).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------------------
# AEDAT 4.0 (optional `aedat` package)
# ----------------------------------------------------------------------------------------------------------------------

def read_aedat4(source: str | os.PathLike) -> np.ndarray:
    """Read the polarity events of an AEDAT 4.0 file through the optional ``aedat`` package (``pip install aedat``).

    AEDAT 4 packets are LZ4/zstd-compressed flatbuffers; decoding them is left to that package rather than
    re-implemented here. Events are returned in file order with p = 1 for ON.

    Raises:
        ImportError: ``aedat`` is not installed.
        DataFormatError: the file is missing or the decoder rejects it.
    """
    try:
        import aedat  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError("reading AEDAT 4.0 needs the optional package `aedat`: `pip install aedat`") from None
    path = Path(source)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    parts = []
    try:
        for packet in aedat.Decoder(str(path)):
            e = packet.get("events")
            if e is not None and len(e):
                parts.append(make_events(e["x"], e["y"], e["t"], e["on"].astype(np.int8)))
    except Exception as e:  # the Rust decoder raises its own error types
        raise DataFormatError(path, f"AEDAT 4 decoder failed ({e})", expected="a valid AEDAT 4.0 file") from None
    return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)


# ----------------------------------------------------------------------------------------------------------------------
# Detection and summaries
# ----------------------------------------------------------------------------------------------------------------------

def detect_format(path: str | os.PathLike) -> str:
    """``"aedat2"``, ``"aedat3"``, ``"aedat4"`` (from the first header line) or ``"nmnist"`` (a ``.bin`` file).

    Raises:
        DataFormatError: an unknown format.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as e:
        raise DataFormatError(path, f"cannot read ({e})") from None
    for magic, fmt in ((b"#!AER-DAT2", "aedat2"), (b"#!AER-DAT3", "aedat3"), (b"#!AER-DAT4", "aedat4")):
        if head.startswith(magic):
            return fmt
    if path.suffix.lower() == ".bin":
        return "nmnist"
    raise DataFormatError(path, f"unknown event format (starts with {head!r})", offset=0,
                          expected="#!AER-DAT2/3/4 header, or an N-MNIST .bin file")


def read_events(path: str | os.PathLike, *, format: str | None = None, **kwargs: object) -> tuple[np.ndarray, str]:
    """Read a recording of any supported format; returns ``(events, format)``. ``kwargs`` go to the reader."""
    fmt = format or detect_format(path)
    readers = {"nmnist": read_nmnist_bin, "aedat2": read_aedat2, "aedat3": read_aedat3, "aedat4": read_aedat4}
    if fmt not in readers:
        raise ValueError(f"unknown format {fmt!r}; choose from {sorted(readers)}")
    return readers[fmt](path, **kwargs), fmt  # type: ignore[operator]


def describe_events(events: np.ndarray) -> dict[str, object]:
    """Summary of an event array: count, duration (µs), time range, sensor extent (max x + 1, max y + 1), ON share."""
    ev = as_events(events)
    n = len(ev)
    if n == 0:
        return {"events": 0, "duration_us": 0, "t_min": None, "t_max": None, "width": 0, "height": 0,
                "on_fraction": None, "monotonic": True}
    t = ev["t"]
    return {
        "events": n,
        "duration_us": int(t.max() - t.min()),
        "t_min": int(t.min()),
        "t_max": int(t.max()),
        "width": int(ev["x"].max()) + 1,
        "height": int(ev["y"].max()) + 1,
        "on_fraction": float((ev["p"] > 0).mean()),
        "monotonic": bool((np.diff(t) >= 0).all()),
    }
