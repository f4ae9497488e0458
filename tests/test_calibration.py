"""The share correction against hand-computed cases, including a singular confusion matrix."""

from __future__ import annotations

import pytest

from offline_cov.report.calibration import (
    acc_shares,
    condition_number,
    confusion,
    correct_shares,
    em_shares,
    error_interval,
    error_margin,
)


def test_confusion_counts_rows_and_smooths_every_cell():
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b")]
    # a: 2 right, 1 wrong, +0.5 each -> 2.5/4, 1.5/4 ; b: 0 + 0.5, 1 + 0.5 -> 0.5/2, 1.5/2
    smoothed = confusion(pairs, ["a", "b"])
    assert smoothed[0] == pytest.approx([2.5 / 4, 1.5 / 4]) and smoothed[1] == pytest.approx([0.25, 0.75])
    plain = confusion(pairs, ["a", "b"], smoothing=0)
    assert plain[0] == pytest.approx([2 / 3, 1 / 3]) and plain[1] == pytest.approx([0.0, 1.0])


def test_a_known_confusion_is_undone_exactly():
    conf = [[0.8, 0.2], [0.3, 0.7]]
    true = [0.25, 0.75]
    observed = [true[0] * 0.8 + true[1] * 0.3, true[0] * 0.2 + true[1] * 0.7]  # 0.425, 0.575
    assert observed == pytest.approx([0.425, 0.575])
    assert em_shares(observed, conf) == pytest.approx(true, abs=1e-6)
    assert acc_shares(observed, conf) == pytest.approx(true, abs=1e-9)


def test_three_categories_hand_computed():
    conf = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
    true = [0.6, 0.3, 0.1]
    observed = [sum(true[i] * conf[i][j] for i in range(3)) for j in range(3)]
    assert observed == pytest.approx([0.59, 0.29, 0.12])
    assert em_shares(observed, conf) == pytest.approx(true, abs=1e-6)


def test_a_perfect_labeler_changes_nothing():
    assert em_shares([0.5, 0.3, 0.2], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]) == pytest.approx([0.5, 0.3, 0.2])


def test_a_singular_confusion_tells_nothing_and_em_stays_where_it_started():
    """Labels independent of the truth (every row the same): any true mix explains the labels
    equally well, so EM keeps its uniform start, ACC cannot solve, and the condition number is infinite."""
    conf = [[0.5, 0.5], [0.5, 0.5]]
    assert em_shares([0.9, 0.1], conf) == pytest.approx([0.5, 0.5])
    import numpy as np

    with pytest.raises(np.linalg.LinAlgError):
        acc_shares([0.9, 0.1], conf)
    assert condition_number(conf) > 1e12


def test_a_near_singular_calibration_is_flagged_not_trusted():
    # the labeler says 'a' for almost everything, whatever the truth
    pairs = [("a", "a")] * 40 + [("b", "a")] * 38 + [("b", "b")] * 2
    result = correct_shares({"a": 95, "b": 5}, pairs, ["a", "b"])
    assert not result.trustworthy
    assert any("close to singular" in r for r in result.reasons)
    assert result.condition_number > 20


def test_too_few_rows_of_a_category_is_flagged():
    pairs = [("a", "a")] * 50 + [("b", "b")] * 3 + [("a", "b")] * 2
    result = correct_shares({"a": 60, "b": 40}, pairs, ["a", "b"])
    assert not result.trustworthy and "fewer than 5 calibration rows truly in b" in result.reasons[0]


def test_correct_shares_moves_a_biased_mix_back_and_brackets_it():
    # truth 80/20; a labeler right 80% of the time on either class labels 68/32
    pairs = [("a", "a")] * 80 + [("a", "b")] * 20 + [("b", "b")] * 80 + [("b", "a")] * 20
    result = correct_shares({"a": 680, "b": 320}, pairs, ["a", "b"], seed=1)
    assert result.trustworthy and result.calibration_rows == 200 and result.accuracy_on_calibration == 0.8
    assert result.raw == {"a": 68.0, "b": 32.0}
    assert result.corrected["a"] == pytest.approx(80.0, abs=1.5)
    lo, hi = result.ci95["a"]
    assert lo < 80.0 < hi and hi - lo < 25
    assert result.moved()["a"] == pytest.approx(result.corrected["a"] - 68.0)
    again = correct_shares({"a": 680, "b": 320}, pairs, ["a", "b"], seed=1)
    assert again.ci95 == result.ci95  # seeded: the same report for the same input


def test_error_interval_is_the_wilson_interval_widened_by_the_margin():
    assert error_interval(50, 100, 0.0) == (40.38, 59.62)  # Wilson 95%, hand-computed
    assert error_interval(50, 100, 5.0) == (35.38, 64.62)
    assert error_interval(2, 100, 5.0)[0] == 0.0 and error_interval(98, 100, 5.0)[1] == 100.0  # clipped
    assert error_interval(0, 0, 5.0) == (0.0, 100.0)
    assert error_margin(0.6) == 6.0  # 0.15 x (1 - 0.6) x 100
    assert error_margin(0.9) < error_margin(0.6) and error_margin(None) == 0.0


def test_the_llms_confidence_is_the_probability_of_the_tokens_of_its_choice():
    import math

    from offline_cov.engines import GenResult
    from offline_cov.labelers.llm import value_probability

    tokens = [('{"', 0.0), ("primary", 0.0), ('":', 0.0), (' "', -0.01), ("cod", math.log(0.6)), ("ing", math.log(0.9)),
              ('",', 0.0), (' "difficulty": "easy"}', -0.2)]
    result = GenResult("".join(t for t, _ in tokens), "stop", len(tokens), {"tokens": tokens})
    assert value_probability(result, "primary", "coding") == pytest.approx(0.6 * 0.9)
    merged = [('{"primary": "', 0.0), ('math"', math.log(0.7)), (", ...}", -1.0)]
    assert value_probability(GenResult("".join(t for t, _ in merged), "stop", 3, {"tokens": merged}),
                             "primary", "math") == pytest.approx(0.7)
    assert value_probability(GenResult('{"primary": "math"}', "stop", 3), "primary", "math") is None  # no logprobs
    assert value_probability(result, "primary", "math") is None  # not the value the text holds


def test_a_name_json_escapes_keeps_its_probability_and_its_share_of_the_first_token():
    """Names holding a quote or a backslash are spelled escaped in the answer: their probability was None
    and their first-token share 0 (taxonomy audit)."""
    import math

    from offline_cov.engines import GenResult
    from offline_cov.labelers.llm import choice_distribution, value_probability

    tokens = [('{"primary": "', 0.0), ('say \\"', math.log(0.5)), ('hi\\""', math.log(0.8)), (", ...}", -1.0)]
    top = [{}, {'say \\"': math.log(0.5), "back": math.log(0.3), "plain": math.log(0.2)}, {}, {}]
    result = GenResult("".join(t for t, _ in tokens), "stop", 4, {"tokens": tokens, "top": top})
    names = ['say "hi"', "back\\slash", "plain"]
    assert value_probability(result, "primary", 'say "hi"') == pytest.approx(0.5 * 0.8)
    result.text = '{"primary": "say \\"hi\\""' + ", ...}"
    dist = choice_distribution(result, "primary", names)
    assert dist["back\\slash"] > 0.25 and dist["plain"] > 0.15 and dist['say "hi"'] > 0.4


# ---------------------------------------------------------------- the soft correction (per-sample probabilities)


def test_prior_shift_em_recovers_a_hand_computed_shift():
    """Posteriors calibrated under a 50/50 prior: a sample is type A (0.9, 0.1) or type B (0.1, 0.9),
    so P(A | a) = 0.9 and P(A | b) = 0.1. A data set truly 80/20 has 0.8*0.9 + 0.2*0.1 = 74% type A;
    EM from the posteriors' own mean (74/26) must find 80/20 (at 80/20 the reweighted posteriors are
    0.72/0.74 and 0.08/0.26 and their mean is 0.74*0.97297 + 0.26*0.30769 = 0.8)."""
    from offline_cov.report.calibration import prior_shift_em

    posteriors = [[0.9, 0.1]] * 74 + [[0.1, 0.9]] * 26
    assert prior_shift_em(posteriors, [0.5, 0.5]).tolist() == pytest.approx([0.8, 0.2], abs=1e-6)
    unshifted = [[0.9, 0.1]] * 50 + [[0.1, 0.9]] * 50  # the mix a 50/50 data set gives: nothing to correct
    assert prior_shift_em(unshifted, [0.5, 0.5]).tolist() == pytest.approx([0.5, 0.5], abs=1e-9)


def test_recalibration_recovers_a_known_temperature_and_bias():
    """Rows drawn from softmax(2 z + (0, 1, -1)): the fit finds a = 2 and b = (0, 1, -1) within noise."""
    import numpy as np

    from offline_cov.report.calibration import fit_recalibration

    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 3))
    logits = 2 * z + np.array([0.0, 1.0, -1.0])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=row) for row in p])
    a, b = fit_recalibration(z, truth, 3)
    assert a == pytest.approx(2.0, abs=0.15)
    assert b.tolist() == pytest.approx([0.0, 1.0, -1.0], abs=0.15)


def test_recalibration_on_skewed_rows_pulls_the_biases_towards_their_log_shares():
    """`fit_to_rows`: a ridge pulls the biases towards the log of the rows' own (smoothed) shares,
    where a labeler calibrated under even shares needs them; a vanishing one leaves the plain fit."""
    import numpy as np

    from offline_cov.report.calibration import fit_recalibration, fit_to_rows, rows_prior

    rng = np.random.default_rng(2)
    truth = np.repeat([0, 1, 2], [150, 44, 6])  # a mix far from even: 6 rows of the last category
    z = rng.normal(size=(200, 3))
    z[np.arange(200), truth] += 1.5
    centre = np.log(rows_prior(truth, 3))
    _, held = fit_to_rows(z, truth, 3, ridge=1e6)
    assert held.tolist() == pytest.approx((centre - centre[0]).tolist(), abs=1e-3)
    a_free, b_free = fit_recalibration(z, truth, 3, ridge=1e-9)
    a_near, b_near = fit_to_rows(z, truth, 3, ridge=1e-9)
    assert a_near == pytest.approx(a_free, abs=1e-4) and b_near.tolist() == pytest.approx(b_free.tolist(), abs=1e-4)
    assert rows_prior(truth, 3).sum() == pytest.approx(1.0) and rows_prior(truth, 3).min() > 0


def test_soft_correction_undoes_an_overconfident_labeler_under_a_prior_shift():
    """Calibration rows 50/50, data 80/20, probabilities too sure (the truth is softmax(z / 2)):
    the soft correction brings 'a' back near 80% and its interval holds 80."""
    import numpy as np

    from offline_cov.report.calibration import correct_shares_soft

    rng = np.random.default_rng(1)

    def rows(n, share_a):
        truth = (rng.random(n) > share_a).astype(int)
        z = rng.normal(size=(n, 2)) * 0.8
        z[np.arange(n), truth] += 2.0  # the score of the true category runs higher
        p = np.exp(2 * z) / np.exp(2 * z).sum(axis=1, keepdims=True)  # reported too sharp
        return truth, p

    names = ["a", "b"]
    cal_truth, cal_p = rows(200, 0.5)
    data_truth, data_p = rows(3000, 0.8)
    counts = {n: int((data_p.argmax(axis=1) == j).sum()) for j, n in enumerate(names)}
    pairs = [(names[t], names[j]) for t, j in zip(cal_truth, cal_p.argmax(axis=1))]
    result = correct_shares_soft(counts, pairs, data_p, cal_p, names, seed=3, resamples=100)
    true_a = 100 * float((data_truth == 0).mean())
    assert result.trustworthy and result.method.startswith("per-sample probabilities")
    assert abs(result.corrected["a"] - true_a) < abs(result.raw["a"] - true_a)
    assert result.corrected["a"] == pytest.approx(true_a, abs=3.0)
    lo, hi = result.ci95["a"]
    assert lo <= true_a <= hi
    again = correct_shares_soft(counts, pairs, data_p, cal_p, names, seed=3, resamples=100)
    assert again.ci95 == result.ci95 and again.corrected == result.corrected


def test_probabilities_that_cannot_tell_two_categories_apart_are_not_trusted():
    """A labeler whose probabilities are the same whatever the truth: recalibration can only learn
    the rows' own shares, the soft confusion matrix is singular, and the correction says so: its
    shares are still valid shares, but the run decides gaps on the raw ones (test_review checks that)."""
    from offline_cov.report.calibration import correct_shares_soft

    names = ["a", "b"]
    pairs = [("a", "a")] * 60 + [("b", "a")] * 40
    result = correct_shares_soft({"a": 100, "b": 0}, pairs, [[0.7, 0.3]] * 100, [[0.7, 0.3]] * 100, names, resamples=20)
    assert not result.trustworthy
    assert any("close to singular" in r for r in result.reasons)
    assert sum(result.corrected.values()) == pytest.approx(100.0, abs=0.05)
    assert all(0 <= v <= 100 for v in result.corrected.values())


def test_the_soft_correction_is_applied_over_a_thin_category_that_matters_and_names_it():
    """b holds ~6% of the labels and has 3 calibration rows: the soft correction is applied (SOFT_FEWEST_ROWS
    is 1), b is named as thin, with its row count, and its interval is wider than a's."""
    from offline_cov.report.calibration import SOFT_FEWEST_ROWS, correct_shares_soft

    assert SOFT_FEWEST_ROWS == 1
    names = ["a", "b"]
    pairs = [("a", "a")] * 50 + [("b", "b")] * 3
    probs = [[0.9, 0.1]] * 50 + [[0.2, 0.8]] * 3
    result = correct_shares_soft({"a": 50, "b": 3}, pairs, probs, probs, names, resamples=20)
    assert result.trustworthy, result.reasons
    assert result.thin == ["b"] and result.thin_that_matters() == ["b"]
    assert result.rows_per_category == {"a": 50, "b": 3}
    assert result.to_json()["calibration_rows_per_category"] == {"a": 50, "b": 3}


def test_the_soft_correction_is_not_trusted_when_a_category_that_matters_has_no_row():
    """b holds ~6% of the labels and no calibration row is truly b: nothing tells how the labeler
    errs on it, so the correction is not trusted; with fewest=5 (the other corrections' rule) 3 rows
    are not enough either."""
    from offline_cov.report.calibration import correct_shares_soft

    names = ["a", "b"]
    pairs = [("a", "a")] * 45 + [("a", "b")] * 5
    probs = [[0.9, 0.1]] * 45 + [[0.3, 0.7]] * 5
    result = correct_shares_soft({"a": 50, "b": 3}, pairs, probs, probs, names, resamples=20)
    assert not result.trustworthy and result.reasons == ["no calibration rows truly in b"]
    assert result.thin == [] and result.rows_per_category == {"a": 50, "b": 0}
    three = [("a", "a")] * 50 + [("b", "b")] * 3
    probs = [[0.9, 0.1]] * 50 + [[0.2, 0.8]] * 3
    strict = correct_shares_soft({"a": 50, "b": 3}, three, probs, probs, names, resamples=20, fewest=5)
    assert not strict.trustworthy and strict.reasons == ["fewer than 5 calibration rows truly in b"]


def test_a_thin_category_under_the_share_that_matters_is_left_to_its_interval():
    """c has 2 calibration rows, and both the labels and the correction give it about 1%: the
    correction is trusted, and c is named as thin. Two categories without any row (both smoothed to
    the same uniform row) do not make the matrix look singular either."""
    from offline_cov.report.calibration import THIN_SHARE_PERCENT

    names = ["a", "b", "c", "d", "e"]
    pairs = [("a", "a")] * 90 + [("a", "b")] * 10 + [("b", "b")] * 90 + [("b", "a")] * 10 + [("c", "c")] * 2
    result = correct_shares({"a": 590, "b": 400, "c": 10, "d": 0, "e": 0}, pairs, names, seed=2, resamples=50)
    assert max(result.raw["c"], result.corrected["c"]) < THIN_SHARE_PERCENT
    assert result.trustworthy, result.reasons
    assert result.thin == ["c", "d", "e"] and result.to_json()["thin_categories"] == ["c", "d", "e"]
    assert result.condition_number < 20


def test_the_difference_estimator_hand_computed():
    """Labels a, b at 50/50. The reviewed rows labeled a are half truly b; those labeled b are all b.
    With the labels as probabilities it is the stratified estimator: 0.5 * (1/2, 1/2) + 0.5 * (0, 1)."""
    from offline_cov.report.calibration import difference_shares

    truth, labeled = [0, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]
    one_hot = [[1.0, 0.0] if lab == 0 else [0.0, 1.0] for lab in labeled]
    assert difference_shares([0.5, 0.5], one_hot, truth, labeled, [0.5, 0.5]) == pytest.approx([0.25, 0.75])
    # probabilities: mean over every sample (0.6, 0.4); residuals (truth - p) of the rows labeled a
    # average (0.5 - 0.7, 0.5 - 0.3) = (-0.2, 0.2), of the rows labeled b (0 - 0.2, 1 - 0.8) = (-0.2, 0.2)
    probs = [[0.7, 0.3]] * 4 + [[0.2, 0.8]] * 2
    assert difference_shares([0.6, 0.4], probs, truth, labeled, [0.5, 0.5]) == pytest.approx([0.4, 0.6])
    # a label without reviewed rows adds nothing; a share pushed under 0 is clipped and the rest renormalised
    assert difference_shares([0.6, 0.4], probs[:4], truth[:4], labeled[:4], [0.5, 0.5]) == pytest.approx([0.5, 0.5])
    assert difference_shares([0.05, 0.95], [[0.9, 0.1]] * 2, [1, 1], [0, 0], [1.0, 0.0]) == pytest.approx([0.0, 1.0])


def test_a_review_undoes_a_labeler_that_calls_half_of_b_a():
    """600 samples labeled a, 400 labeled b; the review finds a third of the a's truly b (no b is a):
    the true mix is 40/60, bracketed by the interval, whatever the reviewed rows' own mix."""
    from offline_cov.report.calibration import REVIEW_METHOD_HARD, correct_shares_reviewed

    pairs = [("a", "a")] * 40 + [("b", "a")] * 20 + [("b", "b")] * 10  # b's under-reviewed: no matter
    result = correct_shares_reviewed({"a": 600, "b": 400}, pairs, ["a", "b"], seed=1, resamples=200)
    assert result.corrected == pytest.approx({"a": 40.0, "b": 60.0})
    assert result.ci95["a"][0] < 40 < result.ci95["a"][1] and result.ci95["a"][1] - result.ci95["a"][0] < 25
    assert result.trustworthy and result.method == REVIEW_METHOD_HARD and result.condition_number is None
    assert result.accuracy_on_calibration == pytest.approx(50 / 70, abs=1e-4)


def test_a_review_too_thin_for_a_label_that_matters_is_not_trusted():
    from offline_cov.report.calibration import correct_shares_reviewed

    pairs = [("a", "a")] * 60 + [("b", "b")] * 3 + [("c", "c")] * 2
    result = correct_shares_reviewed({"a": 800, "b": 190, "c": 10}, pairs, ["a", "b", "c"], resamples=20)
    assert not result.trustworthy and result.reasons == ["fewer than 5 reviewed rows labeled b"]
    assert result.thin == ["c"]  # 1% of the samples: left to its interval


def test_a_review_with_probabilities_recalibrates_them():
    """An overconfident labeler whose probabilities say 0.99 for a where a third of its a's are b:
    recalibrated on the reviewed rows and corrected by their residuals, the shares come back to 40/60."""
    from offline_cov.report.calibration import REVIEW_METHOD, correct_shares_reviewed

    probabilities = [[0.99, 0.01]] * 600 + [[0.01, 0.99]] * 400
    pairs = [("a", "a")] * 40 + [("b", "a")] * 20 + [("b", "b")] * 20
    reviewed = [[0.99, 0.01]] * 60 + [[0.01, 0.99]] * 20
    result = correct_shares_reviewed({"a": 600, "b": 400}, pairs, ["a", "b"], probabilities, reviewed, resamples=50)
    assert result.method == REVIEW_METHOD and result.trustworthy
    assert result.corrected["a"] == pytest.approx(40.0, abs=0.5)
    assert result.ci95["a"][0] <= result.corrected["a"] <= result.ci95["a"][1]


def test_a_category_without_calibration_rows_keeps_the_interval_without_calibration():
    """The bootstrap never draws a row of a category no calibration row is truly in, so its corrected
    interval says nothing of the labeler's errors there (an audit saw 0.0-4.6% called a clear gap):
    it keeps the widened interval; the others keep the bootstrap's."""
    from offline_cov.strategies.how_sure import calibrated_intervals

    calibration = {"corrected_ci95": {"a": [40.0, 60.0], "b": [30.0, 50.0], "legal": [0.0, 4.6]},
                   "calibration_rows_per_category": {"a": 80, "b": 60, "legal": 0}, "trustworthy": True}
    widened = {"basis": "sampling interval widened by 7.1 points each way",
               "ci95": {"a": [35.0, 65.0], "b": [25.0, 55.0], "legal": [0.0, 10.2]}}
    block = calibrated_intervals(calibration, widened)
    assert block["ci95"] == {"a": [40.0, 60.0], "b": [30.0, 50.0], "legal": [0.0, 10.2]}
    assert "legal, with no calibration row truly in it, keeps the interval without calibration" in block["basis"]
    assert calibrated_intervals({**calibration, "calibration_rows_per_category": {"a": 80, "b": 60, "legal": 2}},
                                widened)["ci95"]["legal"] == [0.0, 4.6]
    from offline_cov.report.calibration import REVIEW_METHOD

    review = calibrated_intervals({**calibration, "method": REVIEW_METHOD}, widened)  # rows per label, not per truth
    assert review["ci95"] == calibration["corrected_ci95"]


def test_a_calibration_too_small_to_describe_two_categories_says_so():
    """One row: the matrix is the smoothing's and as good as singular; the reason given is the rows'
    number, not a labeler that 'confuses some categories too often' (an audit saw a 2e33 condition number)."""
    from offline_cov.report.calibration import correct_shares_soft

    names = ["a", "b", "c"]
    result = correct_shares_soft({"a": 50, "b": 30, "c": 20}, [("a", "a")], [[0.8, 0.1, 0.1]] * 100,
                                 [[0.8, 0.1, 0.1]], names, resamples=10)
    assert not result.trustworthy
    assert result.reasons[-1].startswith("too few calibration rows to measure the labeler's errors: 0 categories")
    assert not any("condition number" in reason for reason in result.reasons)


def test_a_correction_from_few_rows_says_what_the_bench_measured_there():
    """Under SMALL_CALIBRATION_ROWS rows an EM correction gets a warning with the bench's figures; at it
    or over, and for a review (measured apart), none."""
    from offline_cov.report.calibration import REVIEW_METHOD, SMALL_CALIBRATION_ROWS, correct_shares_soft
    from offline_cov.strategies.how_sure import _small_warning

    names = ["a", "b"]
    few = [("a", "a")] * 20 + [("b", "b")] * 10
    probs = [[0.9, 0.1]] * 20 + [[0.2, 0.8]] * 10
    result = correct_shares_soft({"a": 60, "b": 40}, few, probs * 3, probs, names, resamples=10)
    warning = _small_warning(result)
    assert len(warning) == 1 and warning[0].startswith("the correction rests on 30 calibration rows")
    assert f"at {SMALL_CALIBRATION_ROWS} rows" in warning[0]
    enough = correct_shares_soft({"a": 60, "b": 40}, few * 2, probs * 3, probs * 2, names, resamples=10)
    assert enough.calibration_rows == 60 and _small_warning(enough) == []
    result.method = REVIEW_METHOD
    assert _small_warning(result) == []


def test_a_correction_keeps_its_shares_unrounded_for_the_corrected_balance():
    """Seven rows, 1/1/5 of a, b, c: the balance of the exact shares is 0.4074; of the shares rounded to
    two decimals (14.29/14.29/71.43), 0.4075. The corrected balance is computed from the former."""
    from offline_cov.report.calibration import shares_of_every_sample
    from offline_cov.report.tally import balance_score

    pairs = [("a", "a"), ("b", "b")] + [("c", "c")] * 5
    correction = shares_of_every_sample({"a": 1, "b": 1, "c": 5}, pairs, ["a", "b", "c"])
    uniform = {n: 100 / 3 for n in "abc"}
    assert correction.corrected == {"a": 14.29, "b": 14.29, "c": 71.43}
    assert balance_score(correction.fractions, uniform) == 0.4074 != balance_score(correction.corrected, uniform)
    em = correct_shares({"a": 1, "b": 1, "c": 5}, pairs, ["a", "b", "c"])
    assert sum(em.fractions.values()) == pytest.approx(1.0)
    assert {n: round(100 * v, 2) for n, v in em.fractions.items()} == em.corrected
