"""Every labeler and combination scored from the views bench/views.py collected: no model runs here.

  .venv/bin/python -m bench.choose --split dev     # the grids every constant was chosen on
  .venv/bin/python -m bench.choose --split test    # the chosen settings, once, on the test rows

Category accuracy counts a sample right when its primary label is one of the row's labels (Just-Eval
rows carry one to three of GPT-4's tags); macro-F1 and kappa take, for a multi-tag row, the tag the
labeler chose when it is one of them, else the first. Difficulty: Spearman between the labeler's
difficulty (easy 0, medium 1, hard 2; or its expected difficulty where it has one) and the truth
(MATH's level 1-5, InfoBench's easy/hard, Just-Eval's GPT-4 easy/medium/hard), exact agreement of
the three classes (InfoBench: hard vs not hard), and the mix.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections import Counter

import numpy as np

from offline_cov.labelers.check import CHECK_OFFSET_STRENGTH, content_free_offsets, offset_log_odds
from offline_cov.labelers.difficulty import rubric_markers
from offline_cov.labelers.embed import EMBED_TEMPERATURE, softmax
from offline_cov.labelers.ensemble import (
    DIFFICULTY_CUTS,
    DIFFICULTY_LENGTH_WEIGHT,
    ENSEMBLE_FUSED_WEIGHT,
    ENSEMBLE_TEMPERATURE,
    check_candidates,
    check_skipped,
    combined_scores,
    difficulty_from_score,
    difficulty_score,
    expected_difficulty,
    llm_vote,
)
from offline_cov.labelers.fused import FUSED_TEMPERATURE, fused_scores
from offline_cov.metrics import label_metrics
from offline_cov.prompts import CHECK_PROMPT_VERSION

from . import common
from .views import CPU_DEFAULT_VIEWS, OUT, has_check

LEVEL = {"easy": 0, "medium": 1, "hard": 2}
CATEGORY_SETS = ["arena-hard", "arena-hard-names", "selfinstruct-domains", "infobench", "justeval-tasks",
                 "justeval-topics", "justeval-topics-names", "arena-hard-described", "justeval-topics-described",
                 "infobench-exemplified", "justeval-tasks-exemplified", "justeval-topics-exemplified"]
DIFFICULTY_SETS = ["math", "infobench", "justeval-tasks"]
WEIGHTS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
STRENGTHS = [0.0, 0.5, 1.0]  # contextual calibration of the LLM's distribution (0: none, the product)
CHECK_GRID = {"offset_strength": [0.0, 0.5, 1.0], "check_weight": [0.0, 1.0, 2.0, 3.0, 4.0],
              "fused_weight": [1.0, 1.5, 2.0, 3.0, 4.0]}  # the yes/no check's constants, chosen on dev
TOP_KS = [1, 2, 3, 4, 5, 6, 8]  # categories the check asks per sample; the rule: the smallest k within 0.005 of all
ALL = 99  # a top-k that asks every category (ensemble-v6)
COLUMNS = ("embed", "fused", "llm", "ensemble-v5", "ensemble-v6", "ensemble")  # the table's, in order
PAIRED = (("ensemble", "fused"), ("ensemble", "embed"), ("ensemble-v5", "fused"), ("ensemble-v5", "embed"))
"""The CPU defaults (with the check, and without it: ensemble-nocheck) against the labelers #13 asks them to beat."""


def load(split: str, model: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((OUT / model / split).glob("*.json"))}


# ---------------------------------------------------------------- categories


def fused_probs(row: dict) -> np.ndarray:
    return softmax(fused_scores(np.asarray([row["embed"]]), np.asarray([row["hidden"]]))[0] * FUSED_TEMPERATURE)


def llm_probs(row: dict, names: list[str]) -> list[float] | None:
    llm = row["llm"]
    return None if llm["primary"] is None else llm_vote(llm["primary"], llm["p_category"], names)


CHECKED_BY = {"check-v1": "ensemble", "check-v2": "ensemble-lite"}  # the labeler of each check prompt


def checked_labeler(payload: dict):
    """The labeler class whose check the views hold (CHECKED_BY; views before check-v2 name no prompt:
    check-v1): its constants score the `ensemble` and `ensemble-v6` columns."""
    from offline_cov.labelers import get_labeler_class

    return get_labeler_class(CHECKED_BY[payload.get("check_prompt") or CHECK_PROMPT_VERSION])


def check_scores(row: dict, payload: dict, strength: float = CHECK_OFFSET_STRENGTH,
                 asked: list[int] | None = None) -> np.ndarray | None:
    """The yes/no check's score per category as the product computes it (`labelers/check.py`): of the
    `asked` categories (every one when None), log-odds less `strength` times their mean on the
    content-free inputs; the others the lowest of those. None where the views have no check or an
    answer failed."""
    free = payload.get("content_free", {}).get("check")
    if row.get("check") is None or free is None:
        return None
    asked = range(len(row["check"])) if asked is None else asked
    scores = offset_log_odds({j: row["check"][j] for j in asked}, content_free_offsets(free), strength)
    return None if scores is None else np.asarray(scores)


def ensemble_scores(row: dict, payload: dict, p_llm, weight: float | None = None, check_weight: float | None = None,
                    check_strength: float | None = None, top_k: int | None = None, skip: bool = True) -> np.ndarray:
    """The product's combined scores of one row (`ensemble.combined_scores`), the check asking the
    `top_k` likeliest categories by the other two experts; a constant not given is that of the views'
    check labeler (`checked_labeler`). With `skip`, a row that labeler's skip rule asks no check of
    (`ensemble.check_skipped`, the taxonomy `described`) gets none, and its scores are scaled by the
    labeler's skip temperature over its temperature, so that one softmax at the labeler's temperature
    gives the product's confidence for every row."""
    lab = checked_labeler(payload)
    weight = lab.fused_weight if weight is None else weight
    check_weight = lab.check_weight if check_weight is None else check_weight
    check_strength = lab.check_strength if check_strength is None else check_strength
    top_k = lab.check_top_k if top_k is None else top_k
    p_fused = fused_probs(row)
    if check_weight and skip and check_skipped((p_llm, p_fused), weight, lab.check_skip_above, described(payload)):
        return combined_scores(p_llm, p_fused, weight) * (lab.skip_temperature / lab.temperature)
    asked = check_candidates(p_llm, p_fused, weight, top_k)
    check = check_scores(row, payload, check_strength, asked) if check_weight else None
    return combined_scores(p_llm, p_fused, weight, check, check_weight)


def described(payload: dict) -> bool:
    """Whether every category of the views' taxonomy has a description (the product skips no check
    otherwise): a taxonomy file's do, names alone (`names:` sets) only where the model described them."""
    return not str(payload.get("spec", "")).startswith("names:") or bool(payload.get("described"))


def content_free_bias(payload: dict) -> np.ndarray | None:
    """The LLM's mean distribution over the categories on the set's content-free inputs (bench/views.py
    CONTENT_FREE), None when the views have none."""
    free = payload.get("content_free")
    if not free:
        return None
    names = payload["taxonomy"]
    dists = [llm_vote(v["primary"], v["p_category"], names) if v["primary"] else [1 / len(names)] * len(names)
             for v in free["llm"]]
    return np.mean(np.asarray(dists), axis=0)


def calibrated(p_llm: list[float] | None, bias: np.ndarray | None, strength: float = 1.0) -> list[float] | None:
    """Contextual calibration (Zhao et al. 2021): the LLM's distribution divided by its content-free
    one raised to `strength` (0: unchanged), renormalised."""
    if p_llm is None or bias is None or strength == 0:
        return p_llm
    q = np.asarray(p_llm) / np.clip(bias, 1e-6, 1.0) ** strength
    return list(q / q.sum())


def predictions(payload: dict, labeler: str, weight: float | None = None, temperature: float | None = None,
                strength: float = 0.0, check_weight: float | None = None, check_strength: float | None = None,
                top_k: int | None = None, skip: bool = True) -> list[tuple[str | None, float]]:
    """(category, confidence) per row for one labeler read from the views; `strength` > 0 calibrates
    the LLM's distribution on the set's content-free answers first (`calibrated`). `ensemble` is the
    product's labeler of the views' check (`checked_labeler`: `ensemble`, or `ensemble-lite` for
    check-v2), with the check of its top_k where the views have it and not skipped (`ensemble_scores`);
    `ensemble-v6` the check of every category, never skipped; `ensemble-v5` the one before the check. A
    constant not given is that labeler's."""
    names = payload["taxonomy"]
    temperature = checked_labeler(payload).temperature if temperature is None else temperature
    bias = content_free_bias(payload) if strength else None
    out = []
    for row in payload["rows"]:
        if labeler == "embed":
            p = softmax(np.asarray(row["embed"]) * EMBED_TEMPERATURE)
        elif labeler == "fused":
            p = fused_probs(row)
        elif labeler == "llm" and not strength:
            out.append((row["llm"]["primary"], None))
            continue
        elif labeler == "llm":
            p_llm = calibrated(llm_probs(row, names), bias, strength)
            if p_llm is None:
                out.append((None, None))
                continue
            p = np.asarray(p_llm)
        elif labeler == "ensemble-embed":  # the same product with MiniLM alone as the second expert
            p = softmax(combined_scores(llm_probs(row, names), softmax(np.asarray(row["embed"]) * EMBED_TEMPERATURE),
                                        ENSEMBLE_FUSED_WEIGHT if weight is None else weight))
        elif labeler == "ensemble-v5":
            p = softmax(combined_scores(llm_probs(row, names), fused_probs(row), ENSEMBLE_FUSED_WEIGHT) * ENSEMBLE_TEMPERATURE)
        else:  # ensemble, ensemble-v6
            k, skips = (ALL, False) if labeler == "ensemble-v6" else (top_k, skip)
            p = softmax(ensemble_scores(row, payload, calibrated(llm_probs(row, names), bias, strength), weight,
                                        check_weight, check_strength, k, skips) * temperature)
        best = int(np.argmax(p))
        out.append((names[best], float(p[best])))
    return out


def contextual_grid(payload: dict) -> dict:
    """Accuracy of the LLM alone and of the ensemble (weights 1, 2, 4) with the LLM's distribution
    contextually calibrated at each of STRENGTHS."""
    acc = {}
    for strength in STRENGTHS:
        acc[f"llm cc={strength}"] = category_scores(payload, predictions(payload, "llm", strength=strength))["accuracy"]
        for w in (1.0, 2.0, 4.0):
            acc[f"w={w} cc={strength}"] = category_scores(payload, predictions(payload, "ensemble", w, strength=strength))["accuracy"]
    return acc


def check_grid(views: dict[str, dict]) -> dict:
    """Mean accuracy over the category sets for every point of CHECK_GRID (the yes/no check's offset
    strength and weight, and the fused weight), each set's accuracy at the best point and the top 15."""
    points = []
    for s, v, w in itertools.product(*CHECK_GRID.values()):
        acc = {name: category_scores(p, predictions(p, "ensemble", w, check_weight=v, check_strength=s))["accuracy"]
               for name, p in views.items()}
        points.append({"offset_strength": s, "check_weight": v, "fused_weight": w,
                       "mean": round(float(np.mean(list(acc.values()))), 4), "sets": acc})
    points.sort(key=lambda g: -g["mean"])
    return {"sets": list(views), "top": points[:15],
            "without_check": max((g for g in points if g["check_weight"] == 0), key=lambda g: g["mean"])}


def top_k_grid(views: dict[str, dict]) -> dict:
    """Accuracy per set and categories asked per sample for each check size in TOP_KS (and every category)."""
    out = {}
    for k in TOP_KS + [ALL]:
        acc = {name: category_scores(p, predictions(p, "ensemble", top_k=k))["accuracy"] for name, p in views.items()}
        asked = np.mean([min(k, len(p["taxonomy"])) for p in views.values() for r in p["rows"] if r["labels"]])
        out["all" if k == ALL else str(k)] = {"mean": round(float(np.mean(list(acc.values()))), 4),
                                               "asked": round(float(asked), 2), "sets": acc}
    return out


def category_scores(payload: dict, preds: list[tuple[str | None, float]]) -> dict | None:
    names = payload["taxonomy"]
    pairs = [(row["labels"], pred) for row, (pred, _) in zip(payload["rows"], preds) if row["labels"]]
    if not pairs:
        return None
    truth = [pred if pred in labels else labels[0] for labels, pred in pairs]
    guessed = [pred or "(failed)" for _, pred in pairs]
    m = label_metrics(truth, guessed, names)
    right = [t == g for t, g in zip(truth, guessed)]
    return {"n": len(pairs), "accuracy": round(float(np.mean(right)), 3), "macro_f1": round(m["macro_f1"], 3),
            "kappa": round(m["kappa"], 3)}


def paired(payload: dict, preds: dict[str, list]) -> dict:
    """Each pair of PAIRED on the same labeled rows (`bench.paired.compare_right`): a labeler is right
    on a row when its label is one of the row's."""
    from .paired import compare_right

    right = {lab: [pred in row["labels"] for row, (pred, _) in zip(payload["rows"], p) if row["labels"]]
             for lab, p in preds.items()}
    return {f"{a} vs {b}": compare_right(right[a], right[b]) for a, b in PAIRED if a in right and b in right}


def confidence_fit(payload: dict, preds) -> dict:
    """How well the confidence says how often the label is right: mean confidence, accuracy, ECE (10 bins)."""
    pairs = [(conf, pred in row["labels"]) for row, (pred, conf) in zip(payload["rows"], preds) if row["labels"]]
    conf = np.asarray([c for c, _ in pairs])
    right = np.asarray([r for _, r in pairs], dtype=float)
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(abs(conf[bins == b].mean() - right[bins == b].mean()) * (bins == b).sum() for b in range(10) if (bins == b).any())
    return {"mean_confidence": round(float(conf.mean()), 3), "accuracy": round(float(right.mean()), 3),
            "ece": round(float(ece / len(pairs)), 3)}


def fit_temperature(views: dict[str, dict]) -> dict:
    """The softmax temperature of the ensemble's scores with the least NLL of a true label, all dev sets pooled."""
    grid = [round(float(t), 2) for t in np.arange(0.3, 2.01, 0.05)]
    nll = {}
    for t in grid:
        total, n = 0.0, 0
        for payload in views.values():
            names = payload["taxonomy"]
            for row in payload["rows"]:
                if not row["labels"]:
                    continue
                p = softmax(ensemble_scores(row, payload, llm_probs(row, names)) * t)
                total -= np.log(max(sum(p[names.index(x)] for x in set(row["labels"]) if x in names), 1e-12))
                n += 1
        nll[t] = total / n
    best = min(nll, key=nll.get)
    return {"best": best, "nll": {str(t): round(v, 4) for t, v in nll.items()}}


# ---------------------------------------------------------------- difficulty


def ranks(values: list[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="mergesort")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tie = v == value
        r[tie] = r[tie].mean()
    return r


def rank_correlation(rx: np.ndarray, ry: np.ndarray) -> float:
    """Pearson of two rank vectors; 0 when either side is constant."""
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho (Pearson of the tie-averaged ranks); 0 when either side is constant."""
    return round(rank_correlation(ranks(x), ranks(y)), 3)


LENGTH_WEIGHTS = [0.25, 0.5, 1.0]
CHOSEN_DIFFICULTY = "chosen"
# The grid `choose_difficulty` searches on the dev split: the length and marker weights of
# `difficulty_score`, and its two cut points.
LENGTH_GRID = [0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0]
MARKER_GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]
CUT_GRID = np.round(np.arange(0.0, 4.5, 0.05), 2)


def difficulty_methods(row: dict, cuts=DIFFICULTY_CUTS) -> dict[str, tuple[float, str]]:
    """(score, class) per difficulty method for one row; "chosen" is what the product writes."""
    llm = row["llm"]
    methods = {"rule": (LEVEL[row["rule"]], row["rule"])}
    if llm["difficulty"]:
        methods["llm-written"] = (LEVEL[llm["difficulty"]], llm["difficulty"])
    if llm["p_difficulty"]:
        e = expected_difficulty(llm["p_difficulty"])
        methods["llm-expected"] = (e, difficulty_from_score(e, cuts))
        for w in LENGTH_WEIGHTS:
            m = difficulty_score(llm["p_difficulty"], row["features"]["words"], w)
            methods[f"llm-expected+length x{w}"] = (m, difficulty_from_score(m, cuts))
        chosen = difficulty_score(llm["p_difficulty"], row["features"]["words"])
        methods[CHOSEN_DIFFICULTY] = (chosen, difficulty_from_score(chosen, cuts))
    return methods


def difficulty_scores(payload: dict, method: str, cuts=DIFFICULTY_CUTS) -> dict | None:
    rows = [r for r in payload["rows"] if r.get("difficulty") in LEVEL]
    got = [(r, difficulty_methods(r, cuts).get(method)) for r in rows]
    got = [(r, m) for r, m in got if m is not None]
    if not got:
        return None
    truth = [truth_level(r) for r, _ in got]
    binary = {r["difficulty"] for r, _ in got} <= {"easy", "hard"}
    if binary:
        agree = [(m[1] == "hard") == (r["difficulty"] == "hard") for r, m in got]
    else:
        agree = [m[1] == r["difficulty"] for r, m in got]
    mix = Counter(m[1] for _, m in got)
    top_share = max(mix.values()) / len(got)
    return {"n": len(got), "spearman": spearman([m[0] for _, m in got], truth),
            "spearman_class": spearman([LEVEL[m[1]] for _, m in got], truth), "agreement": round(float(np.mean(agree)), 3),
            "agreement_kind": "hard vs not hard" if binary else "3 classes",
            "mix": {d: mix.get(d, 0) for d in LEVEL}, "one_class_over_80": top_share > 0.8}


def truth_level(row: dict) -> int:
    """MATH's level 1-5 where the row has one, else easy 0 / medium 1 / hard 2."""
    return row["level"] if "level" in row else LEVEL[row["difficulty"]]


def score_parts(payload: dict) -> dict[str, np.ndarray]:
    """The pieces of `difficulty_score` for every row with a difficulty and LLM logprobs."""
    rows = [r for r in payload["rows"] if r.get("difficulty") in LEVEL and r["llm"]["p_difficulty"]]
    return {"expected": np.array([expected_difficulty(r["llm"]["p_difficulty"]) for r in rows]),
            "length": np.array([math.log10(1 + r["features"]["words"]) for r in rows]),
            "markers": np.array([math.log2(1 + rubric_markers(r["features"])) for r in rows]),
            "truth_ranks": ranks([truth_level(r) for r in rows])}


def written_class_spearmans(parts: list[dict], scores: list[np.ndarray], cuts) -> list[float] | None:
    """Each set's Spearman of the class its scores get at `cuts`; None when a set has one class over 80%."""
    rhos = []
    for p, score in zip(parts, scores):
        classes = (score >= cuts[0]).astype(int) + (score >= cuts[1])
        if np.bincount(classes, minlength=3).max() > 0.8 * len(classes):
            return None
        rhos.append(rank_correlation(ranks(list(classes)), p["truth_ranks"]))
    return rhos


def choose_difficulty(views: dict[str, dict]) -> dict:
    """The length weight, marker weight and cut points whose written class has the best mean
    Spearman over the difficulty sets, among those that put no more than 80% of any set in one class."""
    parts = [score_parts(views[n]) for n in DIFFICULTY_SETS if n in views]
    grid = []
    for lw, mw in itertools.product(LENGTH_GRID, MARKER_GRID):
        scores = [p["expected"] + lw * p["length"] + mw * p["markers"] for p in parts]
        for cuts in itertools.combinations(CUT_GRID, 2):
            rhos = written_class_spearmans(parts, scores, cuts)
            if rhos is not None:
                grid.append({"length_weight": lw, "marker_weight": mw, "cuts": [float(c) for c in cuts],
                             "mean_class_spearman": round(float(np.mean(rhos)), 4),
                             "class_spearman": [round(r, 3) for r in rhos]})
    grid.sort(key=lambda g: -g["mean_class_spearman"])
    product_form = next((g for g in grid if g["marker_weight"] == 0), None)  # what the ensemble computes: no marker term
    return {"best": grid[0], "best_without_markers": product_form, "top": grid[:10],
            "sets": [n for n in DIFFICULTY_SETS if n in views]}


# ---------------------------------------------------------------- the run


def llm_rate(payload: dict) -> float | None:
    """The LLM's samples/s over the rows this collection read; None when every row was reused from
    another split's file (no LLM time)."""
    read = len(payload["rows"]) - payload.get("reused_rows", 0)
    return round(read / payload["llm_s"], 3) if payload["llm_s"] and read else None


def run(split: str, model: str) -> dict:
    views = load(split, model)
    out = {"split": split, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": common.machine_info(),
           "check_labeler": labeler_constants(checked_labeler(next(iter(views.values()), {}))),
           "sets": {}, "difficulty": {}, "weights": {}, "contextual": {}}
    for name in CATEGORY_SETS:
        if name not in views:
            continue
        payload = views[name]
        checked = ("ensemble-v6", "ensemble") if has_check(payload) else ()  # views collected with --no-check have none
        checked = ("ensemble",) if checked and payload.get("check_top_k") else checked  # only the product's top k asked
        preds = {lab: predictions(payload, lab) for lab in ("embed", "fused", "llm", "ensemble-v5", *checked)}
        rows = {lab: category_scores(payload, p) for lab, p in preds.items()}
        out["sets"][name] = {"taxonomy": payload["taxonomy"], "model": payload["model"], "labelers": rows,
                             "llm_samples_per_s": llm_rate(payload), "paired": paired(payload, preds)}
        rows["ensemble-embed"] = category_scores(payload, predictions(payload, "ensemble-embed"))
        out["sets"][name]["calibration"] = confidence_fit(payload, predictions(payload, "ensemble")) if checked else None
        if split == "dev":
            out["weights"][name] = {str(w): category_scores(payload, predictions(payload, "ensemble", w))["accuracy"]
                                    for w in WEIGHTS}
            if payload.get("content_free"):
                out["contextual"][name] = contextual_grid(payload)
    if split == "dev":
        out["temperature"] = fit_temperature({n: views[n] for n in out["sets"]})
        checked = {n: views[n] for n in out["sets"] if has_check(views[n])}
        if checked:
            out["check_grid"] = check_grid(checked)
            out["top_k"] = top_k_grid(checked)
    for name in DIFFICULTY_SETS:
        if name in views:
            methods = difficulty_methods(views[name]["rows"][0])
            out["difficulty"][name] = {m: difficulty_scores(views[name], m) for m in methods}
    if split == "dev" and out["difficulty"]:
        out["difficulty_choice"] = choose_difficulty(views)
    return out


def labeler_constants(lab) -> dict:
    """The constants a check labeler's column is scored with."""
    return {"name": lab.name, "check_prompt": lab.check_prompt, "fused_weight": lab.fused_weight,
            "check_weight": lab.check_weight, "check_strength": lab.check_strength, "top_k": lab.check_top_k,
            "temperature": lab.temperature}


def without_markers_line(choice: dict) -> str:
    """The best grid point in the form the ensemble labeler computes (no marker term)."""
    g = choice.get("best_without_markers")
    if not g:
        return "No grid point without the marker term passed."
    return (f"Without the marker term (b=0, the form the ensemble labeler computes): a={g['length_weight']}, "
            f"cuts {g['cuts']}, mean {g['mean_class_spearman']:.3f}.")


def paired_lines(sets: dict[str, dict]) -> list[str]:
    """The paired table: each CPU default minus a baseline on the same rows (`ensemble-v5` is `ensemble-nocheck`)."""
    lines = ["", "Paired on the same rows (accuracy minus the baseline's; rows only one of the two got right; "
                 "exact McNemar p; 95% bootstrap CI of the difference):", "",
             "| set | labeler | vs | difference | only it right | only the baseline right | McNemar p | 95% CI |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in sets.items():
        for pair, c in s["paired"].items():
            a, b = pair.split(" vs ")
            lines.append(f"| {name} | {a} | {b} | {c['diff']:+.3f} | {c['only_a_right']} | {c['only_b_right']} | "
                         f"{c['mcnemar_p']:.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |")
    return lines


def markdown(res: dict) -> str:
    c = res["check_labeler"]
    lines = [f"## Labelers from the collected views ({res['split']} split)", "",
             f"- when: {res['when']}; machine: {common.machine_line(res['machine'])}",
             f"- `ensemble`: the views' check labeler, `{c['name']}` (check prompt {c['check_prompt']}): fused weight "
             f"{c['fused_weight']}, temperature {c['temperature']}; difficulty (\"chosen\"): length weight "
             f"{DIFFICULTY_LENGTH_WEIGHT}, cuts {list(DIFFICULTY_CUTS)}", "",
             f"- its yes/no check: weight {c['check_weight']}, content-free offset strength {c['check_strength']}; "
             f"asked of each sample's {c['top_k']} likeliest categories; `ensemble-v6` asks every category, "
             f"`ensemble-v5` is the ensemble before the check (fused weight {ENSEMBLE_FUSED_WEIGHT}, temperature "
             f"{ENSEMBLE_TEMPERATURE})", "",
             "| set | categories | rows | embed | fused | llm | ensemble-v5 | ensemble-v6 | ensemble | ensemble macro-F1 (v5 where no check) | "
             "kappa | LLM x embed only | ensemble mean confidence | ECE | LLM samples/s (under load) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in res["sets"].items():
        lab, cal = s["labelers"], s["calibration"] or {}
        acc = {x: f"{lab[x]['accuracy']:.3f}" if x in lab else "-" for x in COLUMNS}
        best = lab.get("ensemble") or lab["ensemble-v5"]
        lines.append(f"| {name} | {len(s['taxonomy'])} | {best['n']} | " + " | ".join(acc[x] for x in COLUMNS[:-1]) +
                     f" | **{acc['ensemble']}** | {best['macro_f1']:.3f} | {best['kappa']:.3f} | "
                     f"{lab['ensemble-embed']['accuracy']:.3f} | {cal.get('mean_confidence', '-')} | {cal.get('ece', '-')} | "
                     f"{s['llm_samples_per_s'] or 'reused rows'} |")
    means = {x: np.mean(got) if len(got := [s["labelers"][x]["accuracy"] for s in res["sets"].values()
                                             if x in s["labelers"]]) == len(res["sets"]) else None
             for x in COLUMNS + ("ensemble-embed",)}
    lines.append("| mean | | | " + " | ".join("-" if means[x] is None else f"{means[x]:.3f}" for x in COLUMNS) +
                 f" | | | {means['ensemble-embed']:.3f} | | | |")
    lines += paired_lines(res["sets"])
    if res["weights"]:
        lines += ["", "Ensemble accuracy by fused weight (0: the LLM's distribution alone):", "",
                  "| set | " + " | ".join(f"w={w}" for w in WEIGHTS) + " |", "|---|" + "---|" * len(WEIGHTS)]
        for name, ws in res["weights"].items():
            lines.append(f"| {name} | " + " | ".join(f"{ws[str(w)]:.3f}" for w in WEIGHTS) + " |")
        means = [np.mean([ws[str(w)] for ws in res["weights"].values()]) for w in WEIGHTS]
        lines.append("| mean | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    if res.get("check_grid"):
        grid = res["check_grid"]
        sets = grid["sets"]
        lines += ["", "The yes/no check's constants (offset strength s, check weight v, fused weight w): the 15 best "
                      "points by mean accuracy over the sets, and the best without the check (v = 0):", "",
                  "| s | v | w | mean | " + " | ".join(sets) + " |", "|---|---|---|---|" + "---|" * len(sets)]
        for g in grid["top"] + [grid["without_check"]]:
            lines.append(f"| {g['offset_strength']} | {g['check_weight']} | {g['fused_weight']} | {g['mean']:.4f} | "
                         + " | ".join(f"{g['sets'][n]:.3f}" for n in sets) + " |")
    if res.get("top_k"):
        grid = res["top_k"]
        sets = list(next(iter(grid.values()))["sets"])
        lines += ["", "The check asks each sample's k likeliest categories by the other two experts (the others get "
                      "the lowest asked score); the rule: the smallest k whose mean is within "
                      "0.005 of asking every category:", "",
                  "| k | categories asked per sample | mean | " + " | ".join(sets) + " |",
                  "|---|---|---|" + "---|" * len(sets)]
        for k, g in grid.items():
            lines.append(f"| {k} | {g['asked']:.2f} | {g['mean']:.4f} | " + " | ".join(f"{g['sets'][n]:.3f}" for n in sets) + " |")
    if res.get("contextual"):
        cols = list(next(iter(res["contextual"].values())))
        lines += ["", "Contextual calibration (Zhao et al. 2021): the LLM's distribution divided by its mean distribution "
                      "on content-free inputs (bench/views.py CONTENT_FREE) raised to cc, then the product at weight w:", "",
                  "| set | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for name, grid in res["contextual"].items():
            lines.append(f"| {name} | " + " | ".join(f"{grid[c]:.3f}" for c in cols) + " |")
        lines.append("| mean | " + " | ".join(f"{np.mean([g[c] for g in res['contextual'].values()]):.3f}" for c in cols) + " |")
    lines += ["", "Spearman of the score ranks samples by the method's number; Spearman of the class by the "
                  "easy/medium/hard it writes (what a labels file holds).", "",
              "| difficulty set | method | rows | Spearman (score) | Spearman (class) | agreement | mix easy/medium/hard | one class > 80% |",
              "|---|---|---|---|---|---|---|---|"]
    for name, methods in res["difficulty"].items():
        for m, d in methods.items():
            if d:
                mix = "/".join(str(d["mix"][k]) for k in LEVEL)
                lines.append(f"| {name} | {m} | {d['n']} | {d['spearman']:.3f} | {d['spearman_class']:.3f} | {d['agreement']:.3f} ({d['agreement_kind']}) | "
                             f"{mix} | {'**yes**' if d['one_class_over_80'] else 'no'} |")
    if res.get("temperature"):
        lines += ["", f"Confidence temperature with the least NLL over the dev sets: {res['temperature']['best']}"]
    if res.get("difficulty_choice"):
        best = res["difficulty_choice"]["best"]
        lines += ["", "Difficulty score `expected + a log10(1 + words) + b log2(1 + markers)`, cut at two points: "
                      f"the grid's best mean Spearman of the written class over {res['difficulty_choice']['sets']} "
                      f"(no set with one class over 80%): a={best['length_weight']}, b={best['marker_weight']}, "
                      f"cuts {best['cuts']}. {without_markers_line(res['difficulty_choice'])} The ten best:", "",
                  "| a (length) | b (markers) | cuts | mean class Spearman | per set |", "|---|---|---|---|---|"]
        for g in res["difficulty_choice"]["top"]:
            lines.append(f"| {g['length_weight']} | {g['marker_weight']} | {g['cuts']} | {g['mean_class_spearman']:.3f} | "
                         f"{g['class_spearman']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test"], required=True)
    p.add_argument("--model", default=CPU_DEFAULT_VIEWS,
                   help="whose views: a folder bench/views.py wrote (default: the CPU default's model, sample cut "
                        "and label prompt; 'qwen2.5-coder-1.5b' is label-v1's at 1536 tokens)")
    args = p.parse_args(argv)
    res = run(args.split, args.model)
    text = markdown(res)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = [f"choose-{args.model}-{args.split}-{stamp}"]
    if args.model == CPU_DEFAULT_VIEWS and all(s["calibration"] for s in res["sets"].values()):
        names.append(f"choose-{args.split}-latest")  # the CPU default's full table; other models' runs, and views
        # without the check (`bench.views --no-check`), keep only their stamped files
    common.write_named(names, res, text)
    print(text)


if __name__ == "__main__":
    main()
