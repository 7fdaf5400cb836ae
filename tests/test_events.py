"""Event formats: round trips, equivalence with the spec's reference readers, errors, frames, cache, data sets."""

from __future__ import annotations

import os
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spiking_transformers.data import DataFormatError, get_dataset, time_major_collate
from spiking_transformers.data.event_datasets import CIFAR10_CLASSES, CIFAR10DVS, NMNIST, DVS128Gesture
from spiking_transformers.data.events import (EVENT_DTYPE, GESTURE_LABEL_DTYPE, as_events, describe_events,
                                              detect_format, make_events, read_aedat2, read_aedat3, read_events,
                                              read_gesture_labels, read_nmnist_bin, write_aedat2, write_aedat3,
                                              write_gesture_labels, write_nmnist_bin)
from spiking_transformers.data.frames import FrameCache, events_to_frames


def rand_events(n: int, w: int, h: int, tmax: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, tmax, n)),
                       rng.integers(0, 2, n))


# ----------------------------------------------------------------------------------------------------------------------
# reference readers and writers of ../shared/specs/data.md appendix A (tested there against tonic 1.7.0)
# ----------------------------------------------------------------------------------------------------------------------

def ref_write_nmnist_bin(path, x, y, t_us, p):
    t = np.asarray(t_us, np.uint32)
    b = np.empty((len(t), 5), np.uint8)
    b[:, 0] = x
    b[:, 1] = y
    b[:, 2] = (np.asarray(p, np.uint32) << 7) | ((t >> 16) & 0x7F)
    b[:, 3] = (t >> 8) & 0xFF
    b[:, 4] = t & 0xFF
    b.tofile(path)


def ref_read_nmnist_bin(path):
    r = np.fromfile(path, np.uint8).reshape(-1, 5).astype(np.uint32)
    r = r[r[:, 1] != 240]
    t = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    return r[:, 0], r[:, 1], t, r[:, 2] >> 7


def ref_write_aedat2_dvs128(path, x, y, t_us, p):
    addr = (np.asarray(y, np.uint32) << 8) | (np.asarray(x, np.uint32) << 1) | np.asarray(p, np.uint32)
    ev = np.empty(len(addr), dtype=[("addr", ">u4"), ("t", ">u4")])
    ev["addr"] = addr
    ev["t"] = t_us
    with open(path, "wb") as f:
        f.write(b"#!AER-DAT2.0\r\n# Data format is int32 address, int32 timestamp (8 bytes total)\r\n"
                b"# Timestamps tick is 1 us\r\n")
        f.write(ev.tobytes())


def ref_read_aedat2_dvs128(path):
    raw = open(path, "rb").read()
    i = 0
    while raw.startswith(b"#", i):
        i = raw.index(b"\n", i) + 1
    a, t = np.frombuffer(raw, ">u4", offset=i).reshape(-1, 2).T
    return (a >> 1) & 0x7F, (a >> 8) & 0x7F, t, a & 1


def ref_write_aedat31_polarity(path, x, y, t_us, p, per_packet=4096):
    with open(path, "wb") as f:
        f.write(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n")
        for s in range(0, len(t_us), per_packet):
            sl = slice(s, s + per_packet)
            n = len(t_us[sl])
            f.write(struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, n, n, n))
            ev = np.empty(n, dtype=[("data", "<u4"), ("ts", "<i4")])
            ev["data"] = ((np.asarray(x[sl], np.uint32) << 17) | (np.asarray(y[sl], np.uint32) << 2)
                          | (np.asarray(p[sl], np.uint32) << 1) | 1)
            ev["ts"] = t_us[sl]
            f.write(ev.tobytes())


def ref_read_aedat31_polarity(path):
    raw = open(path, "rb").read()
    i = raw.index(b"#!END-HEADER\r\n") + 14
    out = []
    while i + 28 <= len(raw):
        etype, _src, esize, _off, ovf, cap, num, _valid = struct.unpack_from("<hhiiiiii", raw, i)
        i += 28
        if etype == 1 and esize == 8:
            e = np.frombuffer(raw, dtype=[("data", "<u4"), ("ts", "<i4")], count=num, offset=i)
            ok = (e["data"] & 1) == 1
            d = e["data"][ok]
            ts = e["ts"][ok].astype(np.int64) | (np.int64(ovf) << 31)
            out.append(((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, ts, (d >> 1) & 1))
        i += cap * esize
    return tuple(np.concatenate(c) for c in zip(*out))


def fields(ev):
    return [ev[k].astype(np.int64) for k in ("x", "y", "t", "p")]


# ----------------------------------------------------------------------------------------------------------------------
# round trips and reference equivalence
# ----------------------------------------------------------------------------------------------------------------------

def test_nmnist_round_trip_and_reference(tmp_path):
    ev = rand_events(1000, 34, 34, 2 ** 23)
    write_nmnist_bin(tmp_path / "a.bin", ev)
    back = read_nmnist_bin(tmp_path / "a.bin", sensor_size=(34, 34))
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, ev)
    for ours, ref in zip(fields(back), ref_read_nmnist_bin(tmp_path / "a.bin")):
        np.testing.assert_array_equal(ours, ref)
    ref_write_nmnist_bin(tmp_path / "b.bin", *fields(ev))
    assert (tmp_path / "b.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()
    assert np.array_equal(read_nmnist_bin((tmp_path / "a.bin").read_bytes()), ev)  # bytes work too
    # an overflow marker (y == 240) is dropped, as by the reference
    raw = bytearray((tmp_path / "a.bin").read_bytes())
    raw[5 * 3 + 1] = 240
    got = read_nmnist_bin(bytes(raw))
    assert len(got) == 999 and np.array_equal(got, np.delete(ev, 3))


def test_nmnist_hand_decoded_bytes():
    # x=3, y=7, ON, t=0x012345 ; x=33, y=0, OFF, t=5
    raw = bytes([3, 7, 0x80 | 0x01, 0x23, 0x45, 33, 0, 0x00, 0x00, 0x05])
    ev = read_nmnist_bin(raw)
    assert ev.tolist() == [(3, 7, 0x012345, 1), (33, 0, 5, 0)]


@pytest.mark.parametrize("orientation", ["spikingjelly", "raw"])
def test_aedat2_round_trip_and_reference(tmp_path, orientation):
    ev = rand_events(1000, 128, 128, 2 ** 32 - 1, seed=1)
    write_aedat2(tmp_path / "a.aedat", ev, orientation=orientation)
    back = read_aedat2(tmp_path / "a.aedat", orientation=orientation)
    np.testing.assert_array_equal(back, ev)
    xr, yr, t, bit = (v.astype(np.int64) for v in ref_read_aedat2_dvs128(tmp_path / "a.aedat"))
    x, y, tt, p = fields(back)
    np.testing.assert_array_equal(tt, t)
    if orientation == "raw":
        assert (x == xr).all() and (y == yr).all() and (p == bit).all()
    else:  # spikingjelly: x = 127 - y_raw, y = 127 - x_raw, p = 1 - bit0 (spec part 2.2)
        assert (x == 127 - yr).all() and (y == 127 - xr).all() and (p == 1 - bit).all()
    ref_write_aedat2_dvs128(tmp_path / "r.aedat", *fields(ev))
    np.testing.assert_array_equal(read_aedat2(tmp_path / "r.aedat", orientation="raw"), ev)
    assert detect_format(tmp_path / "r.aedat") == "aedat2"


def test_aedat2_special_events_and_wrap(tmp_path):
    hdr = b"#!AER-DAT2.0\r\n"
    pairs = np.array([[(5 << 8) | (9 << 1) | 1, 100], [1 << 15, 150], [(1 << 8) | (2 << 1), 2 ** 32 - 10],
                      [(3 << 8), 20]], ">u4")
    ev = read_aedat2(hdr + pairs.tobytes(), orientation="raw")
    assert ev.tolist() == [(9, 5, 100, 1), (2, 1, 2 ** 32 - 10, 0), (0, 3, 2 ** 32 + 20, 0)]
    bad = np.array([[1 << 16, 0]], ">u4")
    with pytest.raises(DataFormatError, match=r"<bytes>: byte 14: address 0x00010000 is outside"):
        read_aedat2(hdr + bad.tobytes())


def test_aedat3_round_trip_reference_and_overflow(tmp_path):
    ev = rand_events(1000, 128, 128, 2 ** 31 - 1, seed=2)
    write_aedat3(tmp_path / "a.aedat", ev, per_packet=300)
    back = read_aedat3(tmp_path / "a.aedat")
    np.testing.assert_array_equal(back, ev)
    for ours, ref in zip(fields(back), ref_read_aedat31_polarity(tmp_path / "a.aedat")):
        np.testing.assert_array_equal(ours, ref)
    ref_write_aedat31_polarity(tmp_path / "r.aedat", *fields(ev), per_packet=256)
    np.testing.assert_array_equal(read_aedat3(tmp_path / "r.aedat"), ev)
    assert detect_format(tmp_path / "r.aedat") == "aedat3"
    # timestamps past 2**31 go through eventTSOverflow
    big = make_events([1, 2, 3], [4, 5, 6], [2 ** 31 - 1, 2 ** 31, 3 * 2 ** 31 + 7], [0, 1, 1])
    write_aedat3(tmp_path / "o.aedat", big)
    np.testing.assert_array_equal(read_aedat3(tmp_path / "o.aedat"), big)
    for ours, ref in zip(fields(big), ref_read_aedat31_polarity(tmp_path / "o.aedat")):
        np.testing.assert_array_equal(ours, ref)


def test_aedat3_skips_other_packets_and_invalid_events():
    hdr = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n"
    # a special-event packet (type 0, size 8, capacity 2) holding junk, then polarity with one invalid event,
    # and spare capacity (capacity 3, number 2)
    special = struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 2, 2, 2) + bytes(range(16))
    body = np.zeros(3, [("data", "<u4"), ("ts", "<i4")])
    body["data"] = [(5 << 17) | (6 << 2) | 2 | 1, (7 << 17) | 0, 0xFFFFFFFF]
    body["ts"] = [10, 11, 12]
    pol = struct.pack("<hhiiiiii", 1, 1, 8, 4, 1, 3, 2, 1) + body.tobytes()
    ev = read_aedat3(hdr + special + pol, sensor_size=None)
    assert ev.tolist() == [(5, 6, 10 | (1 << 31), 1)]


def test_gesture_labels_round_trip(tmp_path):
    rows = np.array([(0, 1000, 2000), (10, 2000, 5000)], GESTURE_LABEL_DTYPE)
    write_gesture_labels(tmp_path / "l.csv", rows)
    assert (tmp_path / "l.csv").read_text().splitlines()[:2] == ["class,startTime_usec,endTime_usec", "1,1000,2000"]
    np.testing.assert_array_equal(read_gesture_labels(tmp_path / "l.csv"), rows)


def test_tonic_style_arrays_and_describe():
    tonic_like = np.zeros(3, dtype=[("x", int), ("y", int), ("p", bool), ("t", int)])
    tonic_like["x"], tonic_like["p"], tonic_like["t"] = [1, 2, 3], [True, False, True], [5, 6, 9]
    ev = as_events(tonic_like)
    assert ev.dtype == EVENT_DTYPE and ev["p"].tolist() == [1, 0, 1]
    d = describe_events(ev)
    assert d["events"] == 3 and d["duration_us"] == 4 and d["width"] == 4 and d["on_fraction"] == pytest.approx(2 / 3)
    assert describe_events(np.empty(0, EVENT_DTYPE))["events"] == 0


# ----------------------------------------------------------------------------------------------------------------------
# bad input: our error, naming the file, the byte offset or line and the expectation
# ----------------------------------------------------------------------------------------------------------------------

def test_errors_name_file_offset_and_expectation(tmp_path):
    ev = rand_events(10, 34, 34, 1000)
    p = tmp_path / "t.bin"
    write_nmnist_bin(p, ev)
    p.write_bytes(p.read_bytes()[:-2])
    with pytest.raises(DataFormatError) as e:
        read_nmnist_bin(p)
    assert e.value.path == str(p) and e.value.offset == 45 and "5 bytes per event" in str(e.value)
    with pytest.raises(DataFormatError, match="file not found"):
        read_nmnist_bin(tmp_path / "missing.bin")
    with pytest.raises(DataFormatError, match=r"byte 10: N-MNIST event at x=40, y=1 lies outside the 34x34 sensor"):
        read_nmnist_bin(bytes([1, 1, 0, 0, 0, 2, 2, 0, 0, 1, 40, 1, 0, 0, 2]), sensor_size=(34, 34))

    a2 = tmp_path / "c.aedat"
    write_aedat2(a2, rand_events(5, 128, 128, 1000))
    raw = a2.read_bytes()
    a2.write_bytes(raw[:-3])
    with pytest.raises(DataFormatError, match=r"c.aedat: byte \d+: .*truncated.*expected big-endian"):
        read_aedat2(a2)
    with pytest.raises(DataFormatError, match=r"byte 0: not a AEDAT 2.0 file"):
        read_aedat2(b"#!AER-DAT3.1\r\n")
    with pytest.raises(DataFormatError, match="unterminated header line"):
        read_aedat2(b"#!AER-DAT2.0 no newline")

    a3 = tmp_path / "g.aedat"
    write_aedat3(a3, rand_events(50, 128, 128, 1000))
    raw = a3.read_bytes()
    hdr_len = raw.index(b"#!END-HEADER\r\n") + 14
    a3.write_bytes(raw[:-8])
    with pytest.raises(DataFormatError) as e:
        read_aedat3(a3)
    assert e.value.offset == hdr_len + 28 and "eventCapacity * eventSize" in str(e.value)
    with pytest.raises(DataFormatError, match="header has no #!END-HEADER"):
        read_aedat3(b"#!AER-DAT3.1\r\n")
    with pytest.raises(DataFormatError, match="truncated packet header"):
        read_aedat3(raw[:hdr_len + 10])
    out = make_events([200], [3], [5], [1])
    write_aedat3(a3, out)
    with pytest.raises(DataFormatError, match=r"byte \d+: AEDAT 3 event at x=200, y=3 lies outside the 128x128"):
        read_aedat3(a3)

    csv = tmp_path / "l.csv"
    csv.write_text("class,startTime_usec,endTime_usec\n1,10,20\n3,abc,40\n")
    with pytest.raises(DataFormatError, match=r"l.csv: line 3: bad row"):
        read_gesture_labels(csv)
    csv.write_text("class,startTime_usec,endTime_usec\n12,10,20\n")
    with pytest.raises(DataFormatError, match=r"line 2: class 12 out of range"):
        read_gesture_labels(csv)
    csv.write_text("cls,start,end\n")
    with pytest.raises(DataFormatError, match=r"line 1: bad header"):
        read_gesture_labels(csv)
    with pytest.raises(DataFormatError, match="unknown event format"):
        detect_format(csv)


def test_writers_refuse_unwritable_events(tmp_path):
    with pytest.raises(ValueError, match="overflow marker"):
        write_nmnist_bin(tmp_path / "a.bin", make_events([0], [240], [0], [0]))
    with pytest.raises(ValueError, match="2\\*\\*23|8388607"):
        write_nmnist_bin(tmp_path / "a.bin", make_events([0], [0], [2 ** 23], [0]))
    with pytest.raises(ValueError):
        write_aedat2(tmp_path / "a.aedat", make_events([128], [0], [0], [0]))
    with pytest.raises(ValueError):
        write_aedat3(tmp_path / "a.aedat", make_events([0], [0], [-1], [0]))


# ----------------------------------------------------------------------------------------------------------------------
# frames, hand-checked
# ----------------------------------------------------------------------------------------------------------------------

def test_frames_by_count_hand_checked():
    # 7 events, T = 3: d = 7 // 3 = 2 -> frames hold events [0,2), [2,4), [4,7) in time order
    ev = make_events(x=[0, 1, 2, 0, 1, 2, 0], y=[0, 0, 0, 1, 1, 1, 0], t=[60, 10, 20, 30, 40, 50, 70],
                     p=[1, 0, 1, 1, 0, 0, 1])
    f = events_to_frames(ev, T=3, sensor_size=(3, 2), split_by="count")
    assert f.shape == (3, 2, 2, 3) and f.dtype == np.int32 and f.sum() == 7
    # time order: t=10 (1,0,OFF), 20 (2,0,ON) | 30 (0,1,ON), 40 (1,1,OFF) | 50 (2,1,OFF), 60 (0,0,ON), 70 (0,0,ON)
    exp = np.zeros((3, 2, 2, 3), np.int32)
    exp[0, 0, 0, 1] = 1
    exp[0, 1, 0, 2] = 1
    exp[1, 1, 1, 0] = 1
    exp[1, 0, 1, 1] = 1
    exp[2, 0, 1, 2] = 1
    exp[2, 1, 0, 0] = 2
    np.testing.assert_array_equal(f, exp)
    # fewer events than frames: all in the last frame
    g = events_to_frames(ev[:2], T=4, sensor_size=(3, 2), split_by="count")
    assert g[:3].sum() == 0 and g[3].sum() == 2
    assert events_to_frames(ev[:0], T=2, sensor_size=(3, 2)).sum() == 0


def test_frames_by_time_hand_checked_and_last_event_kept():
    # t0 = 100, span D = 199 - 100 + 1 = 100 us, T = 4 -> windows of 25 us: [100,125) [125,150) [150,175) [175,200)
    ev = make_events(x=[0, 1, 1, 0, 1], y=[0, 0, 0, 0, 0], t=[100, 124, 125, 160, 199], p=[1, 1, 0, 0, 1])
    f = events_to_frames(ev, T=4, sensor_size=(2, 1), split_by="time")
    assert f.sum() == 5  # the last event (t = max) is counted, unlike tonic's n_time_bins
    exp = np.zeros((4, 2, 1, 2), np.int32)
    exp[0, 1, 0, 0] = 1
    exp[0, 1, 0, 1] = 1
    exp[1, 0, 0, 1] = 1
    exp[2, 0, 0, 0] = 1
    exp[3, 1, 0, 1] = 1
    np.testing.assert_array_equal(f, exp)
    single = make_events([1], [0], [5], [1])
    assert events_to_frames(single, T=3, sensor_size=(2, 1), split_by="time")[0, 1, 0, 1] == 1


def test_frames_downsample_sums_and_validates():
    ev = make_events(x=[0, 1, 2, 3], y=[0, 1, 2, 3], t=[0, 1, 2, 3], p=[1, 1, 1, 0])
    f = events_to_frames(ev, T=1, sensor_size=(4, 4), size=2)
    assert f.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(f[0, 1], [[2, 0], [0, 1]])
    np.testing.assert_array_equal(f[0, 0], [[0, 0], [0, 1]])
    with pytest.raises(ValueError, match="outside"):
        events_to_frames(ev, T=1, sensor_size=(3, 3))
    with pytest.raises(ValueError):
        events_to_frames(ev, T=0, sensor_size=(4, 4))
    with pytest.raises(ValueError):
        events_to_frames(ev, T=2, sensor_size=(4, 4), split_by="bins")


def test_frames_match_tonic_when_installed():
    tonic = pytest.importorskip("tonic")
    ev = rand_events(4325, 34, 34, 300_000, seed=5)
    ours = events_to_frames(ev, T=8, sensor_size=(34, 34), split_by="count")
    theirs = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), event_count=len(ev) // 8)(ev)
    np.testing.assert_array_equal(ours[:7], theirs[:7])


# ----------------------------------------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------------------------------------

def test_frame_cache_keys_every_setting_and_never_stale(tmp_path):
    f = tmp_path / "a.bin"
    write_nmnist_bin(f, rand_events(100, 34, 34, 1000))
    base = {"T": 4, "split_by": "count", "size": None}
    k = FrameCache.key(f, base)
    assert FrameCache.key(f, dict(base)) == k
    for change in ({"T": 5}, {"split_by": "time"}, {"size": 17}):
        assert FrameCache.key(f, {**base, **change}) != k
    cache = FrameCache(tmp_path / "cache")
    assert cache.get(k) is None
    frames = np.arange(24, dtype=np.int32).reshape(2, 3, 4) * 100
    cache.put(k, frames)
    np.testing.assert_array_equal(cache.get(k), frames)
    st = f.stat()
    write_nmnist_bin(f, rand_events(101, 34, 34, 1000, seed=9))  # the file changes -> a new key
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert FrameCache.key(f, base) != k

    # through a data set: a changed setting recomputes, the same setting reads the cache
    root = _nmnist_folder(tmp_path / "nm", per_class=1)
    c2 = tmp_path / "c2"
    x3 = NMNIST(root, "train", T=3, cache_dir=c2)[0][0]
    assert len(list(c2.rglob("*.npy"))) == 1
    assert NMNIST(root, "train", T=5, cache_dir=c2)[0][0].shape[0] == 5  # new setting: computed, not read
    assert len(list(c2.rglob("*.npy"))) == 2
    assert torch.equal(NMNIST(root, "train", T=3, cache_dir=c2)[0][0], x3)  # same setting: read back
    assert len(list(c2.rglob("*.npy"))) == 2
    f0 = root / "Train" / "0" / "00000.bin"
    write_nmnist_bin(f0, rand_events(7, 34, 34, 1000, seed=3))  # the recording changes: never a stale entry
    os.utime(f0, ns=(f0.stat().st_atime_ns, f0.stat().st_mtime_ns + 10 ** 9))
    assert float(NMNIST(root, "train", T=3, cache_dir=c2)[0][0].sum()) == 7


# ----------------------------------------------------------------------------------------------------------------------
# data sets on folders our writers produce
# ----------------------------------------------------------------------------------------------------------------------

def _nmnist_folder(root: Path, per_class: int = 2) -> Path:
    for split, seed in (("Train", 0), ("Test", 100)):
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                write_nmnist_bin(root / split / str(d) / f"{i:05d}.bin",
                                 rand_events(50 + d, 34, 34, 300_000, seed=seed + 10 * d + i))
    return root


def test_nmnist_dataset(tmp_path):
    root = _nmnist_folder(tmp_path / "N-MNIST")
    tr = get_dataset("n-mnist", "train", root=root, T=4, cache=False)
    te = get_dataset("nmnist", "test", root=root, T=4, img_size=17, cache=False, augment=True)
    assert len(tr) == 20 and len(te) == 20 and tr.classes == [str(d) for d in range(10)]
    x, y = tr[3]
    assert x.shape == (4, 2, 34, 34) and x.dtype == torch.float32 and y == 1 and float(x.sum()) == 50 + 1
    assert te[0][0].shape == (4, 2, 17, 17) and te.info.img_size == 17 and te.info.default_T == 4
    xb, yb = time_major_collate([tr[i] for i in range(3)])
    assert xb.shape == (4, 3, 2, 34, 34)
    with pytest.raises(DataFormatError, match="no Train or train folder"):
        NMNIST(tmp_path, "train")


def test_skip_bad_files_warns_and_counts(tmp_path):
    root = _nmnist_folder(tmp_path / "nm", per_class=1)
    bad = root / "Train" / "3" / "00000.bin"
    bad.write_bytes(bad.read_bytes()[:-1])
    (root / "Train" / "5" / "00000.bin").write_bytes(bytes([50, 1, 0, 0, 0]))  # x outside the 34x34 sensor
    with pytest.raises(DataFormatError, match="00000.bin"):
        NMNIST(root, "train", T=2, cache=False)[3]
    with pytest.warns(UserWarning, match=r"skipped 2 bad file\(s\) of 10"):
        ds = NMNIST(root, "train", T=2, cache=False, skip_bad_files=True)
    assert len(ds) == 8 and len(ds.skipped) == 2 and 3 not in ds.targets and 5 not in ds.targets


def test_cifar10dvs_dataset_split(tmp_path):
    for k, c in enumerate(CIFAR10_CLASSES):
        (tmp_path / c).mkdir()
        for i in range(20):
            write_aedat2(tmp_path / c / f"cifar10_{c}_{i}.aedat", rand_events(30, 128, 128, 10 ** 6, seed=k * 100 + i))
    tr = CIFAR10DVS(tmp_path, "train", T=2, img_size=32, cache=False)
    te = CIFAR10DVS(tmp_path, "test", T=2, img_size=32, cache=False)
    assert len(tr) == 180 and len(te) == 20 and tr.classes == list(CIFAR10_CLASSES)
    assert np.bincount(te.targets).tolist() == [2] * 10
    assert not {s.path for s in tr.samples} & {s.path for s in te.samples}
    again = CIFAR10DVS(tmp_path, "test", T=2, cache=False)
    assert [s.path for s in again.samples] == [s.path for s in te.samples]  # deterministic
    first = CIFAR10DVS(tmp_path, "test", T=2, cache=False, split_method="first")
    assert sorted(s.path.name for s in first.samples if s.label == 0) == ["cifar10_airplane_0.aedat",
                                                                         "cifar10_airplane_1.aedat"]
    x, _ = tr[0]
    assert x.shape == (2, 2, 32, 32) and float(x.sum()) == 30
    ds = get_dataset("cifar10-dvs", "train", root=tmp_path, T=3, img_size=16, cache=False, augment=True)
    assert ds[0][0].shape == (3, 2, 16, 16)


def _gesture_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    users = {"train": ["user01_lab", "user02_led"], "test": ["user24_natural"]}
    for split, names in users.items():
        (root / f"trials_to_{split}.txt").write_text("".join(f"{n}.aedat\n" for n in names))
        for j, n in enumerate(names):
            ev = rand_events(3000, 128, 128, 3_000_000, seed=j + (10 if split == "test" else 0))
            write_aedat3(root / f"{n}.aedat", ev)
            write_gesture_labels(root / f"{n}_labels.csv",
                                 np.array([(0, 100_000, 1_000_000), (4, 1_000_000, 2_000_000),
                                           (10, 2_000_000, 2_900_000)], GESTURE_LABEL_DTYPE))
    return root


def test_dvs128_gesture_dataset(tmp_path):
    root = _gesture_folder(tmp_path / "DvsGesture")
    tr = get_dataset("dvs128-gesture", "train", root=tmp_path, T=4, cache=False)  # parent folder works
    te = DVS128Gesture(root, "test", T=4, img_size=32, cache=False)
    assert len(tr) == 6 and len(te) == 3 and tr.targets == [0, 4, 10] * 2 and len(tr.classes) == 11
    ev = tr.events(1)
    assert ev["t"].min() >= 1_000_000 and ev["t"].max() < 2_000_000
    x, y = tr[1]
    assert x.shape == (4, 2, 128, 128) and float(x.sum()) == len(ev) and y == 4
    assert te[0][0].shape == (4, 2, 32, 32)
    # a labels CSV that does not match its recording: error naming the CSV line
    write_gesture_labels(root / "user24_natural_labels.csv",
                         np.array([(1, 100, 200_000), (2, 9_000_000, 9_500_000)], GESTURE_LABEL_DTYPE))
    bad = DVS128Gesture(root, "test", T=4, cache=False)
    with pytest.raises(DataFormatError, match=r"user24_natural_labels.csv: line 3: label window .* holds no events"):
        bad[1]
    with pytest.warns(UserWarning, match="skipped 1"):
        ok = DVS128Gesture(root, "test", T=4, cache=False, skip_bad_files=True)
    assert len(ok) == 1 and len(ok.skipped) == 1
    (root / "user02_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n1,5,x\n")
    with pytest.raises(DataFormatError, match="line 2"):
        DVS128Gesture(root, "train", T=4, cache=False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ok = DVS128Gesture(root, "train", T=4, cache=False, skip_bad_files=True)
    assert len(ok) == 3 and any("skipped 1" in str(m.message) for m in w)


def test_read_events_detects_formats(tmp_path):
    ev = rand_events(20, 34, 34, 1000)
    write_nmnist_bin(tmp_path / "a.bin", ev)
    write_aedat3(tmp_path / "g.aedat", ev)
    assert read_events(tmp_path / "a.bin")[1] == "nmnist"
    got, fmt = read_events(tmp_path / "g.aedat")
    assert fmt == "aedat3" and np.array_equal(got, ev)


def test_one_million_events_read_fast(tmp_path):
    ev = rand_events(1_000_000, 34, 34, 2 ** 23 - 1)
    write_nmnist_bin(tmp_path / "m.bin", ev)
    ev128 = rand_events(1_000_000, 128, 128, 10 ** 9)
    write_aedat2(tmp_path / "m2.aedat", ev128)
    write_aedat3(tmp_path / "m3.aedat", ev128)
    times = {}
    for name, fn in (("nmnist", lambda: read_nmnist_bin(tmp_path / "m.bin", sensor_size=(34, 34))),
                     ("aedat2", lambda: read_aedat2(tmp_path / "m2.aedat")),
                     ("aedat3", lambda: read_aedat3(tmp_path / "m3.aedat")),
                     ("frames", lambda: events_to_frames(ev128, T=16, sensor_size=(128, 128)))):
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        assert len(out) in (1_000_000, 16)
    print("1M-event timings (s):", {k: round(v, 3) for k, v in times.items()})
    assert max(times.values()) < 2.0  # well under a second on an idle core; slack for a contended CI machine


def test_frames_to_rgb_strip():
    from spiking_transformers.data.frames import frames_to_rgb_strip

    f = np.zeros((3, 2, 4, 5), np.int32)
    f[1, 1, 2, 3] = 4
    f[2, 0, 0, 0] = 2
    img = frames_to_rgb_strip(f, gap=1)
    assert img.shape == (4, 3 * 5 + 2, 3) and img.dtype == np.uint8
    assert tuple(img[2, 6 + 3]) == (255, 0, 0) and img[0, 12, 2] > 0 and tuple(img[0, 5]) == (128, 128, 128)
