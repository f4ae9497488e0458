"""Aggregation against hand-computed reports, the contract's worked example among them."""

import json

import pytest

from offline_cov.data.readers import Sample
from offline_cov.report.contract import CategoryStats, DifficultyDistribution, contract_violations
from offline_cov.report.tally import (
    ReportInputs,
    SampleLabel,
    Thresholds,
    balance_score,
    build_report,
    samples_to_target,
)
from offline_cov.taxonomy import Category, Taxonomy, parse_taxonomy_list

WORKED = {"factual_qa": 52, "writing": 28, "code": 12, "reasoning": 5, "math": 3}


def worked_inputs():
    taxonomy = parse_taxonomy_list("math,code,writing,reasoning,factual_qa")
    labels, samples = [], {}
    for name, count in WORKED.items():
        for _ in range(count):
            i = len(labels)
            labels.append(SampleLabel(i, (name,), ("easy", "medium", "hard")[i % 3]))
            samples[i] = Sample(i, (("user", f"{name} question number {i}"),))
    return ReportInputs(taxonomy, labels, samples, total=100)


def test_worked_example_matches_the_contract():
    report = build_report(worked_inputs())
    assert round(report.balance_score, 2) == 0.43
    assert [g.category for g in report.gaps] == ["math"]
    assert report.gaps[0].current_share == 3.0 and report.gaps[0].target_share == 20.0
    assert [o.category for o in report.over_represented] == ["factual_qa"]
    assert report.over_represented[0].current_share == 52.0
    shares = {c.name: c.share_percent for c in report.categories}
    assert shares == {"math": 3.0, "code": 12.0, "writing": 28.0, "reasoning": 5.0, "factual_qa": 52.0}
    assert [c.name for c in report.categories] == ["math", "code", "writing", "reasoning", "factual_qa"]
    assert contract_violations(report, list(WORKED)) == []


def test_balance_score_hand_computed():
    # q = (.52,.28,.12,.05,.03), t = .2: sum q^2/t = 1.833, D = .5456, (D - .2)/.8 = .4320
    assert balance_score(WORKED, {k: 20.0 for k in WORKED}) == pytest.approx(0.432, abs=1e-3)
    assert balance_score({"a": 1, "b": 1}, {"a": 50, "b": 50}) == 1.0
    assert balance_score({"a": 30, "b": 70}, {"a": 30, "b": 70}) == 1.0
    # everything in the category with the smallest target gives 0
    assert balance_score({"a": 10, "b": 0}, {"a": 20, "b": 80}) == 0.0
    # a category with target 0 is left out of the formula
    assert balance_score({"a": 5, "b": 5, "c": 90}, {"a": 50, "b": 50, "c": 0}) == 1.0


def test_multi_label_counts_and_difficulty_sums():
    tax = parse_taxonomy_list("math,code,writing")
    labels = [
        SampleLabel(0, ("math", "code"), "hard"),
        SampleLabel(1, ("code",), "easy"),
        SampleLabel(2, ("writing",), "medium"),
        SampleLabel(3, ("code", "writing"), "medium"),
    ]
    samples = {i: Sample(i, (("user", f"s{i}"),)) for i in range(4)}
    report = build_report(ReportInputs(tax, labels, samples, total=4))
    by = {c.name: c for c in report.categories}
    assert (by["math"].count, by["code"].count, by["writing"].count) == (1, 3, 2)
    assert by["code"].share_percent == 75.0
    assert sum(c.share_percent for c in report.categories) == 150.0
    assert by["code"].difficulty_distribution.model_dump() == {"easy": 1, "medium": 1, "hard": 1}
    assert by["math"].representative_example == "s0"
    assert contract_violations(report, ["math", "code", "writing"]) == []


def test_failed_samples_stay_in_the_total():
    tax = parse_taxonomy_list("a,b")
    labels = [SampleLabel(0, ("a",), "easy")]
    report = build_report(ReportInputs(tax, labels, {0: Sample(0, (("user", "x"),))}, total=3))
    assert report.total_samples_analyzed == 3
    assert report.categories[0].share_percent == pytest.approx(33.33)
    assert report.categories[1].count == 0 and report.categories[1].representative_example == ""


def test_targets_and_thresholds_from_the_taxonomy():
    tax = Taxonomy(categories=[Category(name="a", target_share=4), Category(name="b", target_share=96)])
    labels = [SampleLabel(i, ("b",), "easy") for i in range(95)] + [SampleLabel(95 + i, ("a",), "easy") for i in range(3)]
    samples = {lab.index: Sample(lab.index, (("user", "x"),)) for lab in labels}
    report = build_report(ReportInputs(tax, labels, samples, total=100, thresholds=Thresholds(gap=5, over=35)))
    assert [(g.category, g.target_share) for g in report.gaps] == [("a", 4.0)]
    # two samples failed; b (95%) is over 35% but under its 96% target: not over-represented against the user's own target
    assert report.over_represented == []
    assert "Add about 2 a instructions" in report.gaps[0].fill_suggestion


def test_inferred_taxonomy_gaps_are_categories_under_two_samples():
    tax = Taxonomy(categories=[Category(name=n) for n in "abcde"], inferred=True)
    counts = {"a": 40, "b": 30, "c": 20, "d": 9, "e": 1}
    labels, i = [], 0
    for name, n in counts.items():
        for _ in range(n):
            labels.append(SampleLabel(i, (name,), "medium"))
            i += 1
    samples = {lab.index: Sample(lab.index, (("user", "x"),)) for lab in labels}
    report = build_report(ReportInputs(tax, labels, samples, total=100))
    assert [g.category for g in report.gaps] == ["e"]
    assert [o.category for o in report.over_represented] == ["a"]
    assert contract_violations(report, None, inferred=True) == []


def test_samples_to_target():
    assert samples_to_target(3, 100, 20) == 22  # (20 - 3) / 0.8 = 21.25 -> 22
    assert samples_to_target(30, 100, 20) == 0


def test_representative_example_is_deterministic_and_median_length():
    tax = parse_taxonomy_list("a,b")
    texts = ["short", "a medium length one", "a much much longer instruction than the rest"]
    labels = [SampleLabel(i, ("a",), "easy") for i in range(3)]
    samples = {i: Sample(i, (("user", t),)) for i, t in enumerate(texts)}
    one = build_report(ReportInputs(tax, labels, samples, total=3))
    two = build_report(ReportInputs(tax, list(reversed(labels)), samples, total=3))
    assert one.categories[0].representative_example == "a medium length one"
    assert one == two


def test_contract_violations_catch_a_broken_report():
    report = build_report(worked_inputs())
    broken = report.model_copy(deep=True)
    broken.categories[0].share_percent = 50.0
    broken.categories[1].difficulty_distribution.easy += 1
    broken.decision_basis = "word " * 31
    problems = contract_violations(broken, list(WORKED))
    assert any("share_percent" in p for p in problems)
    assert any("difficulty counts" in p for p in problems)
    assert any("decision_basis" in p for p in problems)
    assert contract_violations(report, ["math", "code"]) != []


def test_wilson_interval_hand_computed():
    from offline_cov.report.tally import wilson_interval

    # p = 0.2, n = 100: centre 0.2111, half-width 0.0777 -> [13.34, 28.88]
    low, high = wilson_interval(20, 100)
    assert low == pytest.approx(13.36, abs=0.05) and high == pytest.approx(28.91, abs=0.05)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(50, 50)[1] == 100.0


def test_the_representative_is_the_most_confident_primary_sample():
    from offline_cov.report.tally import Tally
    from offline_cov.taxonomy import parse_taxonomy_list

    tax = parse_taxonomy_list("a,b")
    tally = Tally(tax)
    labels = [SampleLabel(0, ("a",), "easy", 0.61), SampleLabel(1, ("a",), "easy", 0.97), SampleLabel(2, ("b",), "easy", 0.5),
              SampleLabel(3, ("a", "b"), "hard", 0.97), SampleLabel(4, ("b",), "easy", 0.8), SampleLabel(5, ("b",), "medium", 0.99)]
    for lab in labels:
        tally.add(lab, 10)
    # a: 0.97 twice, the lowest index wins; b: sample 3 has b only as a secondary label, so 5 (0.99)
    assert tally.representatives() == {"a": 1, "b": 5}
    examples = tally.examples()
    assert examples["a"]["most"] == [(1, 0.97), (3, 0.97), (0, 0.61)]
    assert examples["a"]["least"] == [(0, 0.61), (1, 0.97), (3, 0.97)]
    assert [i for i, _ in examples["b"]["most"]] == [5, 4, 2]


def test_without_confidences_the_representative_is_the_median_length_one():
    from offline_cov.report.tally import Tally
    from offline_cov.taxonomy import parse_taxonomy_list

    tally = Tally(parse_taxonomy_list("a,b"))
    for i, length in enumerate([5, 50, 20]):
        tally.add(SampleLabel(i, ("a",), "easy"), length)
    assert tally.representatives() == {"a": 2} and tally.examples() == {}


def test_a_long_category_description_is_cut_cleanly_in_the_fill_suggestion():
    from offline_cov.report.tally import brief, fill_suggestion

    description = "writing, explaining or fixing code and queries (Python, Java, SQL, shell scripts) across languages"
    text = fill_suggestion("code", 1, 100, 20.0, description)
    assert text == "Add about 24 code instructions (writing, explaining or fixing code and queries\u2026) across easy, medium and hard to reach 20%."
    assert fill_suggestion("code", 0, 100, 0.5).startswith("Add about 1 code instruction across")
    assert brief("short one") == "short one" and brief("a" * 80) == "a" * 59 + "\u2026"
    assert len(brief("word " * 30)) <= 60 and brief("word " * 30).endswith("word\u2026")


def test_a_fill_suggestion_never_says_add_about_0():
    """A 100% target, or a report of no samples (an empty shard), said "Add about 0 poetry instructions"
    (audit, session 26)."""
    from offline_cov.report.tally import fill_suggestion

    whole = fill_suggestion("poetry", 0, 40, 100.0)
    assert whole == ("Add poetry instructions and leave out the others: a target of 100% is reached only when every "
                     "sample is poetry.")
    assert fill_suggestion("math", 0, 0, 20.0) == ("Add math instructions across easy, medium and hard: no samples "
                                                   "were analyzed to count from.")
    assert all("about 0" not in fill_suggestion("a", c, t, g) for c, t, g in [(0, 40, 100.0), (0, 0, 20.0), (3, 100, 4.0)])


def test_an_inferred_category_at_its_share_but_under_two_samples_asks_for_the_samples_it_lacks():
    from offline_cov.report.tally import Thresholds, find_gaps

    stats = [CategoryStats(name=n, count=1, share_percent=10.0, representative_example="x",
                           difficulty_distribution=DifficultyDistribution(easy=1, medium=0, hard=0)) for n in "abcdefghij"]
    gaps = find_gaps(stats, {n: 10.0 for n in "abcdefghij"}, Thresholds(), 10, inferred=True)
    assert len(gaps) == 10
    assert gaps[0].fill_suggestion == "Add at least 1 more a instruction: it holds 1, under the 2 samples an inferred category needs."


def test_a_mix_the_balance_score_cannot_see_is_warned_about():
    """`--taxonomy math=100,code=0` scored balance 1.0 with 45% of the samples in code, and writing=100 with
    the rest at 0 scored 1.0 with writing at 27%: the contract leaves target-0 categories out (audit, session 26)."""
    from offline_cov.report.tally import balance_score, off_target_warning

    counts, targets = {"math": 55, "code": 45}, {"math": 100.0, "code": 0.0}
    assert balance_score(counts, targets) == 1.0  # the contract's formula, kept
    assert off_target_warning(counts, 100, targets) == (
        "45.0% of the samples are labeled with categories whose target is 0 (code); the balance score leaves those "
        "categories out (the contract's rule 6), so with one category targeted above 0 it is 1 whatever the mix")
    some = off_target_warning({"math": 24, "code": 76}, 100, {"math": 0.0, "code": 50.0, "writing": 50.0})
    assert some.startswith("24.0% of the samples") and some.endswith("so they do not lower it")
    assert off_target_warning({"math": 4, "code": 96}, 100, {"math": 0.0, "code": 100.0}) is None  # under 5%
    assert off_target_warning({"math": 50, "code": 50}, 100, {"math": 50.0, "code": 50.0}) is None


def test_a_run_whose_targets_hide_part_of_the_mix_says_so_and_a_shard_leaves_it_to_merge(tmp_path):
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from offline_cov.cli import main

    args = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math=100,code=0", "-q",
            "--cache", str(tmp_path / "c.sqlite")]
    done = CliRunner().invoke(main, args + ["-o", str(tmp_path / "r.json")])
    assert done.exit_code == 0, done.output
    warnings = json.loads((tmp_path / "r.meta.json").read_text())["warnings"]
    assert sum("whose target is 0 (code)" in w for w in warnings) == 1
    shard = CliRunner().invoke(main, args + ["-o", str(tmp_path / "s.json"), "--shard", "0/2"])
    assert shard.exit_code == 0, shard.output
    assert not any("whose target is 0" in w for w in json.loads((tmp_path / "s.meta.json").read_text())["warnings"])
