"""The scenario corpus (``tests/corpus/scenario/``, issue 20): commands on files set up for them.

Each case is a user's situation (a sketch the output would overwrite, a damaged
file musegen reads back, a hostile name, a machine without a home) and what
must hold afterwards; ``tests/corpus/scenarios.py`` runs one, and
``scripts/robustness.py`` runs them and mutations of them.  Each case starts a
real ``musegen`` process or three, so the whole corpus is marked slow; the
same rules have fast tests in ``tests/test_user_files.py``.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from corpus.make_corpus import HERE as CORPUS
from corpus.make_corpus import SCENARIOS
from corpus.scenarios import run_scenario

CLASSES = ("data loss", "read back", "names", "environment")


def test_every_class_has_at_least_three_cases():
    count = Counter(spec["class"] for spec in SCENARIOS.values())
    assert set(count) == set(CLASSES) and min(count.values()) >= 3, count


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, tmp_path):
    spec = json.loads((CORPUS / "scenario" / name).read_text())
    folder = tmp_path / "case"
    folder.mkdir()
    _, problems = run_scenario(spec, folder)
    assert problems == [], problems
