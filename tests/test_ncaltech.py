"""N-Caltech101 on folders our own writers produce: layout, classes, the fixed 9:1 split, frames, bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spiking_transformers.data import DataFormatError, dataset_info, get_dataset, time_major_collate
from spiking_transformers.data.event_datasets import CIFAR10DVS, NCALTECH101_BACKGROUND, NCaltech101
from spiking_transformers.data.events import make_events, write_aedat2, write_nmnist_bin
from spiking_transformers.data.images import SPLIT_SEED, stratified_split

# a few real class names; upper-case ones sort first by code point, as in torchvision's Caltech101
CLASSES = ["Faces_easy", "Leopards", "accordion", "airplanes"]


def rand_events(n: int, w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, 300_000, n)),
                       rng.integers(0, 2, n))


def _folder(root: Path, per_class: int = 10) -> Path:
    """``root/Caltech101/<class>/image_<nnnn>.bin`` plus the background class and an annotations sibling."""
    for k, c in enumerate([*CLASSES, NCALTECH101_BACKGROUND]):
        d = root / "Caltech101" / c
        d.mkdir(parents=True)
        for i in range(1, per_class + 1):
            # extents vary per recording, as in the real set; the largest uses the whole 240x180 canvas
            w, h = (240, 180) if i == 1 else (100 + 10 * i, 80 + 5 * i)
            write_nmnist_bin(d / f"image_{i:04d}.bin", rand_events(40 + k, w, h, seed=100 * k + i))
        ann = root / "Caltech101_annotations" / c
        ann.mkdir(parents=True)
        (ann / "annotation_0001.bin").write_bytes(b"\x01\x02\x03")  # not events: must never be read
    return root


def test_classes_layout_and_registry(tmp_path):
    root = _folder(tmp_path)
    tr = NCaltech101(root, "train", T=2, cache=False)
    assert tr.classes == CLASSES  # BACKGROUND_Google left out, code-point order
    assert NCaltech101(root / "Caltech101", "train", T=2, cache=False).classes == CLASSES  # the folder itself works
    bg = NCaltech101(root, "train", T=2, cache=False, include_background=True)
    assert bg.classes == sorted([*CLASSES, NCALTECH101_BACKGROUND]) and len(bg) == 45
    info = dataset_info("ncaltech101")
    assert (info.name, info.num_classes, info.in_chans, info.img_size, info.default_T, info.needs_root) == \
        ("n-caltech101", 101, 2, 64, 10, True)
    assert dataset_info("N_Caltech101").name == "n-caltech101"
    with pytest.raises(ValueError, match="root="):
        get_dataset("n-caltech101")
    assert get_dataset("n-caltech101", root=root, T=2, cache=False, include_background=True).info.num_classes == 102


def test_split_is_the_cifar10dvs_rule(tmp_path):
    root = _folder(tmp_path)
    tr = NCaltech101(root, "train", T=2, cache=False)
    te = NCaltech101(root, "test", T=2, cache=False)
    assert len(tr) == 36 and len(te) == 4 and np.bincount(te.targets).tolist() == [1] * 4
    assert not {s.path for s in tr.samples} & {s.path for s in te.samples}
    # exactly stratified_split(labels, 0.1, SPLIT_SEED) over the files sorted by class, then by number
    files = [root / "Caltech101" / c / f"image_{i:04d}.bin" for c in CLASSES for i in range(1, 11)]
    _, test_idx = stratified_split(np.repeat(np.arange(4), 10), 0.1, SPLIT_SEED)
    assert [s.path for s in te.samples] == [files[i] for i in np.sort(test_idx)]
    assert [s.path for s in NCaltech101(root, "test", T=2, cache=False).samples] == [s.path for s in te.samples]
    first = NCaltech101(root, "test", T=2, cache=False, split_method="first")
    assert [s.path.name for s in first.samples] == ["image_0001.bin"] * 4
    with pytest.raises(ValueError, match="split_method"):
        NCaltech101(root, "test", T=2, cache=False, split_method="last")
    # the same rule as CIFAR10-DVS, applied to the same class sizes
    for c in CLASSES:
        (tmp_path / "dvs" / c).mkdir(parents=True)
        for i in range(1, 11):
            write_aedat2(tmp_path / "dvs" / c / f"x_{i}.aedat", rand_events(3, 128, 128, seed=i))
    dvs = CIFAR10DVS(tmp_path / "dvs", "test", T=2, cache=False)
    assert [s.path.stem.split("_")[1] for s in dvs.samples] == [s.path.stem.split("_")[1].lstrip("0")
                                                                for s in te.samples]


def test_frames_sizes_counts_and_batches(tmp_path):
    root = _folder(tmp_path, per_class=3)
    native = NCaltech101(root, "train", T=3, cache=False)
    x, y = native[0]
    assert x.shape == (3, 2, 180, 240) and x.dtype == torch.float32 and y == 0 and float(x.sum()) == 40
    ds = get_dataset("n-caltech101", "train", root=root, T=4, cache=False)  # registry default: 64x64
    assert ds.info.img_size == 64 and ds.info.default_T == 4
    x64, _ = ds[0]
    assert x64.shape == (4, 2, 64, 64) and float(x64.sum()) == 40  # down-sampling sums: counts conserved
    xb, yb = time_major_collate([ds[i] for i in range(3)])
    assert xb.shape == (4, 3, 2, 64, 64) and yb.tolist() == sorted(yb.tolist())
    aug = get_dataset("ncaltech101", "train", root=root, T=2, img_size=32, cache=False, augment=True)
    assert "RandomHorizontalFlip" in repr(aug.transform) and "RandomRoll" in repr(aug.transform)
    torch.manual_seed(0)
    xa, _ = aug[0]
    assert xa.shape == (2, 2, 32, 32) and float(xa.sum()) == 40  # flip and roll lose no events


def test_frame_cache_is_used(tmp_path):
    root = _folder(tmp_path / "d", per_class=2)
    cache = tmp_path / "cache"
    a = get_dataset("n-caltech101", "train", root=root, T=2, img_size=16, cache_dir=cache)
    x = a[0][0]
    assert len(list(cache.rglob("*.npy"))) == 1
    assert torch.equal(get_dataset("n-caltech101", "train", root=root, T=2, img_size=16, cache_dir=cache)[0][0], x)
    get_dataset("n-caltech101", "train", root=root, T=3, img_size=16, cache_dir=cache)[0]  # new setting, new entry
    assert len(list(cache.rglob("*.npy"))) == 2


def test_bad_files_and_folders(tmp_path):
    root = _folder(tmp_path / "d", per_class=2)
    bad = root / "Caltech101" / "Leopards" / "image_0002.bin"
    ev = rand_events(5, 240, 180, seed=1)
    ev["x"][3] = 240  # outside the 240x180 canvas
    write_nmnist_bin(bad, ev)
    trunc = root / "Caltech101" / "accordion" / "image_0001.bin"
    trunc.write_bytes(trunc.read_bytes()[:-1])
    ds = NCaltech101(root, "train", T=2, cache=False, split_method="first")  # round(0.2) = 0 test files: all train
    i = [s.path for s in ds.samples].index(bad)
    with pytest.raises(DataFormatError, match=r"image_0002\.bin: byte 15: .*outside the 240x180 sensor"):
        ds[i]
    with pytest.warns(UserWarning, match=r"skipped 2 bad file\(s\) of 8"):
        ok = NCaltech101(root, "train", T=2, cache=False, split_method="first", skip_bad_files=True)
    assert len(ok) == 6 and {p for p, _ in ok.skipped} == {bad, trunc}
    with pytest.raises(DataFormatError, match="no class folders"):
        NCaltech101(tmp_path / "d" / "Caltech101_annotations" / "Leopards", "train")
    with pytest.raises(DataFormatError, match="folder not found"):
        NCaltech101(tmp_path / "missing", "train")
    only_bg = tmp_path / "bg"
    (only_bg / NCALTECH101_BACKGROUND).mkdir(parents=True)
    write_nmnist_bin(only_bg / NCALTECH101_BACKGROUND / "image_0001.bin", rand_events(3, 10, 10, seed=0))
    with pytest.raises(DataFormatError, match="no class folders other than BACKGROUND_Google"):
        NCaltech101(only_bg, "train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(NCaltech101(only_bg, "train", T=1, cache=False, include_background=True)) == 1
