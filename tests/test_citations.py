"""Recipes and model notes cite what a user can look up: the paper and the official repository, never our internal
labels (sections of our research notes, test-fixture names, source-confidence tags)."""

from __future__ import annotations

import re

import pytest
import yaml

import spiking_transformers as st
from spiking_transformers.training.config import list_recipes, recipe_path

# Internal labels: our research notes ("spec 2(e)", "lineage spec", "table-models", "§"), parity fixtures, and the
# confidence tags of those notes ("[recall]", "[paper-2]", "[zoo]", "[rev]", ...), which mean nothing to a reader.
INTERNAL = re.compile(
    r"\bspecs?\b|\blineage\b|§|\bfixtures?\b|table-models"
    r"|\[[^\]]*\b(?:recall|paper-2|zoo|rev|abs|ran|readme|code-idx|code-3p)\b[^\]]*\]",
    re.IGNORECASE,
)
REPOSITORY = re.compile(r"github\.com/[\w.-]+/[\w.-]+")
PAPER = re.compile(r'"[^"]{8,}",[^"]*\b(?:19|20)\d\d\b')  # a quoted title followed by a year (venue year)

# Notes still being rewritten by the segmentation work (their module is edited elsewhere at the moment); strict, so
# that the mark must go once the note is fixed.
PENDING: set[str] = set()


def test_the_label_pattern_catches_what_it_should():
    for text in ("lineage spec 1(e)", "see spec 4(h)", "table-models §2", "sdt_cifar_small fixture", "[recall]",
                 "78.21 [recall, also quoted]", "[paper-2]", "[zoo]", "[third-party / recall]"):
        assert INTERNAL.search(text), text
    for text in ("specific", "respect", "[paper] [our reading] [assumption]", "reviews", "a reviewer", "spectral"):
        assert not INTERNAL.search(text), text


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_cites_no_internal_label(name):
    text = recipe_path(name).read_text()  # source, notes, description and the comments a reader sees
    hit = INTERNAL.search(text)
    assert hit is None, f"recipe {name} cites an internal label: {hit.group(0)!r}"


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_source_names_a_paper_or_repository(name):
    source = yaml.safe_load(recipe_path(name).read_text()).get("source")
    assert isinstance(source, str) and source.strip(), f"recipe {name} has no source"
    assert REPOSITORY.search(source) or PAPER.search(source), (
        f"recipe {name}: source names neither a paper (\"Title\", venue year) nor a repository: {source!r}"
    )


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="note rewritten by the segmentation work"))
     if n in PENDING else n for n in st.list_models()],
)
def test_model_notes_cite_no_internal_label(name):
    notes = st.model_info(name).notes
    hit = INTERNAL.search(notes)
    assert hit is None, f"model_info({name!r}).notes cites an internal label: {hit.group(0)!r}"
