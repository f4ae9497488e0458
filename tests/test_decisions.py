"""Where the report's gap and over-representation calls stand against each share's 95% interval."""

from __future__ import annotations

from reportmaker import worked_example

from offline_cov.report.decisions import call_decisions, call_kind
from offline_cov.report.tally import Thresholds
from offline_cov.strategies.how_sure import with_calls
from offline_cov.taxonomy import Taxonomy


def test_a_call_is_clear_only_when_the_whole_interval_is_on_its_side_of_the_line():
    assert call_kind(True, 0.0, 4.9, 5.0, below=True) == "clear"
    assert call_kind(True, 0.0, 5.0, 5.0, below=True) == "crossing"  # a true share of exactly 5% is not a gap
    assert call_kind(False, 4.9, 20.0, 5.0, below=True) == "possible"
    assert call_kind(False, 5.0, 20.0, 5.0, below=True) is None
    assert call_kind(True, 35.1, 60.0, 35.0, below=False) == "clear"
    assert call_kind(True, 30.0, 60.0, 35.0, below=False) == "crossing"
    assert call_kind(False, 20.0, 35.1, 35.0, below=False) == "possible"
    assert call_kind(False, 20.0, 35.0, 35.0, below=False) is None


def test_the_lines_follow_the_targets_as_the_report_s_calls_do():
    shares = {"a": 4.0, "b": 4.0, "c": 60.0, "d": 32.0}
    intervals = {"a": (2.5, 6.0), "b": (2.5, 6.0), "c": (50.0, 70.0), "d": (28.0, 36.0)}
    targets = {"a": 3.0, "b": 0.0, "c": 65.0, "d": 32.0}
    calls = call_decisions(shares, intervals, targets, 5.0, 35.0)
    # a: the gap line is its 3% target, and 4% is over it, but the interval reaches 2.5: possible.
    # b: target 0 is never a gap. c: over 35 but under its 65% target, and the interval reaches over 65.
    assert calls["gaps"] == {"clear": [], "crossing": [], "possible": ["a"]}
    assert calls["over_represented"] == {"clear": [], "crossing": [], "possible": ["c", "d"]}


def test_an_inferred_taxonomy_s_gaps_are_left_out_and_the_report_s_own_calls_are_kept():
    shares, intervals = {"a": 1.0, "b": 99.0}, {"a": (0.0, 3.0), "b": (97.0, 100.0)}
    calls = call_decisions(shares, intervals, {"a": 50.0, "b": 50.0}, 5.0, 35.0, gaps_by_share=False,
                           called_gaps=set(), called_over={"b"})
    assert calls["gaps"] == {"clear": [], "crossing": [], "possible": []}
    assert calls["over_represented"]["clear"] == ["b"]
    assert call_decisions({"a": 1.0}, {}, {"a": 50.0}, 5.0, 35.0)["gaps"]["possible"] == []  # no interval, no call


def test_with_calls_sorts_the_worked_example_s_calls_by_its_intervals():
    report = worked_example()  # factual_qa 52 (over), writing 28, code 12, reasoning 5, math 3 (gap)
    ci = {"factual_qa": [46.0, 61.0], "writing": [22.0, 37.0], "code": [6.0, 21.0], "reasoning": [0.0, 14.0],
          "math": [0.0, 12.0]}
    taxonomy = Taxonomy.model_validate({"categories": [{"name": c.name} for c in report.categories]})
    block = with_calls({"ci95": ci}, report, taxonomy, Thresholds())
    assert block["ci95"] == ci
    assert block["calls"]["gaps"] == {"clear": [], "crossing": ["math"], "possible": ["reasoning"]}
    assert block["calls"]["over_represented"] == {"clear": ["factual_qa"], "crossing": [], "possible": ["writing"]}


def test_a_category_called_on_one_side_is_not_possible_on_the_other():
    # few samples: a 0% share's interval reaches past the 35% over line, a 67% share's under 5%
    shares = {"a": 0.0, "b": 66.7, "c": 33.3}
    intervals = {"a": (0.0, 56.0), "b": (3.0, 95.0), "c": (6.0, 79.0)}
    targets = {"a": 33.3, "b": 33.3, "c": 33.3}
    calls = call_decisions(shares, intervals, targets, 5.0, 35.0)
    assert calls["gaps"]["crossing"] == ["a"] and "a" not in calls["over_represented"]["possible"]
    assert calls["over_represented"]["crossing"] == ["b"] and calls["gaps"]["possible"] == []
    assert calls["over_represented"]["possible"] == ["c"]  # called on neither side: still possible
