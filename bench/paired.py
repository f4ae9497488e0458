"""Paired comparison of two labelers on the same rows: exact McNemar test and a bootstrap CI.

A difference of a few samples out of a few hundred is noise unless the two labelers disagree
rarely; this says which. Standard library only.
"""

from __future__ import annotations

import math
import random


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs as a fair coin (binomial, p=0.5)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_ci(diffs: list[int], rounds: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-row differences (resampling rows)."""
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    low = means[int((1 - level) / 2 * rounds)]
    high = means[min(rounds - 1, int((1 + level) / 2 * rounds))]
    return round(low, 4), round(high, 4)


def compare(truth: list[str], a: list[str], b: list[str], seed: int = 0) -> dict:
    """Accuracy of a minus accuracy of b on the same rows, with McNemar p and a 95% bootstrap CI."""
    if not (len(truth) == len(a) == len(b)) or not truth:
        raise ValueError("compare needs the same, non-empty rows for both labelers")
    return compare_right([x == t for x, t in zip(a, truth)], [x == t for x, t in zip(b, truth)], seed)


def compare_right(right_a: list[bool], right_b: list[bool], seed: int = 0) -> dict:
    """`compare` from whether each labeler was right on each row (for rows with more than one true label)."""
    if len(right_a) != len(right_b) or not right_a:
        raise ValueError("compare needs the same, non-empty rows for both labelers")
    diffs = [int(x) - int(y) for x, y in zip(right_a, right_b)]
    only_a, only_b = diffs.count(1), diffs.count(-1)
    return {"n": len(diffs), "diff": round(sum(diffs) / len(diffs), 4), "only_a_right": only_a,
            "only_b_right": only_b, "mcnemar_p": round(mcnemar_exact(only_a, only_b), 4),
            "ci95": bootstrap_ci(diffs, seed=seed)}
