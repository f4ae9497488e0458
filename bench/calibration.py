"""How sure the CPU labelers are, and how far the share correction brings a report back to the truth.

Two studies on public labeled sets, one command:

1. Confidence. Each labeler's score matrix (embed: MiniLM cosines; fused: the summed z-scores) is
   computed once for every row. The softmax temperature that turns scores into the confidence of
   the chosen category is chosen on the dev split (lowest negative log-likelihood of the true
   category over a log grid); the test split reports its expected calibration error (ECE, 10 bins)
   and accuracy by confidence bin.
2. Share correction. From the set's rows, mixtures of known composition are drawn (uniform and
   skewed), each with a 200-row calibration sample drawn from the same pool but disjoint from the
   mixture; the labeler's labels of the mixture give the raw shares, the calibration rows its
   confusion matrix, and six estimators (METHODS) the corrected shares; the two the product can
   apply (`correct_shares`, hard labels; `correct_shares_soft`, per-sample probabilities) give
   95% intervals. Reported per mixture: mean absolute error of each (percentage points) and how
   often the intervals cover the true share. Where the calibration rows come from
   (`--calibration-from`): `pool` draws them from the rows the mixture leaves, so their mix is the
   mixture's opposite; `split` draws them at random from the whole pool first and the mixture from
   the rest (the artificial-prevalence protocol of the quantification literature); `review` draws
   them from the mixture itself as `offline-cov review` does.

The ensemble (the CPU default) is read from bench/views.py's pool views; `--from-views` reads
embed and fused from the same rows.

Example:
  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.calibration --labelers embed,fused,ensemble --from-views \
      --sets arena-hard,justeval-topics --correction-sets arena-hard,justeval-topics --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from pathlib import Path

from offline_cov.taxonomy import load_taxonomy_file

from . import common
from .labelers import DEFAULT_DATA, HERE, SETS, load_set, split

TEMPERATURES = [round(10 ** (x / 20), 3) for x in range(-20, 53)]  # 0.1 .. ~400
MIXTURES = {
    "uniform": None,
    "skew 60/30/10": [0.6, 0.3, 0.1],
    "skew 10/30/60": [0.1, 0.3, 0.6],
    "skew 80/15/5": [0.8, 0.15, 0.05],
}


def say(message: str) -> None:
    print(f"[calibration {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def score_rows(labeler_name: str, texts: list[str], taxonomy):
    """The labeler's score matrix for `texts`, as the product computes it (characters cut as it cuts them)."""
    import numpy as np

    from offline_cov.labelers import get_labeler_class
    from offline_cov.labelers.base import SAMPLE_MAX_CHARS

    cls = get_labeler_class(labeler_name)
    labeler = cls(taxonomy)
    rows = [labeler.scores([t[:SAMPLE_MAX_CHARS] for t in texts[i:i + 32]]) for i in range(0, len(texts), 32)]
    return np.concatenate(rows, axis=0), labeler


def cached_scores(labeler_name: str, set_name: str, texts: list[str], taxonomy, cache_dir: Path | None):
    """score_rows, reusing a saved matrix (bench/results/tmp, not in the repo) for the same texts and labeler."""
    import hashlib

    import numpy as np

    from offline_cov.labelers import get_labeler_class

    cls = get_labeler_class(labeler_name)
    identity = cls.cache_identity("") + repr(taxonomy.names)
    digest = hashlib.sha256((identity + "\0".join(texts)).encode()).hexdigest()[:16]
    path = cache_dir / f"scores-{labeler_name}-{set_name}-{digest}.npy" if cache_dir else None
    if path is not None and path.exists():
        return np.load(path), cls, 0.0
    t = time.perf_counter()
    scores, _ = score_rows(labeler_name, texts, taxonomy)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    return scores, cls, time.perf_counter() - t


def softmax(scores, temperature: float):
    import numpy as np

    z = scores * temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(scores, truth, temperature: float) -> float:
    import numpy as np

    p = softmax(scores, temperature)[np.arange(len(truth)), truth]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def reliability(scores, truth, temperature: float, bins: int = 10) -> dict:
    """ECE and accuracy per confidence bin of the chosen category."""

    p = softmax(scores, temperature)
    chosen, conf = p.argmax(axis=1), p.max(axis=1)
    right = chosen == truth
    table, ece = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            acc, mean = float(right[inside].mean()), float(conf[inside].mean())
            ece += inside.mean() * abs(acc - mean)
            table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(inside.sum()), "mean_confidence": round(mean, 3),
                          "accuracy": round(acc, 3)})
    return {"ece": round(float(ece), 4), "accuracy": round(float(right.mean()), 4), "bins": table}


def compositions(names: list[str], pool: dict[str, list[int]]) -> dict[str, list[float] | None]:
    """The mixtures drawn from a set: MIXTURES in taxonomy order for three categories; for more,
    the pool's own shares and the three skews on its three largest categories (the rest absent,
    as a real gap is)."""
    if len(names) == 3:
        return MIXTURES
    largest = sorted(names, key=lambda n: (-len(pool[n]), names.index(n)))[:3]
    out = {"pool shares": [len(pool[n]) / sum(len(v) for v in pool.values()) for n in names]}
    for mix_name, shares in MIXTURES.items():
        if shares is not None:
            out[f"{mix_name} on {'/'.join(largest)}"] = [shares[largest.index(n)] if n in largest else 0.0 for n in names]
    return out


def mixture_counts(names: list[str], composition: list[float] | None, size: int) -> dict[str, int]:
    """Samples per category of a mixture of `size` with these shares (None: even); the samples the
    floors leave go one each to the first categories with a share, never to an absent one."""
    shares = composition or [1 / len(names)] * len(names)
    counts = {n: int(math.floor(s * size)) for n, s in zip(names, shares)}
    present = [n for n, s in zip(names, shares) if s > 0]
    for n in present[: size - sum(counts.values())]:
        counts[n] += 1
    return counts


def draw(pool_by_label: dict[str, list[int]], counts: dict[str, int], calibration: int, rng: random.Random):
    """Row ids of a mixture with `counts` per category, and `calibration` other rows of the pool."""
    mixture, rest = [], []
    for name, ids in pool_by_label.items():
        shuffled = ids[:]
        rng.shuffle(shuffled)
        mixture += shuffled[: counts.get(name, 0)]
        rest += shuffled[counts.get(name, 0):]
    rng.shuffle(rest)
    return mixture, rest[:calibration]


def split_counts(counts: dict[str, int], pool: dict[str, list[int]], calibration: int) -> dict[str, int]:
    """A mixture's counts scaled down until they fit, with room to spare, in the rows a random
    `calibration`-row sample of the pool leaves: each category's expected leftover minus three
    standard deviations of the (hypergeometric) number the sample takes from it. A category with no
    such room (under one row: Just-Eval's five medical rows) is left out of the mixture, whose true
    shares are computed from these counts."""
    total = sum(len(ids) for ids in pool.values())
    f = calibration / total
    room = {n: len(ids) * (1 - f) - 3 * math.sqrt(len(ids) * f * (1 - f) * (total - len(ids)) / max(total - 1, 1))
            for n, ids in pool.items()}
    counts = {n: c if room[n] >= 1 else 0 for n, c in counts.items()}
    factor = min([room[n] / c for n, c in counts.items() if c] + [1.0])
    return {n: int(c * factor) for n, c in counts.items()}


def draw_split(pool_by_label: dict[str, list[int]], counts: dict[str, int], calibration: int, rng: random.Random):
    """The artificial-prevalence protocol of the quantification literature: `calibration` rows drawn
    at random from the whole pool first (their mix is the pool's, as a labeled sample of the same
    source is), then a mixture with `counts` per category from the rows left, so the two are
    disjoint. A calibration sample that leaves a category too few rows is drawn again (split_counts
    makes that rare). Returns the mixture's row ids and the calibration rows'."""
    rows = sorted(i for ids in pool_by_label.values() for i in ids)
    for _ in range(100):
        calib = rng.sample(rows, calibration)
        taken = set(calib)
        left = {n: [i for i in ids if i not in taken] for n, ids in pool_by_label.items()}
        if all(len(left[n]) >= counts.get(n, 0) for n in left):
            mixture = [i for n, ids in left.items() for i in rng.sample(ids, counts.get(n, 0))]
            rng.shuffle(mixture)
            return mixture, calib
    raise ValueError("the mixture does not fit in the rows the calibration sample leaves: lower --mixture-size")


def draw_reviewed(pool_by_label: dict[str, list[int]], counts: dict[str, int], predicted, calibration: int,
                  rng: random.Random):
    """The review regime: a mixture with `counts` per category drawn with replacement from the pool
    (so it can be larger than the pool: i.i.d. samples of each category's rows), and `calibration`
    of its positions chosen as `offline-cov review` chooses them (stratified on the labeler's
    labels, review.stratified_sample). Returns the mixture's row ids and the reviewed positions."""
    from offline_cov.report.tally import SampleLabel
    from offline_cov.review import stratified_sample

    mixture = [i for name, ids in pool_by_label.items() for i in rng.choices(ids, k=counts.get(name, 0))]
    rng.shuffle(mixture)
    labels = [SampleLabel(pos, (str(predicted[i]),), "medium") for pos, i in enumerate(mixture)]
    reviewed = [lab.index for lab in stratified_sample(labels, calibration, rng.randrange(2**31))]
    return mixture, reviewed


METHODS = ["raw", "hard-em", "acc", "soft-em", "pcc", "bcts-em", "bcts-shrunk", "bcts-median", "bcts-oracle",
           "oracle-temperature", "oracle-biases", "stratified", "difference", "reviewed", "bcts-em applied",
           "reviewed applied"]
COVERED = ["hard-em", "bcts-em", "bcts-shrunk", "bcts-median", "stratified", "reviewed"]  # the estimators with 95% intervals
RATIOS = ["bcts-em", "reviewed", "bcts-em applied", "reviewed applied"]  # the product's soft corrections, and what it applies
METHOD_NOTES = {
    "raw": "the labels' own shares",
    "hard-em": "EM on the calibration rows' smoothed confusion matrix, hard labels (report.calibration.correct_shares)",
    "acc": "adjusted classify-and-count: the confusion matrix inverted, clipped to the simplex",
    "soft-em": "Saerens EM on the labeler's per-sample softmax at the product temperature, the set's shares as its prior",
    "pcc": "mean of the per-sample probabilities recalibrated on the calibration rows (no prior shift)",
    "bcts-em": "per-sample probabilities recalibrated on the calibration rows (bias-corrected temperature scaling), "
               "then Saerens EM from the rows' shares (report.calibration.correct_shares_soft)",
    "bcts-shrunk": "bcts-em pulled towards the raw shares by the positive-part James-Stein weight from its bootstrap "
                   "(shrunk_shares); its interval: bcts-em's, stretched to hold the point",
    "bcts-median": "the median of bcts-em's bootstrap replicates (bagging); bcts-em's interval",
    "bcts-oracle": "not available to a user: bcts-em with the recalibration fitted on every row of the pool (the "
                   "mixture's included) and the pool's shares as EM's start, so the error left is the mixture's own "
                   "sampling, not the calibration rows'",
    "oracle-temperature": "not available to a user: bcts-em with the temperature of bcts-oracle's fit and the biases "
                          "fitted on the calibration rows as the product fits them (fit_biases): the error the "
                          "rows' temperature adds",
    "oracle-biases": "not available to a user: bcts-em with the temperature fitted on the calibration rows and the "
                     "biases the log of the rows' shares plus bcts-oracle's own deviation from the log of the pool's "
                     "shares: the error the rows' biases add",
    "difference": "the mean of the labeler's probabilities (product temperature) plus, per label, its share times "
                  "its calibration rows' mean of truth minus probability (stratified difference estimator)",
    "reviewed": "the difference estimator on the probabilities recalibrated on the calibration rows "
                "(report.calibration.correct_shares_reviewed: what the product applies to a review of its labels)",
    "bcts-em applied": "what the product decides gaps on with such rows: bcts-em where it trusts the correction, the raw "
                       "shares where it does not (report.calibration's distrust rules; the trusted column counts the draws)",
    "reviewed applied": "the same for a review: reviewed where trusted, else the raw shares",
    "stratified": "sum over labels j of the label's share times the share of its calibration rows truly in each "
                  "category (correct_shares_reviewed without probabilities; unbiased only when the rows are drawn "
                  "at random within each label, as `review` draws them)",
}


def labels_and_pairs(names, truth, predicted, mixture, calib) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """What the product is handed for one draw: the labels per category over the mixture, and the
    (true, labeled) category pair of every calibration row."""
    labeled = {n: int((predicted[mixture] == j).sum()) for j, n in enumerate(names)}
    return labeled, [(names[truth[i]], names[predicted[i]]) for i in calib]


def correction_study(names, truth, scores, temperature: float, args, seed: int, lowest: float | None = None,
                     margin: float | None = None) -> list[dict]:
    """Every method's share error on mixtures of known composition, the 95% interval coverage of the
    ones the product can apply, and, given the labeler's `lowest` measured accuracy, the coverage and
    width of the interval the report gives without calibration rows."""
    import numpy as np

    from offline_cov.report.calibration import (
        acc_shares,
        as_logits,
        confusion,
        correct_shares,
        correct_shares_reviewed,
        correct_shares_soft,
        difference_shares,
        fit_recalibration,
        prior_shift_em,
        recalibrated,
        soft_estimate,
    )

    truth, logits = np.asarray(truth), np.asarray(scores) * temperature
    predicted = logits.argmax(axis=1)
    pool = {n: [i for i, t in enumerate(truth) if names[t] == n] for n in names}
    set_prior = np.asarray([(len(pool[n]) + 0.5) / (len(truth) + 0.5 * len(names)) for n in names])  # no zero share
    posteriors = softmax(np.asarray(scores), temperature)
    pooled = as_logits(posteriors)
    oracle = fit_recalibration(pooled, truth, len(names))  # every row of the pool, the mixture's included
    rows, rng = [], random.Random(seed)
    from_review = args.calibration_from == "review"
    size = args.review_mixture_size if from_review else min(args.mixture_size, len(truth) - args.calibration_size - 20)
    for mix_name, composition in compositions(names, pool).items():
        counts = mixture_counts(names, composition, size)
        if args.calibration_from == "split":
            counts = split_counts(counts, pool, args.calibration_size)
        elif not from_review and any(counts[n] > len(pool[n]) - _spare(pool[n]) for n in names):
            counts = _shrink(counts, pool)
        counts = {n: c if pool[n] else 0 for n, c in counts.items()}  # a category the pool lacks cannot be drawn
        err = {m: [] for m in methods(args)}
        covered, trusted, cells = dict.fromkeys(COVERED, 0), dict.fromkeys(COVERED, 0), 0
        widened = []  # (labeled count, samples, true share) per cell: the report's interval without calibration rows
        for d in range(args.draws):
            if from_review:
                mixture, positions = draw_reviewed(pool, counts, predicted, args.calibration_size, rng)
                calib = [mixture[pos] for pos in positions]
            elif args.calibration_from == "split":
                mixture, calib = draw_split(pool, counts, args.calibration_size, rng)
            else:
                mixture, calib = draw(pool, counts, args.calibration_size, rng)
            true_share = 100 * np.asarray([counts[n] for n in names]) / len(mixture)
            labeled, pairs = labels_and_pairs(names, truth, predicted, mixture, calib)
            hard = correct_shares(labeled, pairs, names, seed=seed + d, resamples=args.resamples)
            soft = correct_shares_soft(labeled, pairs, posteriors[mixture], posteriors[calib], names,
                                       seed=seed + d, resamples=args.resamples, keep_replicates=True)
            a, b = fit_recalibration(logits[calib], truth[calib], len(names))
            estimates = {
                "raw": [hard.raw[n] for n in names],
                "hard-em": [hard.corrected[n] for n in names],
                "acc": _acc_or_none(acc_shares, [hard.raw[n] / 100 for n in names], confusion(pairs, names)),
                "soft-em": 100 * prior_shift_em(posteriors[mixture], set_prior),
                "pcc": 100 * recalibrated(logits[mixture], a, b).mean(axis=0),
                "bcts-em": [soft.corrected[n] for n in names],
                "bcts-shrunk": 100 * shrunk_shares(*soft.replicates)[0],
                "bcts-median": 100 * np.median(soft.replicates[2], axis=0),
                "bcts-oracle": 100 * prior_shift_em(recalibrated(pooled[mixture], *oracle), set_prior),
            }
            stratified = correct_shares_reviewed(labeled, pairs, names, seed=seed + d, resamples=args.resamples)
            reviewed = correct_shares_reviewed(labeled, pairs, names, posteriors[mixture], posteriors[calib],
                                               seed=seed + d, resamples=args.resamples)
            estimates["stratified"] = [stratified.corrected[n] for n in names]
            estimates["reviewed"] = [reviewed.corrected[n] for n in names]
            estimates["bcts-em applied"] = estimates["bcts-em"] if soft.trustworthy else estimates["raw"]
            estimates["reviewed applied"] = estimates["reviewed"] if reviewed.trustworthy else estimates["raw"]
            estimates.update(oracle_parts(pooled, truth, mixture, calib, oracle, set_prior, len(names)))
            for fewest in _thin_rows(args):
                estimates[f"bcts-em applied@{fewest}"] = applied_at(soft, fewest, names)
            for ridge in _ridges(args):
                estimates[f"bcts-prior@{ridge:g}"] = 100 * soft_estimate(pooled[mixture], pooled[calib], truth[calib],
                                                                       len(names), ridge)
            estimates["difference"] = 100 * difference_shares(posteriors[mixture].mean(axis=0), posteriors[calib],
                                                              truth[calib], predicted[calib],
                                                              [labeled[n] / len(mixture) for n in names])
            for m, values in estimates.items():
                if values is None:
                    continue  # acc on a singular confusion matrix (two categories without calibration rows)
                err[m] += list(np.abs(np.asarray(values, dtype=float) - true_share))
            for m, result in (("hard-em", hard), ("bcts-em", soft), ("stratified", stratified), ("reviewed", reviewed)):
                trusted[m] += result.trustworthy
                covered[m] += sum(result.ci95[n][0] <= t <= result.ci95[n][1] for n, t in zip(names, true_share))
            for m in ("bcts-shrunk", "bcts-median"):
                trusted[m] += soft.trustworthy
                covered[m] += sum(min(soft.ci95[n][0], e) <= t <= max(soft.ci95[n][1], e)
                                  for n, t, e in zip(names, true_share, estimates[m]))
            cells += len(names)
            widened += [(labeled[n], len(mixture), t) for n, t in zip(names, true_share)]
        rows.append({"mixture": mix_name, "size": sum(counts.values()), "draws": args.draws,
                     "mae": {m: round(float(np.mean(e)), 2) if e else None for m, e in err.items()},
                     "ci95_coverage": {m: round(c / cells, 3) for m, c in covered.items()},
                     "trusted_draws": trusted,
                     **({"uncalibrated": uncalibrated(widened, lowest, margin)} if lowest is not None else {})})
    return rows


def uncalibrated(cells, lowest: float, margin: float | None = None) -> dict:
    """Coverage and mean width of the report's interval without calibration rows over `cells`
    (`margin_coverage` at the labeler's `margin`, `labeler_margin`, as `how_sure.widened_intervals`
    builds it; where None, the product's factor at its lowest measured accuracy)."""
    from offline_cov.report.calibration import error_margin

    coverage, width = margin_coverage(cells, error_margin(lowest) if margin is None else margin)
    return {"lowest_accuracy": lowest, "ci95_coverage": round(coverage, 3), "mean_width_pp": round(width, 1)}


MARGIN_FACTORS = [round(0.05 * i, 2) for i in range(31)]  # 0 .. 1.5: the margin is factor x (1 - lowest accuracy)
MARGIN_DRAWS = 50


def margin_cells(names, truth, predicted, rows, seed: int, mixes=None, size: int | None = None,
                 replace: bool = False) -> list[tuple[int, int, float]]:
    """(labeled count, samples, true share in percent) for every category of MARGIN_DRAWS mixtures of
    each composition drawn from `rows` only (the dev or the test rows of a pool), 150 samples or fewer.
    `mixes` gives the compositions (default `compositions`); `size` and `replace` draw mixtures of that
    many samples with replacement instead (a category's rows reused, as in a larger dataset)."""
    import numpy as np

    pool = {n: [i for i in rows if names[truth[i]] == n] for n in names}
    size, rng, cells = size or min(150, len(rows)), random.Random(seed), []
    for composition in (mixes or compositions)(names, pool).values():
        counts = mixture_counts(names, composition, size)
        counts = {n: c if pool[n] and replace else min(c, len(pool[n])) for n, c in counts.items()}
        for _ in range(MARGIN_DRAWS):
            mixture = [i for n in names for i in (rng.choices(pool[n], k=counts[n]) if replace
                                                  else rng.sample(pool[n], counts[n]))]
            labeled = np.bincount(predicted[mixture], minlength=len(names))
            true = np.bincount(truth[mixture], minlength=len(names)) / len(mixture)
            cells += [(int(c), len(mixture), 100 * float(t)) for c, t in zip(labeled, true)]
    return cells


def margin_coverage(cells, margin: float) -> tuple[float, float]:
    """How often the report's no-calibration interval (`error_interval`: the Wilson interval widened by
    `margin` points each way) holds the true share over `cells`, and its mean width."""
    from offline_cov.report.calibration import error_interval

    intervals = [(error_interval(count, total, margin), t) for count, total, t in cells]
    return (sum(lo <= t <= hi for (lo, hi), t in intervals) / len(cells),
            sum(hi - lo for (lo, hi), _ in intervals) / len(cells))


def margin_study(names, truth, scores, dev, lowest: float, seed: int) -> dict:
    """Per MARGIN_FACTORS value, the coverage and width of the no-calibration interval (the Wilson
    interval widened by factor x (1 - lowest) x 100 points) on mixtures of the dev rows and of the test rows."""
    import numpy as np

    from offline_cov.report.calibration import error_margin

    truth, predicted = np.asarray(truth), np.asarray(scores).argmax(axis=1)
    parts = {"dev": np.where(dev)[0].tolist(), "test": np.where(~dev)[0].tolist()}
    out = {}
    for part, rows in parts.items():
        cells = margin_cells(names, truth, predicted, rows, seed)
        out[part] = {"cells": len(cells), "by_factor": {
            str(f): [round(x, 4) for x in margin_coverage(cells, error_margin(lowest, f))] for f in MARGIN_FACTORS}}
    return out


def chosen_factor(results: list[dict], target: float = 0.95) -> float | None:
    """The smallest MARGIN_FACTORS value whose no-calibration intervals hold the true share in at least
    `target` of the dev cells of every set (the product must hold for any taxonomy, not on average)."""
    studies = [r["margin"] for r in results if r.get("margin")]
    if not studies:
        return None
    for f in MARGIN_FACTORS:
        if all(s["dev"]["by_factor"][str(f)][0] >= target for s in studies):
            return f
    return None


def measured_entry(labeler: str) -> dict:
    """The `measured` entry a CPU-default run of `labeler` cites: the one of the model that reads its samples."""
    from offline_cov.labelers import get_labeler_class
    from offline_cov.labelers.measured import for_model

    from .views import CPU_DEFAULT_MODEL

    cls = get_labeler_class(labeler)
    read = getattr(cls, "reading_model", None) or CPU_DEFAULT_MODEL  # fused reads its own model (Run.model_read)
    return for_model(getattr(cls, "measured", ()), read, cls.reads_llm)


def lowest_measured(labeler: str) -> float | None:
    """The lowest test accuracy the bench measured for a labeler with the model that reads the samples in a
    CPU-default run (what the report widens its intervals by), None when it has none."""
    found = measured_entry(labeler).get("accuracy")
    return min(found.values()) if found else None


def labeler_margin(labeler: str) -> float:
    """The no-calibration margin (points) a CPU-default run of `labeler` widens its intervals by
    (`how_sure.margin_of`: its own factor where its margin study chose one)."""
    from offline_cov.strategies.how_sure import margin_of

    return margin_of(measured_entry(labeler))[2]


def fit_biases(logits, truth, classes: int, a: float, ridge: float, centre):
    """The biases b of `softmax(a * logits + b)` for a fixed temperature `a`: least negative
    log-likelihood of the true categories plus `ridge` times the squared distance to `centre` (Newton)."""
    import numpy as np

    z, y, b = np.asarray(logits, dtype=float), np.eye(classes)[np.asarray(truth)], np.asarray(centre, dtype=float).copy()
    for _ in range(60):
        logit = a * z + b
        p = np.exp(logit - logit.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - y).sum(axis=0) + 2 * ridge * (b - centre)
        hess = np.diag(p.sum(axis=0)) - p.T @ p + 2 * ridge * np.eye(classes)
        step = np.linalg.pinv(hess) @ grad  # without a ridge, b + constant fits as well: the least change
        b = b - step
        if np.abs(step).max() < 1e-10:
            break
    return b


def oracle_parts(pooled, truth, mixture, calib, oracle, set_prior, classes: int) -> dict:
    """bcts-em with one half of its recalibration taken from bcts-oracle's fit (on every pool row):
    which half, the temperature or the biases, the calibration rows get wrong (percent shares)."""
    import numpy as np

    from offline_cov.report.calibration import PRIOR_RIDGE, fit_to_rows, prior_shift_em, recalibrated, rows_prior

    yc = truth[calib]
    source = rows_prior(yc, classes)
    a_rows, _ = fit_to_rows(pooled[calib], yc, classes)
    b_rows = fit_biases(pooled[calib], yc, classes, oracle[0], PRIOR_RIDGE, np.log(source))
    deviation = np.asarray(oracle[1]) - np.log(set_prior)
    return {"oracle-temperature": 100 * prior_shift_em(recalibrated(pooled[mixture], oracle[0], b_rows), source),
            "oracle-biases": 100 * prior_shift_em(recalibrated(pooled[mixture], a_rows, np.log(source) + deviation), source)}


def shrunk_shares(point, raw, point_draws, raw_draws):
    """The corrected shares pulled towards the raw ones as far as the bootstrap says the correction is
    noise (positive-part James-Stein): with d = corrected - raw and V the bootstrap variance of d, the
    raw shares' squared bias is estimated as max(|d|^2 - tr V, 0) and the estimate is
    raw + lam d, lam = bias^2 / (bias^2 + tr V), the weight of least mean squared error. Returns
    (shares, lam). A candidate for the product's soft correction, measured behind it (bench/README.md)."""
    import numpy as np

    point, raw = np.asarray(point, dtype=float), np.asarray(raw, dtype=float)
    d = point - raw
    spread = float((np.asarray(point_draws) - np.asarray(raw_draws)).var(axis=0).sum())
    bias2 = max(float(d @ d) - spread, 0.0)
    lam = bias2 / (bias2 + spread) if bias2 + spread > 0 else 1.0
    return raw + lam * d, lam


def _ridges(args) -> list[float]:
    """The `--prior-ridges` grid (the candidates for report.calibration.PRIOR_RIDGE), as numbers."""
    return [float(x) for x in (getattr(args, "prior_ridges", "") or "").split(",") if x.strip()]


def _thin_rows(args) -> list[int]:
    """The `--thin-rows` grid (the candidates for report.calibration.SOFT_FEWEST_ROWS), as numbers."""
    return [int(x) for x in (getattr(args, "thin_rows", "") or "").split(",") if x.strip()]


def methods(args) -> list[str]:
    """METHODS, a `bcts-prior@RIDGE` column per `--prior-ridges` value and a `bcts-em applied@ROWS` one
    per `--thin-rows` value."""
    return (METHODS + [f"bcts-prior@{r:g}" for r in _ridges(args)]
            + [f"bcts-em applied@{k}" for k in _thin_rows(args)])


def applied_at(soft, fewest: int, names: list[str]) -> list[float]:
    """What the product would apply with `SOFT_FEWEST_ROWS = fewest`: bcts-em's shares unless a
    category the labels or the correction give THIN_SHARE_PERCENT or more has fewer than `fewest`
    calibration rows truly in it, or the confusion matrix is close to singular; the raw shares then."""
    from offline_cov.report.calibration import MAX_CONDITION, THIN_SHARE_PERCENT

    thin = any(soft.rows_per_category[n] < fewest and max(soft.raw[n], soft.corrected[n]) >= THIN_SHARE_PERCENT
               for n in names)
    shares = soft.raw if thin or soft.condition_number > MAX_CONDITION else soft.corrected
    return [shares[n] for n in names]


def _ratio(value, raw, digits: int = 2) -> float | str:
    return round(value / raw, digits) if isinstance(value, float) and raw else ""


def _mean(values) -> float | str:
    """The mean of the numbers among `values` (2 decimals), '' where there are none."""
    numbers = [v for v in values if v is not None]
    return round(sum(numbers) / len(numbers), 2) if numbers else ""


def _acc_or_none(acc_shares, observed, conf):
    """Adjusted classify-and-count in percent, None where the confusion matrix cannot be inverted."""
    import numpy as np

    try:
        return 100 * np.asarray(acc_shares(observed, conf))
    except np.linalg.LinAlgError:
        return None


def _spare(ids: list[int]) -> int:
    """Rows of a category a mixture leaves for calibration: 10, or half of a smaller category."""
    return min(10, len(ids) // 2)


def _shrink(counts: dict[str, int], pool: dict[str, list[int]]) -> dict[str, int]:
    """Scale a mixture down until every category leaves some rows for calibration."""
    factor = min((len(pool[n]) - _spare(pool[n])) / counts[n] for n in counts if counts[n])
    return {n: int(c * min(1.0, factor)) for n, c in counts.items()}


def view_scores(set_name: str, args, labeler: str = "ensemble"):
    """A labeler's scores (ensemble, embed or fused, before the product temperature) for every row of
    a set's pool views (bench/views.py --split pool): names, truth (category index), scores, the dev
    mask, and 0 seconds (no model runs here). The ensemble's are the product's (`choose.ensemble_scores`:
    the yes/no check of the top CHECK_TOP_K) where the views have the check, else ensemble-v5's."""
    import json

    import numpy as np

    from offline_cov.labelers.fused import fused_scores

    from .choose import ensemble_scores, llm_probs
    from .views import OUT

    path = OUT / args.views / "pool" / f"{set_name}.json"
    if not path.exists():
        raise SystemExit(f"no pool views at {path}: collect them first with "
                         f"python -m bench.views --split pool --sets {set_name} --max-sample-tokens 512")
    payload = json.loads(path.read_text())
    names = payload["taxonomy"]
    rows = [r for r in payload["rows"] if r["labels"][0] in names]
    if labeler == "embed":
        scores = np.asarray([r["embed"] for r in rows])
    elif labeler == "fused":
        scores = fused_scores(np.asarray([r["embed"] for r in rows]), np.asarray([r["hidden"] for r in rows]))
    else:
        scores = np.asarray([ensemble_scores(r, payload, llm_probs(r, names)) for r in rows])
    truth = np.asarray([names.index(r["labels"][0]) for r in rows])
    dev = np.asarray([int(hashlib.sha256(f"{set_name}:{r['row']}".encode()).hexdigest(), 16) % 3 == 0 for r in rows])
    return names, truth, scores, dev, 0.0


def labeler_scores(set_name: str, labeler_name: str, args):
    """names, truth, score matrix, dev mask and scoring seconds of one labeler on one set."""
    import numpy as np

    bench_set = SETS[set_name]
    taxonomy = load_taxonomy_file(HERE / "taxonomies" / bench_set.taxonomy)
    names = taxonomy.names
    rows = [r for r in load_set(bench_set, Path(args.data_dir)) if r.label in names]
    dev_ids = {r.row for r in split(rows, set_name, "dev")}
    say(f"{labeler_name} on {set_name}: scoring {len(rows)} rows")
    cache_dir = Path(args.scores_cache) if args.scores_cache else None
    scores, _, seconds = cached_scores(labeler_name, set_name, [r.text for r in rows], taxonomy, cache_dir)
    truth = np.asarray([names.index(r.label) for r in rows])
    return names, truth, scores, np.asarray([r.row in dev_ids for r in rows]), seconds


def run_set(set_name: str, labeler_name: str, args) -> dict:
    from offline_cov.labelers import get_labeler_class

    if labeler_name == "ensemble" or args.from_views:
        names, truth, scores, dev, seconds = view_scores(set_name, args, labeler_name)
    else:
        names, truth, scores, dev, seconds = labeler_scores(set_name, labeler_name, args)
    best_t = min(TEMPERATURES, key=lambda temp: nll(scores[dev], truth[dev], temp))
    product_t = get_labeler_class(labeler_name).temperature
    corrected, lowest = set_name in args.correction_sets.split(","), lowest_measured(labeler_name)
    return {
        "set": set_name, "labeler": labeler_name, "rows": len(truth), "dev_rows": int(dev.sum()),
        "test_rows": int((~dev).sum()), "score_s": round(seconds, 1),
        "temperature_chosen_on_dev": best_t, "temperature_in_product": product_t,
        "dev_nll_at_chosen": round(nll(scores[dev], truth[dev], best_t), 4),
        "test": reliability(scores[~dev], truth[~dev], product_t),
        "test_at_chosen": reliability(scores[~dev], truth[~dev], best_t),
        "correction": correction_study(names, truth.tolist(), scores, product_t, args, args.seed, lowest,
                                       labeler_margin(labeler_name))
        if corrected else [],
        "margin": margin_study(names, truth, scores, dev, lowest, args.seed) if corrected and lowest is not None else None,
    }


def run(args) -> dict:
    common.set_bench_env()
    results = [run_set(s, lab, args) for lab in args.labelers.split(",") for s in args.sets.split(",")]
    return {"kind": "calibration", "model": "cpu-labelers", "when": common.now_iso(), "machine": common.machine_info(),
            "versions": common.versions(), "args": vars(args), "results": results,
            "margin_factor_chosen_on_dev": chosen_factor(results)}


def to_markdown(payload: dict) -> str:
    lines = ["# offline-cov calibration bench", "", f"- when: {payload['when']}",
             f"- machine: {common.machine_line(payload['machine'])}", "",
             "## Confidence of the chosen category (temperature chosen on dev; ECE on test)", ""]
    table = [[r["set"], r["labeler"], r["dev_rows"], r["test_rows"], r["temperature_chosen_on_dev"],
              r["temperature_in_product"], r["test"]["accuracy"], r["test"]["ece"], r["test_at_chosen"]["ece"]]
             for r in payload["results"]]
    lines.append(common.md_table(["set", "labeler", "dev rows", "test rows", "T (dev)", "T (product)", "test accuracy",
                                  "test ECE (product T)", "test ECE (dev T)"], table))
    lines += ["", "## Share correction on mixtures of known composition", "",
              "Mean absolute error of each category's share (percentage points) over every (category, draw); "
              "coverage: how often the 95% interval holds the true share; trusted: draws the product would apply "
              "the correction on.", ""]
    corr, by_labeler = [], {}
    grid = [m for r in payload["results"] for c in r["correction"] for m in c["mae"] if m not in METHODS]
    shown = METHODS + list(dict.fromkeys(grid))
    for r in payload["results"]:
        for c in r["correction"]:
            mae, cov = c["mae"], c["ci95_coverage"]
            by_labeler.setdefault(r["labeler"], []).append(c)
            corr.append([r["set"], r["labeler"], c["mixture"], c["size"], c["draws"]] + [mae.get(m) if mae.get(m) is not None else "" for m in shown]
                        + [_ratio(mae.get(m), mae["raw"]) for m in RATIOS] + [cov.get(m, "") for m in COVERED]
                        + ["/".join(str(c["trusted_draws"].get(m, "")) for m in COVERED)])
    for labeler, rows in by_labeler.items():
        mean = {m: _mean([c["mae"].get(m) for c in rows]) for m in shown}
        cover = [round(sum(c["ci95_coverage"].get(m, 0.0) for c in rows) / len(rows), 3) for m in COVERED]
        corr.append(["mean", labeler, f"{len(rows)} mixtures", "", ""] + [mean[m] for m in shown]
                    + [_ratio(mean[m], mean["raw"], 3) for m in RATIOS] + cover + [""])
    lines.append(common.md_table(["set", "labeler", "mixture", "samples", "draws"] + [f"{m} MAE" for m in shown]
                                 + [f"{m} / raw" for m in RATIOS] + [f"{m} coverage" for m in COVERED] + ["trusted (" + "/".join(COVERED) + ")"], corr))
    a = payload["args"]
    source = {
        "review": f"{a['calibration_size']} rows of each mixture, drawn as `offline-cov review` draws them (stratified "
                  "on the labels); the mixture drawn with replacement from the pool",
        "split": f"{a['calibration_size']} rows drawn at random from the whole pool first, the mixture then from the "
                 "rows left (disjoint; the calibration rows' mix is the pool's)",
    }.get(a.get("calibration_from"), f"{a['calibration_size']} rows of the same pool, disjoint from the mixture "
                                     "(drawn from the rows the mixture leaves)")
    unc = [[r["set"], r["labeler"], c["mixture"], c["uncalibrated"]["lowest_accuracy"], c["uncalibrated"]["ci95_coverage"],
            c["uncalibrated"]["mean_width_pp"]] for r in payload["results"] for c in r["correction"] if c.get("uncalibrated")]
    if unc:
        lines += ["", "Without calibration rows, the report's interval (the sampling interval widened by the margin of "
                  "the labeler's lowest bench accuracy, report.calibration.error_margin, as "
                  "strategies/how_sure.widened_intervals builds it) on the same draws:", "",
                  common.md_table(["set", "labeler", "mixture", "lowest measured accuracy", "coverage of the true share",
                                   "mean width (points)"], unc)]
    chosen = payload.get("margin_factor_chosen_on_dev")
    studies = [r for r in payload["results"] if r.get("margin")]
    if studies:
        shown_f = sorted({0.0, 0.1, 0.2, 0.3, 0.5} | ({chosen} if chosen is not None else set()))
        table = [[r["set"], part, r["margin"][part]["cells"]]
                 + [" / ".join(f"{x:.3g}" for x in r["margin"][part]["by_factor"][str(f)]) for f in shown_f]
                 for r in studies for part in ("dev", "test")]
        lines += ["", f"No-calibration margin (the Wilson interval widened by factor x (1 - lowest measured accuracy) x "
                  f"100 points): coverage / mean width on {MARGIN_DRAWS} mixtures of each composition drawn from the "
                  f"dev rows, and from the test rows; chosen on dev (smallest factor holding 95% in every set): "
                  f"**{chosen}**", "",
                  common.md_table(["set", "rows", "cells"] + [f"factor {f}" for f in shown_f], table)]
    lines += ["", f"Calibration sample: {source}; {a['resamples']} bootstrap resamples; draw seed {a['seed']}. Methods:", ""]
    lines += [f"- {m}: {METHOD_NOTES[m]}" for m in METHODS]
    if any(m.startswith("bcts-prior@") for m in grid):
        lines.append("- bcts-prior@RIDGE: bcts-em's point estimate with the recalibration's biases pulled towards the "
                     "log of the calibration rows' shares with that ridge (report.calibration.fit_to_rows)")
    if any(m.startswith("bcts-em applied@") for m in grid):
        lines.append("- bcts-em applied@ROWS: what the product would apply if a category the labels or the correction "
                     "give 5% or more needed ROWS calibration rows truly in it (applied_at; "
                     "report.calibration.SOFT_FEWEST_ROWS)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .views import CPU_DEFAULT_VIEWS

    parser = argparse.ArgumentParser(prog="python -m bench.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--sets", default="arena-hard,selfinstruct-domains")
    parser.add_argument("--correction-sets", default="arena-hard", help="Sets large enough for mixture + calibration")
    parser.add_argument("--labelers", default="embed,fused",
                        help="embed, fused (scored here), ensemble (read from bench/views.py's pool views)")
    parser.add_argument("--from-views", action="store_true",
                        help="embed and fused from the pool views too (the same rows as the ensemble's)")
    parser.add_argument("--views", default=CPU_DEFAULT_VIEWS,
                        help="the views folder the ensemble's scores are read from (the CPU default's sample cut and "
                             "prompt; session 10's runs read qwen2.5-coder-1.5b@cut512, label-v1's)")
    parser.add_argument("--mixture-size", type=int, default=300)
    parser.add_argument("--calibration-from", choices=["pool", "split", "review"], default="pool",
                        help="pool: the calibration rows are drawn from the rows the mixture leaves (their mix is the "
                             "mixture's opposite); split: drawn at random from the whole pool first, the mixture then "
                             "from the rest (the quantification literature's protocol); review: drawn from the mixture "
                             "itself as `offline-cov review` draws them")
    parser.add_argument("--review-mixture-size", type=int, default=2000,
                        help="with --calibration-from review: samples per mixture, drawn with replacement from the pool")
    parser.add_argument("--calibration-size", type=int, default=200)
    parser.add_argument("--prior-ridges", default="",
                        help="comma-separated ridges: a bcts-prior@RIDGE column each, bcts-em's point with the "
                             "recalibration's biases pulled towards the rows' log shares (report.calibration.PRIOR_RIDGE's candidates)")
    parser.add_argument("--thin-rows", default="",
                        help="comma-separated row counts: a `bcts-em applied@ROWS` column each, what the product would "
                             "apply if a category holding 5%% or more needed ROWS calibration rows truly in it "
                             "(report.calibration.SOFT_FEWEST_ROWS's candidates; 5 was the rule before session 25)")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scores-cache", default=str(HERE / "results" / "tmp"),
                        help="Folder for the labelers' score matrices (not in the repo); '' to recompute")
    parser.add_argument("--out-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("calibration", build_parser(), run, to_markdown, argv)


if __name__ == "__main__":
    main()
