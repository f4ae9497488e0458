"""bench.paired (McNemar, bootstrap), bench.labelers' pairing of runs, bench.transductive's refine."""

import math

import pytest

from bench.labelers import paired_vs_baselines
from bench.paired import bootstrap_ci, compare, compare_right, mcnemar_exact


def test_mcnemar_exact_matches_the_binomial_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # both one-sided tails of Binomial(6, 0.5)
    assert mcnemar_exact(25, 15) == pytest.approx(2 * sum(math.comb(40, i) for i in range(16)) / 2**40)
    assert mcnemar_exact(3, 3) == 1.0


def test_compare_counts_discordant_rows_and_brackets_the_difference():
    truth = list("aaaabbbbcc")
    a = list("aaaabbbbca")  # 9 right
    b = list("aaaaaaaacc")  # 6 right
    result = compare(truth, a, b)
    assert (result["only_a_right"], result["only_b_right"], result["diff"]) == (4, 1, 0.3)
    low, high = result["ci95"]
    assert low <= 0.3 <= high and low < high
    with pytest.raises(ValueError):
        compare(truth, a, b[:3])


def test_compare_right_takes_right_and_wrong_rows_and_agrees_with_compare():
    assert compare_right([True, True, False, True], [False, True, True, False]) == compare(list("aaaa"), list("aaba"), list("baab"))
    got = compare_right([True, False, False], [True, True, True])
    assert (got["n"], got["diff"], got["only_a_right"], got["only_b_right"]) == (3, round(-2 / 3, 4), 0, 2)
    with pytest.raises(ValueError):
        compare_right([True], [True, False])


def test_choose_pairs_the_cpu_defaults_with_the_baselines_on_rows_with_several_true_labels():
    """A row is right for a labeler when its label is any of the row's; unlabeled rows are left out."""
    from bench.choose import PAIRED, paired

    payload = {"rows": [{"labels": ["a", "b"]}, {"labels": ["c"]}, {"labels": []}, {"labels": ["a"]}]}
    said = {"ensemble": "bcxa", "ensemble-v5": "acxc", "fused": "aaxa", "embed": "ccxc"}
    preds = {lab: [(x, None) for x in labels] for lab, labels in said.items()}
    got = paired(payload, preds)
    assert list(got) == [f"{a} vs {b}" for a, b in PAIRED]
    assert (got["ensemble vs fused"]["only_a_right"], got["ensemble vs fused"]["only_b_right"]) == (1, 0)
    assert got["ensemble vs fused"]["n"] == 3
    assert (got["ensemble-v5 vs embed"]["only_a_right"], got["ensemble-v5 vs embed"]["only_b_right"]) == (1, 0)
    assert got["ensemble vs embed"]["diff"] == round(2 / 3, 4)
    without_check = paired(payload, {lab: p for lab, p in preds.items() if lab != "ensemble"})
    assert list(without_check) == ["ensemble-v5 vs fused", "ensemble-v5 vs embed"]


def test_choose_tells_views_with_the_check_from_views_without_it():
    from bench.views import has_check

    rows = [{"check": [0.5, 0.5]}, {"check": [0.9, 0.1]}]
    assert has_check({"content_free": {"check": [[0.5, 0.5]]}, "rows": rows})
    assert not has_check({"content_free": {"llm": []}, "rows": rows})
    assert not has_check({"content_free": {"check": [[0.5, 0.5]]}, "rows": rows + [{}]})


def test_bootstrap_ci_is_seeded_and_degenerate_for_constant_differences():
    assert bootstrap_ci([1, 0, -1, 1], seed=3) == bootstrap_ci([1, 0, -1, 1], seed=3)
    assert bootstrap_ci([1] * 20) == (1.0, 1.0)


def run(name, rows, predicted):
    return {"labeler": name, "samples": [{"row": r, "true": "x", "predicted": p} for r, p in zip(rows, predicted)]}


def test_runs_are_paired_with_embed_and_vllm_only_on_the_same_rows():
    runs = [run("vllm", [1, 2], ["y", "x"]), run("embed", [1, 2], ["x", "x"]), run("fused", [1, 2], ["x", "y"]),
            run("embed (whole split)", [1, 2, 3], ["x", "x", "y"]), run("hybrid (whole split)", [1, 2, 3], ["x", "x", "x"])]
    pairs = {(p["labeler"], p["vs"]): p for p in paired_vs_baselines(runs)}
    assert set(pairs) == {("vllm", "embed"), ("fused", "embed"), ("fused", "vllm"),
                          ("hybrid (whole split)", "embed (whole split)")}
    assert pairs[("vllm", "embed")]["diff"] == -0.5
    assert pairs[("fused", "vllm")]["diff"] == 0.0 and pairs[("fused", "vllm")]["only_a_right"] == 1
    assert pairs[("hybrid (whole split)", "embed (whole split)")]["only_a_right"] == 1


def test_refine_keeps_a_seed_prototype_that_too_few_samples_chose():
    np = pytest.importorskip("numpy")
    from bench.transductive import refine, unit

    P = np.eye(3)[:2] * 1.0  # two categories along x and y
    X = unit(np.array([[1.0, 0.2, 0.3], [1.0, -0.1, 0.3], [0.9, 0.0, 0.5], [0.1, 1.0, 0.0]]))
    Q = refine(X, P, alpha=0.5, steps=1)
    assert np.allclose(Q[1], P[1])  # one sample chose y: under MIN_ASSIGNED, the seed stays
    assert not np.allclose(Q[0], P[0]) and np.isclose(np.linalg.norm(Q[0]), 1.0)
