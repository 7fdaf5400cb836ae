"""Shared test set-up: deterministic seeds, one thread, and access to ../shared (the official fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPIKING_TRANSFORMERS_SHARED", REPO_ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "official"
WAVE2_FIXTURES = SHARED / "fixtures" / "wave2"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def official_fixture(name: str, folder: str = "official") -> dict:
    """Load ``../shared/fixtures/<folder>/<name>.pt`` (weights only; ``folder`` is ``official`` or ``wave2``).

    Skips only where shared/ is absent and not in CI."""
    path = SHARED / "fixtures" / folder / f"{name}.pt"
    if not path.exists():
        if os.environ.get("CI") or SHARED.exists():
            raise FileNotFoundError(f"official fixture {path} is missing")
        pytest.skip(f"../shared is absent ({SHARED}); official fixtures unavailable")
    return torch.load(path, weights_only=True)
