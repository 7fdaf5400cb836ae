"""benchmarks/peers.py: row parsing, the table of a record, and --from-json (no timing: a synthetic record)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"


def _peers():
    spec = importlib.util.spec_from_file_location("peers_under_test", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _record() -> dict:
    def cell(times, peak_gb, rnd=0):
        return dict(times_s=times, peak_rss_bytes=int(peak_gb * 1e9), load_during=[1.5, 2.0], round=rnd, wall_s=1.0)

    return dict(
        rows=[dict(model="spikformer", mode="train", batch=32), dict(model="sdt", mode="eval", batch=64)],
        columns=["sj_compiled", "ours_cpp", "ours_best"], threads=2, rounds=2, repeats=2, warmup=1,
        started_utc="2026-12-06 06:00 UTC", wall_s=10.0,
        machine=dict(cpu="Test CPU", logical_cpus=2, torch="2.13.0", cpu_flags_of_note=["avx", "avx2"]),
        load_before=[1.0, 1.0, 1.0], load_after=[2.0, 2.0, 2.0],
        results={
            "spikformer:train:32": {"sj_compiled": [cell([4.0, 4.2], 3.0), cell([4.4, 4.0], 3.1, 1)],
                                    "ours_cpp": [cell([3.5, 3.7], 3.5)], "ours_best": [cell([3.8, 3.8], 2.5)]},
            "sdt:eval:64": {"sj_compiled": [cell([4.0], 2.0)], "ours_cpp": [], "ours_best": [cell([3.0], 1.0)]},
        },
        skipped={"spikformer:train:32": {}, "sdt:eval:64": {"ours_cpp": "boom"}},
    )


def test_parse_row():
    peers = _peers()
    assert peers.parse_row("sdt:eval:64") == dict(model="sdt", mode="eval", batch=64)
    for bad in ("sdt:eval", "vit:train:32", "sdt:infer:8", "sdt:train:0", "sdt:train:x"):
        with pytest.raises(SystemExit, match="MODEL:MODE:BATCH"):
            peers.parse_row(bad)


def test_table_medians_ratios_and_machine():
    peers = _peers()
    text = peers.table(_record())
    lines = text.splitlines()
    # medians over every timed step of every round (4.0, 4.2, 4.4, 4.0 -> 4.1), largest peak of the rounds
    assert "| Spikformer-4-384 train b32 | 4.10 / 3.10 | 3.60 / 3.50 | 3.80 / 2.50 | 0.88, 1.13 (ours_cpp) | 0.93 (ours_best) |" in lines
    assert "| SDT-2-512 eval b64 | 4.00 / 2.00 | skipped: boom | 3.00 / 1.00 | 0.75, 0.50 (ours_best) | 0.75 (ours_best) |" in lines
    assert "Test CPU (2 logical CPUs; flags avx avx2)" in text and "1.00 before, 1.50-2.00 during" in text


def test_from_json_prints_the_table(tmp_path):
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(_record()))
    out = subprocess.run([sys.executable, str(_PATH), "--from-json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == _peers().table(_record()).strip()
