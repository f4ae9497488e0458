"""The labelers' measured accuracies (what the report's intervals widen by) are the bench run's numbers."""

import json
import re
from pathlib import Path

import pytest

from offline_cov.labelers import get_labeler_class
from offline_cov.labelers.measured import SETS, for_model, on_test

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["embed", "fused", "llm", "ensemble", "ensemble-lite", "ensemble-nocheck"])
def test_measured_accuracy_is_the_cited_runs(name):
    cls = get_labeler_class(name)
    assert cls.measured
    for entry in cls.measured:
        assert entry["split"] == "test"
        if cls.needs_engine:  # the run's model read the samples: the cited run is that model's
            assert entry["model"] in entry["bench_run"]
        sets = json.loads((ROOT / entry["bench_run"]).read_text())["sets"]
        assert len(entry["accuracy"]) >= 7
        for key, value in entry["accuracy"].items():
            set_name, description = re.fullmatch(r"(\S+) \((.*)\)", key).groups()
            assert description == SETS[set_name]
            scored = sets[set_name]["labelers"][entry.get("bench_column", name)]
            assert value == scored["accuracy"], (entry["model"] if cls.needs_engine else name, key)
            assert description.endswith(f"{scored['n']} rows") and description.startswith(f"{len(sets[set_name]['taxonomy'])} categories")


def test_each_model_gets_its_own_measured_numbers_and_an_unmeasured_one_a_note():
    big = on_test({"arena-hard": 0.8}, model="big", run="bench/results/choose-big-test.json")
    small = on_test({"arena-hard": 0.7}, model="small", run="bench/results/choose-small-test.json")
    assert for_model((big, small), "small", reads_llm=True) is small
    assert for_model((big, small), "big", reads_llm=True) is big
    other = for_model((big, small), "other", reads_llm=True)
    assert "accuracy" not in other and other["note"] == "measured with big, small, not with other"
    no_llm = on_test({"arena-hard": 0.6})
    assert for_model((no_llm,), "whatever", reads_llm=False) is no_llm
    assert for_model((), "big", reads_llm=True) == {}


def test_the_report_cites_the_ensemble_run_of_the_model_that_read_the_samples():
    """The 1.5B's run for a run the 1.5B read, the 0.5B's for the 0.5B, and a note (no accuracy to widen
    by) for a model the bench never ran."""
    from types import SimpleNamespace

    from offline_cov.strategies.how_sure import measured_accuracy

    def cited(model: str) -> dict:
        return measured_accuracy(SimpleNamespace(labeler_cls=get_labeler_class("ensemble"), model_read=lambda: model))

    default = cited("qwen2.5-coder-1.5b")
    assert default["labeler"] == "ensemble" and default["model"] == "qwen2.5-coder-1.5b"
    assert "qwen2.5-coder-1.5b" in default["bench_run"] and min(default["accuracy"].values()) < 0.65
    small = cited("qwen2.5-coder-0.5b")
    assert "qwen2.5-coder-0.5b" in small["bench_run"] and min(small["accuracy"].values()) == 0.52
    big = cited("qwen2.5-7b-instruct")
    assert "accuracy" not in big and big["note"].startswith("measured with qwen2.5-coder-1.5b")


@pytest.mark.parametrize("name", ["embed", "fused", "ensemble", "ensemble-nocheck", "ensemble-lite"])
def test_gaps_named_without_review_are_the_decision_runs(name):
    """The caveat's figures: the range over bench.decisions' sets and mixture sizes of the recall of named gaps."""
    entry = get_labeler_class(name).measured[0]
    gaps = entry["gaps_without_review"]
    results = json.loads((ROOT / gaps["bench_run"]).read_text())["results"]
    mine = [r for r in results if r["labeler"] == gaps.get("bench_labeler", name)]
    assert {r["set"] for r in mine} == {"arena-hard", "justeval-topics"}

    def span(reviewed: bool) -> list[int]:
        recalls = [scored["gaps"]["recall_named"] for r in mine for size, scored in r["by_size"].items()
                   if ("reviewed" in size) == reviewed]
        return [round(100 * min(recalls)), round(100 * max(recalls))]

    assert gaps["real_gaps_named_percent"] == span(False)
    assert gaps["after_200_label_review_percent"] == span(True)


def test_the_caveat_names_the_labelers_own_figures_or_says_they_were_not_measured():
    from offline_cov.strategies.how_sure import uncalibrated_caveat

    def caveat(name: str, model: str) -> str:
        cls = get_labeler_class(name)
        return uncalibrated_caveat({"labeler": name, **for_model(cls.measured, model, cls.reads_llm)})

    default = caveat("ensemble", "qwen2.5-coder-1.5b")
    assert "with ensemble (qwen2.5-coder-1.5b), an absent category still got up to 11% of the labels" in default
    assert "named only 41-91% of the real gaps (after a 200-label review, 100%" in default
    assert "with embed, the report named only 0-6% of the real gaps" in caveat("embed", "any")
    lite = caveat("ensemble-lite", "qwen2.5-coder-1.5b")  # the default on a CPU without AMX (session 36)
    assert "an absent category still got up to 16-21% of the labels, and the report named only 44-96% of the real gaps" in lite
    other = caveat("ensemble", "qwen2.5-7b-instruct")
    assert "was not measured for ensemble with this model (the CPU default named 41-91% of them" in other
    for text in (default, other):
        assert text.endswith("run `offline-cov review` and `analyze --calibration`.")


def test_labels_of_a_lighter_ensemble_say_what_ensemble_adds_with_the_runs_model_and_how_to_ask_for_it():
    from offline_cov.run import lighter_warning

    nocheck, checked = get_labeler_class("ensemble-nocheck"), get_labeler_class("ensemble")
    (warning,) = lighter_warning(nocheck, "qwen2.5-coder-1.5b", [])
    assert warning.startswith("labeled by ensemble-nocheck, without the yes/no check")
    assert "0.69 mean accuracy on the bench's test sets against 0.77 for ensemble (qwen2.5-coder-1.5b)" in warning
    assert "--labeler ensemble asks its check" in warning
    assert lighter_warning(nocheck, "qwen2.5-coder-1.5b", [warning]) == []
    assert lighter_warning(checked, "qwen2.5-coder-1.5b", []) == []
    (small,) = lighter_warning(nocheck, "qwen2.5-coder-0.5b", [])
    assert "0.61 mean accuracy on the bench's test sets against 0.63 for ensemble (qwen2.5-coder-0.5b)" in small
    (other,) = lighter_warning(nocheck, "qwen2.5-7b-instruct", [])  # measured with neither: the CPU default model's
    assert other == warning
    lite_cls = get_labeler_class("ensemble-lite")
    (lite,) = lighter_warning(lite_cls, "qwen2.5-7b-instruct", [])  # measured with neither: the 1.5B's figures
    assert lite.startswith("labeled by ensemble-lite, with the yes/no check asked in the label request's own chat")
    assert "0.75 mean accuracy on the bench's test sets against 0.77 for ensemble (qwen2.5-coder-1.5b)" in lite
    # with the 0.5B, on the seven sets both were measured on (0.631 vs 0.633; lite's nine: 0.643), no warning
    assert lighter_warning(lite_cls, "qwen2.5-coder-0.5b", []) == []


def test_a_lighter_ensemble_measured_on_no_set_of_the_defaults_gets_no_comparison():
    from offline_cov.run import lighter_warning

    class Disjoint(get_labeler_class("ensemble-lite")):
        measured = ({"model": "qwen2.5-coder-1.5b", "split": "test", "accuracy": {"a set of its own": 0.1}},)

    assert lighter_warning(Disjoint, "qwen2.5-coder-1.5b", []) == []


@pytest.mark.parametrize("name", ["ensemble", "ensemble-lite"])
def test_interval_coverage_is_the_margin_studys_at_the_labelers_factor(name):
    """The basis's figures: the range over bench.calibration's sets of the no-calibration interval's
    coverage at the labeler's factor (SHARE_ERROR_FACTOR, or the one its own study chose on the dev
    mixtures), on the dev and on the test mixtures."""
    from offline_cov.report.calibration import SHARE_ERROR_FACTOR

    entry = get_labeler_class(name).measured[0]
    held = entry["interval_coverage"]
    payload = json.loads((ROOT / held["bench_run"]).read_text())
    studies = [r["margin"] for r in payload["results"] if r["labeler"] == name and r.get("margin")]
    assert len(studies) == 2
    factor = held.get("factor", SHARE_ERROR_FACTOR)
    if "factor" in held:  # a factor of its own is the one its study chose on the dev mixtures
        assert factor == payload["margin_factor_chosen_on_dev"] != SHARE_ERROR_FACTOR
    for part in ("dev", "test"):
        cover = [round(100 * s[part]["by_factor"][str(factor)][0], 1) for s in studies]
        assert held[f"{part}_percent"] == [min(cover), max(cover)]


def test_the_basis_cites_the_labelers_own_margin_study_or_says_it_is_ensembles():
    from types import SimpleNamespace

    from reportmaker import make_report

    from offline_cov.strategies.how_sure import measured_accuracy, widened_intervals

    report = make_report({"a": 30, "b": 70}, 100)

    def basis(name: str) -> str:
        measured = measured_accuracy(SimpleNamespace(labeler_cls=get_labeler_class(name), model_read=lambda: "qwen2.5-coder-1.5b"))
        return widened_intervals(report, measured)["basis"]

    assert "the margin that held 100% of the true shares on mixtures of the bench's dev rows and 94.8-100% on its test " \
           "rows with this labeler" in basis("ensemble")
    assert "a margin measured with ensemble, not with this labeler" in basis("ensemble-nocheck")
    lite = basis("ensemble-lite")  # its own factor (session 37): 0.2 x (1 - 0.595)
    assert lite.startswith("sampling interval widened by 8.1 points each way: 0.2 x (1 - the labeler's lowest accuracy "
                           "on the bench's public sets, 0.595)")  # the accuracy as measured, not rounded to 0.59
    assert "held 96.1-100% of the true shares on mixtures of the bench's dev rows and 90.1-100% on its test rows" in lite


def test_the_benches_widen_by_the_margin_the_product_gives_each_labeler():
    from bench.calibration import labeler_margin
    from offline_cov.report.calibration import error_margin

    assert labeler_margin("ensemble-lite") == error_margin(0.595, 0.2) == 8.1  # its own factor (session 37)
    assert labeler_margin("ensemble") == error_margin(0.607) == 5.9  # the product's 0.15
