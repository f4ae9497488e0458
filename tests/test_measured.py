"""The labelers' measured accuracies (what the report's intervals widen by) are the bench run's numbers."""

import json
import re
from pathlib import Path

import pytest

from offline_cov.labelers import get_labeler_class
from offline_cov.labelers.measured import CHOOSE_TEST_RUN, SETS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["embed", "fused", "llm", "ensemble"])
def test_measured_accuracy_is_the_cited_runs(name):
    measured = get_labeler_class(name).measured
    assert measured["bench_run"] == CHOOSE_TEST_RUN and measured["split"] == "test"
    sets = json.loads((ROOT / CHOOSE_TEST_RUN).read_text())["sets"]
    assert len(measured["accuracy"]) >= 7
    for key, value in measured["accuracy"].items():
        set_name, description = re.fullmatch(r"(\S+) \((.*)\)", key).groups()
        assert description == SETS[set_name]
        scored = sets[set_name]["labelers"][name]
        assert value == scored["accuracy"], key
        assert description.endswith(f"{scored['n']} rows") and description.startswith(f"{len(sets[set_name]['taxonomy'])} categories")
