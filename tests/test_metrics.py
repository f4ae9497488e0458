"""offline_cov.metrics against values computed by hand for fixed predictions."""

import pytest

from offline_cov.data.readers import Sample
from offline_cov.metrics import (
    FAILED,
    accuracy,
    cohen_kappa,
    confusion_matrix,
    coverage_errors,
    label_metrics,
    macro_f1,
    per_category,
    set_agreement,
    share_errors,
)
from offline_cov.report.tally import ReportInputs, SampleLabel, build_report
from offline_cov.taxonomy import parse_taxonomy_list

# 6 samples: positions 0,1,3,5 right; 2 (a->b) and 4 (b->c) wrong.
TRUE = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_accuracy():
    assert accuracy(TRUE, PRED) == pytest.approx(4 / 6)
    assert accuracy([], []) == 0.0


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        accuracy(["a", "b"], ["a"])


def test_per_category_by_hand():
    stats = per_category(TRUE, PRED)
    # a: tp 2 of 2 predicted, 3 true -> P 1, R 2/3, F1 0.8
    assert stats["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    # b: tp 1 of 2 predicted, 2 true
    assert stats["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    # c: tp 1 of 2 predicted, 1 true -> F1 2*.5*1/1.5
    assert stats["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})


def test_macro_f1():
    assert macro_f1(TRUE, PRED) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # a label that never occurs counts as F1 0 in the mean when it is asked for
    assert macro_f1(TRUE, PRED, labels=["a", "b", "c", "d"]) == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)


def test_cohen_kappa_by_hand():
    # p_o = 4/6; p_e = (3*2 + 2*2 + 1*2) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 0.5
    assert cohen_kappa(TRUE, PRED) == pytest.approx(0.5)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    # always the same single label on both sides: chance agreement is 1
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    # systematic disagreement is below chance
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_confusion_matrix():
    assert confusion_matrix(TRUE, PRED) == {
        "a": {"a": 2, "b": 1, "c": 0},
        "b": {"a": 0, "b": 1, "c": 1},
        "c": {"a": 0, "b": 0, "c": 1},
    }


def test_failed_predictions_count_as_wrong_and_get_a_column():
    y_true, y_pred = ["a", "b", "b"], ["a", FAILED, "b"]
    m = label_metrics(y_true, y_pred, labels=["a", "b"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"]["b"] == {"a": 0, "b": 1, FAILED: 1}
    assert m["per_category"]["b"]["recall"] == pytest.approx(0.5)
    assert set(m["per_category"]) == {"a", "b"}
    assert m["n"] == 3


def test_precision_of_a_never_predicted_label_is_zero():
    assert per_category(["a", "b"], ["a", "a"])["b"]["precision"] == 0.0


TRUE_REPORT = {
    "categories": [
        {"name": "a", "share_percent": 60.0}, {"name": "b", "share_percent": 36.0}, {"name": "c", "share_percent": 4.0},
    ],
    "gaps": [{"category": "c"}],
    "over_represented": [{"category": "a"}, {"category": "b"}],
    "balance_score": 0.52,
}
PRED_REPORT = {
    "categories": [
        {"name": "a", "share_percent": 50.0}, {"name": "b", "share_percent": 30.0}, {"name": "c", "share_percent": 20.0},
    ],
    "gaps": [],
    "over_represented": [{"category": "a"}],
    "balance_score": 0.9,
}


def test_share_errors_in_points():
    assert share_errors(TRUE_REPORT, PRED_REPORT) == pytest.approx({"a": -10.0, "b": -6.0, "c": 16.0})


def test_set_agreement_conventions():
    assert set_agreement(["a", "b"], ["a"]) == {"precision": 1.0, "recall": 0.5}
    assert set_agreement(["a"], ["a", "b", "c", "d"]) == {"precision": 0.25, "recall": 1.0}
    assert set_agreement([], []) == {"precision": 1.0, "recall": 1.0}
    assert set_agreement(["c"], []) == {"precision": 1.0, "recall": 0.0}
    assert set_agreement([], ["c"]) == {"precision": 0.0, "recall": 1.0}


def test_coverage_errors_by_hand():
    err = coverage_errors(TRUE_REPORT, PRED_REPORT)
    assert err["share_mae_pp"] == pytest.approx(32 / 3)
    assert err["share_max_abs_pp"] == pytest.approx(16.0)
    assert err["gaps"] == {"true": ["c"], "predicted": [], "precision": 1.0, "recall": 0.0}
    assert err["over_represented"]["recall"] == 0.5
    assert err["over_represented"]["precision"] == 1.0
    assert err["balance_error"] == pytest.approx(0.38)


def test_coverage_errors_accept_pydantic_reports():
    tax = parse_taxonomy_list("a,b,c")
    samples = {i: Sample(i, (("user", f"s{i}"),)) for i in range(4)}

    def report(cats):
        labels = [SampleLabel(i, (c,), "easy") for i, c in enumerate(cats)]
        return build_report(ReportInputs(tax, labels, samples, 4))

    err = coverage_errors(report(["a", "a", "b", "c"]), report(["a", "b", "b", "c"]))
    assert err["share_error_pp"] == pytest.approx({"a": -25.0, "b": 25.0, "c": 0.0})
    # true: a=50 is over 35; predicted: b=50 is
    assert err["over_represented"]["true"] == ["a"]
    assert err["over_represented"]["predicted"] == ["b"]
    assert err["over_represented"]["precision"] == 0.0
