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
from offline_cov.labelers.check import (
    CHECK_TOP_K,
    CONTENT_FREE,
    CategoryCheck,
    log_odds,
    offset_log_odds,
    top_candidates,
    yes_probability,
)
from offline_cov.labelers.ensemble import CHECK_WEIGHT, EnsembleLabeler
from offline_cov.prompts import check_messages, label_messages
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
        if any(r.schema for r in requests):  # the label requests: a valid answer without logprobs
            return super().generate(requests)
        self.requests += requests
        out = []
        for r in requests:
            user = r.messages[1]["content"]
            text = user.split("<sample>\n", 1)[1].split("\n</sample>", 1)[0]
            category = (user.split("Category: ", 1)[1].split(":", 1)[0].split("\n", 1)[0] if "Category: " in user
                        else user.split('the category "', 1)[1].split('"', 1)[0])  # check-v1 / check-v2
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
    experts = labeler.experts(np.log(np.array([0.5, 0.3, 0.2])), None, None)
    plain = labeler.combine(sample, experts, None, None)
    assert plain.categories == ("math",)
    margin = labeler.weight * math.log(0.5 / 0.2)  # the prototypes' lead of math over writing
    check = [0.0, 0.0, margin / CHECK_WEIGHT + 0.1]  # a check that, at its weight, outweighs it
    checked = labeler.combine(sample, experts, None, None, check)
    assert checked.categories == ("writing",)
    assert labeler.combine(sample, experts, None, None, None).categories == ("math",)


def test_the_top_candidates_are_the_highest_scores_first_ties_to_the_earlier():
    assert top_candidates([0.1, 0.9, 0.5, 0.9, 0.2], k=3) == [1, 3, 2]
    assert top_candidates([0.3, 0.1], k=4) == [0, 1]  # a taxonomy smaller than k: every category


def test_an_unasked_category_gets_the_lowest_asked_score():
    offsets = [0.0, 1.0, 0.0, 0.0]
    scores = offset_log_odds({2: 0.9, 1: 0.5}, offsets, strength=1.0)
    low = log_odds(0.5) - 1.0
    assert scores == pytest.approx([low, low, log_odds(0.9), low])
    assert offset_log_odds({0: 0.9, 1: None}, offsets, 1.0) is None  # a failed answer: no check
    assert offset_log_odds({0: 0.9}, None, 1.0) is None


def test_the_check_asks_only_each_samples_candidates_first_ones_first():
    engine = Scripted(lambda text, cat: 0.5)
    check = CategoryCheck(engine, parse_taxonomy_list("math,code,writing,poetry"), sample_budget=100)
    check.offsets()
    engine.requests = []
    rows = check.probabilities(["a", "b"], [[2, 0], [3, 1]])
    assert [list(r) for r in rows] == [[2, 0], [3, 1]]
    asked = [(r.messages[1]["content"].split("\n")[1], r.messages[1]["content"].split("Category: ")[1].split("\n")[0])
             for r in engine.requests]
    assert asked == [("a", "writing"), ("b", "poetry"), ("a", "math"), ("b", "code")]
    engine.requests = []
    assert check.probabilities(["c"], [[3]]) == [{3: 0.5}] and len(engine.requests) == 1  # one each: one call


def test_the_ensemble_checks_only_the_other_experts_top_k():
    """With six categories the ensemble asks each sample CHECK_TOP_K of them: the prototypes' and the
    LLM's likeliest; the content-free offsets still cover every category."""
    names = ["math", "code", "writing", "poetry", "travel", "food"]
    engine = Scripted(lambda text, cat: 0.9 if cat == "travel" else 0.2)
    fused = SimpleNamespace(temperature=1.0, scores=lambda texts: np.log(np.array([[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]] * len(texts))))
    labeler = EnsembleLabeler(engine, parse_taxonomy_list(",".join(names)), fused=fused)
    from offline_cov.labelers.base import LabelRun

    labels = labeler.label_batch([Sample(0, (("user", "plan a trip"),))], LabelRun())
    per_sample = [r for r in engine.requests if r.schema is None][len(CONTENT_FREE) * len(names):]
    asked = {r.messages[1]["content"].split("Category: ")[1].split("\n")[0] for r in per_sample}
    assert len(per_sample) == len(asked) == CHECK_TOP_K < len(names)
    assert {"math", "code"} <= asked  # the prototypes' two likeliest (the LLM's pick takes one of the places)
    assert labeler.check.requests == len(CONTENT_FREE) * len(names) + CHECK_TOP_K
    assert labels[0].categories in {(n,) for n in names}


def test_the_label_cache_tells_apart_runs_that_check_a_different_number_of_categories():
    class EveryCategory(EnsembleLabeler):
        check_top_k = 99

    assert EnsembleLabeler.cache_identity("llm") != EveryCategory.cache_identity("llm")


def test_the_ensemble_without_the_check_asks_nothing_but_the_label():
    """`ensemble-nocheck` (the default on a CPU without AMX) sends each sample its label request only,
    and labels with the other two experts at its own temperature."""
    from offline_cov.labelers.base import LabelRun
    from offline_cov.labelers.ensemble_nocheck import NOCHECK_TEMPERATURE, EnsembleNoCheckLabeler

    names = ["math", "code", "writing", "poetry", "travel", "food"]
    engine = Scripted(lambda text, cat: 0.9 if cat == "travel" else 0.2)
    fused = SimpleNamespace(temperature=1.0, info=dict,
                            scores=lambda texts: np.log(np.array([[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]] * len(texts))))
    labeler = EnsembleNoCheckLabeler(engine, parse_taxonomy_list(",".join(names)), fused=fused)
    labels = labeler.label_batch([Sample(0, (("user", "plan a trip"),)), Sample(1, (("user", "a sum"),))], LabelRun())
    assert [r.schema is not None for r in engine.requests] == [True, True]  # two label requests, no check
    assert labeler.check is None and labeler.info()["check"] is None  # nothing that could ask
    assert len(labels) == 2 and all(lab.categories[0] in names for lab in labels)
    plain = labeler.experts(np.log(np.array([0.5, 0.3, 0.2, 0.0, 0.0, 0.0]) + 1e-12), None, None)
    p = np.array([0.5, 0.3, 0.2]) ** (2 * NOCHECK_TEMPERATURE)  # the prototypes alone, at weight 2 and its temperature
    assert labeler.combine(Sample(2, (("user", "x"),)), plain, None, None).confidence == pytest.approx(p[0] / p.sum(), abs=1e-3)
    assert NOCHECK_TEMPERATURE != EnsembleLabeler.temperature
    assert EnsembleNoCheckLabeler.cache_identity("llm") != EnsembleLabeler.cache_identity("llm")


def test_check_v2_asks_in_the_label_requests_own_chat_with_the_category_named_after_it():
    """check-v2 (`ensemble-lite`) repeats the label request's system prompt and sample word for word, so
    vLLM's prefix cache serves them, and adds one question naming the category."""
    taxonomy = parse_taxonomy_list("math,code")
    engine = Scripted(lambda text, cat: 0.8 if cat == "code" else 0.3)
    check = CategoryCheck(engine, taxonomy, sample_budget=100, prompt="check-v2")
    rows = check.probabilities(["print <sample> it"])
    label = label_messages(taxonomy, "print <sample> it")
    first, second = (r.messages for r in engine.requests)
    assert first[0] == second[0] == label[0]
    assert first[1]["content"].startswith(label[1]["content"] + "\n\n")
    assert first[1]["content"].endswith('the category "math"? Answer yes or no.')
    assert second[1]["content"].endswith('the category "code"? Answer yes or no.')
    assert rows == [{0: pytest.approx(0.3), 1: pytest.approx(0.8)}]
    assert check.info()["prompt"] == "check-v2"


def test_ensemble_lite_checks_with_check_v2_at_its_own_constants():
    """`ensemble-lite` is the ensemble with check-v2 and the constants chosen for it: its check asks its
    top k in the label request's chat, and its cache identity is its own."""
    from offline_cov.labelers.base import LabelRun
    from offline_cov.labelers.ensemble_lite import LITE_TOP_K, EnsembleLiteLabeler

    names = ["math", "code", "writing", "poetry", "travel", "food"]
    engine = Scripted(lambda text, cat: 0.9 if cat == "travel" else 0.2)
    fused = SimpleNamespace(temperature=1.0, info=dict,
                            scores=lambda texts: np.log(np.array([[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]] * len(texts))))
    labeler = EnsembleLiteLabeler(engine, parse_taxonomy_list(",".join(names)), fused=fused)
    labeler.label_batch([Sample(0, (("user", "plan a trip"),))], LabelRun())
    checks = [r for r in engine.requests if r.schema is None][len(CONTENT_FREE) * len(names):]
    assert len(checks) == min(LITE_TOP_K, len(names))
    assert all('belong to the category "' in r.messages[1]["content"] for r in checks)
    assert labeler.check.version == "check-v2" and labeler.check.offset_strength == EnsembleLiteLabeler.check_strength
    assert labeler.info()["check_weight"] == EnsembleLiteLabeler.check_weight
    assert EnsembleLiteLabeler.cache_identity("llm") != EnsembleLabeler.cache_identity("llm")


def test_the_metadata_gives_each_experts_seconds_and_a_lighter_labeler_spends_none_on_a_check():
    """`info()["seconds"]` splits a run's labeling time between the prototypes, the label request and
    the check, so a user sees what `ensemble-nocheck` would save; it asks no check and spends nothing there."""
    import time

    from offline_cov.labelers.base import LabelRun
    from offline_cov.labelers.ensemble_nocheck import EnsembleNoCheckLabeler

    class SlowCheck(Scripted):
        def generate(self, requests):
            if not any(r.schema for r in requests):
                time.sleep(0.2)
            return super().generate(requests)

    names = ["math", "code", "writing"]
    fused = SimpleNamespace(temperature=1.0, info=dict, scores=lambda texts: np.log(np.array([[0.5, 0.3, 0.2]] * len(texts))))
    seconds = {}
    for cls in (EnsembleLabeler, EnsembleNoCheckLabeler):
        labeler = cls(SlowCheck(lambda text, cat: 0.5), parse_taxonomy_list(",".join(names)), fused=fused)
        labeler.label_batch([Sample(0, (("user", "a sum"),))], LabelRun())
        seconds[cls.name] = labeler.info()["seconds"]
    assert set(seconds["ensemble"]) == {"fused", "llm", "check"}
    assert seconds["ensemble"]["check"] >= 0.4  # the content-free offsets' call and the sample's own
    assert seconds["ensemble"]["fused"] < 0.2 and seconds["ensemble"]["llm"] < 0.2
    assert seconds["ensemble-nocheck"]["check"] == 0.0


def skipping_lite():
    """`ensemble-lite` with session 41's dev-chosen skip rule (bench.check_skip; not on in the product)."""
    from offline_cov.labelers.ensemble_lite import EnsembleLiteLabeler

    class Skipping(EnsembleLiteLabeler):
        check_skip_above, skip_temperature = 0.85, 0.6

    return Skipping


def test_a_skip_rule_asks_no_check_where_the_other_experts_are_sure_in_a_described_taxonomy():
    """Above `check_skip_above` the prototypes and the LLM's pick decide without the check (its label at
    the skip temperature); a taxonomy with a category without a description is checked everywhere."""
    from offline_cov.labelers.base import LabelRun
    from offline_cov.taxonomy import Category, Taxonomy

    class NoLabel(Scripted):  # the label request fails: the prototypes alone say how sure the sample is
        def generate(self, requests):
            if any(r.schema for r in requests):
                return [GenResult("", "error") for _ in requests]
            return super().generate(requests)

    skipping = skipping_lite()
    names = ["math", "code", "writing", "travel"]
    probs = {"sure": [0.97, 0.01, 0.01, 0.01], "unsure": [0.3, 0.3, 0.2, 0.2]}
    fused = SimpleNamespace(temperature=1.0, info=dict, scores=lambda texts: np.log(np.array([probs[t] for t in texts])))
    described = Taxonomy(categories=[Category(name=n, description=f"requests about {n}") for n in names])
    samples = [Sample(0, (("user", "sure"),)), Sample(1, (("user", "unsure"),))]
    asked, labels, info = {}, {}, {}
    for kind, taxonomy in (("described", described), ("names", parse_taxonomy_list(",".join(names)))):
        engine = NoLabel(lambda text, cat: 0.5)
        labeler = skipping(engine, taxonomy, fused=fused)
        labels[kind] = labeler.label_batch(samples, LabelRun())
        per_sample = engine.requests[len(CONTENT_FREE) * len(names):]
        asked[kind] = {r.messages[1]["content"].split("<sample>\n", 1)[1].split("\n</sample>", 1)[0] for r in per_sample}
        info[kind] = labeler.info()["check"]
    assert asked == {"described": {"unsure"}, "names": {"sure", "unsure"}}
    assert info["described"]["skipped"] == 1 and info["names"]["skipped"] == 0
    assert info["described"]["skip_above"] == skipping.check_skip_above
    p = np.array(probs["sure"]) ** (skipping.fused_weight * skipping.skip_temperature)
    assert labels["described"][0].categories == ("math",)
    assert labels["described"][0].confidence == pytest.approx(p[0] / p.sum(), abs=1e-3)
    assert labels["names"][0].confidence != labels["described"][0].confidence  # checked: the check's temperature


def test_a_skip_rule_has_its_own_cache_identity_and_the_labelers_without_one_keep_theirs():
    """Labels cached by `ensemble` and `ensemble-lite` (no rule) keep their identity; a rule changes it."""
    from offline_cov.labelers.ensemble_lite import EnsembleLiteLabeler

    skipping = skipping_lite()
    assert "check_skip_above" in skipping.cache_identity("llm")
    assert skipping.cache_identity("llm") != EnsembleLiteLabeler.cache_identity("llm")
    for labeler in (EnsembleLabeler, EnsembleLiteLabeler):
        assert labeler.check_skip_above is None and "check_skip_above" not in labeler.cache_identity("llm")
