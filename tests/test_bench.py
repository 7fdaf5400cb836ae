"""The bench command: a fresh-process measurement, a table and JSON (on a tiny configuration)."""

from __future__ import annotations

import json
import sys

import pytest

from spiking_transformers.cli import main
from spiking_transformers.commands.bench import format_table, measure, parse_model_args


def test_parse_model_args():
    assert parse_model_args(["depth=2", "img_size=(32, 48)", "spike_layer=plif", "x=1.5"]) == dict(
        depth=2, img_size=(32, 48), spike_layer="plif", x=1.5
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_args(["depth"])


def _config(**kw):
    base = dict(model="spikformer_4_384_cifar10", mode="train", batch_size=2, T=None, threads=1, backend="torch",
                repeats=2, warmup=1, compact_saves=False, fold_bn=False, tiny=True, model_args={},
                # leave this pytest process's allocator alone (the setting is process-wide; tests/test_runtime.py)
                tune_malloc=False)
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(mode="eval", backend="fused", fold_bn=True), dict(backend="fused", compact_saves=True, T=3),
     dict(backend="fused", fuse_bn=False)],
    ids=["train-torch", "eval-best", "train-best", "train-unfused-bn"],
)
def test_measure_in_process(kw):
    r = measure(_config(**kw))
    assert len(r["times_s"]) == 2 and r["min_s"] <= r["median_s"] <= r["max_s"]
    assert r["throughput"] == pytest.approx(2 / r["median_s"])
    assert r["peak_rss_bytes"] >= r["peak_rss_before_steps_bytes"] > 0
    assert r["T"] == (kw.get("T") or 2)
    assert r["neurons_switched"] > 0
    assert "peak RSS GB" in format_table([r])
    assert ("unfused_bn" in format_table([r])) == (kw.get("fuse_bn") is False)


def test_cli_bench_fresh_process_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", "sdt_2_512_cifar10", "--tiny", "--mode", "eval", "--batch-size", "2", "--repeats", "1",
               "--threads", "1", "--backend", "fused", "--fold-bn", "--model-arg", "depth=1", "--json", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "sdt_2_512_cifar10" in table and "fold_bn" in table
    r = json.loads(out.read_text())
    assert r["backend"] == "fused" and r["fold_bn"] and r["model_args"] == {"depth": 1}
    assert r["machine"]["logical_cpus"] >= 1 and r["peak_rss_bytes"] > 0
    assert r["tune_malloc"] and r["malloc_tuned"] == sys.platform.startswith("linux")


def test_best_turns_on_every_option():
    from spiking_transformers.cli import build_parser
    from spiking_transformers.commands.bench import config_from_args

    args = build_parser().parse_args(["bench", "sdt_2_512_cifar10", "--best"])
    assert config_from_args(args)["backend"] == "cpp" and config_from_args(args)["compact_saves"]
    args = build_parser().parse_args(["bench", "sdt_2_512_cifar10", "--best", "--mode", "eval"])
    assert config_from_args(args)["fold_bn"] and not config_from_args(args)["compact_saves"]


def test_cli_bench_errors_are_one_line(capsys):
    assert main(["bench", "no_such_model", "--tiny"]) == 2
    assert main(["bench", "sdt_2_512_cifar10", "--tiny", "--model-arg", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
