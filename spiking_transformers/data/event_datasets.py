"""Event-camera data sets read from a user's folder of original files, and the built-in synthetic events.

Each data set yields ``(x, y)`` with ``x`` a float32 tensor ``[T, 2, H, W]`` of event counts (channel 1 = ON) and
``y`` an int; :func:`spiking_transformers.data.time_major_collate` batches them to ``[T, B, 2, H, W]``.

* :class:`NMNIST`: ``root/Train/<digit>/*.bin`` and ``root/Test/<digit>/*.bin`` (the official split), 34x34.
* :class:`CIFAR10DVS`: ``root/<class>/*.aedat`` (the original AEDAT 2.0 release, 128x128). There is no official
  split; ours is fixed and documented: ``split_method="random"`` (default) puts ``round(0.1 * n_c)`` files of each
  class in the test set, drawn by ``numpy.random.default_rng(0)`` over the files sorted by their number
  (:func:`~spiking_transformers.data.images.stratified_split`); ``split_method="first"`` takes the first 10 % of each
  class by file number (``cifar10_<class>_<i>.aedat`` with ``i < 100`` for the full set, the "TEBN" split).
* :class:`NCaltech101`: ``root/<class>/image_<nnnn>.bin`` (the N-MNIST 5-byte format, sensor up to 240x180), the
  101 object classes; ``BACKGROUND_Google`` is left out unless ``include_background=True``. No official split either,
  so it is split exactly like CIFAR10-DVS (per class 90/10 with seed 0, or ``split_method="first"``).
* :class:`DVS128Gesture`: ``root/`` = the extracted ``DvsGesture`` folder: ``trials_to_train.txt`` and
  ``trials_to_test.txt`` (the official split), ``userNN_<lighting>.aedat`` (AEDAT 3.1) and their
  ``*_labels.csv``. One sample per labelled gesture (events with ``start <= t < end``).
* ``synthetic-events``: the bundled digits through a simulated event camera (:mod:`.synthetic`), written as N-MNIST
  files and read back by :class:`NMNIST`. Synthetic, and labelled so.

Frames are cached on disk (:class:`~spiking_transformers.data.frames.FrameCache`, keyed by every setting).
``skip_bad_files=True`` reads every sample once at construction and drops those whose file is bad, with one warning
giving the count; the dropped ones are listed in ``dataset.skipped``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .errors import DataFormatError
from .events import read_aedat2, read_aedat3, read_gesture_labels, read_nmnist_bin
from .frames import FrameCache, default_cache_dir, events_to_frames
from .transforms import Compose, RandomHorizontalFlip, RandomRoll

__all__ = ["EventSample", "EventFrameDataset", "NMNIST", "CIFAR10DVS", "NCaltech101", "DVS128Gesture",
           "CIFAR10_CLASSES", "GESTURE_CLASSES", "NCALTECH101_BACKGROUND", "build"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
GESTURE_CLASSES = ("hand clap", "right hand wave", "left hand wave", "right arm clockwise",
                   "right arm counter-clockwise", "left arm clockwise", "left arm counter-clockwise", "arm roll",
                   "air drums", "air guitar", "other gestures")
#: The clutter class of (N-)Caltech101, which papers (and torchvision's Caltech101) leave out of the 101 classes.
NCALTECH101_BACKGROUND = "BACKGROUND_Google"


@dataclass(frozen=True)
class EventSample:
    """One sample: a recording file, its label, and optionally a time window of it.

    Attributes:
        path: the recording.
        label: 0-based class.
        window: ``(start, end)`` µs: the sample is the events with ``start <= t < end``; ``None`` = the whole file.
        label_file: file the label came from (for error messages), e.g. a gesture labels CSV.
        label_line: its line number.
    """

    path: Path
    label: int
    window: tuple[int, int] | None = None
    label_file: Path | None = None
    label_line: int | None = None


class EventFrameDataset(torch.utils.data.Dataset):
    """Event recordings integrated into frames ``[T, 2, H, W]``.

    Args:
        samples: the samples.
        reader: ``path -> events`` (an :data:`~spiking_transformers.data.events.EVENT_DTYPE` array).
        reader_id: a string naming the reader and its options (part of the cache key).
        sensor_size: ``(width, height)``.
        classes: class names.
        T: frames per sample.
        split_by: ``"count"`` or ``"time"`` (see :func:`~spiking_transformers.data.frames.events_to_frames`).
        img_size: down-sample frames to ``img_size`` x ``img_size`` (summing events); ``None`` keeps the sensor size.
        cache: store integrated frames on disk.
        cache_dir: where (default ``default_cache_dir() / "frames"``).
        transform: augmentation on the float ``[T, 2, H, W]`` tensor.
        skip_bad_files: read every sample now and drop those that raise :class:`DataFormatError` (one warning).
        preload: integrate every sample now and keep the frames in memory.
        info: the data set's :class:`~spiking_transformers.data.DatasetInfo`.
    """

    def __init__(self, samples: Sequence[EventSample], *, reader: Callable[[Path], np.ndarray], reader_id: str,
                 sensor_size: tuple[int, int], classes: Sequence[str], T: int, split_by: str = "count",
                 img_size: int | None = None, cache: bool = True, cache_dir: str | os.PathLike | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, skip_bad_files: bool = False,
                 preload: bool = False, info: object | None = None) -> None:
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        if split_by not in ("count", "time"):
            raise ValueError(f"split_by must be 'count' or 'time', got {split_by!r}")
        self.samples = list(samples)
        self.reader, self.reader_id = reader, reader_id
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.classes = list(classes)
        self.T, self.split_by, self.img_size = int(T), split_by, img_size
        self.cache = FrameCache(Path(cache_dir) if cache_dir is not None else default_cache_dir() / "frames") \
            if cache else None
        self.transform = transform
        self.info = info
        self.skipped: list[tuple[Path, str]] = []
        self._memory: dict[int, np.ndarray] = {}
        self._last: tuple[Path, np.ndarray] | None = None  # one-file memo: gesture samples share a recording
        if skip_bad_files or preload:
            keep, frames = [], []
            for s in self.samples:
                try:
                    f = self._frames(s)
                except DataFormatError as e:
                    if not skip_bad_files:
                        raise
                    self.skipped.append((s.path, str(e)))
                    continue
                keep.append(s)
                frames.append(f)
            self.samples = keep
            if preload:
                self._memory = dict(enumerate(frames))
            if self.skipped:
                warnings.warn(f"skipped {len(self.skipped)} bad file(s) of {len(keep) + len(self.skipped)}; first: "
                              f"{self.skipped[0][1]} (see dataset.skipped)", stacklevel=3)
        self.targets = [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def events(self, i: int) -> np.ndarray:
        """The raw events of sample ``i`` (its time window only, timestamps unchanged)."""
        return self._events(self.samples[i])

    def _events(self, s: EventSample) -> np.ndarray:
        if self._last is not None and self._last[0] == s.path:
            ev = self._last[1]
        else:
            ev = self.reader(s.path)
            self._last = (s.path, ev)
        if s.window is None:
            return ev
        start, end = s.window
        sel = ev[(ev["t"] >= start) & (ev["t"] < end)]
        if len(sel) == 0:
            span = f"{int(ev['t'].min())}..{int(ev['t'].max())}" if len(ev) else "no events"
            raise DataFormatError(s.label_file or s.path, f"label window [{start}, {end}) µs holds no events of "
                                                          f"{s.path.name} (recording spans {span})",
                                  line=s.label_line, expected="a window inside the recording's time span")
        return sel

    def _settings(self, s: EventSample) -> dict[str, object]:
        return {"reader": self.reader_id, "sensor": self.sensor_size, "window": s.window, "T": self.T,
                "split_by": self.split_by, "size": self.img_size}

    def _frames(self, s: EventSample) -> np.ndarray:
        key = None
        if self.cache is not None:
            try:
                key = FrameCache.key(s.path, self._settings(s))
            except OSError:
                raise DataFormatError(s.path, "file not found") from None
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        try:
            frames = events_to_frames(self._events(s), T=self.T, sensor_size=self.sensor_size,
                                      split_by=self.split_by, size=self.img_size)
        except ValueError as e:
            if isinstance(e, DataFormatError):
                raise
            raise DataFormatError(s.path, str(e)) from None
        if key is not None and self.cache is not None:
            try:
                self.cache.put(key, frames)
            except OSError as e:  # a read-only cache must not stop training
                warnings.warn(f"frame cache {self.cache.directory} not writable ({e}); continuing without it",
                              stacklevel=2)
                self.cache = None
        return frames

    def frames(self, i: int) -> np.ndarray:
        """Integer frames ``[T, 2, H, W]`` of sample ``i`` (no augmentation)."""
        if i in self._memory:
            return self._memory[i]
        return self._frames(self.samples[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.frames(i).astype(np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, self.samples[i].label


# ----------------------------------------------------------------------------------------------------------------------
# Folder layouts
# ----------------------------------------------------------------------------------------------------------------------

def _number(p: Path) -> tuple[int, str]:
    """Sort key: the last integer in the file name (cifar10_cat_12 < cifar10_cat_100), then the name."""
    m = re.findall(r"\d+", p.stem)
    return (int(m[-1]) if m else -1, p.name)


def _subdir(root: Path, names: Sequence[str]) -> Path:
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise DataFormatError(root, f"no {' or '.join(names)} folder", expected=f"{root}/{names[0]}/<class>/<files>")


def _class_files(folder: Path, pattern: str) -> dict[str, list[Path]]:
    out = {d.name: sorted(d.glob(pattern), key=_number) for d in sorted(folder.iterdir())
           if d.is_dir() and not d.name.startswith(".")}
    out = {k: v for k, v in out.items() if v}
    if not out:
        raise DataFormatError(folder, f"no class folders with {pattern} files",
                              expected=f"{folder}/<class>/{pattern}")
    return out


def _bin_reader(sensor_size: tuple[int, int]) -> tuple[Callable[[Path], np.ndarray], str]:
    """The N-MNIST / N-Caltech101 ``.bin`` reader checking a ``(width, height)`` sensor, and its cache id."""
    w, h = sensor_size
    return partial(read_nmnist_bin, sensor_size=(w, h)), f"nmnist-bin:{w}x{h}"


def _per_class_split(labels: np.ndarray, num_classes: int, split: str, split_method: str) -> np.ndarray:
    """Indices of ``split`` for data sets without an official split (CIFAR10-DVS, N-Caltech101).

    ``labels`` are in class order and, within a class, sorted by file number. ``"random"``: per class,
    ``round(0.1 * n_c)`` files drawn by :func:`~spiking_transformers.data.images.stratified_split` with
    :data:`~spiking_transformers.data.images.SPLIT_SEED` go to the test set; ``"first"``: the first
    ``round(0.1 * n_c)`` files of each class by number. Returned sorted (class order, then file number).
    """
    from .images import SPLIT_SEED, stratified_split

    if split_method not in ("random", "first"):
        raise ValueError(f"split_method must be 'random' or 'first', got {split_method!r}")
    if split_method == "random":
        tr, te = stratified_split(labels, 0.1, SPLIT_SEED)
        return np.sort(tr if split == "train" else te)
    parts = []
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)  # already sorted by file number
        n_test = int(round(0.1 * len(members)))
        parts.append(members[n_test:] if split == "train" else members[:n_test])
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _event_transform(augment: bool, transform: object, *, flip: bool, roll: int) -> object:
    if transform is not None or not augment:
        return transform
    ts: list = []
    if flip:
        ts.append(RandomHorizontalFlip(0.5))
    if roll:
        ts.append(RandomRoll(roll))
    return Compose(ts)


class NMNIST(EventFrameDataset):
    """N-MNIST from ``root/Train|Test/<digit>/*.bin`` (official split), sensor 34x34.

    Args:
        root: the extracted N-MNIST folder (holding ``Train`` and ``Test``; lower-case names accepted).
        split: ``"train"`` or ``"test"``.
        T: frames per sample.
        augment: random roll by up to ``size // 8`` pixels (no flips: digits are not mirror-symmetric).
        sensor_size: ``(width, height)``; 34x34 for N-MNIST.
        **kwargs: see :class:`EventFrameDataset` (split_by, img_size, cache, cache_dir, transform, skip_bad_files,
            preload, info).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 10, augment: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 sensor_size: tuple[int, int] = (34, 34), **kwargs: object) -> None:
        root = Path(root)
        folder = _subdir(root, ["Train", "train"] if split == "train" else ["Test", "test"])
        files = _class_files(folder, "*.bin")
        classes = sorted(files, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
        samples = [EventSample(p, k) for k, c in enumerate(classes) for p in files[c]]
        reader, reader_id = _bin_reader(sensor_size)
        size = kwargs.get("img_size") or min(sensor_size)
        super().__init__(samples, reader=reader, reader_id=reader_id, sensor_size=sensor_size, classes=classes, T=T,
                         transform=_event_transform(augment, transform, flip=False, roll=max(1, int(size) // 8)),
                         **kwargs)  # type: ignore[arg-type]


class CIFAR10DVS(EventFrameDataset):
    """CIFAR10-DVS from the original AEDAT 2.0 files in ``root/<class>/*.aedat``, 128x128.

    Args:
        root: folder holding the ten class folders (as unpacked from ``airplane.zip`` ... ``truck.zip``).
        split: ``"train"`` or ``"test"``.
        T: frames per sample.
        split_method: ``"random"`` (per-class 90/10, seed 0) or ``"first"`` (first 10 % of each class by number).
        orientation: see :func:`~spiking_transformers.data.events.read_aedat2` (default spikingjelly's).
        augment: random horizontal flip and random roll by up to ``size // 8`` pixels.
        **kwargs: see :class:`EventFrameDataset`.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 16, split_method: str = "random",
                 orientation: str = "spikingjelly", augment: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs: object) -> None:
        files = _class_files(Path(root), "*.aedat")
        names = list(files)
        classes = list(CIFAR10_CLASSES) if set(names) == set(CIFAR10_CLASSES) else sorted(names)
        all_files = [(p, k) for k, c in enumerate(classes) for p in files[c]]
        idx = _per_class_split(np.array([k for _, k in all_files]), len(classes), split, split_method)
        samples = [EventSample(all_files[i][0], all_files[i][1]) for i in idx]
        size = kwargs.get("img_size") or 128
        super().__init__(samples, reader=partial(read_aedat2, orientation=orientation),
                         reader_id=f"aedat2:{orientation}", sensor_size=(128, 128), classes=classes, T=T,
                         transform=_event_transform(augment, transform, flip=True, roll=max(1, int(size) // 8)),
                         **kwargs)  # type: ignore[arg-type]


class NCaltech101(EventFrameDataset):
    """N-Caltech101 from ``root/<class>/image_<nnnn>.bin`` (N-MNIST ``.bin`` records), sensor 240x180.

    The recordings are Caltech101 images shown to an ATIS sensor moved in three saccades, as for N-MNIST, and use its
    5-byte format; each image was scaled to fit the screen, so a recording spans at most about 240x180 pixels and
    often less (its own extent varies). All recordings are integrated on one fixed ``sensor_size`` canvas, the layout
    tonic uses, so that the frames of every sample align; an event outside it raises :class:`DataFormatError`.

    Classes are the sub-folder names sorted by code point (``Faces_easy``, ``Leopards``, ``Motorbikes``,
    ``accordion``, ...: the order of torchvision's ``Caltech101``), without :data:`NCALTECH101_BACKGROUND` (the
    clutter class that papers drop) unless ``include_background``. There is no official split; ours is the
    CIFAR10-DVS rule (see :class:`CIFAR10DVS`): ``"random"`` puts ``round(0.1 * n_c)`` files of each class, drawn
    with seed 0 over the files sorted by number, in the test set (a 9:1 split);
    ``"first"`` takes the first 10 % of each class by number.

    Args:
        root: the extracted ``Caltech101`` folder of class folders, or a folder containing it (a sibling
            ``Caltech101_annotations`` folder, whose ``.bin`` files hold bounding boxes, is then never read).
        split: ``"train"`` or ``"test"``.
        T: frames per sample.
        split_method: ``"random"`` (per-class 90/10, seed 0) or ``"first"`` (first 10 % of each class by number).
        include_background: keep ``BACKGROUND_Google`` as a class (102 classes).
        sensor_size: ``(width, height)`` of the canvas.
        augment: random horizontal flip and random roll by up to ``size // 8`` pixels (``size`` = ``img_size``, or the
            smaller sensor side).
        **kwargs: see :class:`EventFrameDataset`. Without ``img_size`` frames keep the canvas, ``[T, 2, 180, 240]``;
            ``get_dataset("n-caltech101")`` down-samples to 64x64 by default (the STAtten N-Caltech101 configs).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 10, split_method: str = "random",
                 include_background: bool = False, sensor_size: tuple[int, int] = (240, 180), augment: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs: object) -> None:
        root = Path(root)
        if (root / "Caltech101").is_dir():
            root = root / "Caltech101"
        if not root.is_dir():
            raise DataFormatError(root, "folder not found", expected="the extracted Caltech101 folder of class folders")
        files = _class_files(root, "*.bin")
        if not include_background:
            files.pop(NCALTECH101_BACKGROUND, None)
            if not files:
                raise DataFormatError(root, f"no class folders other than {NCALTECH101_BACKGROUND}",
                                      expected=f"{root}/<class>/*.bin")
        classes = sorted(files)
        all_files = [(p, k) for k, c in enumerate(classes) for p in files[c]]
        idx = _per_class_split(np.array([k for _, k in all_files]), len(classes), split, split_method)
        samples = [EventSample(all_files[i][0], all_files[i][1]) for i in idx]
        reader, reader_id = _bin_reader(sensor_size)
        size = kwargs.get("img_size") or min(sensor_size)
        super().__init__(samples, reader=reader, reader_id=reader_id, sensor_size=sensor_size, classes=classes, T=T,
                         transform=_event_transform(augment, transform, flip=True, roll=max(1, int(size) // 8)),
                         **kwargs)  # type: ignore[arg-type]


class DVS128Gesture(EventFrameDataset):
    """DVS128 Gesture from the extracted ``DvsGesture`` folder (AEDAT 3.1 + labels CSV; official split).

    Every row of ``<recording>_labels.csv`` is one sample: the events with ``start <= t < end``. A CSV whose rows do
    not fit its recording raises :class:`DataFormatError` naming the CSV line (or, with ``skip_bad_files``, is
    dropped). Overlapping or repeated rows (user22_led, user26_fluorescent) are kept as they are.

    Args:
        root: the ``DvsGesture`` folder, or a folder containing it.
        split: ``"train"`` (users 1-23) or ``"test"`` (users 24-29), from ``trials_to_train/test.txt``.
        T: frames per sample.
        augment: random roll by up to ``size // 8`` pixels (no flip: it would swap left- and right-hand classes).
        **kwargs: see :class:`EventFrameDataset`.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 16, augment: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, skip_bad_files: bool = False,
                 **kwargs: object) -> None:
        root = Path(root)
        if not (root / "trials_to_train.txt").is_file() and (root / "DvsGesture").is_dir():
            root = root / "DvsGesture"
        trials = root / ("trials_to_train.txt" if split == "train" else "trials_to_test.txt")
        if not trials.is_file():
            raise DataFormatError(trials, "file not found",
                                  expected="the extracted DvsGesture folder with trials_to_train.txt / "
                                           "trials_to_test.txt")
        samples: list[EventSample] = []
        skipped: list[tuple[Path, str]] = []
        for name in trials.read_text(errors="replace").split():
            rec = root / name
            csv = rec.with_name(rec.stem + "_labels.csv")
            try:
                if not rec.is_file():
                    raise DataFormatError(rec, f"recording listed in {trials.name} not found")
                rows = read_gesture_labels(csv)
            except DataFormatError as e:
                if not skip_bad_files:
                    raise
                skipped.append((rec, str(e)))
                continue
            samples += [EventSample(rec, int(r["label"]), (int(r["start"]), int(r["end"])), csv, ln)
                        for ln, r in enumerate(rows, start=2)]
        size = kwargs.get("img_size") or 128
        super().__init__(samples, reader=partial(read_aedat3, sensor_size=(128, 128)), reader_id="aedat3",
                         sensor_size=(128, 128), classes=list(GESTURE_CLASSES), T=T, skip_bad_files=skip_bad_files,
                         transform=_event_transform(augment, transform, flip=False, roll=max(1, int(size) // 8)),
                         **kwargs)  # type: ignore[arg-type]
        if skipped:
            self.skipped = skipped + self.skipped
            warnings.warn(f"skipped {len(skipped)} recording(s) with bad labels or missing files; first: "
                          f"{skipped[0][1]}", stacklevel=2)


# ----------------------------------------------------------------------------------------------------------------------
# get_dataset entry point
# ----------------------------------------------------------------------------------------------------------------------

def build(kind: str, *, split: str, root: str | os.PathLike | None, info: object, T: int | None = None,
          img_size: int | None = None, **options: object) -> EventFrameDataset:
    """Build the event data set ``kind`` for :func:`spiking_transformers.data.get_dataset`."""
    T = int(T) if T is not None else int(info.default_T)  # type: ignore[attr-defined]
    if kind == "synthetic-events":
        from .synthetic import SaccadeConfig, write_synthetic_folder

        base = Path(root) if root is not None else default_cache_dir() / "synthetic-events"
        folder = write_synthetic_folder(base)
        s = SaccadeConfig().sensor
        options.setdefault("preload", True)  # 1,797 tiny samples: integrate once, keep in memory
        options.setdefault("cache", False)
        ds: EventFrameDataset = NMNIST(folder, split, T=T, img_size=img_size, sensor_size=(s, s), **options)
    elif kind == "n-mnist":
        ds = NMNIST(root, split, T=T, img_size=img_size, **options)  # type: ignore[arg-type]
    elif kind == "cifar10-dvs":
        ds = CIFAR10DVS(root, split, T=T, img_size=img_size, **options)  # type: ignore[arg-type]
    elif kind == "dvs128-gesture":
        ds = DVS128Gesture(root, split, T=T, img_size=img_size, **options)  # type: ignore[arg-type]
    elif kind == "n-caltech101":
        # the canvas is not square: the registry's samples are always down-sampled to img_size x img_size
        img_size = int(img_size or info.img_size)  # type: ignore[attr-defined]
        ds = NCaltech101(root, split, T=T, img_size=img_size, **options)  # type: ignore[arg-type]
        if options.get("include_background"):
            info = replace(info, num_classes=info.num_classes + 1)  # type: ignore[type-var, attr-defined]
    else:
        raise KeyError(kind)
    ds.info = replace(info, img_size=int(img_size) if img_size else info.img_size,  # type: ignore[type-var]
                      default_T=T)
    return ds
