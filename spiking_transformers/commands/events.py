"""``spiking-transformers events``: look inside an event-camera recording.

* ``events info FILE [--json]``: the format detected from the header, the number of events, the sensor size, the
  duration, the time range and the polarity balance (through
  :func:`~spiking_transformers.data.events.describe_events`).
* ``events frames FILE --T N [--split-by count|time] [--size S] [--png OUT.png] [--npy OUT.npy]``: integrate the
  recording into frames ``[T, 2, H, W]`` (:func:`~spiking_transformers.data.frames.events_to_frames`), print the
  events per frame, and save the frames as ``.npy`` (int32) and/or as a PNG strip (ON red, OFF blue;
  :func:`~spiking_transformers.data.frames.frames_to_rgb_strip`).

A bad file ends the command with one line naming the file, the byte offset and what was expected (the
:class:`~spiking_transformers.data.errors.DataFormatError` message) and exit status 2.

Sensor size: AEDAT 2.0 and 3.1 recordings here come from a DVS128 (128x128). An N-MNIST ``.bin`` file does not
say its sensor, so it is inferred from the events' extent: 34x34 (N-MNIST) if they fit, else 240x180
(N-Caltech101) if they fit, else the extent itself; AEDAT 4 uses the extent. ``--sensor WxH`` overrides it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["NAME", "HELP", "add_arguments", "run", "sensor_size_for"]

NAME = "events"
HELP = "inspect an event-camera recording (info) or integrate it into frames, saved as PNG strip or .npy (frames)"

#: Known sensors of the ``.bin`` format, smallest first: N-MNIST, N-Caltech101 (width, height).
_BIN_SENSORS = ((34, 34, "N-MNIST"), (240, 180, "N-Caltech101"))
_FORMAT_NAMES = {"nmnist": "N-MNIST/N-Caltech101 .bin", "aedat2": "AEDAT 2.0 (jAER)", "aedat3": "AEDAT 3.1",
                 "aedat4": "AEDAT 4.0"}
_MIN_PNG_HEIGHT = 128  # small sensors (34x34) are scaled up to at least this many pixels for viewing


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="format, event count, sensor size, duration, polarity balance",
                          description="Summarise an event recording (format detected from its header).")
    info.add_argument("file", help="recording: N-MNIST/N-Caltech101 .bin, AEDAT 2.0/3.1 .aedat, or AEDAT 4 .aedat4")
    info.add_argument("--sensor", type=_wxh, default=None, metavar="WxH", help="sensor size (default: see above)")
    info.add_argument("--json", dest="as_json", action="store_true", help="print JSON")

    fr = sub.add_parser("frames", help="integrate into [T, 2, H, W] frames; save a PNG strip and/or .npy",
                        description="Integrate a recording into T frames of ON/OFF event counts.")
    fr.add_argument("file", help="recording (any format `events info` reads)")
    fr.add_argument("--T", dest="T", type=_positive, required=True, help="number of frames")
    fr.add_argument("--split-by", choices=("count", "time"), default="count",
                    help="equal event counts (default) or equal time windows per frame")
    fr.add_argument("--size", type=_positive, default=None, metavar="S",
                    help="down-sample to S x S by summing events (default: keep the sensor size)")
    fr.add_argument("--sensor", type=_wxh, default=None, metavar="WxH", help="sensor size (default: inferred)")
    fr.add_argument("--png", type=Path, default=None, metavar="OUT.png", help="write the frames as one PNG strip")
    fr.add_argument("--scale", type=_positive, default=None,
                    help=f"PNG pixel scale (default: enough for frames >= {_MIN_PNG_HEIGHT} px tall)")
    fr.add_argument("--npy", type=Path, default=None, metavar="OUT.npy", help="write the int32 frames [T, 2, H, W]")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _wxh(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 128x128, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sensor sides must be positive, got {text!r}")
    return w, h


def sensor_size_for(fmt: str, summary: dict[str, object]) -> tuple[tuple[int, int], str]:
    """``((width, height), why)``: the sensor a recording of format ``fmt`` with this ``describe_events`` summary
    was most likely taken with (see the module docstring)."""
    w, h = int(summary["width"]), int(summary["height"])  # type: ignore[call-overload]
    if fmt in ("aedat2", "aedat3"):
        return (128, 128), "DVS128"
    if fmt == "nmnist":
        for sw, sh, name in _BIN_SENSORS:
            if w <= sw and h <= sh:
                return (sw, sh), f"{name}, inferred from the events' extent"
    return (max(w, 1), max(h, 1)), "the events' extent"


def _load(args: argparse.Namespace) -> tuple[np.ndarray, str, dict[str, object], tuple[int, int], str]:
    from ..data.events import describe_events, read_events

    events, fmt = read_events(args.file)
    summary = describe_events(events)
    if args.sensor is not None:
        sensor, why = args.sensor, "given"
        w, h = sensor
        if int(summary["width"]) > w or int(summary["height"]) > h:  # type: ignore[call-overload]
            from ..data.errors import DataFormatError

            raise DataFormatError(args.file, f"events span {summary['width']}x{summary['height']} pixels, more than "
                                             f"the given sensor {w}x{h}", expected="a larger --sensor")
    else:
        sensor, why = sensor_size_for(fmt, summary)
    return events, fmt, summary, sensor, why


def _info(args: argparse.Namespace) -> int:
    _, fmt, s, (w, h), why = _load(args)
    if args.as_json:
        print(json.dumps({"file": str(args.file), "format": fmt, "sensor_width": w, "sensor_height": h,
                          "sensor_source": why, **s}, indent=1))
        return 0
    n, dur = int(s["events"]), int(s["duration_us"])  # type: ignore[call-overload]
    rows = [("file", str(args.file)), ("format", f"{fmt} ({_FORMAT_NAMES.get(fmt, fmt)})"), ("events", f"{n:,}"),
            ("sensor", f"{w}x{h} ({why})")]
    if n:
        on = float(s["on_fraction"])  # type: ignore[arg-type]
        n_on = int(round(on * n))
        rows += [("extent", f"{s['width']}x{s['height']} (max x + 1, max y + 1)"),
                 ("duration", f"{dur / 1e3:.3f} ms ({dur} µs)"),
                 ("time range", f"{s['t_min']} .. {s['t_max']} µs"),
                 ("polarity", f"ON {n_on:,} / OFF {n - n_on:,} ({100 * on:.1f} % ON)"),
                 ("time order", "monotonic" if s["monotonic"] else "NOT monotonic")]
    for key, value in rows:
        print(f"{key:>10}: {value}")
    return 0


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Save an ``[H, W, 3]`` uint8 image with Pillow, else matplotlib."""
    try:
        from PIL import Image
    except ImportError:
        try:
            import matplotlib.image as mpimg
        except ImportError:
            raise ValueError("writing a PNG needs Pillow or matplotlib: pip install pillow") from None
        mpimg.imsave(path, rgb)
        return
    Image.fromarray(rgb, "RGB").save(path, format="PNG")


def _frames(args: argparse.Namespace) -> int:
    from ..data.frames import events_to_frames, frames_to_rgb_strip

    events, fmt, _, sensor, why = _load(args)
    frames = events_to_frames(events, T=args.T, sensor_size=sensor, split_by=args.split_by, size=args.size)
    per_frame = frames.sum(axis=(1, 2, 3))
    print(f"{args.file}: {fmt}, {len(events):,} events, sensor {sensor[0]}x{sensor[1]} ({why}) -> frames "
          f"{list(frames.shape)} [T, 2, H, W], split by {args.split_by}")
    print("events per frame: " + " ".join(str(int(v)) for v in per_frame))
    if args.npy is not None:
        np.save(args.npy, frames, allow_pickle=False)
        print(f"wrote {args.npy}")
    if args.png is not None:
        rgb = frames_to_rgb_strip(frames)
        scale = args.scale or max(1, -(-_MIN_PNG_HEIGHT // frames.shape[2]))
        if scale > 1:  # nearest-neighbour enlargement keeps every pixel a crisp square
            rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        _write_png(args.png, rgb)
        print(f"wrote {args.png} ({rgb.shape[1]}x{rgb.shape[0]} px, ON red / OFF blue)")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _info(args) if args.action == "info" else _frames(args)
    except ImportError as e:  # AEDAT 4 needs the optional `aedat` package: one line, not a traceback
        raise ValueError(str(e)) from None
