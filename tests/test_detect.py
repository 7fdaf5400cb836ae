"""Spike-TransCNN detection: model, Gen1 readers (real byte layout, written by our writer), losses, COCO mAP by
pycocotools, the ``detect`` command and the energy report."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

import spiking_transformers as st
from spiking_transformers.data.errors import DataFormatError
from spiking_transformers.data.events import make_events
from spiking_transformers.detection import (BBOX_DTYPE, Gen1Detection, SyntheticDetectionConfig,
                                            SyntheticEventDetection, coco_map, decode_detections, detection_loss,
                                            fcos_targets, make_sample, read_bbox_npy, read_dat, write_bbox_npy,
                                            write_dat, write_synthetic_gen1)
from spiking_transformers.detection.losses import locations
from spiking_transformers.layers.attention.ssa import SpikingSelfAttention
from spiking_transformers.layers.attention.sts import SpikeTokenSelection
from spiking_transformers.models.spike_transcnn import SPIKE_TRANSCNN_TINY_KWARGS, TCJA, SpikeTransCNN

try:
    import pycocotools  # noqa: F401

    HAVE_COCO = True
except ImportError:  # the optional extra "detection" (part of "dev"); only the mAP tests need it
    HAVE_COCO = False
needs_coco = pytest.mark.skipif(not HAVE_COCO, reason="pycocotools (extra 'detection') is not installed")


def _tiny(**kw):
    torch.manual_seed(0)
    return SpikeTransCNN(**{**SPIKE_TRANSCNN_TINY_KWARGS, **kw})


def test_model_shapes_and_input_errors():
    m = _tiny()
    x = (torch.rand(4, 2, 2, 64, 96) < 0.2).float()
    out = m(x)
    assert out.shape == (2, 3 + 5, 16, 24) and torch.isfinite(out).all()
    feats = m.forward_features(x)
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 16, 24), (32, 8, 12), (64, 4, 6), (64, 2, 3)]
    with pytest.raises(ValueError, match=r"time-major event frames \[T, B, C, H, W\]"):
        m(x[0])
    with pytest.raises(ValueError, match="built for T=4 time bins"):
        m(x[:3])
    with pytest.raises(ValueError, match="expects 2 input channels, got 3"):
        m(torch.zeros(4, 1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32, got 48x64"):
        m(torch.zeros(4, 1, 2, 48, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        SpikeTransCNN(img_size=100)


def test_registered_as_a_detection_reconstruction():
    info = st.model_info("spike_transcnn_gen1")
    assert info.task == "detection" and info.input_kind == "events" and info.num_classes == 2
    assert "RECONSTRUCTION" in info.notes and "not public" in info.notes
    assert "spike_transcnn_gen1" not in st.list_models(task="classification")
    assert info.params > 10_000_000  # the Gen1 size (about 2x SFOD's parameters, as a reviewer says)


def test_sts_keeps_the_most_active_tokens_and_equals_ssa_when_keeping_all():
    torch.manual_seed(0)
    x = torch.zeros(2, 1, 8, 16)
    x[:, 0, [1, 4, 6]] = (torch.rand(2, 3, 16) < 0.8).float()  # three active tokens
    x[:, 0, 0, :2] = 1.0  # a weakly active one
    sts = SpikeTokenSelection(16, 2, keep_ratio=3 / 8).eval()
    assert sorted(sts.kept_tokens(x)[0].tolist()) == [1, 4, 6]
    y = sts(x)
    assert y.shape == x.shape and (y[:, :, [0, 2, 3, 5, 7]] == 0).all()
    full = SpikeTokenSelection(16, 2, keep_ratio=1.0).eval()
    ssa = SpikingSelfAttention(16, 2, kv_first=True).eval()
    ssa.load_state_dict(full.ssa.state_dict())
    x = (torch.rand(2, 3, 8, 16) < 0.5).float()
    torch.testing.assert_close(full(x), ssa(x))
    with pytest.raises(ValueError, match="keep_ratio"):
        SpikeTokenSelection(16, 2, keep_ratio=0.0)


def test_tcja_gate():
    g = TCJA(4, 8)(torch.randn(4, 3, 8, 5, 5))
    assert g.shape == (4, 3, 8, 1, 1) and ((g > 0) & (g < 1)).all()
    with pytest.raises(ValueError, match="built for T=4"):
        TCJA(4, 8)(torch.randn(3, 3, 8, 5, 5))


# --------------------------------------------------------------------------------------------------------------------
# Gen1 files


def _events():
    return make_events(np.array([0, 303, 17, 5]), np.array([0, 239, 100, 7]), np.array([10, 20, 20, 4_000_000_000]),
                       np.array([1, 0, 1, 0]))


def test_dat_byte_layout_and_round_trip(tmp_path):
    p = tmp_path / "rec_td.dat"
    write_dat(p, _events(), 304, 240)
    raw = p.read_bytes()
    header_end = raw.index(b"% Width 304\n") + len(b"% Width 304\n")
    assert all(line.startswith(b"% ") for line in raw[:header_end].splitlines())
    assert raw[header_end:header_end + 2] == bytes([0, 8])  # event type Event2D, 8-byte events
    body = raw[header_end + 2:]
    assert len(body) == 4 * 8
    # the second event: t = 20, x = 303, y = 239, OFF; the third: x = 17, y = 100, ON (bit 28)
    assert body[8:16] == struct.pack("<II", 20, 303 | (239 << 14))
    assert body[16:24] == struct.pack("<II", 20, 17 | (100 << 14) | (1 << 28))
    ev, sensor = read_dat(p)
    assert sensor == (304, 240)
    for k in ("x", "y", "t", "p"):
        assert ev[k].tolist() == _events()[k].tolist()


def test_dat_reader_errors(tmp_path):
    good = tmp_path / "good_td.dat"
    write_dat(good, _events(), 304, 240)
    raw = good.read_bytes()
    body = raw.index(b"% Width 304\n") + len(b"% Width 304\n")
    cases = {
        "truncated": (raw[:-3], "truncated event record"),
        "size": (raw[:body + 1] + bytes([16]) + raw[body + 2:], "event size 16 bytes"),
        "type": (raw[:body] + bytes([40]) + raw[body + 1:], "event type 40"),
        "noheader": (raw[body + 2:], "no '% ' header line"),
        "short": (raw[:body], "file ends after the header"),
        "outside": (raw.replace(b"% Width 304", b"% Width 200"), "outside the 200x240 sensor"),
        "back": (raw[:body + 2] + struct.pack("<II", 50, 1) + struct.pack("<II", 40, 1), "goes back in time"),
    }
    for name, (data, msg) in cases.items():
        p = tmp_path / f"{name}_td.dat"
        p.write_bytes(data)
        with pytest.raises(DataFormatError, match=msg) as e:
            read_dat(p)
        assert "\n" not in str(e.value) and p.name in str(e.value), name
    with pytest.raises(DataFormatError, match="file not found"):
        read_dat(tmp_path / "nope.dat")


def test_bbox_npy_round_trip_and_errors(tmp_path):
    rows = np.zeros(2, BBOX_DTYPE)
    rows["ts"] = [50_000, 50_000]
    rows["x"], rows["y"], rows["w"], rows["h"], rows["class_id"] = [1, 2], [3, 4], [10, 20], [30, 40], [0, 1]
    p = tmp_path / "a_bbox.npy"
    write_bbox_npy(p, rows)
    back = read_bbox_npy(p)
    assert back.dtype == BBOX_DTYPE and np.array_equal(back, rows)
    # older files name the timestamp "t"
    old = np.zeros(1, [("t", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "u1")])
    old["t"] = 7
    np.save(tmp_path / "old_bbox.npy", old)
    assert read_bbox_npy(tmp_path / "old_bbox.npy")["ts"].tolist() == [7]
    bad = {
        "plain": (np.zeros((2, 5), np.float32), "is not a 1-D structured array"),
        "field": (np.zeros(1, [("ts", "<u8"), ("x", "<f4"), ("y", "<f4")]), "missing field"),
        "neg": (np.array([(1, 0, 0, -5, 4, 0, 1, 0)], BBOX_DTYPE), "negative size"),
    }
    for name, (arr, msg) in bad.items():
        q = tmp_path / f"{name}_bbox.npy"
        np.save(q, arr)
        with pytest.raises(DataFormatError, match=msg) as e:
            read_bbox_npy(q)
        assert "\n" not in str(e.value)
    (tmp_path / "junk_bbox.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataFormatError, match="not a readable .npy array"):
        read_bbox_npy(tmp_path / "junk_bbox.npy")


def test_gen1_folder_reads_back_the_synthetic_recordings(tmp_path):
    cfg = SyntheticDetectionConfig()
    write_synthetic_gen1(tmp_path / "val", 3, cfg, seed=5)
    ds = Gen1Detection(tmp_path, "val", T=cfg.T, window_us=cfg.window_us, size=(64, 64), num_classes=3,
                       min_diag=0, min_side=0)
    ref = SyntheticEventDetection(3, cfg, seed=5)
    assert len(ds) == 3 and ds.sensor == (64, 64)
    for i in range(3):
        (x, t), (xr, tr) = ds[i], ref[i]
        assert torch.equal(x, xr) and x.sum() > 0
        torch.testing.assert_close(t["boxes"], tr["boxes"])
        assert torch.equal(t["labels"], tr["labels"])
    # a recording without its boxes, and a class the data set does not have
    (tmp_path / "val" / "synthetic_000005_bbox.npy").unlink()
    with pytest.raises(DataFormatError, match="box file of synthetic_000005_td.dat is missing"):
        Gen1Detection(tmp_path, "val")
    _, rows = make_sample(cfg, 5)
    rows["class_id"] = 2
    write_bbox_npy(tmp_path / "val" / "synthetic_000005_bbox.npy", rows)
    with pytest.raises(DataFormatError, match="class_id 2 is not a class"):
        Gen1Detection(tmp_path, "val", num_classes=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"no \*_td.dat event files"):
        Gen1Detection(tmp_path / "empty", "train")


def test_synthetic_set_is_reproducible_with_boxes_on_the_events():
    a, b = SyntheticEventDetection(4, seed=3), SyntheticEventDetection(4, seed=3)
    x, t = a[0]
    assert x.shape == (4, 2, 64, 64) and torch.equal(x, b[0][0])
    assert not torch.equal(x, SyntheticEventDetection(1, seed=4)[0][0])
    for i in range(4):
        x, t = a[i]
        last = x[-1].sum(0)
        for box in t["boxes"].round().long().tolist():  # the last bin has events inside every box
            x0, y0, x1, y1 = box
            assert last[y0:y1, x0:x1].sum() > 0
        assert (t["labels"] >= 0).all() and (t["labels"] < 3).all()


# --------------------------------------------------------------------------------------------------------------------
# targets, losses, decoding, mAP


def test_fcos_targets_by_hand():
    locs = locations(4, 4, 4)  # centres 2, 6, 10, 14
    cls, box, ctr = fcos_targets(torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 4.0, 8.0, 8.0]]),
                                 torch.tensor([1, 0]), locs, 4, radius=1.0)
    grid = cls.view(4, 4)
    # the small box claims the location (6, 6) (its centre cell); the big box the others within 4 px of (8, 8)
    assert grid[1, 1] == 0 and grid[1, 2] == 1 and grid[2, 2] == 1 and grid[0, 0] == -1
    assert ctr.view(4, 4)[1, 1] == pytest.approx(1.0) and (ctr[cls < 0] == 0).all()
    torch.testing.assert_close(box.view(4, 4, 4)[2, 2], torch.tensor([0.0, 0.0, 16.0, 16.0]))


def test_decode_recovers_an_encoded_box():
    K, s = 2, 4
    out = torch.full((1, K + 5, 8, 8), -10.0)
    # location (row 3, col 5) = (22, 14): box (10, 4, 30, 26) -> distances l 12, t 10, r 8, b 12
    out[0, 1, 3, 5] = 10.0
    out[0, K:K + 4, 3, 5] = torch.log(torch.tensor([12.0, 10.0, 8.0, 12.0]) / s)
    out[0, K + 4, 3, 5] = 10.0
    det = decode_detections(out, s)[0]
    assert len(det["boxes"]) == 1 and det["labels"].tolist() == [1] and det["scores"][0] > 0.99
    torch.testing.assert_close(det["boxes"][0], torch.tensor([10.0, 4.0, 30.0, 26.0]))


@needs_coco
def test_coco_map_by_pycocotools():
    gts = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 40.0], [40.0, 5.0, 60.0, 20.0]]), "labels": torch.tensor([0, 1])},
           {"boxes": torch.tensor([[0.0, 0.0, 20.0, 20.0]]), "labels": torch.tensor([2])}]
    perfect = [{**g, "scores": torch.ones(len(g["labels"]))} for g in gts]
    r = coco_map(perfect, gts, 3)
    assert r["map"] == pytest.approx(1.0) and r["map50"] == pytest.approx(1.0)
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    r = coco_map(empty, gts, 3)
    assert r["map"] == 0.0 and r["map50"] == 0.0
    # boxes at IoU 0.6 with their truth: found at IoU 0.5, missed from 0.65 up
    shifted = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 40.0 * 0.6 + 10 * 0.4]]), "labels": torch.tensor([0]),
                "scores": torch.ones(1)}, empty[0]]
    r = coco_map(shifted, gts[:1] + [gts[1]], 3)
    assert 0.0 < r["map"] < r["map50"]
    with pytest.raises(ValueError, match="2 predictions for 1"):
        coco_map(empty, gts[:1], 3)


def test_missing_pycocotools_is_one_line(monkeypatch):
    import sys

    from spiking_transformers.cli import main

    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(ImportError, match=r"spiking-transformers\[detection\]") as e:
        coco_map([], [], 1)
    assert "\n" not in str(e.value)
    assert main(["detect", "--train-steps", "0"]) != 0


def test_loss_decreases_on_a_fixed_batch():
    data = SyntheticEventDetection(4, seed=11)
    x = torch.stack([data[i][0] for i in range(4)], 1)
    targets = [data[i][1] for i in range(4)]
    m = _tiny()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, parts = detection_loss(m(x), targets, m.stride)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert parts["positives"] > 4 and all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


# --------------------------------------------------------------------------------------------------------------------
# commands


@needs_coco
def test_detect_command_tiny_run(tmp_path, capsys):
    from PIL import Image

    from spiking_transformers.cli import main

    png = tmp_path / "boxes.png"
    rc = main(["detect", "--train-steps", "2", "--train-samples", "8", "--val-samples", "4", "--batch", "4",
               "--png", str(png), "--energy", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["map"] <= out["map50"] <= 1.0 and out["baseline_empty"]["map"] == 0.0
    assert 0.0 <= out["baseline_mean_box"]["map50"] <= 1.0 and "reconstruction" in out["model"]
    assert out["energy"]["firing_rate"] > 0 and out["energy"]["energy_uj"] > 0
    assert Image.open(png).size[0] > 64


@needs_coco
def test_detect_command_on_a_gen1_folder(tmp_path, capsys):
    from spiking_transformers.cli import main

    cfg = SyntheticDetectionConfig(T=5, window_us=50_000, min_size=16, max_size=22)
    write_synthetic_gen1(tmp_path / "gen1" / "train", 3, cfg, seed=0)
    write_synthetic_gen1(tmp_path / "gen1" / "val", 2, cfg, seed=100)
    # the Gen1 classes are car / pedestrian: keep the shapes to classes 0, 1
    for f in (tmp_path / "gen1").rglob("*_bbox.npy"):
        rows = read_bbox_npy(f)
        rows["class_id"] %= 2
        write_bbox_npy(f, rows)
    rc = main(["detect", "--data", str(tmp_path / "gen1"), "--train-steps", "1", "--batch", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["val_samples"] == 2 and 0.0 <= out["map50"] <= 1.0


def test_energy_command_on_the_detector(capsys):
    from spiking_transformers.cli import main

    assert main(["energy", "spike_transcnn_gen1", "--tiny"]) == 0
    out = capsys.readouterr().out
    assert "stages.0.0.stb.attn" in out and "head.pred" in out and "firing rate" in out


@pytest.mark.slow
@needs_coco
def test_detector_learns_the_synthetic_set():
    from spiking_transformers.detection import evaluate_detector, mean_box_baseline, train_detector

    torch.manual_seed(0)
    train, val = SyntheticEventDetection(512, seed=1_000_000), SyntheticEventDetection(64, seed=0)
    m = _tiny()
    losses = train_detector(m, train, steps=300, batch_size=16, lr=4e-3)
    r = evaluate_detector(m, val, 3)
    base = mean_box_baseline(train, val, 3)
    assert losses[-1] < 0.6 * losses[0]
    assert base["map50"] < 0.1
    assert r["map50"] > 0.3, r  # measured: see docs (README detection table)
