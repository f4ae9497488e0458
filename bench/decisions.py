"""How often the report's gap and over-representation calls are right, and what their sureness is worth.

A report names gaps (shares under the gap line) and over-represented categories; `report/decisions.py`
sorts each call by whether the whole 95% interval of the share is on its side of the line (sure) or not
(unsure), and names the categories the report does not call whose interval crosses the line (possible).
This bench draws mixtures of known composition from a pool's rows (the compositions of
bench/calibration.py, plus the pool's shares with each category left out in turn, so that every set has
real gaps), labels them with a labeler's argmax (read from bench/views.py's pool views: no model runs
here), builds the interval the report gives without calibration rows (`report.calibration.error_interval`
at the labeler's lowest measured accuracy) and scores every call against the truth: for each kind, how
many cells it covers and how often the truth agrees (precision); for the true gaps, how many the report
names (recall) and how many it names or lists as possible.

Nothing is chosen here: the lines are the contract's defaults (gap 5%, over 35%, targets 100/k).

Example:
  .venv/bin/python -m bench.decisions --labelers ensemble,fused --sets arena-hard,justeval-topics
"""

from __future__ import annotations

import argparse

from . import common
from .calibration import compositions, labeler_margin, lowest_measured, margin_cells, view_scores

REVIEW_ROWS = 200  # rows of each mixture reviewed in the review regime, as `offline-cov review` draws them
REVIEW_RESAMPLES = 200  # bootstrap resamples of each review's correction (the product's: report.calibration.BOOTSTRAP)
DECISION_SIZES = {"150 samples, drawn without replacement": (None, False),
                  "1000 samples, drawn with replacement": (1000, True)}


def leave_one_out(names: list[str], pool: dict[str, list[int]]) -> dict[str, list[float] | None]:
    """bench/calibration's compositions, and the pool's own shares with each category that has rows left
    out in turn (a category the data lacks: the gap the report exists to show)."""
    out = dict(compositions(names, pool))
    sizes = {n: len(pool[n]) for n in names}
    for gone in (n for n in names if sizes[n]):
        rest = sum(v for n, v in sizes.items() if n != gone)
        out[f"pool shares without {gone}"] = [0.0 if n == gone else sizes[n] / rest for n in names]
    return out


def widened(cells, margin: float) -> list[tuple[float, float, float, float]]:
    """(share the call is made on, interval low, high, true share) per (count, samples, true share) cell,
    with the interval the report gives without calibration rows."""
    from offline_cov.report.calibration import error_interval

    return [(100 * count / total, *error_interval(count, total, margin), true) for count, total, true in cells]


def reviewed(names, truth, scores, temperature: float, rows, seed: int, draws: int) -> list[tuple]:
    """The same tuples with REVIEW_ROWS rows of each mixture reviewed as `offline-cov review` draws them
    and the product's correction of a review (`correct_shares_reviewed`): calls on the corrected shares
    where the product trusts them (else the raw ones), its bootstrap interval. Mixtures of 1000 samples
    drawn with replacement from `rows`, `draws` a composition."""
    import random

    import numpy as np

    from offline_cov.report.calibration import correct_shares_reviewed

    from .calibration import draw_reviewed, labels_and_pairs, mixture_counts, softmax

    posteriors, predicted = softmax(np.asarray(scores), temperature), np.asarray(scores).argmax(axis=1)
    pool = {n: [i for i in rows if names[truth[i]] == n] for n in names}
    rng, out = random.Random(seed), []
    for composition in leave_one_out(names, pool).values():
        counts = {n: c if pool[n] else 0 for n, c in mixture_counts(names, composition, 1000).items()}
        for d in range(draws):
            mixture, positions = draw_reviewed(pool, counts, predicted, REVIEW_ROWS, rng)
            calib = [mixture[pos] for pos in positions]
            labeled, pairs = labels_and_pairs(names, truth, predicted, mixture, calib)
            fix = correct_shares_reviewed(labeled, pairs, names, posteriors[mixture], posteriors[calib],
                                          seed=seed + d, resamples=REVIEW_RESAMPLES)
            decided = fix.corrected if fix.trustworthy else fix.raw
            true = 100 * np.bincount(truth[mixture], minlength=len(names)) / len(mixture)
            out += [(decided[n], *fix.ci95[n], float(t)) for n, t in zip(names, true)]
    return out


def score_calls(cells, k: int, gap: float = 5.0, over: float = 35.0) -> dict:
    """Per kind of call (gaps, over_represented), over (share, low, high, true share) cells: the cells each
    sureness covers and how often the truth agrees with it, and the recall of the cells truly past the line."""
    from offline_cov.report.decisions import call_kind, gap_line, over_line

    lines = {"gaps": (gap_line(100 / k, gap), True), "over_represented": (over_line(100 / k, over), False)}
    out = {}
    for kind, (line, below) in lines.items():
        tally = {s: [0, 0] for s in ("clear", "crossing", "possible", "none")}
        truly = 0
        for share, low, high, true in cells:
            called = share < line if below else share > line
            real = true < line if below else true > line
            sureness = call_kind(called, low, high, line, below) or "none"
            tally[sureness][0] += 1
            tally[sureness][1] += real
            truly += real
        named = tally["clear"][1] + tally["crossing"][1]
        out[kind] = {"line": round(line, 2), "cells": len(cells), "true": truly,
                     "by_sureness": {s: {"cells": n, "truly": r, "precision": round(r / n, 3) if n else None}
                                     for s, (n, r) in tally.items()},
                     "recall_named": round(named / truly, 3) if truly else None,
                     "recall_named_or_possible": round((named + tally["possible"][1]) / truly, 3) if truly else None}
    return out


def run_set(set_name: str, labeler: str, args) -> dict:
    import numpy as np

    from offline_cov.labelers import get_labeler_class

    names, truth, scores, dev, _ = view_scores(set_name, args, labeler)
    lowest = lowest_measured(labeler)
    margin, predicted = labeler_margin(labeler), np.asarray(scores).argmax(axis=1)
    rows = np.where(~dev)[0].tolist() if args.rows == "test" else np.where(dev)[0].tolist()
    by_size = {}
    for label, (size, replace) in DECISION_SIZES.items():
        cells = margin_cells(names, truth, predicted, rows, args.seed, mixes=leave_one_out, size=size, replace=replace)
        by_size[label] = score_calls(widened(cells, margin), len(names))
    if args.review_draws:
        temperature = get_labeler_class(labeler).temperature
        cells = reviewed(names, truth, scores, temperature, rows, args.seed, args.review_draws)
        by_size[f"1000 samples, {REVIEW_ROWS} reviewed, corrected"] = score_calls(cells, len(names))
    return {"set": set_name, "labeler": labeler, "categories": len(names), "rows": len(rows),
            "accuracy_on_rows": round(float((predicted[rows] == truth[rows]).mean()), 3),
            "lowest_measured": lowest, "margin_points": margin, "by_size": by_size}


def run(args) -> dict:
    results = [run_set(s, lab, args) for lab in args.labelers.split(",") for s in args.sets.split(",")]
    return {"kind": "decisions", "model": "cpu-labelers", "when": common.now_iso(), "machine": common.machine_info(),
            "versions": common.versions(), "args": vars(args), "results": results}


def _cell(entry: dict) -> str:
    return f"{entry['cells']} ({entry['precision']:.2f})" if entry["cells"] else "0"


def to_markdown(payload: dict) -> str:
    a = payload["args"]
    lines = ["# offline-cov decision bench", "", f"- when: {payload['when']}",
             f"- machine: {common.machine_line(payload['machine'])}",
             f"- rows: the pools' {a['rows']} rows; seed {a['seed']}; the report's no-calibration interval", "",
             "Cells are (category, mixture draw) pairs; each sureness column gives its cells and, in brackets, the "
             "share of them whose true share is truly on that side of the line (precision). Recall: of the cells "
             "truly under (over) the line, the share the report names, and names or lists as possible.", ""]
    for kind, title in (("gaps", "Gaps"), ("over_represented", "Over-represented")):
        table = []
        for r in payload["results"]:
            for size, scored in r["by_size"].items():
                s = scored[kind]
                by = s["by_sureness"]
                table.append([r["set"], r["labeler"], r["accuracy_on_rows"], r["margin_points"], size, s["line"],
                              s["cells"], s["true"], _cell(by["clear"]), _cell(by["crossing"]), _cell(by["possible"]),
                              _cell(by["none"]), s["recall_named"] if s["recall_named"] is not None else "",
                              s["recall_named_or_possible"] if s["recall_named_or_possible"] is not None else ""])
        lines += [f"## {title}", "", common.md_table(
            ["set", "labeler", "accuracy on these rows", "margin (points)", "mixtures", "line %", "cells", "truly",
             "clear", "crossing", "possible", "not called", "recall: named", "recall: named or possible"], table), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .views import CPU_DEFAULT_VIEWS

    parser = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="arena-hard,justeval-topics", help="sets with pool views")
    parser.add_argument("--labelers", default="ensemble", help="ensemble, embed, fused (read from the pool views)")
    parser.add_argument("--views", default=CPU_DEFAULT_VIEWS, help="the views folder (bench/views.py)")
    parser.add_argument("--rows", choices=["dev", "test"], default="test", help="which rows of the pools to draw from")
    parser.add_argument("--review-draws", type=int, default=50,
                        help="mixtures a composition in the review regime (0: leave it out; each costs a bootstrap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("decisions", build_parser(), run, to_markdown, argv)


if __name__ == "__main__":
    main()
