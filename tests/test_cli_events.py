"""``spiking-transformers events FILE [--frames T] [--split-by count|time] [--png OUT.png]`` on recordings written
by the package's own writers, alone and inside the data sets' folder layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spiking_transformers.cli import main
from spiking_transformers.data.events import (GESTURE_LABEL_DTYPE, make_events, write_aedat2, write_aedat3,
                                              write_gesture_labels, write_nmnist_bin)
from spiking_transformers.data.frames import events_to_frames
from test_train_events import (GESTURE_TRIALS, write_cifar10dvs_folder, write_gesture_folder,
                               write_nmnist_folder)


def rand_events(n: int, w: int, h: int, tmax: int = 300_000, seed: int = 0, on: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 2, n) if on is None else (np.arange(n) < on).astype(int)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, tmax, n)), p)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["events", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_summary_of_every_written_format(tmp_path, capsys):
    ev = rand_events(1000, 34, 34, on=600)
    ev["t"] = np.linspace(1_000, 301_000, 1000).astype(np.int64)
    ev["x"][0], ev["y"][0] = 33, 33
    write_nmnist_bin(tmp_path / "digit.bin", ev)
    rc, out, err = run_cli(capsys, str(tmp_path / "digit.bin"))
    assert rc == 0 and err == ""
    assert "format: nmnist" in out and "events: 1,000" in out and "sensor: 34x34 (N-MNIST" in out
    assert "duration: 300.000 ms (300000 µs)" in out and "ON 600 / OFF 400 (60.0 % ON)" in out
    assert "time order: monotonic" in out and "label: unknown" in out
    assert "frames" not in out  # no integration unless asked

    write_nmnist_bin(tmp_path / "caltech.bin", rand_events(50, 200, 150))
    rc, out, _ = run_cli(capsys, str(tmp_path / "caltech.bin"), "--json")
    d = json.loads(out)
    assert rc == 0 and d["format"] == "nmnist" and (d["sensor_width"], d["sensor_height"]) == (240, 180)
    assert "N-Caltech101" in d["sensor_source"] and d["events"] == 50 and d["label"] is None and d["frames"] is None

    ev128 = rand_events(300, 128, 128, seed=3)
    write_aedat2(tmp_path / "c.aedat", ev128)
    write_aedat3(tmp_path / "g.aedat", ev128)
    for name, fmt in (("c.aedat", "aedat2"), ("g.aedat", "aedat3")):
        rc, out, _ = run_cli(capsys, str(tmp_path / name), "--json")
        d = json.loads(out)
        assert rc == 0 and d["format"] == fmt and d["events"] == 300 and d["sensor_width"] == 128
        assert d["on_fraction"] == pytest.approx(float(ev128["p"].mean()))

    (tmp_path / "empty.bin").write_bytes(b"")
    rc, out, _ = run_cli(capsys, str(tmp_path / "empty.bin"))
    assert rc == 0 and "events: 0" in out


def test_labels_from_the_data_set_layouts(tmp_path, capsys):
    write_nmnist_folder(tmp_path / "N-MNIST", {"Train": 1, "Test": 1}, n_events=20)
    rc, out, _ = run_cli(capsys, str(tmp_path / "N-MNIST" / "Test" / "7" / "00000.bin"))
    assert rc == 0 and "label: 7 (n-mnist class folder, class 7, test split)" in out

    write_cifar10dvs_folder(tmp_path / "CIFAR10DVS", per_class=1, n_events=20)
    rc, out, _ = run_cli(capsys, str(tmp_path / "CIFAR10DVS" / "cat" / "cifar10_cat_0.aedat"), "--json")
    assert rc == 0 and json.loads(out)["label"] == {"dataset": "cifar10-dvs", "source": "class folder",
                                                    "split": None, "class": "cat", "index": 3}

    folder = tmp_path / "Caltech101" / "accordion"
    folder.mkdir(parents=True)
    write_nmnist_bin(folder / "image_0001.bin", rand_events(30, 200, 150))
    rc, out, _ = run_cli(capsys, str(folder / "image_0001.bin"))
    assert rc == 0 and "label: accordion (n-caltech101 class folder)" in out

    root = write_gesture_folder(tmp_path, n_events=30, window_us=100_000)
    rec = root / f"{GESTURE_TRIALS['test'][0]}.aedat"
    rc, out, _ = run_cli(capsys, str(rec))
    assert rc == 0 and "label: 11 gesture(s) from user24_natural_labels.csv (dvs128-gesture, test split)" in out
    assert " 1 hand clap" in out and "50000 .. 150000 µs (100 ms), 30 events" in out
    assert "11 other gestures" in out and "NO EVENTS" not in out
    rc, out, _ = run_cli(capsys, str(rec), "--json")
    g = json.loads(out)["label"]["gestures"]
    assert [r["class"] for r in g] == list(range(1, 12)) and all(r["events"] == 30 for r in g)
    assert g[0] == {"line": 2, "class": 1, "name": "hand clap", "start_us": 50_000, "end_us": 150_000, "events": 30}

    # a window outside the recording is flagged (the data set would refuse it); a malformed CSV is an error
    csv = rec.with_name(rec.stem + "_labels.csv")
    write_gesture_labels(csv, np.array([(0, 50_000, 150_000), (3, 9_000_000, 9_100_000)], GESTURE_LABEL_DTYPE))
    rc, out, _ = run_cli(capsys, str(rec))
    assert rc == 0 and "2 gesture(s)" in out and "0 events  NO EVENTS: window outside the recording" in out
    csv.write_text("class,startTime_usec,endTime_usec\n1,5,x\n")
    rc, _, err = run_cli(capsys, str(rec))
    assert rc == 2 and "user24_natural_labels.csv: line 2: bad row" in err


def test_frames_npy_and_png(tmp_path, capsys):
    ev = rand_events(401, 34, 34, seed=1)
    write_nmnist_bin(tmp_path / "a.bin", ev)
    npy, png = tmp_path / "f.npy", tmp_path / "f.png"
    rc, out, err = run_cli(capsys, str(tmp_path / "a.bin"), "--frames", "4", "--split-by", "time", "--size", "17",
                           "--npy", str(npy), "--png", str(png))
    assert rc == 0 and err == ""
    f = np.load(npy)
    assert f.shape == (4, 2, 17, 17) and f.dtype == np.int32 and int(f.sum()) == 401
    assert np.array_equal(f, events_to_frames(ev, T=4, sensor_size=(34, 34), split_by="time", size=17))
    assert "frames: [4, 2, 17, 17] [T, 2, H, W], split by time" in out
    assert "per frame: " + " ".join(map(str, f.sum((1, 2, 3)))) + " events" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    scale = 8  # ceil(128 / 17): small frames are enlarged for viewing
    with Image.open(png) as im:
        # a 26-px band of frame labels (time window, events) sits above the frames
        assert im.size == ((4 * 17 + 3) * scale, 17 * scale + 26) and im.mode == "RGB"
    rc, out, _ = run_cli(capsys, str(tmp_path / "a.bin"), "--frames", "3", "--png", str(png), "--scale", "1")
    assert rc == 0 and "per frame: 133 133 135 events" in out  # by count: the last frame takes the remainder
    with Image.open(png) as im:
        assert im.size == (3 * 34 + 2, 34 + 26)
    rc, out, _ = run_cli(capsys, str(tmp_path / "a.bin"), "--frames", "3", "--png", str(png), "--scale", "1",
                         "--no-labels")
    with Image.open(png) as im:
        assert im.size == (3 * 34 + 2, 34)
    rc, out, _ = run_cli(capsys, str(tmp_path / "a.bin"), "--png", str(png), "--json")  # default 8 frames
    d = json.loads(out)
    assert rc == 0 and d["frames"]["shape"] == [8, 2, 34, 34] and sum(d["frames"]["events_per_frame"]) == 401
    assert d["frames"]["wrote"][0].startswith(str(png))
    write_aedat2(tmp_path / "c.aedat", rand_events(64, 128, 128, seed=2))
    rc, out, _ = run_cli(capsys, str(tmp_path / "c.aedat"), "--frames", "2", "--npy", str(npy))
    assert rc == 0 and np.load(npy).shape == (2, 2, 128, 128) and "sensor: 128x128 (DVS128)" in out


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    good = tmp_path / "a.bin"
    write_nmnist_bin(good, rand_events(10, 34, 34))
    trunc = tmp_path / "t.bin"
    trunc.write_bytes(good.read_bytes()[:-2])
    cases = [
        ([str(trunc)], [str(trunc), "byte 45", "5 bytes per event"]),
        ([str(trunc), "--frames", "2"], [str(trunc), "byte 45"]),
        ([str(tmp_path / "none.bin")], ["none.bin", "file not found"]),
        ([str(good), "--frames", "2", "--sensor", "20x20"], ["a.bin", "more than the given sensor 20x20"]),
        ([str(good), "--frames", "2", "--npy", str(tmp_path / "no" / "dir" / "f.npy")], ["f.npy"]),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    cases.append(([str(tmp_path / "notes.txt")], ["notes.txt", "byte 0", "unknown event format"]))
    bad_hdr = tmp_path / "h.aedat"
    bad_hdr.write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 9)
    cases.append(([str(bad_hdr)], ["h.aedat", "byte 22", "truncated"]))
    for argv, needles in cases:
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 2, argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("spiking-transformers events: error: "), err
        for needle in needles:
            assert needle in lines[0], (argv, lines[0])


@pytest.mark.parametrize("argv", [[], ["x.bin", "--frames"], ["x.bin", "--frames", "0"], ["x.bin", "--sensor", "34"],
                                  ["x.bin", "--frames", "2", "--split-by", "space"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["events", *argv])
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err
