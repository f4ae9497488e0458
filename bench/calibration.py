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
   confusion matrix, and `offline_cov.report.calibration.correct_shares` the corrected shares and
   their 95% intervals. Reported per mixture: mean absolute error of the raw and corrected shares
   (percentage points) and how often the interval covers the true share.

Example:
  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.calibration --labelers embed,fused --draws 20
"""

from __future__ import annotations

import argparse
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


def mixture_counts(names: list[str], composition: list[float] | None, size: int) -> dict[str, int]:
    shares = composition or [1 / len(names)] * len(names)
    counts = {n: int(math.floor(s * size)) for n, s in zip(names, shares)}
    for n in names[: size - sum(counts.values())]:
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


def soft_em_shares(posteriors, calib_prior, iterations: int = 200):
    """Saerens et al. (2002) EM on per-sample posteriors: the mixture's prior, the posteriors
    re-weighted by prior / calibration prior until the prior is their mean."""
    import numpy as np

    prior = np.asarray(calib_prior, dtype=float)
    new = prior.copy()
    for _ in range(iterations):
        w = posteriors * (new / prior)
        w /= w.sum(axis=1, keepdims=True)
        nxt = w.mean(axis=0)
        if np.abs(nxt - new).max() < 1e-9:
            break
        new = nxt
    return new.tolist()


def correction_study(names, truth, predicted, args, seed: int, posteriors=None) -> list[dict]:
    from offline_cov.report.calibration import acc_shares, confusion, correct_shares

    pool = {n: [i for i, t in enumerate(truth) if names[t] == n] for n in names}
    set_prior = [len(pool[n]) / len(truth) for n in names]
    rows, rng = [], random.Random(seed)
    for mix_name, composition in MIXTURES.items():
        if composition is not None and len(composition) != len(names):
            continue
        counts = mixture_counts(names, composition, args.mixture_size)
        if any(counts[n] > len(pool[n]) - 10 for n in names):
            counts = _shrink(counts, pool)
        raw_err, cor_err, covered, cells, trusted = [], [], 0, 0, 0
        acc_err, soft_err = [], []
        for d in range(args.draws):
            mixture, calib = draw(pool, counts, args.calibration_size, rng)
            total = len(mixture)
            true_share = {n: 100 * counts[n] / total for n in names}
            labeled = {n: 0 for n in names}
            for i in mixture:
                labeled[names[predicted[i]]] += 1
            pairs = [(names[truth[i]], names[predicted[i]]) for i in calib]
            result = correct_shares(labeled, pairs, names, seed=seed + d, resamples=args.resamples)
            trusted += result.trustworthy
            acc = acc_shares([result.raw[n] / 100 for n in names], confusion(pairs, names))
            soft = None
            if posteriors is not None:  # the posteriors' own prior: the class shares of the set they were fitted on
                soft = soft_em_shares(posteriors[mixture], set_prior)
            for j, n in enumerate(names):
                raw_err.append(abs(result.raw[n] - true_share[n]))
                cor_err.append(abs(result.corrected[n] - true_share[n]))
                acc_err.append(abs(100 * acc[j] - true_share[n]))
                if soft is not None:
                    soft_err.append(abs(100 * soft[j] - true_share[n]))
                lo, hi = result.ci95[n]
                covered += lo <= true_share[n] <= hi
                cells += 1
        rows.append({"mixture": mix_name, "size": sum(counts.values()), "draws": args.draws,
                     "raw_mae": round(sum(raw_err) / len(raw_err), 2), "corrected_mae": round(sum(cor_err) / len(cor_err), 2),
                     "acc_mae": round(sum(acc_err) / len(acc_err), 2),
                     "soft_em_mae": round(sum(soft_err) / len(soft_err), 2) if soft_err else None,
                     "ci95_coverage": round(covered / cells, 3), "trusted_draws": trusted})
    return rows


def _shrink(counts: dict[str, int], pool: dict[str, list[int]]) -> dict[str, int]:
    """Scale a mixture down until every category leaves some rows for calibration."""
    factor = min((len(pool[n]) - 10) / counts[n] for n in counts if counts[n])
    return {n: int(c * min(1.0, factor)) for n, c in counts.items()}


def run_set(set_name: str, labeler_name: str, args) -> dict:
    import numpy as np

    bench_set = SETS[set_name]
    taxonomy = load_taxonomy_file(HERE / "taxonomies" / bench_set.taxonomy)
    names = taxonomy.names
    rows = load_set(bench_set, Path(args.data_dir))
    rows = [r for r in rows if r.label in names]
    dev_ids = {r.row for r in split(rows, set_name, "dev")}
    truth = np.asarray([names.index(r.label) for r in rows])
    say(f"{labeler_name} on {set_name}: scoring {len(rows)} rows")
    cache_dir = Path(args.scores_cache) if args.scores_cache else None
    scores, labeler, seconds = cached_scores(labeler_name, set_name, [r.text for r in rows], taxonomy, cache_dir)
    dev = np.asarray([r.row in dev_ids for r in rows])
    best_t = min(TEMPERATURES, key=lambda temp: nll(scores[dev], truth[dev], temp))
    product_t = labeler.temperature
    predicted = scores.argmax(axis=1)
    return {
        "set": set_name, "labeler": labeler_name, "rows": len(rows), "dev_rows": int(dev.sum()),
        "test_rows": int((~dev).sum()), "score_s": round(seconds, 1),
        "temperature_chosen_on_dev": best_t, "temperature_in_product": product_t,
        "dev_nll_at_chosen": round(nll(scores[dev], truth[dev], best_t), 4),
        "test": reliability(scores[~dev], truth[~dev], product_t),
        "test_at_chosen": reliability(scores[~dev], truth[~dev], best_t),
        "correction": correction_study(names, truth.tolist(), predicted.tolist(), args, args.seed,
                                       softmax(scores, product_t))
        if set_name in args.correction_sets.split(",") else [],
    }


def run(args) -> dict:
    common.set_bench_env()
    results = [run_set(s, lab, args) for lab in args.labelers.split(",") for s in args.sets.split(",")]
    return {"kind": "calibration", "model": "cpu-labelers", "when": common.now_iso(), "machine": common.machine_info(),
            "versions": common.versions(), "args": vars(args), "results": results}


def to_markdown(payload: dict) -> str:
    lines = ["# offline-cov calibration bench", "", f"- when: {payload['when']}",
             f"- machine: {common.machine_line(payload['machine'])}", "",
             "## Confidence of the chosen category (temperature chosen on dev; ECE on test)", ""]
    table = [[r["set"], r["labeler"], r["dev_rows"], r["test_rows"], r["temperature_chosen_on_dev"],
              r["temperature_in_product"], r["test"]["accuracy"], r["test"]["ece"], r["test_at_chosen"]["ece"]]
             for r in payload["results"]]
    lines.append(common.md_table(["set", "labeler", "dev rows", "test rows", "T (dev)", "T (product)", "test accuracy",
                                  "test ECE (product T)", "test ECE (dev T)"], table))
    lines += ["", "## Share correction on mixtures of known composition", ""]
    corr = [[r["set"], r["labeler"], c["mixture"], c["size"], c["draws"], c["raw_mae"], c["corrected_mae"],
             round(c["corrected_mae"] / c["raw_mae"], 2) if c["raw_mae"] else "", c["ci95_coverage"], c["trusted_draws"],
             c.get("acc_mae", ""), c.get("soft_em_mae") or ""]
            for r in payload["results"] for c in r["correction"]]
    a = payload["args"]
    lines.append(common.md_table(["set", "labeler", "mixture", "samples", "draws", "raw MAE (pp)", "corrected MAE (pp)",
                                  "ratio", "95% CI coverage", "draws trusted", "ACC MAE", "soft-EM MAE"], corr))
    lines += ["", f"Calibration sample: {a['calibration_size']} rows of the same set, disjoint from the mixture; "
              f"{a['resamples']} bootstrap resamples; MAE over every (category, draw). 'corrected' is the product's "
              "correction (hard-label EM); ACC (adjusted classify-and-count) and soft-EM (Saerens EM on the labeler's "
              "per-sample softmax at the product temperature, the whole set's class shares as the posteriors' prior) are "
              "alternatives measured beside it."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--sets", default="arena-hard,selfinstruct-domains")
    parser.add_argument("--correction-sets", default="arena-hard", help="Sets large enough for mixture + calibration")
    parser.add_argument("--labelers", default="embed,fused")
    parser.add_argument("--mixture-size", type=int, default=300)
    parser.add_argument("--calibration-size", type=int, default=200)
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
