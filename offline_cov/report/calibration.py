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
4. says when the correction is not to be trusted: too few calibration rows (under
   `MIN_ROWS_PER_CATEGORY`) for a category that the labels or the correction put at
   `THIN_SHARE_PERCENT` or more, or a confusion matrix (over the categories the rows describe) so
   close to singular (condition number over `MAX_CONDITION`) that the correction amplifies noise.
   Then the corrected shares are still reported, but the report's gaps and over-representation
   stay on the raw shares. (The soft correction below, measured apart, needs only one row of such
   a category: with 1-4 it is applied, the category named as thin and its interval left wide.)

Where the labeler gives every sample its probability of every category, `correct_shares_soft`
replaces steps 1-3: the calibration rows recalibrate those probabilities (bias-corrected
temperature scaling), and EM moves the recalibrated probabilities from the rows' shares to the
data's (Saerens et al. 2002 on per-sample posteriors); the same checks apply, the confusion matrix
being the mean recalibrated probabilities per true category. bench/calibration.py measured it
ahead of the hard-label correction for every labeler and set on average, and in 21 of 24
(labeler, mixture) rows (bench/README.md).

Where the rows are `offline-cov review`'s sample of this run's own labels (drawn at random within each
label), `correct_shares_reviewed` replaces both: the labels' exact shares are split by what their
reviewed rows truly are, with the (recalibrated) probabilities as a control variate (the stratified
difference estimator). It assumes nothing about how the rows' composition relates to the data's;
bench/calibration.py --calibration-from review measured it ahead of the EM corrections on such rows.

Without calibration rows, `error_interval` widens each share's sampling interval by a margin that
grows with the labeler's error on public labeled sets (`error_margin`): how far its shares strayed
from the true ones on mixtures of the bench's sets, not a model of how its errors spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .tally import wilson_interval

SMOOTHING = 0.5  # pseudo-count added to every cell of the calibration counts
BOOTSTRAP = 400
MIN_ROWS_PER_CATEGORY = 5
MAX_CONDITION = 20.0
THIN_SHARE_PERCENT = 5.0  # a category with too few calibration rows matters from this share (the default gap threshold)
# The soft correction is applied over a thin category that matters when it has at least this many rows
# truly in it (named, left to its wide interval), and not when it has none: bench/calibration.py
# --thin-rows on seeds 31 and 41, 50-200 rows, both regimes; the other corrections keep MIN_ROWS_PER_CATEGORY.
SOFT_FEWEST_ROWS = 1
# Under this many calibration rows the EM corrections helped little on the bench's sets and their 95%
# intervals held the true share less often (bench/calibration.py, session 25, seed 41: at 20-30 rows
# 0.80-1.01 of the raw error, coverage 0.86-0.90; at 50 rows 0.69-0.79, 0.91-0.93): a run says so.
SMALL_CALIBRATION_ROWS = 50
EM_ITERATIONS = 500
EM_TOLERANCE = 1e-9
HARD_METHOD = "EM prior correction (Saerens et al. 2002) on a smoothed confusion matrix"
SOFT_METHOD = ("per-sample probabilities recalibrated on the calibration rows (bias-corrected temperature scaling), "
               "then the EM prior correction of Saerens et al. (2002)")
BOOTSTRAP_SAMPLES = 20000  # samples each bootstrap replicate of the soft correction resamples, at most
LOG_FLOOR = 1e-7  # probabilities are read as logits log(max(p, LOG_FLOOR))
RIDGE = 0.01  # on the recalibration biases: a category with few calibration rows keeps a finite bias
# On the recalibration biases' distance from the calibration rows' log shares (fit_to_rows), chosen on
# bench/calibration.py's seed-0 draws of the CPU default: share error / raw 0.523 (pool) and 0.450
# (split) against 0.569 and 0.463 at 0.01; 1 and more were worse (0.63 at 1, 0.88 at 3).
PRIOR_RIDGE = 0.3


@dataclass
class Correction:
    """Corrected shares (percent), their 95% intervals, and whether the correction can be trusted."""

    names: list[str]
    raw: dict[str, float]
    corrected: dict[str, float]
    ci95: dict[str, tuple[float, float]]
    trustworthy: bool
    reasons: list[str] = field(default_factory=list)
    thin: list[str] = field(default_factory=list)  # fewer than MIN_ROWS_PER_CATEGORY rows, trusted without them
    rows_per_category: dict[str, int] = field(default_factory=dict)  # rows truly in (a review: labeled) each
    calibration_rows: int = 0
    accuracy_on_calibration: float | None = None
    condition_number: float | None = None
    method: str = HARD_METHOD
    replicates: tuple | None = field(default=None, repr=False)  # correct_shares_soft(keep_replicates=True) only
    fractions: dict[str, float] = field(default_factory=dict, repr=False)  # `corrected` before rounding, as fractions

    def moved(self) -> dict[str, float]:
        """How far each share moved (percentage points, corrected minus raw)."""
        return {n: round(self.corrected[n] - self.raw[n], 2) for n in self.names}

    def thin_that_matters(self) -> list[str]:
        """The thin categories the correction was trusted without although the labels or the correction
        give them THIN_SHARE_PERCENT or more: their corrected shares rest on a handful of rows."""
        return [n for n in self.thin if max(self.raw.get(n, 0.0), self.corrected.get(n, 0.0)) >= THIN_SHARE_PERCENT]

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "calibration_rows": self.calibration_rows,
            "accuracy_on_calibration": self.accuracy_on_calibration,
            "condition_number": self.condition_number,
            "trustworthy": self.trustworthy,
            "not_trustworthy_because": self.reasons,
            "thin_categories": self.thin,  # fewer than MIN_ROWS_PER_CATEGORY rows; the correction trusted without them
            "calibration_rows_per_category": self.rows_per_category,
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


def raw_percent(counts: dict[str, int], names: list[str]) -> dict[str, float]:
    """Each category's share of the labels, percent to 2 decimals (0 everywhere when there are none)."""
    total = sum(counts.values())
    return {n: round(100 * counts.get(n, 0) / total, 2) if total else 0.0 for n in names}


def accuracy_of(pairs: list[tuple[str, str]]) -> float | None:
    """How often the label is the calibration row's true category, to 4 decimals; None without rows."""
    return round(sum(t == lab for t, lab in pairs) / len(pairs), 4) if pairs else None


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
    raw = {n: round(100 * q, 2) for n, q in zip(names, observed)}
    corrected = {n: round(100 * p, 2) for n, p in zip(names, point)}
    cond, reasons, thin, per = _judged(conf, pairs, names, raw, corrected)
    return Correction(
        names=names,
        raw=raw,
        corrected=corrected,
        fractions=dict(zip(names, map(float, point))),
        ci95=ci,
        trustworthy=not reasons,
        reasons=reasons,
        thin=thin,
        rows_per_category=per,
        calibration_rows=len(pairs),
        accuracy_on_calibration=accuracy_of(pairs),
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


def _rows_per_category(pairs, names) -> dict[str, int]:
    per = {n: 0 for n in names}
    for true, _ in pairs:
        per[true] += 1
    return per


def _judged(conf, pairs, names, raw: dict[str, float], corrected: dict[str, float],
            fewest: int = MIN_ROWS_PER_CATEGORY):
    """(the condition number of the part of `conf` the rows describe, why the correction is not to be
    trusted, the thin categories it was trusted without, the rows per category); `fewest`: `_distrust`'s."""
    per = _rows_per_category(pairs, names)
    cond = condition_number(_described_part(conf, per, names))
    return (cond, *_distrust(per, names, cond, raw, corrected, fewest=fewest), per)


def _described_part(conf, per: dict[str, int], names):
    """The confusion matrix restricted to the categories with MIN_ROWS_PER_CATEGORY calibration rows
    or more (`per`; rows renormalised): a category the rows say nothing about has only the smoothing's
    uniform row, and two of them would make any matrix singular; `_distrust` judges those apart."""
    import numpy as np

    keep = [i for i, n in enumerate(names) if per[n] >= MIN_ROWS_PER_CATEGORY] or list(range(len(names)))
    part = np.asarray(conf, dtype=float)[np.ix_(keep, keep)]
    return (part / part.sum(axis=1, keepdims=True)).tolist()


def _distrust(per: dict[str, int], names, cond: float | None, raw: dict[str, float], corrected: dict[str, float],
              rows_of: str = "calibration rows truly in", fewest: int = MIN_ROWS_PER_CATEGORY):
    """(why the correction is not to be trusted, the thin categories it was trusted without): a
    category with fewer than MIN_ROWS_PER_CATEGORY calibration rows (`per`) is thin; a thin one the
    labels or the correction give THIN_SHARE_PERCENT or more makes the correction untrusted when it
    has fewer than `fewest` rows (MIN_ROWS_PER_CATEGORY unless the caller measured otherwise:
    `correct_shares_soft` passes SOFT_FEWEST_ROWS). A thin category it is trusted without is left to
    its interval (bench/calibration.py: on 8-category Just-Eval topics, with rare categories that
    200 rows rarely hold, the correction still more than halved the error)."""
    reasons = []
    few = [n for n in names if per[n] < MIN_ROWS_PER_CATEGORY]
    mattering = [n for n in few if per[n] < fewest
                 and max(raw.get(n, 0.0), corrected.get(n, 0.0)) >= THIN_SHARE_PERCENT]
    if mattering:
        count = "no" if fewest == 1 else f"fewer than {fewest}"
        reasons.append(f"{count} {rows_of} {', '.join(mattering)}")
    if cond is not None and cond > MAX_CONDITION:
        reasons.append(_unstable(per, names, cond, rows_of))
    return reasons, [n for n in few if n not in mattering]


def _unstable(per: dict[str, int], names, cond: float, rows_of: str) -> str:
    """Why a confusion matrix past MAX_CONDITION is not trusted: too few rows when fewer than two
    categories have MIN_ROWS_PER_CATEGORY of them, else a labeler that confuses categories."""
    described = sum(1 for n in names if per[n] >= MIN_ROWS_PER_CATEGORY)
    if described < 2:
        return (f"too few calibration rows to measure the labeler's errors: {described} categor"
                f"{'y has' if described == 1 else 'ies have'} {MIN_ROWS_PER_CATEGORY} or more {rows_of} "
                "them, and at least two need to")
    return (f"the confusion matrix is close to singular (condition number {cond:.1f} > {MAX_CONDITION:g}): "
            "the labeler confuses some categories too often for the correction to be stable")


SHARE_ERROR_FACTOR = 0.15  # bench/calibration.py's margin study: the smallest factor holding 95% of dev cells in every set


def error_margin(lowest_accuracy: float | None, factor: float = SHARE_ERROR_FACTOR) -> float:
    """How far (percentage points) a labeler's share can sit from the true one beyond sampling:
    `factor` x (1 - its lowest measured accuracy) x 100; 0 when it was never measured."""
    return 0.0 if lowest_accuracy is None else round(100 * factor * (1 - lowest_accuracy), 2)


def error_interval(count: int, total: int, margin: float, z: float = 1.96) -> tuple[float, float]:
    """A share's 95% interval (percent) without calibration rows: the sampling (Wilson) interval of the
    observed share widened by `margin` points each way (`error_margin`), clipped to 0-100."""
    if total == 0:
        return (0.0, 100.0)
    low, high = wilson_interval(count, total, z)
    return round(max(0.0, low - margin), 2), round(min(100.0, high + margin), 2)


# ---------------------------------------------------------------- per-sample probabilities


def fit_recalibration(logits, truth, classes: int, ridge: float = RIDGE, centre=None, iterations: int = 50):
    """Bias-corrected temperature scaling (Alexandari et al. 2020) fitted on calibration rows:
    `(a, b)` minimising the negative log-likelihood of the true categories under
    `softmax(a * logits + b)` (b[0] = 0; a ridge pulls a towards 1 and b towards `centre`, 0 unless
    given, which keeps a category with few rows finite and the answer unique when the logits cannot
    tell a from b). The problem is convex; damped Newton steps solve it."""
    import numpy as np

    z, y = np.asarray(logits, dtype=float), np.eye(classes)[np.asarray(truth)]
    n, k = z.shape
    features = np.zeros((n, k, k))  # d logit_j / d (a, b_1 .. b_{k-1})
    features[:, :, 0] = z
    features[:, np.arange(1, k), np.arange(1, k)] = 1.0
    prior = np.zeros(k)
    prior[0] = 1.0
    if centre is not None:
        prior[1:] = np.asarray(centre, dtype=float)[1:] - float(centre[0])
    theta = prior.copy()

    def loss(t):
        logit = z * t[0] + np.concatenate([[0.0], t[1:]])
        logit -= logit.max(axis=1, keepdims=True)
        logp = logit - np.log(np.exp(logit).sum(axis=1, keepdims=True))
        return -(y * logp).sum() + ridge * ((t - prior) ** 2).sum(), np.exp(logp)

    value, p = loss(theta)
    for _ in range(iterations):
        grad = np.einsum("nkp,nk->p", features, p - y)
        cov = np.einsum("nk,kl->nkl", p, np.eye(k)) - np.einsum("nk,nl->nkl", p, p)
        hess = np.einsum("nkp,nkl,nlq->pq", features, cov, features, optimize=True)
        grad += 2 * ridge * (theta - prior)
        hess += 2 * ridge * np.eye(k)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4:
            trial = theta - scale * step
            trial_value, trial_p = loss(trial)
            if trial_value <= value:
                break
            scale /= 2
        else:
            break
        converged = value - trial_value < 1e-10
        theta, value, p = trial, trial_value, trial_p
        if converged:
            break
    return float(theta[0]), np.concatenate([[0.0], theta[1:]])


def as_logits(probabilities):
    """Probabilities read as logits, `log(max(p, LOG_FLOOR))` (None stays None)."""
    import numpy as np

    if probabilities is None:
        return None
    return np.log(np.clip(np.asarray(probabilities, dtype=float), LOG_FLOOR, 1.0))


def recalibrated(logits, a: float, b):
    """Per-sample probabilities `softmax(a * logits + b)`."""
    import numpy as np

    z = np.asarray(logits, dtype=float) * a + b
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prior_shift_em(posteriors, source_prior, iterations: int = EM_ITERATIONS):
    """Saerens, Latinne & Decaestecker (2002): the class shares of the analysed samples, given
    per-sample posteriors calibrated where the shares were `source_prior`. Each step reweights the
    posteriors by new / source shares and takes their mean as the new shares."""
    import numpy as np

    post, source = np.asarray(posteriors, dtype=float), np.asarray(source_prior, dtype=float)
    shares = post.mean(axis=0)
    for _ in range(iterations):
        w = post * (shares / source)
        w /= w.sum(axis=1, keepdims=True)
        new = w.mean(axis=0)
        if np.abs(new - shares).max() < EM_TOLERANCE:
            return new
        shares = new
    return shares


def correct_shares_soft(counts: dict[str, int], pairs: list[tuple[str, str]], probabilities, calibration_probabilities,
                        names: list[str], seed: int = 0, resamples: int = BOOTSTRAP,
                        keep_replicates: bool = False, ridge: float = PRIOR_RIDGE,
                        fewest: int = SOFT_FEWEST_ROWS) -> Correction:
    """The corrected shares from the labeler's probabilities: `probabilities` has a row per analysed
    sample (a column per category, taxonomy order), `calibration_probabilities` a row per calibration
    pair (true category, labeler's category). The rows recalibrate the probabilities
    (`fit_to_rows`, its biases pulled towards the rows' own shares with `ridge`), then `prior_shift_em`
    corrects for the shift between the rows' shares and the data's. 95% intervals: the calibration rows and the samples resampled together, `resamples`
    times (over BOOTSTRAP_SAMPLES samples, each replicate resamples that many, which widens the
    interval a little and never narrows it). `counts` (the labels per category) give the raw shares.
    `keep_replicates` (bench/calibration.py) keeps the point, the raw shares and both their bootstrap
    draws on the result, the raw ones from each replicate's argmax labels. `fewest`: the rows a thin
    category that matters needs for the correction to be trusted (`_distrust`)."""
    import numpy as np

    z, zc = as_logits(probabilities), as_logits(calibration_probabilities)
    at = {n: i for i, n in enumerate(names)}
    yc = np.asarray([at[t] for t, _ in pairs])
    a, b = fit_to_rows(zc, yc, len(names), ridge)
    point = _shifted(z, a, b, yc, len(names))
    rng = np.random.default_rng(seed)
    size = min(len(z), BOOTSTRAP_SAMPLES)
    draws, raw_draws = [], []
    for _ in range(resamples):
        sub = z[rng.integers(0, len(z), size)]
        draws.append(soft_estimate(sub, *_resampled(rng, zc, yc), len(names), ridge))
        if keep_replicates:
            raw_draws.append(np.bincount(sub.argmax(axis=1), minlength=len(names)) / size)
    total = sum(counts.values())
    raw = raw_percent(counts, names)
    corrected = {n: round(100 * float(p), 2) for n, p in zip(names, point)}
    cond, reasons, thin, per = _judged(soft_confusion(recalibrated(zc, a, b), yc, len(names)), pairs, names, raw,
                                       corrected, fewest=fewest)
    return Correction(
        names=names,
        raw=raw,
        corrected=corrected,
        fractions=dict(zip(names, map(float, point))),
        ci95={n: _percentiles([d[i] for d in draws]) for i, n in enumerate(names)},
        trustworthy=not reasons, reasons=reasons, thin=thin, rows_per_category=per, calibration_rows=len(pairs),
        accuracy_on_calibration=accuracy_of(pairs),
        condition_number=round(cond, 2), method=SOFT_METHOD,
        replicates=(point, np.asarray([counts.get(n, 0) / total if total else 0.0 for n in names]),
                    np.asarray(draws), np.asarray(raw_draws)) if keep_replicates else None,
    )


def soft_confusion(p, yc, classes: int):
    """`C[i][j]`: the mean recalibrated probability `p` of category j over the calibration rows truly
    in i, smoothed like `confusion` (a row with no calibration rows is uniform). Its condition number
    says whether the probabilities can tell the categories apart at all."""
    import numpy as np

    sums = np.stack([p[yc == i].sum(axis=0) for i in range(classes)]) + SMOOTHING
    return (sums / sums.sum(axis=1, keepdims=True)).tolist()


def _resampled(rng, zc, yc):
    pick = rng.integers(0, len(yc), len(yc))
    return zc[pick], yc[pick]


def soft_estimate(z, zc, yc, classes: int, ridge: float = PRIOR_RIDGE):
    """One estimate of the samples' shares from their logits `z`: recalibrate on the calibration rows'
    logits and categories (zc, yc; `fit_to_rows`), then EM from the rows' shares to the samples'."""
    return _shifted(z, *fit_to_rows(zc, yc, classes, ridge), yc, classes)


def rows_prior(yc, classes: int):
    """The calibration rows' shares of each category, smoothed like `confusion` (none is zero)."""
    import numpy as np

    return (np.bincount(yc, minlength=classes) + SMOOTHING) / (len(yc) + SMOOTHING * classes)


def fit_to_rows(zc, yc, classes: int, ridge: float = PRIOR_RIDGE):
    """`fit_recalibration` on calibration rows whose mix may be far from the data's, the biases
    pulled towards the log of the rows' own shares (`rows_prior`) rather than towards 0: a labeler's
    probabilities that were right under even shares need exactly those biases to be right on the
    rows, so the ridge shrinks only what the rows say beyond their mix, the part 200 rows measure
    loosely for a category they hold few of (bench/calibration.py chose `ridge`)."""
    import numpy as np

    return fit_recalibration(zc, yc, classes, ridge=ridge, centre=np.log(rows_prior(yc, classes)))


def _shifted(z, a: float, b, yc, classes: int):
    """The samples' shares: their probabilities recalibrated by (a, b), EM from the calibration rows' shares."""
    return prior_shift_em(recalibrated(z, a, b), rows_prior(yc, classes))


# ---------------------------------------------------------------- every sample reviewed

EVERY_SAMPLE_METHOD = ("every labeled sample has a calibration row: the shares are the rows' own categories, "
                       "counted, with nothing to estimate")


def shares_of_every_sample(counts: dict[str, int], pairs: list[tuple[str, str]], names: list[str]) -> Correction:
    """The 'correction' when the rows cover every labeled sample: the true shares, counted; their
    interval is the point (no sample was left to estimate), and it is trusted whatever the row counts."""
    truth = {n: sum(1 for t, _ in pairs if t == n) for n in names}
    corrected = {n: round(100 * truth[n] / len(pairs), 2) if pairs else 0.0 for n in names}
    return Correction(
        names=names, raw=raw_percent(counts, names), corrected=corrected, ci95={n: (v, v) for n, v in corrected.items()},
        fractions={n: truth[n] / len(pairs) if pairs else 0.0 for n in names},
        trustworthy=True, calibration_rows=len(pairs), accuracy_on_calibration=accuracy_of(pairs),
        method=EVERY_SAMPLE_METHOD,
    )


# ---------------------------------------------------------------- rows reviewed within each label

REVIEW_METHOD = ("a review of this run's labels (rows drawn at random within each label, as offline-cov review draws "
                 "them): the difference estimator stratified on the labels, on the probabilities recalibrated on the "
                 "rows (bias-corrected temperature scaling)")
REVIEW_METHOD_HARD = ("a review of this run's labels (rows drawn at random within each label, as offline-cov review draws "
                      "them): each label's share split by what its reviewed rows truly are (stratified estimator)")


def difference_shares(mean_probability, reviewed_probabilities, truth, labeled, label_shares):
    """The shares of the analysed samples from a review stratified on their labels: the mean predicted
    probability of each category over every sample (`mean_probability`) plus, per label j, its share
    `label_shares[j]` times the mean over its reviewed rows of (truly i) - P(i). Unbiased whatever the
    probabilities' calibration when the reviewed rows are random within each label; the closer the
    probabilities, the smaller its spread. With one-hot probabilities (the labels themselves) it is
    the stratified estimator sum_j q_j P(truly i | labeled j). A label without reviewed rows adds
    nothing (its probabilities are taken as they are). Clipped at 0 and renormalised."""
    import numpy as np

    p = np.asarray(reviewed_probabilities, dtype=float)
    residual = np.eye(p.shape[1])[np.asarray(truth)] - p
    labeled = np.asarray(labeled)
    shares = np.asarray(mean_probability, dtype=float).copy()
    for j, q in enumerate(label_shares):
        if q > 0 and (labeled == j).any():
            shares += q * residual[labeled == j].mean(axis=0)
    shares = np.clip(shares, 0.0, None)
    return shares / shares.sum()


def correct_shares_reviewed(counts: dict[str, int], pairs: list[tuple[str, str]], names: list[str], probabilities=None,
                            calibration_probabilities=None, seed: int = 0, resamples: int = BOOTSTRAP) -> Correction:
    """The corrected shares from rows a person reviewed at random within each label (`offline-cov review`
    of this run's labels): `difference_shares` on the probabilities recalibrated on the rows
    (`fit_recalibration`), or on the labels themselves where there are no probabilities. 95% intervals:
    the reviewed rows resampled within each label (and the recalibration refitted), `resamples` times.
    It needs no assumption on how the rows' composition relates to the data's (the EM corrections do),
    only that the rows were drawn at random within each label. Not trusted when a label with
    THIN_SHARE_PERCENT or more of the samples has fewer than MIN_ROWS_PER_CATEGORY reviewed rows."""
    import numpy as np

    at = {n: i for i, n in enumerate(names)}
    truth = np.asarray([at[t] for t, _ in pairs])
    labeled = np.asarray([at[lab] for _, lab in pairs])
    total = sum(counts.values())
    q = np.asarray([counts.get(n, 0) / total if total else 0.0 for n in names])
    soft = probabilities is not None and calibration_probabilities is not None
    z, zc = (as_logits(probabilities), as_logits(calibration_probabilities)) if soft else (None, None)
    point = _reviewed_once(z, zc, truth, labeled, q, len(names))
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(labeled == j) for j in range(len(names))]
    draws = []
    for _ in range(resamples):
        pick = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata if len(s)])
        sub = z[rng.integers(0, len(z), min(len(z), BOOTSTRAP_SAMPLES))] if soft else None
        draws.append(_reviewed_once(sub, zc[pick] if soft else None, truth[pick], labeled[pick], q, len(names)))
    raw = {n: round(100 * float(v), 2) for n, v in zip(names, q)}
    corrected = {n: round(100 * float(v), 2) for n, v in zip(names, point)}
    reasons, thin, per = _review_distrust(labeled, q, names)
    return Correction(
        names=names, raw=raw, corrected=corrected, fractions=dict(zip(names, map(float, point))),
        ci95={n: _percentiles([d[i] for d in draws]) for i, n in enumerate(names)},
        trustworthy=not reasons, reasons=reasons, thin=thin, rows_per_category=per, calibration_rows=len(pairs),
        accuracy_on_calibration=accuracy_of(pairs),
        condition_number=None, method=REVIEW_METHOD if soft else REVIEW_METHOD_HARD,
    )


def _reviewed_once(z, zc, truth, labeled, q, classes: int):
    """One estimate: recalibrate on the reviewed rows (when there are probabilities), then difference_shares."""
    import numpy as np

    if z is None:
        return difference_shares(q, np.eye(classes)[labeled], truth, labeled, q)
    a, b = fit_recalibration(zc, truth, classes)
    return difference_shares(recalibrated(z, a, b).mean(axis=0), recalibrated(zc, a, b), truth, labeled, q)


def _review_distrust(labeled, q, names):
    """(why the review is not enough, the thin labels it was trusted without, the rows per label): `_distrust` on the
    reviewed rows per label (`q`: the labels' shares), over the labels some sample has (a label with fewer than
    MIN_ROWS_PER_CATEGORY rows matters when it holds THIN_SHARE_PERCENT of the samples or more)."""
    per = {n: int((labeled == j).sum()) for j, n in enumerate(names)}
    shares = {n: 100 * float(v) for n, v in zip(names, q)}
    return (*_distrust(per, [n for n in names if shares[n] > 0], None, shares, shares, rows_of="reviewed rows labeled"),
            per)
