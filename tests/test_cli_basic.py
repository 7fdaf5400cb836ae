"""The CLI's model table and info pages, and `python -m spiking_transformers`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import spiking_transformers as st
from spiking_transformers.cli import build_parser, main


def test_models_table_lists_every_registered_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["name", "family", "params"]
    for name in st.list_models():
        assert f"\n{name} " in out


def test_models_json_and_pattern(capsys):
    assert main(["models", "--json", "spikformer*"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["name"].startswith("spikformer") for r in rows)
    assert all(r["params"] > 0 for r in rows)


def test_info_gives_the_facts(capsys):
    name = st.list_models()[0]
    assert main(["info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("family", "paper", "lineage", "spike_driven", "default_T", "input_kind", "reported_top1", "params",
                "official_config"):
        assert key in info
    assert info["params"] == st.model_info(name).params


def test_unknown_model_is_one_clear_line(capsys):
    assert main(["info", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in err and "Traceback" not in err


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"models", "info"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage:"), name


def test_python_dash_m_works_like_the_command():
    res = subprocess.run([sys.executable, "-m", "spiking_transformers", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "models" in res.stdout
