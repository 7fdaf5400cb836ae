"""The built-in SYNTHETIC event data: the bundled digits through a simulated event camera, via N-MNIST files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking_transformers.data import dataset_info, get_dataset, time_major_collate
from spiking_transformers.data.events import EVENT_DTYPE, read_nmnist_bin
from spiking_transformers.data.images import load_digits_arrays
from spiking_transformers.data.synthetic import SaccadeConfig, simulate_saccades, write_synthetic_folder


def test_simulated_camera_properties():
    images, _ = load_digits_arrays()
    cfg = SaccadeConfig()
    a = simulate_saccades(images[:4] / 16.0, cfg)
    b = simulate_saccades(images[:4] / 16.0, cfg)
    assert len(a) == 4
    for ea, eb in zip(a, b):
        assert ea.dtype == EVENT_DTYPE and np.array_equal(ea, eb)  # deterministic
        assert 200 < len(ea) < 10_000
        assert (np.diff(ea["t"]) >= 0).all() and ea["t"].min() >= 0 and ea["t"].max() <= 3 * cfg.saccade_us
        assert ea["x"].min() >= 0 and ea["x"].max() < cfg.sensor and ea["y"].max() < cfg.sensor
        assert 0.3 < ea["p"].mean() < 0.7  # a closed path: as much brightening as darkening
        # every saccade produces events
        assert all(((ea["t"] >= k * cfg.saccade_us) & (ea["t"] < (k + 1) * cfg.saccade_us)).any() for k in range(3))
    assert len(simulate_saccades(np.zeros((1, 8, 8)), cfg)[0]) == 0  # a blank image gives no events
    brighter = simulate_saccades(images[:1] / 16.0, SaccadeConfig(threshold=0.4))[0]
    assert len(brighter) < len(a[0])  # a higher contrast threshold gives fewer events


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_folder(root)
    return root


def test_folder_is_nmnist_format_and_reused(synth_root):
    folder = write_synthetic_folder(synth_root)  # second call: reused, not regenerated
    assert (folder / "COMPLETE").is_file() and "SYNTHETIC" in (folder / "README.txt").read_text()
    files = sorted(folder.glob("*/*/*.bin"))
    assert len(files) == 1797
    assert len(list((folder / "Test").glob("*/*.bin"))) == 359
    ev = read_nmnist_bin(files[0], sensor_size=(16, 16))
    images, labels = load_digits_arrays()
    i = int(files[0].stem)
    assert files[0].parent.name == str(int(labels[i]))
    assert np.array_equal(ev, simulate_saccades(images[i:i + 1] / 16.0, first_index=i)[0])  # written = simulated


def test_synthetic_events_dataset_is_learnable(synth_root):
    info = dataset_info("synthetic-events")
    assert info.synthetic and "SYNTHETIC" in info.description
    tr = get_dataset("synthetic-events", "train", root=synth_root)
    te = get_dataset("digits-events", "test", root=synth_root, T=3, augment=True)
    assert len(tr) == 1438 and len(te) == 359
    x, y = tr[0]
    assert x.shape == (info.default_T, 2, 16, 16) and x.dtype == torch.float32 and 0 <= y < 10
    assert te[0][0].shape == (3, 2, 16, 16)
    xb, yb = time_major_collate([tr[i] for i in range(8)])
    assert xb.shape == (info.default_T, 8, 2, 16, 16) and yb.shape == (8,)
    # the labels are in the events: nearest class mean on the flattened frames is far above chance (10 %)
    xtr = np.stack([tr.frames(i).reshape(-1) for i in range(len(tr))]).astype(np.float64)
    te_plain = get_dataset("synthetic-events", "test", root=synth_root)
    xte = np.stack([te_plain.frames(i).reshape(-1) for i in range(len(te_plain))]).astype(np.float64)
    ytr, yte = np.array(tr.targets), np.array(te_plain.targets)
    means = np.stack([xtr[ytr == c].mean(0) for c in range(10)])
    pred = np.argmin(((xte[:, None, :] - means[None]) ** 2).sum(-1), 1)
    acc = (pred == yte).mean()
    print(f"nearest-class-mean accuracy on synthetic events: {acc:.3f}")
    assert acc > 0.6
