"""``spiking-transformers events FILE``: what an event-camera recording holds, and its integrated frames.

::

    spiking-transformers events FILE [--frames T] [--split-by count|time] [--png OUT.png]
                                     [--size S] [--sensor WxH] [--scale K] [--npy OUT.npy] [--json]

Always prints a summary (through :func:`~spiking_transformers.data.events.describe_events`): the format detected
from the header, the number of events, the duration and time range, the sensor size, the polarity balance, and the
label where the file's place tells it (:func:`recording_label`):

* a ``.bin`` file in the N-MNIST layout ``.../Train|Test/<digit>/*.bin``: the digit (its folder) and the split;
* a ``.bin`` file in the N-Caltech101 layout ``.../Caltech101/<class>/*.bin`` (or named ``image_<n>.bin``): the
  class folder;
* an AEDAT 2.0 file in the CIFAR10-DVS layout ``.../<class>/*.aedat`` with a CIFAR-10 class folder (or named
  ``cifar10_<class>_<n>.aedat``): the class and its index;
* a DVS128 Gesture AEDAT 3.1 recording with a sibling ``<name>_labels.csv``: every labelled gesture (class, name,
  time window, events in it) and, where ``trials_to_train.txt`` / ``trials_to_test.txt`` sit next to it, the split.
  A window holding no events (a CSV that does not fit its recording) is flagged; the data set would refuse it.

``--frames T`` integrates the recording into ``[T, 2, H, W]`` frames
(:func:`~spiking_transformers.data.frames.events_to_frames`, split by equal event counts or equal time) and prints
the events per frame; ``--png`` writes them as one strip (ON red, OFF blue;
:func:`~spiking_transformers.data.frames.frames_to_rgb_strip`), ``--npy`` as an int32 array. ``--png`` / ``--npy``
without ``--frames`` use :data:`DEFAULT_FRAMES` frames.

A bad file ends the command with one line naming the file, the byte offset or line and what was expected (the
:class:`~spiking_transformers.data.errors.DataFormatError` message) and exit status 2.

Sensor size: AEDAT 2.0 and 3.1 recordings here come from a DVS128 (128x128). An N-MNIST ``.bin`` file does not
say its sensor, so it is inferred from the events' extent: 34x34 (N-MNIST) if they fit, else 240x180
(N-Caltech101) if they fit, else the extent itself; AEDAT 4 uses the extent. ``--sensor WxH`` overrides it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.plots import write_rgb_png

__all__ = ["NAME", "HELP", "DEFAULT_FRAMES", "add_arguments", "run", "sensor_size_for", "recording_label"]

NAME = "events"
HELP = "what an event-camera recording holds (format, events, duration, sensor, polarity, label); frames as PNG"

#: Frames integrated for ``--png`` / ``--npy`` when ``--frames`` is not given.
DEFAULT_FRAMES = 8

#: Known sensors of the ``.bin`` format, smallest first: N-MNIST, N-Caltech101 (width, height).
_BIN_SENSORS = ((34, 34, "N-MNIST"), (240, 180, "N-Caltech101"))
_FORMAT_NAMES = {"nmnist": "N-MNIST/N-Caltech101 .bin", "aedat2": "AEDAT 2.0 (jAER)", "aedat3": "AEDAT 3.1",
                 "aedat4": "AEDAT 4.0"}
_MIN_PNG_HEIGHT = 128  # small sensors (34x34) are scaled up to at least this many pixels for viewing


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="recording: N-MNIST/N-Caltech101 .bin, AEDAT 2.0/3.1 .aedat, or AEDAT 4 .aedat4")
    p.add_argument("--frames", dest="T", type=_positive, default=None, metavar="T",
                   help=f"integrate into T frames [T, 2, H, W] and print the events per frame "
                        f"(default with --png/--npy: {DEFAULT_FRAMES})")
    p.add_argument("--split-by", choices=("count", "time"), default="count",
                   help="frames of equal event counts (default) or equal time windows")
    p.add_argument("--png", type=Path, default=None, metavar="OUT.png", help="write the frames as one PNG strip")
    p.add_argument("--size", type=_positive, default=None, metavar="S",
                   help="down-sample frames to S x S by summing events (default: keep the sensor size)")
    p.add_argument("--sensor", type=_wxh, default=None, metavar="WxH", help="sensor size (default: inferred)")
    p.add_argument("--scale", type=_positive, default=None,
                   help=f"PNG pixel scale (default: enough for frames >= {_MIN_PNG_HEIGHT} px tall)")
    p.add_argument("--npy", type=Path, default=None, metavar="OUT.npy", help="write the int32 frames [T, 2, H, W]")
    p.add_argument("--no-crop", action="store_true",
                   help="PNG: draw the whole sensor (default: crop to the events' extent when they fill less than "
                        "half of it, e.g. a 34x34 digit on a 128x128 sensor)")
    p.add_argument("--no-labels", action="store_true", help="PNG: no frame labels (time window, events) above frames")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the summary as JSON")


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


# ----------------------------------------------------------------------------------------------------------------------
# Labels from the folder layout
# ----------------------------------------------------------------------------------------------------------------------

def _gesture_label(path: Path, events: np.ndarray) -> dict[str, Any] | None:
    from ..data.event_datasets import GESTURE_CLASSES
    from ..data.events import read_gesture_labels

    csv = path.with_name(path.stem + "_labels.csv")
    if not csv.is_file():
        return None
    rows = read_gesture_labels(csv)  # a malformed CSV is a DataFormatError naming its line
    t = np.sort(events["t"])
    counts = np.searchsorted(t, rows["end"], "left") - np.searchsorted(t, rows["start"], "left")
    gestures = [{"line": ln, "class": int(r["label"]) + 1, "name": GESTURE_CLASSES[int(r["label"])],
                 "start_us": int(r["start"]), "end_us": int(r["end"]), "events": int(c)}
                for ln, (r, c) in enumerate(zip(rows, counts), start=2)]
    split = None
    for name in ("train", "test"):
        trials = path.parent / f"trials_to_{name}.txt"
        if trials.is_file() and path.name in trials.read_text(errors="replace").split():
            split = name
    return {"dataset": "dvs128-gesture", "source": csv.name, "split": split, "gestures": gestures}


def recording_label(path: str | Path, fmt: str, events: np.ndarray) -> dict[str, Any] | None:
    """The label of a recording as its data set would give it, from its place in the folder layout.

    Args:
        path: the recording.
        fmt: its format (:func:`~spiking_transformers.data.events.detect_format`).
        events: its events (to count the events in each gesture window).

    Returns:
        ``None`` when the layout is not recognised (see the module docstring), else a dict with ``dataset`` (the
        ``get_dataset`` name), ``source`` (what the label was read from) and ``split`` (``"train"``, ``"test"`` or
        ``None`` when it depends on the data set's split rule), plus ``class`` (name) and ``index`` (0-based
        class index, where the data set fixes it) for one-label files, or ``gestures`` (one dict per labels-CSV
        row: ``line``, 1-based ``class``, ``name``, ``start_us``, ``end_us``, ``events``) for DVS128 Gesture.

    Raises:
        DataFormatError: a gesture labels CSV that is malformed.
    """
    from ..data.event_datasets import CIFAR10_CLASSES

    path = Path(path)
    parent, grand = path.parent.name, path.parent.parent.name
    if fmt == "aedat3":
        return _gesture_label(path, events)
    if fmt == "nmnist":
        if grand.lower() in ("train", "test") and parent.isdigit():
            return {"dataset": "n-mnist", "source": "class folder", "split": grand.lower(), "class": parent,
                    "index": int(parent)}
        if grand == "Caltech101" or re.fullmatch(r"image_\d+", path.stem):
            return {"dataset": "n-caltech101", "source": "class folder", "split": None, "class": parent,
                    "index": None}
    if fmt == "aedat2" and (parent in CIFAR10_CLASSES or re.fullmatch(rf"cifar10_{re.escape(parent)}_\d+", path.stem)):
        index = CIFAR10_CLASSES.index(parent) if parent in CIFAR10_CLASSES else None
        return {"dataset": "cifar10-dvs", "source": "class folder", "split": None, "class": parent, "index": index}
    return None


def _label_lines(label: dict[str, Any] | None) -> list[tuple[str, str]]:
    if label is None:
        return [("label", "unknown (not inside a known data set folder layout)")]
    split = f", {label['split']} split" if label["split"] else ""
    if "gestures" not in label:
        index = f", class {label['index']}" if label["index"] is not None else ""
        return [("label", f"{label['class']} ({label['dataset']} {label['source']}{index}{split})")]
    gestures = label["gestures"]
    rows = [("label", f"{len(gestures)} gesture(s) from {label['source']} ({label['dataset']}{split})")]
    for g in gestures:
        dur = (g["end_us"] - g["start_us"]) / 1e3
        note = "" if g["events"] else "  NO EVENTS: window outside the recording"
        rows.append(("", f"{g['class']:>2} {g['name']:<28} {g['start_us']} .. {g['end_us']} µs ({dur:.0f} ms), "
                         f"{g['events']:,} events{note}"))
    return rows


# ----------------------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------------------

def _frames(args: argparse.Namespace, events: np.ndarray, sensor: tuple[int, int]) -> dict[str, Any]:
    """Integrate, write the requested files; returns ``shape``, ``split_by``, ``events_per_frame``, ``wrote``."""
    from ..data.frames import events_to_frames, frames_to_rgb_strip

    frames = events_to_frames(events, T=args.T or DEFAULT_FRAMES, sensor_size=sensor, split_by=args.split_by,
                              size=args.size)
    out: dict[str, Any] = {"shape": list(frames.shape), "split_by": args.split_by,
                           "events_per_frame": [int(v) for v in frames.sum(axis=(1, 2, 3))], "wrote": []}
    if args.npy is not None:
        np.save(args.npy, frames, allow_pickle=False)
        out["wrote"].append(str(args.npy))
    if args.png is not None:
        shown, crop = frames, ""
        if not args.no_crop:
            shown, crop = _crop_to_events(frames)
        rgb = frames_to_rgb_strip(shown)
        scale = args.scale or max(1, -(-_MIN_PNG_HEIGHT // shown.shape[2]))
        if scale > 1:  # nearest-neighbour enlargement keeps every pixel a crisp square
            rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        labelled = ""
        if not args.no_labels:
            windows = _frame_windows(events, frames.shape[0], args.split_by)
            texts = [f"{i + 1}: {a / 1e3:.1f}-{b / 1e3:.1f} ms|{n:,} ev" for i, ((a, b), n)
                     in enumerate(zip(windows, out["events_per_frame"]))]
            rgb, labelled = _label_strip(rgb, texts, tile=shown.shape[3] * scale, gap=scale)
        write_rgb_png(args.png, rgb)
        out["wrote"].append(f"{args.png} ({rgb.shape[1]}x{rgb.shape[0]} px, ON red / OFF blue{crop}{labelled})")
    return out


def _crop_to_events(frames: np.ndarray) -> tuple[np.ndarray, str]:
    """Frames cut to the events' bounding box (2 px margin) when it fills under half the sensor each way."""
    active = frames.sum(axis=(0, 1)) > 0
    if not active.any():
        return frames, ""
    ys, xs = np.nonzero(active)
    h, w = active.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if (y1 - y0) * 2 > h and (x1 - x0) * 2 > w:
        return frames, ""
    y0, x0, y1, x1 = max(y0 - 2, 0), max(x0 - 2, 0), min(y1 + 2, h), min(x1 + 2, w)
    return frames[:, :, y0:y1, x0:x1], f", cropped to the events' extent x {x0}..{x1 - 1}, y {y0}..{y1 - 1} " \
                                      f"(--no-crop: whole sensor)"


def _frame_windows(events: np.ndarray, T: int, split_by: str) -> list[tuple[float, float]]:
    """The time window (µs, from the first event) of each frame, as ``events_to_frames`` splits them."""
    t = np.sort(events["t"].astype(np.int64))
    if t.size == 0:
        return [(0.0, 0.0)] * T
    t = t - t[0]
    if split_by == "time":
        span = float(t[-1] + 1)
        return [(span * i / T, span * (i + 1) / T) for i in range(T)]
    n = t.size
    per = max(n // T, 1)
    out = []
    for i in range(T):
        lo = min(i * per, n - 1)
        hi = n - 1 if i == T - 1 else min((i + 1) * per - 1, n - 1)
        out.append((float(t[lo]), float(t[hi])))
    return out


def _label_strip(rgb: np.ndarray, texts: list[str], *, tile: int, gap: int) -> tuple[np.ndarray, str]:
    """A band above the strip with each frame's label (two lines split at ``|``); needs Pillow, else unchanged."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return rgb, ""
    band = 26
    img = Image.new("RGB", (rgb.shape[1], rgb.shape[0] + band), (255, 255, 255))
    img.paste(Image.fromarray(rgb, "RGB"), (0, band))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, text in enumerate(texts):
        x = i * (tile + gap) + 2
        for j, line in enumerate(text.split("|")):
            draw.text((x, 1 + 12 * j), line, fill=(0, 0, 0), font=font)
    return np.asarray(img), ", frames labelled with time window and events"


def _describe(args: argparse.Namespace) -> int:
    from ..data.errors import DataFormatError
    from ..data.events import describe_events, read_events

    events, fmt = read_events(args.file)
    s = describe_events(events)
    if args.sensor is not None:
        (w, h), why = args.sensor, "given"
        if int(s["width"]) > w or int(s["height"]) > h:  # type: ignore[call-overload]
            raise DataFormatError(args.file, f"events span {s['width']}x{s['height']} pixels, more than the given "
                                             f"sensor {w}x{h}", expected="a larger --sensor")
    else:
        (w, h), why = sensor_size_for(fmt, s)
    label = recording_label(args.file, fmt, events)
    want_frames = args.T is not None or args.png is not None or args.npy is not None
    frames = _frames(args, events, (w, h)) if want_frames else None
    if args.as_json:
        print(json.dumps({"file": str(args.file), "format": fmt, "sensor_width": w, "sensor_height": h,
                          "sensor_source": why, **s, "label": label, "frames": frames}, indent=1))
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
    rows += _label_lines(label)
    for key, value in rows:
        print(f"{key:>10}{':' if key else ' '} {value}")
    if frames is not None:
        print(f"{'frames':>10}: {frames['shape']} [T, 2, H, W], split by {frames['split_by']}")
        print(f"{'per frame':>10}: " + " ".join(map(str, frames["events_per_frame"])) + " events")
        for what in frames["wrote"]:
            print(f"{'wrote':>10}: {what}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _describe(args)
    except ImportError as e:  # AEDAT 4 needs the optional `aedat` package: one line, not a traceback
        raise ValueError(str(e)) from None
