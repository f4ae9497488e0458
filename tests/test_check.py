"""The yes/no check of each category (labelers/check.py) on hand-made answers: how P(yes) is read,
the content-free offsets, the order of the requests, and how the ensemble adds the check."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from offline_cov.data.readers import Sample
from offline_cov.engines import GenResult
from offline_cov.engines.fake import FakeEngine
from offline_cov.labelers.check import CONTENT_FREE, CategoryCheck, log_odds, yes_probability
from offline_cov.labelers.ensemble import CHECK_WEIGHT, EnsembleLabeler
from offline_cov.prompts import check_messages
from offline_cov.taxonomy import parse_taxonomy_list


def said(top: dict[str, float], finish: str = "length") -> GenResult:
    """A one-token answer with these top probabilities (token -> p)."""
    first = max(top, key=top.get)
    return GenResult(first, finish, 1, {"tokens": [(first, math.log(top[first]))],
                                        "top": [{t: math.log(p) for t, p in top.items()}]})


def test_p_yes_is_yes_among_yes_and_no_whatever_their_spelling():
    assert yes_probability(said({"yes": 0.6, " Yes": 0.1, "No": 0.2, "Maybe": 0.1})) == pytest.approx(0.7 / 0.9)
    assert yes_probability(said({"Maybe": 0.9, "Perhaps": 0.1})) == 0.5  # neither: no evidence either way


def test_an_answer_without_logprobs_or_that_failed_gives_no_p_yes():
    assert yes_probability(GenResult("yes", "length", 1)) is None  # an engine without logprobs
    assert yes_probability(said({"yes": 0.9, "no": 0.1}, finish="error")) is None


class Scripted(FakeEngine):
    """Answers each check with the P(yes) `p_yes(sample text, category line)` gives."""

    def __init__(self, p_yes):
        super().__init__()
        self.p_yes = p_yes

    def generate(self, requests):
        self.requests += requests
        out = []
        for r in requests:
            user = r.messages[1]["content"]
            text = user.split("<sample>\n", 1)[1].split("\n</sample>", 1)[0]
            category = user.split("Category: ", 1)[1].split(":", 1)[0].split("\n", 1)[0]
            p = self.p_yes(text, category)
            out.append(said({"yes": p, "no": 1 - p}))
        return out


def test_the_check_subtracts_each_categorys_lean_on_content_free_inputs():
    """A model that says yes to `writing` for anything: its content-free lean is taken out, so a sample
    it calls math more surely than its lean scores math first."""
    lean = {"math": 0.3, "code": 0.3, "writing": 0.8}
    engine = Scripted(lambda text, cat: 0.9 if (text == "2+2?" and cat == "math") else lean[cat])
    check = CategoryCheck(engine, parse_taxonomy_list("math,code,writing"), sample_budget=100)
    scores = check.scores(["2+2?", "hello"])
    assert check.offsets() == pytest.approx([log_odds(0.3), log_odds(0.3), log_odds(0.8)])
    assert scores[0] == pytest.approx([log_odds(0.9) - log_odds(0.3), 0.0, 0.0])
    assert scores[1] == pytest.approx([0.0, 0.0, 0.0])
    asked = len(CONTENT_FREE) * 3
    assert check.requests == asked + 2 * 3
    check.scores(["again"])
    assert check.requests == asked + 3 * 3  # the offsets are asked once per run


def test_each_sample_is_asked_its_first_category_before_the_others():
    """The first category for every sample of a batch, then the rest: the second request of a sample
    finds its prefix in vLLM's cache."""
    engine = Scripted(lambda text, cat: 0.5)
    check = CategoryCheck(engine, parse_taxonomy_list("math,code"), sample_budget=100)
    check.probabilities(["a", "b"])
    order = [(r.messages[1]["content"].split("\n")[1], r.messages[1]["content"].split("Category: ")[1].split("\n")[0])
             for r in engine.requests]
    assert order == [("a", "math"), ("b", "math"), ("a", "code"), ("b", "code")]
    assert engine.requests[0].messages == check_messages("a", "Category: math")


def test_a_failed_check_leaves_the_sample_to_the_other_experts():
    engine = Scripted(lambda text, cat: 0.5)
    check = CategoryCheck(engine, parse_taxonomy_list("math,code"), sample_budget=100)
    check.offsets()
    engine.generate = lambda requests: [GenResult("", "error") for _ in requests]
    assert check.scores(["x"]) == [None]


def test_without_logprobs_there_are_no_offsets_and_no_check():
    check = CategoryCheck(FakeEngine(), parse_taxonomy_list("math,code"), sample_budget=100)
    assert check.scores(["x", "y"]) == [None, None]
    assert check.offsets() is None


def test_the_ensemble_adds_the_check_with_its_weight():
    """A sure check can overrule the LLM's pick and the prototypes; without it (None) they decide."""
    taxonomy = parse_taxonomy_list("math,code,writing")
    labeler = EnsembleLabeler(FakeEngine(), taxonomy, fused=SimpleNamespace(temperature=1.0))
    sample = Sample(0, (("user", "a request"),))
    fused_row = np.log(np.array([0.5, 0.3, 0.2]))
    plain = labeler.combine(sample, fused_row, None, None)
    assert plain.categories == ("math",)
    margin = labeler.weight * math.log(0.5 / 0.2)  # the prototypes' lead of math over writing
    check = [0.0, 0.0, margin / CHECK_WEIGHT + 0.1]  # a check that, at its weight, outweighs it
    checked = labeler.combine(sample, fused_row, None, None, check)
    assert checked.categories == ("writing",)
    assert labeler.combine(sample, fused_row, None, None, None).categories == ("math",)
