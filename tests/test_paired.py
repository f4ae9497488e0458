"""bench.paired (McNemar, bootstrap), bench.labelers' pairing of runs, bench.transductive's refine."""

import math

import pytest

from bench.labelers import paired_vs_baselines
from bench.paired import bootstrap_ci, compare, mcnemar_exact


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
