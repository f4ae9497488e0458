"""Shares corrected for the labeler's errors, with intervals that say how sure they are.

A labeler that is right 70% of the time moves samples between categories, and the raw shares of
its labels are biased towards uniform (a rare category gains the others' mistakes). Given a small
labeled sample of the user's own data (the calibration rows: true category and the labeler's),
this module

1. estimates the labeler's confusion matrix `C[i, j] = P(labeled j | truly i)` from the rows,
   smoothed with `SMOOTHING` pseudo-counts per cell (so it is never singular);
2. corrects the observed label counts with the EM prior correction of Saerens, Latinne &
   Decaestecker (2002) on hard labels: the true shares `p` are the maximum-likelihood solution of
   `observed share_j = sum_i p_i C[i, j]`, found by EM, which stays on the simplex (adjusted
   classify-and-count solves the same equations by inversion and leaves the simplex on small
   samples; the bench compared both, bench/calibration.py);
3. gives each corrected share a 95% bootstrap interval: the calibration rows are resampled (a new
   confusion matrix) and the labels redrawn from the observed shares, `BOOTSTRAP` times;
4. says when the correction is not to be trusted: too few calibration rows for some category
   (under `MIN_ROWS_PER_CATEGORY`), or a confusion matrix so close to singular (condition number
   over `MAX_CONDITION`) that the correction amplifies noise. Then the corrected shares are still
   reported, but the report's gaps and over-representation stay on the raw shares.

Without calibration rows, `error_interval` widens each share's sampling interval by what the
labeler's measured accuracy on public labeled sets allows (a symmetric-error model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .tally import wilson_interval

SMOOTHING = 0.5  # pseudo-count added to every cell of the calibration counts
BOOTSTRAP = 400
MIN_ROWS_PER_CATEGORY = 5
MAX_CONDITION = 20.0
EM_ITERATIONS = 500
EM_TOLERANCE = 1e-9


@dataclass
class Correction:
    """Corrected shares (percent), their 95% intervals, and whether the correction can be trusted."""

    names: list[str]
    raw: dict[str, float]
    corrected: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    trustworthy: bool
    reasons: list[str] = field(default_factory=list)
    calibration_rows: int = 0
    accuracy_on_calibration: float | None = None
    condition_number: float | None = None

    def moved(self) -> dict[str, float]:
        """How far each share moved (percentage points, corrected minus raw)."""
        return {n: round(self.corrected[n] - self.raw[n], 2) for n in self.names}

    def to_json(self) -> dict:
        return {
            "method": "EM prior correction (Saerens et al. 2002) on a smoothed confusion matrix",
            "calibration_rows": self.calibration_rows,
            "accuracy_on_calibration": self.accuracy_on_calibration,
            "condition_number": self.condition_number,
            "trustworthy": self.trustworthy,
            "not_trustworthy_because": self.reasons,
            "raw_share_percent": self.raw,
            "corrected_share_percent": self.corrected,
            "corrected_ci95": {n: list(v) for n, v in self.ci95.items()},
            "moved_points": self.moved(),
            "bootstrap_resamples": BOOTSTRAP,
        }


def confusion(pairs: list[tuple[str, str]], names: list[str], smoothing: float = SMOOTHING) -> list[list[float]]:
    """Row-normalised `C[i][j] = P(labeled names[j] | truly names[i])` from (true, labeled) pairs."""
    k, at = len(names), {n: i for i, n in enumerate(names)}
    counts = [[smoothing] * k for _ in range(k)]
    for true, labeled in pairs:
        counts[at[true]][at[labeled]] += 1
    return [[c / sum(row) for c in row] for row in counts]


def em_shares(observed: list[float], conf: list[list[float]], iterations: int = EM_ITERATIONS) -> list[float]:
    """True shares p (summing to 1) that best explain the observed label shares q through the
    confusion matrix: EM for the mixture q_j = sum_i p_i C[i][j], started from uniform."""
    import numpy as np

    q, c = np.asarray(observed, dtype=float), np.asarray(conf, dtype=float)
    p = np.full(len(q), 1.0 / len(q))
    for _ in range(iterations):
        mix = p @ c
        ratio = np.divide(q, mix, out=np.zeros_like(q), where=mix > 0)
        new = p * (c @ ratio)
        new /= new.sum() or 1.0
        if np.abs(new - p).max() < EM_TOLERANCE:
            return new.tolist()
        p = new
    return p.tolist()


def acc_shares(observed: list[float], conf: list[list[float]]) -> list[float]:
    """Adjusted classify-and-count: solve q = C^T p, then clip to [0, 1] and renormalise."""
    import numpy as np

    solved = np.linalg.solve(np.asarray(conf, dtype=float).T, np.asarray(observed, dtype=float))
    clipped = np.clip(solved, 0.0, None)
    total = clipped.sum()
    return (clipped / total).tolist() if total > 0 else [1.0 / len(observed)] * len(observed)


def condition_number(conf: list[list[float]]) -> float:
    import numpy as np

    return float(np.linalg.cond(np.asarray(conf, dtype=float)))


def correct_shares(counts: dict[str, int], pairs: list[tuple[str, str]], names: list[str], seed: int = 0,
                   resamples: int = BOOTSTRAP) -> Correction:
    """The corrected shares of `counts` (labels per category over the analyzed samples), from the
    calibration `pairs` (true category, labeler's category), with bootstrap intervals."""
    import numpy as np

    total = sum(counts.values())
    observed = [counts.get(n, 0) / total if total else 0.0 for n in names]
    conf = confusion(pairs, names)
    point = em_shares(observed, conf)
    rng = np.random.default_rng(seed)
    draws = [_bootstrap_once(rng, pairs, names, observed, total) for _ in range(resamples)]
    ci = {n: _percentiles([d[i] for d in draws]) for i, n in enumerate(names)}
    cond = condition_number(conf)
    reasons = _distrust(pairs, names, cond)
    right = sum(t == lab for t, lab in pairs)
    return Correction(
        names=names,
        raw={n: round(100 * q, 2) for n, q in zip(names, observed)},
        corrected={n: round(100 * p, 2) for n, p in zip(names, point)},
        ci95=ci,
        trustworthy=not reasons,
        reasons=reasons,
        calibration_rows=len(pairs),
        accuracy_on_calibration=round(right / len(pairs), 4) if pairs else None,
        condition_number=round(cond, 2),
    )


def _bootstrap_once(rng, pairs, names, observed, total) -> list[float]:
    """One bootstrap replicate: the calibration rows resampled, the labels redrawn from the observed shares."""
    resampled = [pairs[i] for i in rng.integers(0, len(pairs), len(pairs))]
    if not total:
        return em_shares(observed, confusion(resampled, names), iterations=200)
    labels = rng.multinomial(total, observed)
    return em_shares((labels / total).tolist(), confusion(resampled, names), iterations=200)


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    lo = ordered[int(0.025 * (len(ordered) - 1))]
    hi = ordered[int(math.ceil(0.975 * (len(ordered) - 1)))]
    return round(100 * lo, 2), round(100 * hi, 2)


def _distrust(pairs, names, cond: float) -> list[str]:
    reasons = []
    per = {n: 0 for n in names}
    for true, _ in pairs:
        per[true] += 1
    thin = [n for n, c in per.items() if c < MIN_ROWS_PER_CATEGORY]
    if thin:
        reasons.append(f"fewer than {MIN_ROWS_PER_CATEGORY} calibration rows truly in {', '.join(thin)}")
    if cond > MAX_CONDITION:
        reasons.append(f"the confusion matrix is close to singular (condition number {cond:.1f} > {MAX_CONDITION:g}): "
                       "the labeler confuses some categories too often for the correction to be stable")
    return reasons


def error_interval(count: int, total: int, categories: int, accuracy: tuple[float, float],
                   z: float = 1.96) -> tuple[float, float]:
    """A share's 95% interval (percent) without calibration rows: the sampling (Wilson) interval of the
    observed share, widened to every true share a labeler of accuracy within `accuracy` (min, max)
    could have turned into it, if its errors were spread evenly over the other categories."""
    if total == 0:
        return (0.0, 100.0)
    low, high = wilson_interval(count, total, z)
    ends = [_undo_symmetric_noise(edge / 100, a, categories) for a in accuracy for edge in (low, high)]
    return round(100 * max(0.0, min(ends)), 2), round(100 * min(1.0, max(ends)), 2)


def _undo_symmetric_noise(q: float, accuracy: float, k: int) -> float:
    """The true share p with q = a p + (1 - a)(1 - p)/(k - 1); clipped to [0, 1]."""
    if k < 2:
        return q
    off = (1 - accuracy) / (k - 1)
    slope = accuracy - off
    if slope <= 0:
        return q  # a labeler at or below chance tells nothing; keep the observed share
    return min(1.0, max(0.0, (q - off) / slope))
