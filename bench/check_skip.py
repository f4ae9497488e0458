"""Skipping `ensemble-lite`'s yes/no check where the other two experts are already sure: scored from the views.

  .venv/bin/python -m bench.check_skip --split dev     # every line TAUS, the rule's choice, its temperature
  .venv/bin/python -m bench.check_skip --split test    # the dev choice (DEV_LINE), once, on the test rows

Reads the check-v2 views (`bench.views --check-prompt check-v2 --check-top-k 3`, the check of each
row's three likeliest categories, as the product asks it). A row's pre-check confidence is the largest
softmax of `log P_llm + w log P_fused` (`ensemble.pre_check_confidence`); above the line the check is not
asked and the label is that product's argmax. A taxonomy with a category that has no description
(names alone, not described: `--no-describe`) is never skipped. The rule: the lowest line whose mean dev
accuracy is within MEAN_TOLERANCE of asking every row and that keeps the labeler ahead of `fused` on every
dev set where asking every row is; then the skipped rows' confidence temperature with the least NLL on the
dev rows it skips. The rule was written before the nine dev sets were read; the exclusion of taxonomies
with an undescribed category was added after its first table (bench/README.md says which lines each gave).
No model runs here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from offline_cov.labelers import get_labeler_class
from offline_cov.labelers.embed import softmax
from offline_cov.labelers.ensemble import check_candidates, combined_scores, pre_check_confidence

from . import common
from .choose import CATEGORY_SETS, check_scores, confidence_fit, described, fused_probs, llm_probs, load
from .views import CPU_DEFAULT_VIEWS

VIEWS = f"{CPU_DEFAULT_VIEWS}+check-v2"
LABELER = "ensemble-lite"
TAUS = [0.8, 0.85, 0.9, 0.95, 0.98, 0.99]  # candidate lines, most skipped first
MEAN_TOLERANCE = 0.005
DEV_LINE, DEV_SKIP_TEMPERATURE = 0.85, 0.6  # session 41's dev choice; `ensemble-lite` asks every row until test reads it
SETS = CATEGORY_SETS[:9]  # the nine rows of #13's table (the exemplified variants are not what analyze runs)
TEMPERATURES = [round(float(t), 2) for t in np.arange(0.1, 1.01, 0.05)]


def row_parts(payload: dict) -> list[dict]:
    """Per labeled row: its labels, pre-check confidence (0 where the taxonomy is not `described`: the
    product never skips those), scores without and with the check (None where the check failed), the
    fused label and how many categories the check asks."""
    lab, names = get_labeler_class(LABELER), payload["taxonomy"]
    skippable = described(payload)
    out = []
    for row in payload["rows"]:
        if not row["labels"]:
            continue
        p_llm, p_fused = llm_probs(row, names), fused_probs(row)
        asked = check_candidates(p_llm, p_fused, lab.fused_weight, lab.check_top_k)
        check = check_scores(row, payload, lab.check_strength, asked)
        confidence = pre_check_confidence(p_llm, p_fused, lab.fused_weight) if skippable else 0.0
        out.append({"labels": row["labels"], "confidence": confidence,
                    "plain": combined_scores(p_llm, p_fused, lab.fused_weight),
                    "checked": combined_scores(p_llm, p_fused, lab.fused_weight, check, lab.check_weight),
                    "fused": names[int(np.argmax(p_fused))], "asked": len(asked)})
    return out


def labels_at(parts: list[dict], names: list[str], line: float | None) -> list[str]:
    """Each row's label with the check skipped above `line` (None: asked of every row)."""
    return [names[int(np.argmax(p["plain"] if skipped(p, line) else p["checked"]))] for p in parts]


def skipped(part: dict, line: float | None) -> bool:
    return line is not None and part["confidence"] > line


def accuracy(parts: list[dict], labels: list[str]) -> float:
    return round(float(np.mean([label in p["labels"] for p, label in zip(parts, labels)])), 3)


def line_table(views: dict[str, dict], parts: dict[str, list]) -> dict:
    """Per line (and None, every row asked): accuracy per set, their mean, the share of rows skipped, the
    check requests saved and the labels that differ from asking every row."""
    every = {name: labels_at(rows, views[name]["taxonomy"], None) for name, rows in parts.items()}
    out = {}
    for line in [None] + TAUS:
        sets = {}
        for name, rows in parts.items():
            got = labels_at(rows, views[name]["taxonomy"], line)
            sets[name] = {"accuracy": accuracy(rows, got), "skipped": round(float(np.mean([skipped(p, line) for p in rows])), 3),
                          "requests_saved": sum(p["asked"] for p in rows if skipped(p, line)),
                          "requests": sum(p["asked"] for p in rows),
                          "moved": sum(a != b for a, b in zip(got, every[name]))}
        out["every row" if line is None else str(line)] = {
            "line": line, "sets": sets, "mean": round(float(np.mean([s["accuracy"] for s in sets.values()])), 4),
            "requests_saved": round(sum(s["requests_saved"] for s in sets.values()) / sum(s["requests"] for s in sets.values()), 3)}
    return out


def fused_accuracy(parts: dict[str, list]) -> dict[str, float]:
    return {name: accuracy(rows, [p["fused"] for p in rows]) for name, rows in parts.items()}


def choose_line(table: dict, fused: dict[str, float]) -> float | None:
    """The rule: the lowest line within MEAN_TOLERANCE of asking every row that stays ahead of `fused`
    wherever asking every row is; None when no line passes."""
    every = table["every row"]
    ahead = [n for n, s in every["sets"].items() if s["accuracy"] > fused[n]]
    for line in TAUS:
        g = table[str(line)]
        if g["mean"] >= every["mean"] - MEAN_TOLERANCE and all(g["sets"][n]["accuracy"] > fused[n] for n in ahead):
            return line
    return None


def skip_temperature(views: dict[str, dict], parts: dict[str, list], line: float) -> dict:
    """The confidence temperature of the rows skipped at `line` with the least NLL of a true label (every
    set pooled)."""
    nll = {}
    for t in TEMPERATURES:
        losses = [-np.log(max(sum(q[views[n]["taxonomy"].index(x)] for x in set(p["labels"]) if x in views[n]["taxonomy"]), 1e-12))
                  for n, rows in parts.items() for p in rows if skipped(p, line)
                  for q in [softmax(p["plain"] * t)]]
        nll[t] = float(np.mean(losses))
    return {"best": min(nll, key=nll.get), "nll": {str(t): round(v, 4) for t, v in nll.items()}}


def calibration(views: dict[str, dict], parts: dict[str, list], line: float | None, skip_t: float | None) -> dict:
    """ECE and mean confidence per set of the labeler's confidence with the check skipped above `line`."""
    lab = get_labeler_class(LABELER)
    out = {}
    for name, rows in parts.items():
        names = views[name]["taxonomy"]
        preds = []
        for p in rows:
            q = softmax(p["plain"] * skip_t) if skipped(p, line) else softmax(p["checked"] * lab.temperature)
            preds.append((names[int(np.argmax(q))], float(q.max())))
        out[name] = confidence_fit({"rows": [{"labels": p["labels"]} for p in rows]}, preds)
    return out


def run(args) -> dict:
    views = {n: p for n, p in load(args.split, args.views).items() if n in SETS and p.get("check_top_k")}
    if not views:
        raise SystemExit(f"no check-v2 views of the {args.split} split under bench/results/tmp/views/{args.views}: collect "
                         f"them with python -m bench.views --split {args.split} --check-prompt check-v2 --check-top-k 3")
    parts = {n: row_parts(views[n]) for n in SETS if n in views}
    table, fused = line_table(views, parts), fused_accuracy(parts)
    out = {"split": args.split, "views": args.views, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": common.machine_info(), "lines": table, "fused": fused,
           "rows": {n: len(r) for n, r in parts.items()}}
    if args.split == "dev":
        line = choose_line(table, fused)
        out["chosen"] = line
        out["temperature"] = skip_temperature(views, parts, line) if line is not None else None
        skip_t = out["temperature"]["best"] if line is not None else None
    else:
        line, skip_t = args.line, args.skip_temperature
        out["tested"] = {"line": line, "skip_temperature": skip_t}
    out["calibration"] = {"every row": calibration(views, parts, None, None),
                          "skipped": calibration(views, parts, line, skip_t) if line is not None else None}
    return out


def markdown(res: dict) -> str:
    sets = list(res["rows"])
    lines = [f"## `{LABELER}`'s check skipped where the other experts are sure ({res['split']} split, `{res['views']}`)", "",
             f"- when: {res['when']}; machine: {common.machine_line(res['machine'])}",
             "- a row's pre-check confidence: the largest softmax of log P_llm + w log P_fused; above the line no check", "",
             "| line | mean | check requests saved | " + " | ".join(f"{n} ({res['rows'][n]})" for n in sets) + " |",
             "|---|---|---|" + "---|" * len(sets),
             "| fused | | | " + " | ".join(f"{res['fused'][n]:.3f}" for n in sets) + " |"]
    for key, g in res["lines"].items():
        cells = [f"{g['sets'][n]['accuracy']:.3f} (skip {g['sets'][n]['skipped']:.2f}, moved {g['sets'][n]['moved']})" for n in sets]
        lines.append(f"| {key} | {g['mean']:.4f} | {g['requests_saved']:.3f} | " + " | ".join(cells) + " |")
    if res["split"] == "dev":
        lines += ["", f"The rule's line: **{res['chosen']}**" + (
            f"; the skipped rows' temperature with the least NLL: **{res['temperature']['best']}**" if res["temperature"] else "")]
    else:
        lines += ["", f"The line tested: {res['tested']['line']}, skipped rows' temperature {res['tested']['skip_temperature']}"]
    cal = res["calibration"]
    lines += ["", "| set | ECE, every row asked | ECE, skipped above the line |", "|---|---|---|"]
    for n in sets:
        skip = cal["skipped"][n]["ece"] if cal["skipped"] else "-"
        lines.append(f"| {n} | {cal['every row'][n]['ece']} | {skip} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test"], required=True)
    p.add_argument("--views", default=VIEWS, help="the views folder (check-v2, top 3)")
    p.add_argument("--line", type=float, default=DEV_LINE, help="--split test: the line to read (the dev choice)")
    p.add_argument("--skip-temperature", type=float, default=DEV_SKIP_TEMPERATURE,
                   help="--split test: the skipped rows' confidence temperature (the dev choice)")
    args = p.parse_args(argv)
    res = run(args)
    text = markdown(res)
    common.write_named([f"check-skip-{args.split}-{time.strftime('%Y%m%d-%H%M%S')}", f"check-skip-{args.split}-latest"], res, text)
    print(text)


if __name__ == "__main__":
    main()
