"""The bench harness: data helpers, mixtures, and end-to-end runs whose saved metrics are
recomputed by hand from the per-sample predictions they recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import accuracy, speed
from bench.data import (
    build_mixture,
    default_mixtures,
    feasible_size,
    keep_taxonomy,
    load_labeled,
    mixture_counts,
    parse_label_map,
    true_report,
    write_dataset,
)
from offline_cov.engines.openai_engine import cache_key
from offline_cov.metrics import FAILED
from offline_cov.prompts import label_messages, label_schema
from offline_cov.taxonomy import parse_taxonomy_list

TAXONOMY = "coding,math,creative_writing"
CODE = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "Fix the off-by-one error in this JavaScript for loop that skips the last element.",
    "Implement a binary search in C over a sorted array of integers.",
    "Write a SQL query that lists customers with more than five orders.",
    "Explain and fix this Rust borrow checker error in my struct method.",
    "Write a bash script that renames every .txt file in a folder to .md.",
    "Create a React component that shows a paginated table of users.",
    "Write a Go HTTP server that answers /health with status 200.",
]
MATH = [
    "Prove that the square root of 2 is irrational.",
    "Solve for x: 3x + 7 = 22.",
    "Compute the integral of x^2 * e^x dx.",
    "How many ways can 5 people sit around a round table?",
    "Find the eigenvalues of the matrix [[2, 1], [1, 2]].",
    "What is the probability of rolling two sixes with two fair dice?",
    "Show that the sum of the first n odd numbers is n^2.",
    "Find the derivative of sin(x) * cos(x).",
]
WRITING = [
    "Write a short poem about autumn leaves falling in the rain.",
    "Write the opening paragraph of a mystery novel set in Venice.",
    "Compose a limerick about a cat who learns to code.",
    "Write a bedtime story about a dragon who is afraid of the dark.",
    "Write a haiku sequence about the four seasons.",
    "Draft a monologue for a villain who thinks he is the hero.",
    "Write a love letter from the moon to the sea.",
    "Write a two-sentence horror story about a mirror.",
]
LEVELS = ["easy", "medium", "hard", "medium"]


def write_fixture(path):
    """24 labeled rows; labels spelled 'code'/'writing' so --label-map is needed; a 'level' difficulty."""
    rows = []
    for label, texts in (("code", CODE), ("math", MATH), ("writing", WRITING)):
        rows += [{"prompt": t, "topic": label, "level": LEVELS[i % 4]} for i, t in enumerate(texts)]
    order = [i for k in range(8) for i in (k, 8 + k, 16 + k)]  # interleave the three topics
    path.write_text("".join(json.dumps(rows[i]) + "\n" for i in order))
    return path


def base_args(fixture, out_dir, *extra):
    return [
        "--data", str(fixture), "--text-field", "prompt", "--label-field", "topic",
        "--label-map", "code=coding,writing=creative_writing", "--difficulty-field", "level",
        "--taxonomy", TAXONOMY, "--out-dir", str(out_dir), *extra,
    ]


def recompute(samples: list[dict]) -> dict:
    """Accuracy, per-category recall and difficulty accuracy by hand from saved predictions."""
    n = len(samples)
    right = sum(s["true"] == s["predicted"] for s in samples)
    recall = {}
    for name in TAXONOMY.split(","):
        mine = [s for s in samples if s["true"] == name]
        recall[name] = sum(s["predicted"] == name for s in mine) / len(mine)
    diff_right = sum(s["true_difficulty"] == s["predicted_difficulty"] for s in samples)
    return {"accuracy": right / n, "recall": recall, "difficulty_accuracy": diff_right / n,
            "labeled": sum(s["predicted"] != FAILED for s in samples)}


def check_saved_metrics(payload: dict, out_dir) -> None:
    saved = json.loads((out_dir / "accuracy-latest.json").read_text())
    assert saved["labeling"]["metrics"] == payload["labeling"]["metrics"]
    samples = saved["labeling"]["samples"]
    assert len(samples) == 24
    assert Counter(s["true"] for s in samples) == {"coding": 8, "math": 8, "creative_writing": 8}
    by_hand, metrics = recompute(samples), saved["labeling"]["metrics"]
    assert metrics["accuracy"] == pytest.approx(by_hand["accuracy"])
    assert metrics["labeled"] == by_hand["labeled"]
    for name, value in by_hand["recall"].items():
        assert metrics["per_category"][name]["recall"] == pytest.approx(value)
    assert metrics["difficulty"]["accuracy"] == pytest.approx(by_hand["difficulty_accuracy"])
    confusion_total = sum(sum(row.values()) for row in metrics["confusion"].values())
    assert confusion_total == 24
    md = (out_dir / "accuracy-latest.md").read_text()
    assert f"{metrics['accuracy']:.3f}" in md and "machine:" in md


# ---------------------------------------------------------------- data helpers


def test_parse_label_map():
    assert parse_label_map("code=coding, writing = creative_writing") == {"code": "coding", "writing": "creative_writing"}
    assert parse_label_map("") == {}
    with pytest.raises(ValueError, match="not old=new"):
        parse_label_map("code")


def test_load_labeled_maps_labels_and_drops_the_rest(tmp_path):
    fixture = write_fixture(tmp_path / "f.jsonl")
    rows = load_labeled(fixture, "prompt", "topic", difficulty_field="level", label_map={"code": "coding"})
    assert len(rows) == 24 and rows[0].label == "coding" and rows[0].difficulty == "easy"
    kept, dropped = keep_taxonomy(rows, parse_taxonomy_list(TAXONOMY))
    assert len(kept) == 16 and dropped == {"writing": 8}


def test_mixture_counts_largest_remainder():
    assert mixture_counts({"a": 0.5, "b": 0.3, "c": 0.2}, 10) == {"a": 5, "b": 3, "c": 2}
    # 1/3 each of 10: 3.33 -> 3, 3, 3, then one more to the first by taxonomy order
    assert mixture_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(mixture_counts({"a": 0.7, "b": 0.27, "c": 0.03}, 80).values()) == 80


def test_default_mixtures_include_a_rare_and_a_dominant_category():
    mixtures = default_mixtures(TAXONOMY.split(","))
    assert all(sum(m.values()) == pytest.approx(1.0) for m in mixtures.values())
    assert any(min(m.values()) < 0.05 for m in mixtures.values())
    assert any(max(m.values()) > 0.35 for m in mixtures.values())


def test_build_mixture_has_the_exact_composition_and_a_true_report(tmp_path):
    fixture = write_fixture(tmp_path / "f.jsonl")
    tax = parse_taxonomy_list(TAXONOMY)
    pool, _ = keep_taxonomy(load_labeled(fixture, "prompt", "topic", label_map=parse_label_map(
        "code=coding,writing=creative_writing")), tax)
    comp = {"coding": 0.5, "math": 0.25, "creative_writing": 0.25}
    assert feasible_size(pool, comp, 100) == 16  # 8 coding rows at 50%
    rows = build_mixture(pool, comp, 16, seed=1)
    assert Counter(r.label for r in rows) == {"coding": 8, "math": 4, "creative_writing": 4}
    assert len({r.row for r in rows}) == 16, "drawn without replacement"
    path = write_dataset(rows, tmp_path / "mix.jsonl")
    report = true_report(rows, path, tax)
    assert {c.name: c.share_percent for c in report.categories} == {"coding": 50.0, "math": 25.0, "creative_writing": 25.0}
    assert [o.category for o in report.over_represented] == ["coding"]
    with pytest.raises(ValueError, match="pool has 8"):
        build_mixture(pool, comp, 20, seed=1)


def test_write_dataset_survives_unicode_line_separators(tmp_path):
    from bench.data import LabeledRow
    from offline_cov.data.readers import read_samples

    rows = [LabeledRow(0, "first\u2028line", "math"), LabeledRow(1, "second\x85part", "math")]
    samples = read_samples(write_dataset(rows, tmp_path / "u.jsonl")).samples
    assert [s.instruction for s in samples] == ["first\u2028line", "second\x85part"]


# ---------------------------------------------------------------- end to end with the fake engine


def test_accuracy_end_to_end_with_fake_engine(tmp_path, capsys):
    fixture = write_fixture(tmp_path / "f.jsonl")
    out = tmp_path / "results"
    payload = accuracy.main(base_args(fixture, out, "--engine", "fake", "--mixture-size", "16",
                                      "--baseline-cache", str(tmp_path / "none.jsonl")))
    check_saved_metrics(payload, out)
    assert payload["baseline"]["available"] is False
    assert "No frontier baseline" in capsys.readouterr().err
    runs = payload["coverage"]
    assert {r["mixture"] for r in runs} == set(default_mixtures(TAXONOMY.split(",")))
    for r in [r for r in runs if r["strategy"] == "per-sample"]:
        assert r["status"] == "ok"
        true = {c["name"]: c["share_percent"] for c in r["true_report"]["categories"]}
        got = {c["name"]: c["share_percent"] for c in r["report"]["categories"]}
        assert r["errors"]["share_error_pp"] == pytest.approx({k: got[k] - true[k] for k in true})
    assert all(r["status"] in ("ok", "unavailable", "failed") for r in runs if r["strategy"] == "card")


def test_baseline_from_a_cache_file_only(tmp_path):
    """A hand-written cache: the 'frontier' answers right on 20 rows and wrong on 4, so 20/24 by hand."""
    fixture = write_fixture(tmp_path / "f.jsonl")
    tax = parse_taxonomy_list(TAXONOMY)
    rows = load_labeled(fixture, "prompt", "topic", label_map=parse_label_map("code=coding,writing=creative_writing"))
    cache = tmp_path / "baseline.jsonl"
    with cache.open("w") as f:
        for i, r in enumerate(rows):
            answer = r.label if i >= 4 else "math" if r.label != "math" else "coding"
            text = json.dumps({"primary": answer, "difficulty": "medium", "also": []})
            key = cache_key("frontier-x", label_messages(tax, r.text), label_schema(tax))
            f.write(json.dumps({"key": key, "model": "frontier-x", "text": text, "finish_reason": "stop"}) + "\n")
    out = tmp_path / "results"
    payload = accuracy.main(base_args(fixture, out, "--engine", "fake", "--mixtures", "none",
                                      "--baseline-cache", str(cache)))
    baseline = payload["baseline"]
    assert baseline["available"] and baseline["engine"]["requests_sent"] == 0
    assert baseline["metrics"]["accuracy"] == pytest.approx(20 / 24)
    local = payload["labeling"]["samples"]
    agree = sum(a["predicted"] == b["predicted"] for a, b in zip(local, baseline["samples"])) / 24
    assert baseline["agreement_with_local"]["accuracy"] == pytest.approx(agree)
    assert "frontier `frontier-x`" in (out / "accuracy-latest.md").read_text()


def test_speed_with_fake_engine_reports_rates_and_ratios(tmp_path):
    fixture = write_fixture(tmp_path / "f.jsonl")
    payload = speed.main(["--data", str(fixture), "--limit", "12", "--engines", "fake",
                          "--out-dir", str(tmp_path / "results")])
    runs = {r["name"]: r for r in payload["runs"]}
    assert payload["n_samples"] == 12
    warm = runs["fake warm (loaded, new prompts, set B)"]
    assert warm["samples"] == 12
    assert warm["samples_per_s"] == pytest.approx(warm["samples"] / warm["seconds"])
    assert runs["fake unconstrained (no schema)"]["valid_labels"] == 0  # the fake answers a bare string
    assert runs["fake constrained (schema)"]["valid_labels"] == 12
    assert (tmp_path / "results" / "speed-latest.md").exists()


# ---------------------------------------------------------------- the real engine


class SharedEngine:
    """The session's real engine lent to a bench, which closes what it opened: this close leaves it running."""

    def __init__(self, engine):
        self.engine, self.closed = engine, False

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def close(self) -> None:
        self.closed = True


@pytest.mark.engine
def test_accuracy_end_to_end_with_vllm(tmp_path, vllm_engine, monkeypatch):
    """The bench's whole run on the real vLLM engine; the session's engine is lent to it (a second
    smollm2 engine would only repeat the start-up)."""
    lent = SharedEngine(vllm_engine)

    def open_engine(engine, model, seed):
        assert (engine, model, seed) == ("vllm", "smollm2-135m", 0), "the bench asked for another engine"
        return lent

    monkeypatch.setattr(accuracy, "open_engine", open_engine)
    fixture = write_fixture(tmp_path / "f.jsonl")
    out = tmp_path / "results"
    payload = accuracy.main(base_args(
        fixture, out, "--engine", "vllm", "--model", "smollm2-135m", "--mixtures", "rare-under-5",
        "--mixture-size", "16", "--strategies", "per-sample", "--baseline-cache", str(tmp_path / "none.jsonl"),
    ))
    check_saved_metrics(payload, out)
    assert payload["engine"]["engine"] == "vllm"
    assert payload["engine"]["structured_output_backend"] == "xgrammar"
    [run] = payload["coverage"]
    assert run["status"] == "ok" and run["analyzed"] == 16
    true = {c["name"]: c["count"] for c in run["true_report"]["categories"]}
    # 16 x (0.485, 0.485, 0.03) = 7.76, 7.76, 0.48 -> 7, 7, 0, and the two left over go to the
    # largest remainders (coding, math): the rare category gets no sample at this size
    assert true == {"coding": 8, "math": 8, "creative_writing": 0}
    assert [g["category"] for g in run["true_report"]["gaps"]] == ["creative_writing"]
    got = {c["name"]: c["share_percent"] for c in run["report"]["categories"]}
    assert run["errors"]["share_error_pp"]["coding"] == pytest.approx(got["coding"] - 50.0)
    assert lent.closed  # the bench closed the engine it was given


def test_parity_counts_the_rows_where_analyze_and_the_bench_differ():
    from bench.parity import compare

    expected = [{"row": 3, "category": "math", "difficulty": "hard"}, {"row": 5, "category": "code", "difficulty": "easy"}]
    labels = [{"index": 0, "categories": ["math"], "difficulty": "hard"}, {"index": 1, "categories": ["code"], "difficulty": "medium"}]
    got = compare(expected, labels)
    assert (got["rows"], got["category_agree"], got["difficulty_agree"]) == (2, 2, 1)
    assert got["differs"] == [{"row": 5, "bench": ["code", "easy"], "analyze": ["code", "medium"]}]
    assert got["analyze_difficulty_mix"] == {"hard": 1, "medium": 1}


def test_the_difficulty_grid_finds_the_length_weight_that_ranks_a_length_driven_truth(monkeypatch):
    """Truth set by the instruction's length, the LLM's expected difficulty flat: the chosen setting
    must weigh length, keep every set under 80% in one class and rank the truth perfectly. The cut
    points go in steps of 0.25 here, not the bench's 0.05 (the search is the same, 26x shorter)."""
    import numpy as np

    from bench import choose
    from bench.choose import DIFFICULTY_SETS, choose_difficulty

    monkeypatch.setattr(choose, "CUT_GRID", np.round(np.arange(0.0, 4.5, 0.25), 2))

    def row(words: int, level: str) -> dict:
        return {"difficulty": level, "llm": {"p_difficulty": {"easy": 0.5, "medium": 0.5, "hard": 0.0}},
                "features": {"words": words, "constraints": 0, "list_items": 0, "code_fences": 0}}

    rows = [row(w, level) for level, lengths in (("easy", (3, 4, 5, 6)), ("medium", (40, 50, 60, 70)),
                                                  ("hard", (400, 500, 600, 700))) for w in lengths]
    choice = choose_difficulty({name: {"rows": rows} for name in DIFFICULTY_SETS})
    best = choice["best"]
    assert best["length_weight"] > 0
    assert best["mean_class_spearman"] == pytest.approx(1.0)
    assert best["class_spearman"] == [pytest.approx(1.0)] * len(DIFFICULTY_SETS)
    assert choice["sets"] == DIFFICULTY_SETS
    assert choice["best_without_markers"]["marker_weight"] == 0
    assert choice["best_without_markers"]["mean_class_spearman"] == pytest.approx(1.0)


def test_contextual_calibration_divides_out_the_content_free_lean():
    """A model that leans to `a` on content-free inputs: dividing its lean out flips a sample it
    labels `a` by that lean alone; strength 0, no bias or no answer leave the distribution alone."""
    import numpy as np

    from bench.choose import calibrated, content_free_bias

    names = ["a", "b"]
    free = {"llm": [{"primary": "a", "p_category": {"a": 0.8, "b": 0.2}},
                    {"primary": "a", "p_category": {"a": 0.6, "b": 0.4}},
                    {"primary": None, "p_category": None}]}  # no answer counts as uniform
    bias = content_free_bias({"taxonomy": names, "content_free": free})
    assert bias == pytest.approx([(0.8 + 0.6 + 0.5) / 3, (0.2 + 0.4 + 0.5) / 3])
    p = [0.6, 0.4]
    q = calibrated(p, bias, 1.0)
    assert q == pytest.approx(list(np.array([0.6 / bias[0], 0.4 / bias[1]]) / (0.6 / bias[0] + 0.4 / bias[1])))
    assert q[1] > q[0]
    assert calibrated(p, bias, 0.0) == p and calibrated(p, None, 1.0) == p and calibrated(None, bias, 1.0) is None
    assert content_free_bias({"taxonomy": names}) is None


def test_the_review_regime_draws_the_mixture_with_replacement_and_reviews_within_labels():
    """bench.calibration --calibration-from review: a mixture larger than the pool, with the counts
    asked for, and review's own stratified sample of its positions (every label reviewed)."""
    import random

    from bench.calibration import draw_reviewed

    pool = {"a": [0, 1, 2], "b": [3, 4], "c": []}
    predicted = {0: 0, 1: 1, 2: 0, 3: 1, 4: 2}  # row -> the labeler's category index
    mixture, reviewed = draw_reviewed(pool, {"a": 60, "b": 40, "c": 0}, predicted, 20, random.Random(0))
    assert len(mixture) == 100 and sum(i in pool["a"] for i in mixture) == 60
    assert len(reviewed) == 20 == len(set(reviewed)) and all(0 <= pos < 100 for pos in reviewed)
    labels_reviewed = {predicted[mixture[pos]] for pos in reviewed}
    assert labels_reviewed == {predicted[i] for i in mixture}


def test_views_of_a_prompt_variant_or_a_row_cap_go_to_their_own_folder():
    from bench.views import views_folder

    assert views_folder("qwen", 1536, "label-v1") == "qwen"
    assert views_folder("qwen", 512, "label-v1") == "qwen@cut512"  # the folders collected before label-v2
    assert views_folder("qwen", 512) == "qwen@cut512+label-v2"  # the product's prompt is named
    assert views_folder("qwen", 512, "label-short", 100) == "qwen@cut512+label-short~cap100"
    assert views_folder("qwen", 512, check_prompt="check-v2") == "qwen@cut512+label-v2+check-v2"


def test_views_of_another_check_prompt_start_from_check_v1s_without_its_check_and_score_with_its_labeler():
    from bench.choose import checked_labeler
    from bench.views import has_check, without_check

    payload = {"set": "s", "check_s": 9.0, "check_prompt": "check-v1", "content_free": {"llm": [1], "check": [[0.5]]},
               "rows": [{"row": 1, "llm": {}, "check": [0.4]}, {"row": 2, "llm": {}, "check": [0.6]}]}
    bare = without_check(payload)
    assert has_check(payload) and not has_check(bare)
    assert bare["rows"] == [{"row": 1, "llm": {}}, {"row": 2, "llm": {}}] and bare["content_free"] == {"llm": [1]}
    assert "check_s" not in bare and "check_prompt" not in bare and payload["rows"][0]["check"] == [0.4]
    assert checked_labeler(payload).name == checked_labeler({}).name == "ensemble"  # views before check-v2 name none
    assert checked_labeler({**bare, "check_prompt": "check-v2"}).name == "ensemble-lite"


def test_shrinking_towards_raw_hand_computed():
    """corrected (0.6, 0.4), raw (0.5, 0.5): d = (0.1, -0.1), |d|^2 = 0.02. Bootstrap differences
    d* = d +- e with e^2 = 0.005 give tr V = 0.01, so the raw shares' squared bias is 0.02 - 0.01 =
    0.01 and lam = 0.01 / (0.01 + 0.01) = 0.5: the estimate is (0.55, 0.45). Twice that spread
    (tr V = 0.04 >= |d|^2) says the move is noise: lam = 0, the raw shares. No spread: lam = 1."""
    import numpy as np

    from bench.calibration import shrunk_shares

    e = 0.005 ** 0.5
    raw_draws = np.full((2, 2), 0.5)
    shares, lam = shrunk_shares([0.6, 0.4], [0.5, 0.5], [[0.6 + e, 0.4 - e], [0.6 - e, 0.4 + e]], raw_draws)
    assert lam == pytest.approx(0.5) and shares.tolist() == pytest.approx([0.55, 0.45])
    wide = [[0.6 + 2 * e, 0.4 - 2 * e], [0.6 - 2 * e, 0.4 + 2 * e]]
    shares, lam = shrunk_shares([0.6, 0.4], [0.5, 0.5], wide, raw_draws)
    assert lam == 0.0 and shares.tolist() == pytest.approx([0.5, 0.5])
    shares, lam = shrunk_shares([0.6, 0.4], [0.5, 0.5], [[0.6, 0.4]] * 2, raw_draws)
    assert lam == 1.0 and shares.tolist() == pytest.approx([0.6, 0.4])


def test_cpu_default_table_marks_which_candidates_fit_the_five_minute_bar():
    from bench.cpu_default import markdown

    machine = {"cpu": "AMD EPYC", "cores": 2, "cores_usable": 2, "ram_gib": 23.5, "gpu": None,
               "load_avg_1_5_15": [1.0, 1.0, 1.0], "platform": "Linux", "python": "3.11"}
    row = {"engine_load_s": 60.0, "throughput": {"samples_per_s": 0.5}, "load1": 1.0,
           "counts": {"math": 70, "code": 50}, "difficulty_mix": {"easy": 80, "medium": 30, "hard": 10}}
    payload = {"when": "now", "machine": machine, "bf16_flags": [], "bar_s": 300, "candidates": {
        "slow": {**row, "wall_s": 300.1}, "fast": {**row, "wall_s": 299.9, "expert_s": {"fused": 30.1, "llm": 135.0, "check": 83.2}},
        "broken": {"error": "boom"}}}
    lines = {line.split(" | ")[0].strip("| "): line for line in markdown(payload).splitlines() if line.startswith("| ")}
    assert "| 300.1 | no |" in lines["slow"] and "| 299.9 | yes |" in lines["fast"]
    assert "| 30.1 / 135.0 / 83.2 |" in lines["fast"] and "| - |" in lines["slow"]  # a labeler without the split
    assert "failed" in lines["broken"] and "math 70 / code 50" in lines["fast"]
    assert "none (the LLMs run in float32)" in markdown(payload)


def test_the_split_regime_draws_the_calibration_rows_first_and_the_mixture_from_the_rest():
    """bench.calibration --calibration-from split: 20 calibration rows at random from the whole pool,
    then a mixture with exactly the counts asked for from the rows left, never one of the same rows;
    split_counts scales a mixture down to what a 20-row sample leaves of each category."""
    import random

    from bench.calibration import draw_split, split_counts

    pool = {"a": list(range(0, 40)), "b": list(range(40, 60)), "c": list(range(60, 100))}
    counts = split_counts({"a": 60, "b": 15, "c": 5}, pool, 20)
    # 20 of 100 rows: a keeps 32 on average, sd sqrt(40 * .2 * .8 * 60 / 99) = 1.97, so room 26.1 -> factor 0.435
    assert counts == {"a": 26, "b": 6, "c": 2}
    assert split_counts({"a": 5, "b": 5, "c": 5}, pool, 20) == {"a": 5, "b": 5, "c": 5}  # fits: left alone
    tiny = {"a": list(range(0, 98)), "b": [98, 99]}  # b keeps 1.6 rows on average, sd 0.57: no room
    assert split_counts({"a": 50, "b": 2}, tiny, 20) == {"a": 50, "b": 0}
    rng = random.Random(3)
    for _ in range(20):
        mixture, calib = draw_split(pool, counts, 20, rng)
        assert len(calib) == 20 == len(set(calib)) and not set(calib) & set(mixture)
        assert [sum(i in pool[n] for i in mixture) for n in "abc"] == [26, 6, 2] and len(set(mixture)) == 34
    with pytest.raises(ValueError, match="mixture-size"):
        draw_split(pool, {"a": 40, "b": 0, "c": 0}, 20, rng)  # every a row is needed: no sample leaves them all


def test_the_prior_ridge_column_at_the_products_ridge_is_the_products_correction():
    """bench.calibration --prior-ridges: each ridge adds a bcts-prior@RIDGE column, and the one at
    report.calibration.PRIOR_RIDGE gives the product's own corrected shares (bcts-em), draw for draw."""
    import argparse

    import numpy as np

    from bench.calibration import correction_study
    from offline_cov.report.calibration import PRIOR_RIDGE

    rng = np.random.default_rng(4)
    truth = np.repeat([0, 1, 2], 150)
    scores = rng.normal(size=(450, 3))
    scores[np.arange(450), truth] += 1.2
    args = argparse.Namespace(calibration_from="pool", review_mixture_size=0, mixture_size=120, calibration_size=80,
                              draws=3, resamples=5, prior_ridges=f"{PRIOR_RIDGE},10")
    rows = correction_study(["a", "b", "c"], truth.tolist(), scores, 1.0, args, seed=2)
    assert len(rows) == 4  # the four three-category mixtures
    for row in rows:
        assert {f"bcts-prior@{PRIOR_RIDGE:g}", "bcts-prior@10"} <= set(row["mae"])
        assert row["mae"][f"bcts-prior@{PRIOR_RIDGE:g}"] == pytest.approx(row["mae"]["bcts-em"], abs=0.01)
    assert any(row["mae"]["bcts-prior@10"] != row["mae"]["bcts-em"] for row in rows)


def test_the_thin_rows_column_at_the_products_setting_is_what_the_product_applies():
    """bench.calibration --thin-rows: the bcts-em applied@ROWS column at report.calibration.SOFT_FEWEST_ROWS
    is the product's own `bcts-em applied`, draw for draw; a rare category with few calibration rows
    makes the stricter 200-row setting fall back to the raw shares on some draws."""
    import argparse

    import numpy as np

    from bench.calibration import correction_study
    from offline_cov.report.calibration import SOFT_FEWEST_ROWS

    rng = np.random.default_rng(5)
    truth = np.repeat([0, 1, 2], [300, 150, 12])
    scores = rng.normal(size=(len(truth), 3))
    scores[np.arange(len(truth)), truth] += 1.0
    args = argparse.Namespace(calibration_from="split", review_mixture_size=0, mixture_size=150, calibration_size=60,
                              draws=4, resamples=5, thin_rows=f"{SOFT_FEWEST_ROWS},200")
    rows = correction_study(["a", "b", "c"], truth.tolist(), scores, 1.0, args, seed=3)
    for row in rows:
        assert row["mae"][f"bcts-em applied@{SOFT_FEWEST_ROWS}"] == pytest.approx(row["mae"]["bcts-em applied"], abs=0.01)
        assert row["mae"]["bcts-em applied@200"] == pytest.approx(row["mae"]["raw"], abs=0.01)
    assert any(row["mae"]["bcts-em applied@200"] != row["mae"]["bcts-em applied"] for row in rows)


def test_refined_prototypes_move_towards_their_samples_and_stay_put_without_any():
    import numpy as np

    from bench.refine_ensemble import refined

    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    prototypes = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    weights = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # sample 0 wholly in category 0; none in 1
    moved = refined(vectors, prototypes, weights, beta=1.0, centred=False)
    assert np.allclose(moved[0], np.array([1.0, 1.0, 0.0]) / np.sqrt(2))  # halfway to sample 0, unit length
    assert np.allclose(moved[1], prototypes[1])  # no mass: the prototype is its seed
    centred = refined(vectors, prototypes, weights, beta=1.0, centred=True)
    # centred: the centroid minus the mean of all rows, (2/3, -1/3, -1/3), before it is made unit
    direction = np.array([2.0, -1.0, -1.0]) / np.sqrt(6)
    assert np.allclose(centred[0], (prototypes[0] + direction) / np.linalg.norm(prototypes[0] + direction))
    assert np.allclose(centred[1], prototypes[1])


def test_fit_biases_matches_the_rows_shares_and_its_ridge_holds_it_at_the_centre():
    import numpy as np

    from bench.calibration import fit_biases

    logits = np.zeros((4, 2))  # probabilities that say nothing: the biases alone must give the rows' shares
    truth = [0, 0, 0, 1]
    b = fit_biases(logits, truth, 2, a=1.0, ridge=0.0, centre=np.zeros(2))
    p = np.exp(b) / np.exp(b).sum()
    assert np.allclose(p, [0.75, 0.25], atol=1e-6)
    held = fit_biases(logits, truth, 2, a=1.0, ridge=1e9, centre=np.array([0.3, -0.3]))
    assert np.allclose(held, [0.3, -0.3], atol=1e-6)


def test_uncalibrated_intervals_widen_the_wilson_interval_by_the_margin():
    from bench.calibration import margin_coverage, uncalibrated
    from offline_cov.report.calibration import error_margin

    # 50 of 100 labeled a: Wilson 95% 40.38-59.62%; lowest accuracy 0.75: margin 0.15 x 25 = 3.75 points
    cells = [(50, 100, 37.0), (50, 100, 63.0)]
    coverage, width = margin_coverage(cells, error_margin(0.75))
    assert coverage == 1.0 and abs(width - 26.74) < 0.02
    held = uncalibrated(cells, 0.75)
    assert held == {"lowest_accuracy": 0.75, "ci95_coverage": 1.0, "mean_width_pp": 26.7}
    missed = uncalibrated([(50, 100, 36.5), (50, 100, 63.5)], 0.75)
    assert missed["ci95_coverage"] == 0.0


def test_the_margin_factor_is_the_smallest_holding_the_target_in_every_set():
    from bench.calibration import MARGIN_FACTORS, chosen_factor, margin_coverage

    cells = [(50, 100, 50.0), (50, 100, 61.0)]  # Wilson 40.38-59.62: the second true share is 1.38 points outside
    assert margin_coverage(cells, 0.0) == pytest.approx((0.5, 19.24))
    assert margin_coverage(cells, 2.0) == pytest.approx((1.0, 23.24))
    late = {str(f): [1.0 if f >= 0.3 else 0.5, 0.0] for f in MARGIN_FACTORS}  # the small set: held from 0.3
    by = {str(f): [1.0 if f >= 0.1 else 0.9, 0.0] for f in MARGIN_FACTORS}  # the large one: from 0.1
    results = [{"margin": {"dev": {"cells": 10, "by_factor": late}}}, {"margin": {"dev": {"cells": 1000, "by_factor": by}}}]
    assert chosen_factor(results) == 0.3  # every set must hold it: pooled, 0.1 would hold 99.5% of the cells


def test_the_decision_bench_scores_each_call_against_the_true_share():
    from bench.decisions import score_calls

    # (share called on, interval low, high, true share); k = 3: gap line 5, over line 35
    cells = [(3.0, 0.0, 4.0, 2.0),     # gap named, interval wholly under 5: clear, truly a gap
             (4.0, 0.0, 11.0, 6.0),    # gap named, interval crosses: crossing, not truly a gap
             (8.0, 1.0, 15.0, 0.0),    # not named, interval reaches under 5: possible, truly a gap
             (20.0, 13.0, 27.0, 3.0),  # not named, out of reach, but truly a gap: missed
             (50.0, 40.0, 60.0, 45.0)]  # over-represented, clear, truly over
    scored = score_calls(cells, 3)
    gaps = scored["gaps"]
    assert gaps["line"] == 5.0 and gaps["true"] == 3
    assert gaps["by_sureness"]["clear"] == {"cells": 1, "truly": 1, "precision": 1.0}
    assert gaps["by_sureness"]["crossing"] == {"cells": 1, "truly": 0, "precision": 0.0}
    assert gaps["by_sureness"]["possible"] == {"cells": 1, "truly": 1, "precision": 1.0}
    assert gaps["recall_named"] == round(1 / 3, 3) and gaps["recall_named_or_possible"] == round(2 / 3, 3)
    over = scored["over_represented"]
    assert over["true"] == 1 and over["by_sureness"]["clear"]["cells"] == 1 and over["recall_named"] == 1.0


def test_the_decision_bench_leaves_each_category_out_in_turn():
    from bench.decisions import leave_one_out

    pool = {"a": [0, 1, 2, 3], "b": [4, 5], "c": [6, 7], "d": []}
    mixes = leave_one_out(["a", "b", "c", "d"], pool)
    assert mixes["pool shares without a"] == [0.0, 0.5, 0.5, 0.0]
    assert mixes["pool shares without b"] == [4 / 6, 0.0, 2 / 6, 0.0]
    assert "pool shares without d" not in mixes  # a category without rows is absent already
    assert "pool shares" in mixes  # bench/calibration's compositions come first


def test_margin_cells_can_draw_larger_mixtures_with_replacement():
    import numpy as np

    from bench.calibration import MARGIN_DRAWS, margin_cells

    truth = np.array([0, 0, 1, 1, 2, 2])
    cells = margin_cells(["a", "b", "c"], truth, truth, list(range(6)), seed=1, size=300, replace=True)
    assert len(cells) == 3 * MARGIN_DRAWS * 4  # three categories, MARGIN_DRAWS draws of four compositions
    assert all(total == 300 for _, total, _ in cells)
    assert all(abs(100 * count / total - true) < 1e-9 for count, total, true in cells)  # a perfect labeler


def test_a_mixture_s_leftover_samples_never_go_to_an_absent_category():
    from bench.calibration import mixture_counts as composition_counts

    assert composition_counts(["a", "b", "c"], [0.0, 0.5, 0.5], 7) == {"a": 0, "b": 4, "c": 3}
    assert composition_counts(["a", "b", "c"], None, 10) == {"a": 4, "b": 3, "c": 3}


def test_seeds_bench_examples_and_gap_report():
    """Each arm's example for a category: none, a row of the category, a row of another category;
    every category of the report is a gap."""
    from bench.seeds import examples_for, gaps_report

    rows = [{"text": f"{n} row {i}", "labels": [n]} for n in ("a", "b", "c") for i in range(3)]
    arms = examples_for(rows, ["a", "b", "c"], seed=1)
    assert arms == examples_for(rows, ["a", "b", "c"], seed=1)
    assert set(arms["none"].values()) == {""}
    assert all(arms["own"][n].startswith(f"{n} row") for n in "abc")
    assert all(arms["other"][n] and not arms["other"][n].startswith(f"{n} row") for n in "abc")
    assert [g.category for g in gaps_report(["a", "b", "c"]).gaps] == ["a", "b", "c"]


PDEATHSIG = """import ctypes
sig = ctypes.c_int()
ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
print(sig.value)
"""
SPAWN_PROBE = """import multiprocessing
import runpy

import bench.common  # noqa: F401 (as every bench entry point does)


def pdeathsig():
    runpy.run_path({probe!r})


if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=pdeathsig)
    child.start()
    child.join()
"""
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


@linux_only
def test_a_process_a_bench_run_spawns_is_killed_with_it(tmp_path):
    """vLLM spawns its engine core; under `python -m bench.X` it outlived a bench killed with pkill,
    holding 10 GB, where the CLI's dies with it. The spawned child imports the bench's main module, so
    bench.common asks Linux for the same parent-death signal the CLI does."""
    (tmp_path / "pdeathsig.py").write_text(PDEATHSIG)
    (tmp_path / "bench_probe.py").write_text(SPAWN_PROBE.format(probe=str(tmp_path / "pdeathsig.py")))
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)])}
    out = subprocess.run([sys.executable, "-m", "bench_probe"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(int(signal.SIGKILL))]


@linux_only
def test_an_analyze_a_bench_runs_as_a_command_is_killed_with_it():
    """bench.parity, cpu_default, speed_cpu and scale run `analyze` as a command of their own, which
    (and so its engine) ran on when the bench was killed."""
    from bench import common

    out = common.run_child([sys.executable, "-c", PDEATHSIG], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(int(signal.SIGKILL))]


def test_an_inferred_taxonomys_score_rewards_labels_that_separate_the_true_classes():
    from bench.infer import classes_with_home, nmi

    truth = ["code", "code", "math", "math", "poem", "poem"]
    assert nmi(truth, ["a", "a", "b", "b", "c", "c"]) == pytest.approx(1.0)  # names differ, classes kept apart
    assert nmi(truth, ["a"] * 6) == 0.0 and classes_with_home(truth, ["a"] * 6) == ["code"]
    merged = ["a", "a", "a", "a", "c", "c"]  # code and math in one category: math has no home
    assert 0 < nmi(truth, merged) < 1 and classes_with_home(truth, merged) == ["code", "poem"]
    assert classes_with_home(truth, ["a", "b", "c", "d", "e", "f"]) == ["code", "math", "poem"]


def test_inferred_names_of_generic_words_only_are_counted_as_saying_nothing():
    from bench.infer import generic_names

    assert generic_names(["task", "instruction_type", "python_code", "data_analysis", "math"]) == ["task", "instruction_type"]


def test_proposal_with_skills_tops_up_the_proposal_rows_own_taxonomy(monkeypatch):
    """bench.infer scores `proposal+skills` on the `proposal` row's proposal, so they differ by the skills."""
    import numpy as np

    from bench.infer import topped_up
    from offline_cov.data.readers import Sample
    from offline_cov.engines.fake import FakeEngine
    from offline_cov.strategies import infer
    from offline_cov.taxonomy import Category, Taxonomy

    proposed = Taxonomy(categories=[Category(name=n, description=n) for n in "abcde"], inferred=True, inferred_by="proposal")
    samples = [Sample(i, (("user", f"write code {i}" if i < 4 else f"tell me {i}"),)) for i in range(40)]
    assert topped_up(FakeEngine(), samples, proposed) == proposed  # every shown sample nearest "a"

    def coding_nearest(taxonomy, texts):
        matrix = np.zeros((len(texts), len(taxonomy.names)))
        matrix[:, 0] = 1.0
        matrix[[i for i, t in enumerate(texts) if "code" in t], taxonomy.names.index("coding")] = 2.0
        return matrix

    monkeypatch.setattr(infer, "minilm_scores", coding_nearest)
    both = topped_up(FakeEngine(), samples, proposed)
    assert both.names == [*"abcde", "coding"] and both.inferred_by == "proposal+skills"
    vote = proposed.model_copy(update={"inferred_by": "vote"})
    assert topped_up(FakeEngine(), samples, vote) == vote  # the product adds no skills to the vote


def test_the_views_score_a_skipped_check_as_the_product_labels_it(monkeypatch):
    """With a skip rule on `ensemble-lite` (session 41's dev choice; not on in the product), bench.choose
    skips its check where the product would, and its confidence is the product's (the skip temperature)
    after one softmax at the labeler's temperature."""
    from types import SimpleNamespace

    import numpy as np

    from bench.choose import ensemble_scores, fused_probs, predictions
    from offline_cov.data.readers import Sample
    from offline_cov.engines.fake import FakeEngine
    from offline_cov.labelers.embed import softmax
    from offline_cov.labelers.ensemble_lite import EnsembleLiteLabeler
    from offline_cov.taxonomy import Category, Taxonomy

    monkeypatch.setattr(EnsembleLiteLabeler, "check_skip_above", 0.85)
    monkeypatch.setattr(EnsembleLiteLabeler, "skip_temperature", 0.6)
    names = ["math", "code", "writing"]
    sure = {"row": 1, "labels": ["math"], "embed": [0.9, 0.1, 0.0], "hidden": [0.8, 0.0, 0.1],
            "llm": {"primary": "math", "p_category": {"math": 0.98, "code": 0.01, "writing": 0.01}}, "check": [0.2, 0.9, 0.9]}
    payload = {"taxonomy": names, "spec": "t.yaml", "check_prompt": "check-v2", "check_top_k": 3, "rows": [sure],
               "content_free": {"check": [[0.5, 0.5, 0.5]]}}
    lab = EnsembleLiteLabeler(FakeEngine(), Taxonomy(categories=[Category(name=n, description=n) for n in names]),
                              fused=SimpleNamespace(temperature=1.0))
    experts = ([0.98, 0.01, 0.01], fused_probs(sure))
    assert lab.skips(experts)
    product = lab.combine(Sample(0, (("user", "x"),)), experts, None, None, None, skipped=True)
    scored = softmax(ensemble_scores(sure, payload, experts[0]) * lab.temperature)
    assert product.confidence == pytest.approx(float(scored.max()), abs=1e-3)
    assert predictions(payload, "ensemble")[0][0] == "math"  # the check's yes to code and writing is not asked
    asked = predictions(payload, "ensemble", skip=False)[0][0]
    names_only = predictions({**payload, "spec": "names:math,code,writing"}, "ensemble")[0][0]
    assert asked == names_only != "math"  # asked (never skipped, or names alone): the check overrules
    assert np.isclose(ensemble_scores(sure, payload, experts[0], skip=False).max(),
                      ensemble_scores(sure, {**payload, "spec": "names:x"}, experts[0]).max())


def test_the_check_skip_rule_takes_the_lowest_line_that_keeps_the_mean_and_the_lead_over_fused():
    """bench.check_skip's rule: a line within the tolerance of the mean that falls behind `fused` on a set
    where asking every row is ahead is refused; a set already behind `fused` does not hold a line back;
    no passing line gives None."""
    from bench.check_skip import MEAN_TOLERANCE, TAUS, choose_line

    def table(per_line: dict) -> dict:
        out = {"every row": {"mean": 0.8, "sets": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.5}}}}
        for line in TAUS:
            a, mean = per_line.get(line, (0.9, 0.8))
            out[str(line)] = {"mean": mean, "sets": {"a": {"accuracy": a}, "b": {"accuracy": 0.4}}}
        return out

    fused = {"a": 0.8, "b": 0.6}
    behind, kept = (0.79, 0.8 - MEAN_TOLERANCE / 2), (0.85, 0.8 - MEAN_TOLERANCE / 2)
    assert choose_line(table({TAUS[0]: behind, TAUS[1]: kept}), fused) == TAUS[1]
    assert choose_line(table({TAUS[0]: kept}), fused) == TAUS[0]
    low = {line: (0.9, 0.8 - 2 * MEAN_TOLERANCE) for line in TAUS}
    assert choose_line(table(low), fused) is None


def test_check_skip_reads_the_dev_choice_on_test_views_and_moves_only_the_sure_rows(monkeypatch):
    """`bench.check_skip --split test` on a described taxonomy: the sure row is skipped above the dev
    line (its label the product's argmax without the check), the unsure row is asked, and the table
    and its Markdown name the line tested."""
    from argparse import Namespace

    import bench.check_skip as check_skip

    names = ["math", "code", "writing"]
    sure = {"row": 1, "labels": ["math"], "embed": [0.9, 0.1, 0.0], "hidden": [0.8, 0.0, 0.1],
            "llm": {"primary": "math", "p_category": {"math": 0.98, "code": 0.01, "writing": 0.01}}, "check": [0.2, 0.9, 0.9]}
    unsure = {"row": 2, "labels": ["code"], "embed": [0.4, 0.45, 0.1], "hidden": [0.3, 0.35, 0.2],
              "llm": {"primary": "math", "p_category": {"math": 0.5, "code": 0.4, "writing": 0.1}}, "check": [0.1, 0.9, 0.1]}
    payload = {"taxonomy": names, "spec": "t.yaml", "check_prompt": "check-v2", "check_top_k": 3, "rows": [sure, unsure],
               "content_free": {"check": [[0.5, 0.5, 0.5]]}}
    monkeypatch.setattr(check_skip, "load", lambda split, views: {"arena-hard": payload})
    res = check_skip.run(Namespace(split="test", views="v", line=0.85, skip_temperature=0.6))
    every, line = res["lines"]["every row"]["sets"]["arena-hard"], res["lines"]["0.85"]["sets"]["arena-hard"]
    assert every["skipped"] == 0 and line["skipped"] == 0.5
    assert line["moved"] == 1 and line["accuracy"] == 1.0 and every["accuracy"] == 0.5  # the check's yes to code moved the sure row
    assert res["tested"] == {"line": 0.85, "skip_temperature": 0.6} and "chosen" not in res
    assert "The line tested: 0.85" in check_skip.markdown(res)
