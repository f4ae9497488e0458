"""The ensemble's combination rule on hand-made answers (no model): the difficulty the product writes
is the bench's chosen score, the expected LLM difficulty plus the instruction's length term."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from offline_cov.data.readers import Sample
from offline_cov.engines import GenResult
from offline_cov.engines.fake import FakeEngine
from offline_cov.labelers.ensemble import (
    DIFFICULTY_CUTS,
    DIFFICULTY_LENGTH_WEIGHT,
    EnsembleLabeler,
    difficulty_from_score,
    difficulty_score,
    expected_difficulty_label,
)
from offline_cov.report.tally import SampleLabel
from offline_cov.taxonomy import parse_taxonomy_list

P_DIFFICULTY = {"easy": 0.6, "medium": 0.3, "hard": 0.1}  # expected difficulty 0.5


def answer(category: str = "math", p: dict[str, float] = P_DIFFICULTY) -> GenResult:
    """A constrained answer whose difficulty value begins at a token with top-k logprobs `p`."""
    head = f'{{"primary": "{category}", "difficulty": "'
    written = max(p, key=p.get)
    tokens = [(head, 0.0), (written, math.log(p[written])), ('"}', 0.0)]
    top = [{}, {name: math.log(q) for name, q in p.items()}, {}]
    return GenResult(head + written + '"}', "stop", 3, {"tokens": tokens, "top": top})


def words(n: int) -> str:
    return " ".join(["word"] * n)


@pytest.mark.parametrize("n, expected", [(3, "easy"), (40, "medium"), (200, "hard")])
def test_the_difficulty_adds_the_instructions_length_to_the_expected_llm_difficulty(n, expected):
    score = 0.5 + DIFFICULTY_LENGTH_WEIGHT * math.log10(1 + n)
    assert difficulty_score(P_DIFFICULTY, n) == pytest.approx(score)
    assert difficulty_from_score(score, DIFFICULTY_CUTS) == expected
    assert expected_difficulty_label(answer(), words(n)) == expected


def test_without_logprobs_there_is_no_expected_difficulty():
    result = GenResult('{"primary": "math", "difficulty": "hard"}', "stop", 3)
    assert expected_difficulty_label(result, words(200)) is None


def test_the_labeler_writes_the_length_aware_difficulty_of_each_sample():
    """The wiring the bench's "chosen" row assumes: the same answer, longer instructions, harder labels."""
    taxonomy = parse_taxonomy_list("math,code,writing")
    fused = SimpleNamespace(temperature=1.0)
    labeler = EnsembleLabeler(FakeEngine(), taxonomy, fused=fused)
    got = []
    for n in (3, 40, 200):
        sample = Sample(n, (("user", words(n)),))
        label = SampleLabel(n, ("math",), "hard")
        experts = labeler.experts(np.zeros(3), label, answer())
        got.append(labeler.combine(sample, experts, label, answer()).difficulty)
    assert got == ["easy", "medium", "hard"]
