"""``spiking-transformers compare``: the Pareto front, the table, and a quick end-to-end run on the bundled digits."""

from __future__ import annotations

import json

from spiking_transformers.analysis import VERDICTS
from spiking_transformers.cli import main
from spiking_transformers.commands.compare import _spread, format_markdown, pareto_front


def test_pareto_front_by_hand():
    # (energy, accuracy): b beats a (less energy, more accuracy); c costs more but is the most accurate; d is beaten
    # by b; e ties b in energy with less accuracy
    pts = [(2.0, 80.0), (1.0, 85.0), (3.0, 90.0), (1.5, 84.0), (1.0, 70.0)]
    assert pareto_front(pts) == [1, 2]
    assert pareto_front([(1.0, 50.0)]) == [0]
    assert pareto_front([(1.0, 50.0), (1.0, 50.0)]) == [0, 1]  # equal points do not dominate each other


def test_limit_takes_evenly_spaced_samples():
    assert _spread(10, 4) == [0, 2, 5, 7] and _spread(3, 5) == [0, 1, 2]
    idx = _spread(1438, 500)
    assert len(idx) == 500 and idx[0] == 0 and idx[-1] > 1400  # reaches the last classes of a class-sorted split


def test_markdown_table_row():
    row = dict(data="digits", attention="xnor", reference="paper", accuracy=91.234, firing_rate=0.12345,
               synaptic_ops=2.5e6, macs=1.2e4, energy_pj=3.4e6, params=12345, train_time_per_epoch_s=4.56,
               verdict="integer-driven", pareto=True)
    lines = format_markdown([row]).splitlines()
    assert lines[0].startswith("| data | attention | accuracy %") and len(lines) == 3
    assert lines[2] == ("| digits | xnor (paper) | 91.23 | 0.1235 | 2.50M | 12.00k | 3.400 | 12,345 | 4.6 | "
                        "integer-driven | * |")


def test_compare_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--attn", "ssa,a2os2a", "--data", "digits", "--epochs", "1", "--limit", "64",
               "--embed-dim", "16", "--energy-batches", "1", "--threads", "1", "--out", str(out)])
    assert rc == 0
    record = json.loads((out / "compare.json").read_text())
    rows = record["rows"]
    assert [r["attention"] for r in rows] == ["ssa", "a2os2a"]
    assert record["machine"]["threads"] == 1 and record["machine"]["cpu"]
    for r in rows:
        assert "error" not in r, r
        assert 0.0 <= r["accuracy"] <= 100.0 and r["params"] > 0 and r["energy_pj"] > 0 and r["synaptic_ops"] > 0
        assert r["verdict"] in VERDICTS and r["train_time_per_epoch_s"] > 0 and r["data"] == "digits"
    assert rows[1]["reference"] == "paper" and rows[0]["reference"] == "official"
    assert any(r.get("pareto") for r in rows)
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "compare.md").read_text()
    assert "| digits | a2os2a (paper) |" in table and "| digits | ssa |" in table
    assert "1 thread(s)" in table
    assert "wrote" in capsys.readouterr().out


def test_label_offsets_move_crowded_names_apart():
    from spiking_transformers.commands.compare import _label_offsets

    # two markers almost on top of each other and one far away
    offsets = _label_offsets([0.40, 0.401, 1.4], [66.8, 66.6, 60.0])
    assert offsets[0] == (5.0, 4.0) and offsets[2] == (5.0, 4.0)
    assert offsets[1][1] <= -6.0  # the lower neighbour's label moved down, clear of the first


def test_compare_unknown_attention_is_a_clear_error(tmp_path, capsys):
    rc = main(["compare", "--attn", "nope", "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "unknown attention(s) nope" in capsys.readouterr().err
