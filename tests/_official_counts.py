"""The parameter-count check every family test runs against ../shared's official ``param_counts.json``."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from conftest import FIXTURES, WAVE2_FIXTURES

import spiking_transformers as st
from spiking_transformers.models import ModelInfo


@lru_cache(maxsize=1)
def official_counts() -> dict[str, Any]:
    """The ``models`` tables of both fixture sets' ``param_counts.json`` (official and wave 2): official config key ->
    ``{"params", "kwargs", ...}``. Their keys are disjoint (wave-2 keys carry a ``family/`` prefix)."""
    tables = [json.loads((folder / "param_counts.json").read_text())["models"] for folder in (FIXTURES, WAVE2_FIXTURES)]
    overlap = set(tables[0]) & set(tables[1])
    assert not overlap, f"param_counts.json keys in both fixture sets: {sorted(overlap)}"
    return {**tables[0], **tables[1]}


def check_official_param_count(name: str, *, bound: float = 0.005) -> tuple[ModelInfo, dict[str, Any]]:
    """Assert that variant ``name`` registers the official count, and that ours is that count less the declared
    unused official parameters, within ``bound`` (relative) of the official total. Returns the info and the entry."""
    info = st.model_info(name)
    assert info.official_config in official_counts(), f"{name}: {info.official_config} not in param_counts.json"
    entry = official_counts()[info.official_config]
    assert info.official_params == entry["params"], name
    assert info.params == entry["params"] - info.official_unused_params, name
    assert abs(info.params - entry["params"]) <= bound * entry["params"], name
    return info, entry
