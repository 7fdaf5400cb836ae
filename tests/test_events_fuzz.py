"""Property-based fuzzing of every event reader: any bytes give events or our DataFormatError, never another
exception and never a hang; plus round-trip and frame-conservation properties on generated events."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiking_transformers.data import DataFormatError
from spiking_transformers.data.events import (EVENT_DTYPE, make_events, read_aedat2, read_aedat3,
                                              read_gesture_labels, read_nmnist_bin, write_aedat2, write_aedat3,
                                              write_nmnist_bin)
from spiking_transformers.data.frames import events_to_frames

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

A2_HEADER = b"#!AER-DAT2.0\r\n# fuzz\r\n"
A3_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"


def _events_or_our_error(fn, data: bytes, **kw) -> None:
    try:
        ev = fn(data, **kw)
    except DataFormatError as e:
        assert e.path is None and str(e).startswith("<bytes>")
        return
    assert ev.dtype == EVENT_DTYPE if fn is not read_gesture_labels else True


# packets: random 28-byte headers with plausible small fields, random bodies
_packet = st.builds(
    lambda etype, size, ovf, cap, num, body: struct.pack("<hhiiiiii", etype, 1, size, 4, ovf, cap, num, num) + body,
    st.sampled_from([0, 1, 1, 1, 2, -1]), st.sampled_from([8, 8, 0, 4, 16, -8]), st.integers(-1, 3),
    st.integers(-1, 6), st.integers(-1, 7), st.binary(max_size=64))


@FUZZ
@given(st.binary(max_size=400))
def test_nmnist_any_bytes(data):
    _events_or_our_error(read_nmnist_bin, data)
    _events_or_our_error(read_nmnist_bin, data, sensor_size=(34, 34))


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([b"", A2_HEADER, b"#!AER-DAT2.0"]),
       st.sampled_from(["spikingjelly", "raw"]))
def test_aedat2_any_bytes(data, prefix, orientation):
    _events_or_our_error(read_aedat2, prefix + data, orientation=orientation)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([b"", A3_HEADER, b"#!AER-DAT3.1\r\n"]))
def test_aedat3_any_bytes(data, prefix):
    _events_or_our_error(read_aedat3, prefix + data)


@FUZZ
@given(st.lists(_packet, max_size=6), st.binary(max_size=40))
def test_aedat3_random_packets(packets, tail):
    _events_or_our_error(read_aedat3, A3_HEADER + b"".join(packets) + tail, sensor_size=None)
    _events_or_our_error(read_aedat3, A3_HEADER + b"".join(packets))


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.text(alphabet="0123456789,-\n\r abc_", max_size=120).map(
                     lambda s: ("class,startTime_usec,endTime_usec\n" + s).encode())))
def test_gesture_labels_any_bytes(data):
    try:
        rows = read_gesture_labels(data)
    except DataFormatError:
        return
    assert (rows["start"] < rows["end"]).all() and ((0 <= rows["label"]) & (rows["label"] < 11)).all()


_events = st.integers(0, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 127), min_size=n, max_size=n), st.lists(st.integers(0, 127), min_size=n, max_size=n),
    st.lists(st.integers(0, 2 ** 23 - 1), min_size=n, max_size=n), st.lists(st.integers(0, 1), min_size=n,
                                                                             max_size=n)))


@FUZZ
@given(_events, st.integers(1, 500))
def test_round_trips_of_generated_events(tmp_path_factory, ev, per_packet):
    x, y, t, p = ev
    e = make_events(np.array(x, np.int64), np.array(y, np.int64), np.array(t, np.int64), np.array(p, np.int64))
    d = tmp_path_factory.mktemp("rt")
    nm = e[e["y"] != 240]
    write_nmnist_bin(d / "a.bin", nm)
    assert np.array_equal(read_nmnist_bin(d / "a.bin"), nm)
    write_aedat2(d / "a.aedat", e)
    assert np.array_equal(read_aedat2(d / "a.aedat"), e)
    write_aedat3(d / "b.aedat", e, per_packet=per_packet)
    assert np.array_equal(read_aedat3(d / "b.aedat"), e)


@FUZZ
@given(_events, st.integers(1, 9), st.sampled_from(["count", "time"]), st.sampled_from([None, 1, 7, 64, 128]))
def test_frames_conserve_events(ev, T, split_by, size):
    x, y, t, p = ev
    e = make_events(np.array(x, np.int64), np.array(y, np.int64), np.array(t, np.int64), np.array(p, np.int64))
    f = events_to_frames(e, T=T, sensor_size=(128, 128), split_by=split_by, size=size)
    assert f.shape == (T, 2, size or 128, size or 128) and f.sum() == len(e) and f.min() >= 0
    assert f[:, 1].sum() == int(e["p"].sum())
    if split_by == "count" and len(e) >= T:
        per = f.reshape(T, -1).sum(1)
        assert (per[:-1] == len(e) // T).all()


@pytest.mark.parametrize("reader", [read_nmnist_bin, read_aedat2, read_aedat3, read_gesture_labels])
def test_empty_input(reader):
    _events_or_our_error(reader, b"")


def _valid_files() -> dict[str, bytes]:
    import io

    rng = np.random.default_rng(0)
    e = make_events(rng.integers(0, 34, 40), rng.integers(0, 34, 40), np.sort(rng.integers(0, 2 ** 23, 40)),
                    rng.integers(0, 2, 40))
    out = {}
    for name, fn, kw in (("nmnist", write_nmnist_bin, {}), ("aedat2", write_aedat2, {}),
                         ("aedat3", write_aedat3, {"per_packet": 7})):
        b = io.BytesIO()
        fn(b, e, **kw)
        out[name] = b.getvalue()
    return out


_VALID = _valid_files()
_READERS = {"nmnist": read_nmnist_bin, "aedat2": read_aedat2, "aedat3": read_aedat3}


@FUZZ
@given(st.sampled_from(sorted(_VALID)), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                                 max_size=6), st.integers(0, 10 ** 6))
def test_mutated_valid_files(fmt, flips, cut):
    data = bytearray(_VALID[fmt])
    for pos, val in flips:
        data[pos % len(data)] = val
    data = bytes(data[:max(cut % (len(data) + 1), 0)]) if cut % 3 == 0 else bytes(data)
    _events_or_our_error(_READERS[fmt], data)
