"""Accuracy bench: labels vs a labeled file, coverage reports vs mixtures of known composition,
an optional frontier-API baseline, and the per-sample vs card strategies.

Example:
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python -m bench.accuracy \\
    --data ../shared/data/arena_hard_v2_questions.jsonl --label-field subcategory --text-field prompt \\
    --taxonomy coding,math,creative_writing --limit 150
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from offline_cov.data.readers import FieldSpec
from offline_cov.engines import open_engine
from offline_cov.errors import OfflineCovError
from offline_cov.labelers.base import LabelSettings
from offline_cov.metrics import FAILED, coverage_errors, label_metrics
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.report.tally import Thresholds
from offline_cov.taxonomy import Taxonomy, parse_taxonomy_list

from . import common
from .data import (
    LabeledRow,
    build_mixture,
    default_mixtures,
    feasible_size,
    keep_taxonomy,
    load_labeled,
    parse_label_map,
    subsample,
    true_report,
    write_dataset,
)
from .report import accuracy_markdown

DIFFICULTIES = ["easy", "medium", "hard"]
DEFAULT_BASELINE_CACHE = Path(__file__).resolve().parent / "baseline_cache.jsonl"
NO_BASELINE = (
    "No frontier baseline: no --api-base given and no cached baseline at {path}. "
    "Pass --api-base URL --api-model NAME (this sends the samples to that endpoint) "
    "or --baseline-cache FILE with answers cached by an earlier run."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_data_args(parser)
    common.add_model_args(parser)
    parser.add_argument("--engine", default="vllm", help="vllm, transformers or fake (unit tests)")
    parser.add_argument("--difficulty-field", default=None, help="Field with easy/medium/hard, if the file has one")
    parser.add_argument("--mixtures", default="all", help="Comma-separated mixture names, 'all', or 'none'")
    parser.add_argument("--mixture-size", type=int, default=100, help="Samples per mixture")
    parser.add_argument("--mixture-pool", choices=["sample", "all"], default="sample",
                        help="Draw mixtures from the --limit sample (reuses its prompts) or from every labeled row")
    parser.add_argument("--strategies", default="per-sample,card", help="Strategies run on each mixture")
    parser.add_argument("--api-base", default=None, help="OpenAI-compatible endpoint; only then is anything sent")
    parser.add_argument("--api-model", default=None, help="Model at the endpoint (env OFFLINE_COV_API_MODEL)")
    parser.add_argument("--baseline-cache", default=None,
                        help=f"JSONL answer cache of the baseline (default {DEFAULT_BASELINE_CACHE})")
    return parser


def _taxonomy(args, rows: list[LabeledRow]) -> Taxonomy:
    if args.taxonomy:
        return parse_taxonomy_list(args.taxonomy)
    return parse_taxonomy_list(",".join(sorted({r.label for r in rows})))


def _options(args, taxonomy: Taxonomy, strategy: str = "per-sample") -> AnalyzeOptions:
    return AnalyzeOptions(**common.no_label_cache(
        taxonomy=taxonomy, model=args.model, engine=args.engine, seed=args.seed, strategy=strategy,
        fields=FieldSpec(instruction="instruction"), label=LabelSettings(batch_size=args.batch_size),
        thresholds=Thresholds(),
    ))


# ---------------------------------------------------------------- labeling accuracy


def without_text(report) -> dict:
    """A report without its example snippets: results files carry no text of the labeled data."""
    return report.model_dump(exclude={"categories": {"__all__": {"representative_example"}}})


def predictions(rows: list[LabeledRow], result) -> list[dict]:
    """One record per row: truth, the model's primary and all categories, difficulty; FAILED if unlabeled."""
    by_index = {lab.index: lab for lab in result.labels}
    out = []
    for i, r in enumerate(rows):
        lab = by_index.get(i)
        out.append({
            "index": i, "row": r.row, "true": r.label, "true_difficulty": r.difficulty,
            "predicted": lab.categories[0] if lab else FAILED,
            "predicted_all": list(lab.categories) if lab else [],
            "predicted_difficulty": lab.difficulty if lab else FAILED,
        })
    return out


def score_predictions(preds: list[dict], names: list[str]) -> dict:
    """Label metrics of the primary category, any-of-the-categories hit rate, and difficulty agreement."""
    y_true = [p["true"] for p in preds]
    metrics = label_metrics(y_true, [p["predicted"] for p in preds], names)
    metrics["labeled"] = sum(p["predicted"] != FAILED for p in preds)
    metrics["any_category_hit_rate"] = sum(p["true"] in p["predicted_all"] for p in preds) / len(preds) if preds else 0.0
    with_diff = [p for p in preds if p["true_difficulty"] in DIFFICULTIES]
    if with_diff:
        metrics["difficulty"] = label_metrics(
            [p["true_difficulty"] for p in with_diff], [p["predicted_difficulty"] for p in with_diff], DIFFICULTIES
        )
        steps = [_difficulty_steps(p) for p in with_diff]
        metrics["difficulty"]["within_one_step"] = sum(s is not None and s <= 1 for s in steps) / len(steps)
    return metrics


def _difficulty_steps(pred: dict) -> int | None:
    if pred["predicted_difficulty"] not in DIFFICULTIES:
        return None
    return abs(DIFFICULTIES.index(pred["true_difficulty"]) - DIFFICULTIES.index(pred["predicted_difficulty"]))


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def label_run(engine, rows, taxonomy, args, workdir: Path, name: str) -> dict:
    """Analyze the rows with `engine`; return its predictions, metrics and timings."""
    path = write_dataset(rows, workdir / f"{name}.jsonl")
    say(f"{name}: {len(rows)} samples with {engine.model_name} ({engine.name})")
    result = analyze(path, _options(args, taxonomy), engine=engine)
    preds = predictions(rows, result)
    return {
        "engine": engine.info(), "model": engine.model_name,
        "metrics": score_predictions(preds, taxonomy.names),
        "timings": result.metadata["timings"], "output_tokens": result.metadata.get("output_tokens"),
        "samples": preds,
    }


def agreement(local: list[dict], other: list[dict], names: list[str]) -> dict:
    """Local vs baseline primary labels, on the samples both labeled."""
    both = [(a["predicted"], b["predicted"]) for a, b in zip(local, other) if FAILED not in (a["predicted"], b["predicted"])]
    metrics = label_metrics([b for _, b in both], [a for a, _ in both], names)
    return {"n_both_labeled": len(both), "accuracy": metrics["accuracy"], "kappa": metrics["kappa"],
            "confusion_baseline_rows_local_cols": metrics["confusion"]}


# ---------------------------------------------------------------- frontier baseline


def open_baseline(args):
    """An OpenAIEngine that sends (with --api-base), reads a cache only, or None with a reason."""
    from offline_cov.engines.openai_engine import OpenAIEngine

    cache = Path(args.baseline_cache) if args.baseline_cache else DEFAULT_BASELINE_CACHE
    if args.api_base:
        return OpenAIEngine(base_url=args.api_base, model=args.api_model, cache_path=cache), None
    if not cache.exists():
        return None, NO_BASELINE.format(path=cache)
    try:
        return OpenAIEngine(model=args.api_model, cache_path=cache, offline=True), None
    except OfflineCovError as exc:
        return None, f"No frontier baseline: cache {cache} is not usable ({exc}); pass --api-model"


def baseline_run(args, rows, taxonomy, local: dict, workdir: Path) -> dict:
    engine, reason = open_baseline(args)
    if engine is None:
        print(reason, file=sys.stderr)
        return {"available": False, "reason": reason}
    run = label_run(engine, rows, taxonomy, args, workdir, "baseline")
    run["available"] = True
    run["agreement_with_local"] = agreement(local["samples"], run["samples"], taxonomy.names)
    if engine.offline and engine.cache_misses:
        run["note"] = f"{engine.cache_misses} request(s) not in the cache were left unlabeled (offline)"
    return run


# ---------------------------------------------------------------- coverage


def coverage_runs(engine, pool, taxonomy, args, workdir: Path) -> list[dict]:
    """Each mixture analyzed with each strategy, compared with its true report."""
    mixtures = default_mixtures(taxonomy.names)
    wanted = list(mixtures) if args.mixtures == "all" else [] if args.mixtures == "none" else args.mixtures.split(",")
    strategies = [s for s in args.strategies.split(",") if s]
    runs = []
    for i, name in enumerate(wanted):
        if name not in mixtures:
            raise SystemExit(f"unknown mixture {name!r}. Available: {', '.join(mixtures)}")
        size = feasible_size(pool, mixtures[name], args.mixture_size)
        if size < args.mixture_size:
            print(f"mixture {name}: the pool supplies only {size} of {args.mixture_size} samples", file=sys.stderr)
        rows = build_mixture(pool, mixtures[name], size, args.seed + i)
        path = write_dataset(rows, workdir / f"mixture-{name}.jsonl")
        truth = true_report(rows, path, taxonomy)
        for strategy in strategies:
            runs.append(_coverage_one(engine, path, truth, name, mixtures[name], strategy, taxonomy, args))
    return runs


def _coverage_one(engine, path, truth, name, composition, strategy, taxonomy, args) -> dict:
    base = {"mixture": name, "strategy": strategy, "composition": composition,
            "true_report": without_text(truth)}
    started = time.perf_counter()
    say(f"mixture {name}, strategy {strategy}")
    try:
        result = analyze(path, _options(args, taxonomy, strategy), engine=engine)
    except (NotImplementedError, ImportError) as exc:
        return {**base, "status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # a strategy that fails is a result to report, not a crash
        return {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {
        **base, "status": "ok", "seconds": round(time.perf_counter() - started, 2),
        "analyzed": result.report.total_samples_analyzed,
        "report": without_text(result.report), "errors": coverage_errors(truth, result.report),
        "warnings": result.metadata.get("warnings", []),
    }


# ---------------------------------------------------------------- main


def run(args) -> dict:
    """The whole accuracy bench; returns the results payload (also written to --out-dir)."""
    common.set_bench_env()
    rows = load_labeled(args.data, args.text_field, args.label_field,
                        difficulty_field=args.difficulty_field, label_map=parse_label_map(args.label_map))
    taxonomy = _taxonomy(args, rows)
    pool, dropped = keep_taxonomy(rows, taxonomy)
    if not pool:
        raise SystemExit(f"no rows of {args.data} have a label in the taxonomy {taxonomy.names}; see --label-map")
    sample = subsample(pool, args.limit, args.seed)
    started = time.perf_counter()
    engine = open_engine(args.engine, args.model, args.seed)
    load_s = round(time.perf_counter() - started, 2)
    try:
        with tempfile.TemporaryDirectory(prefix="offline-cov-bench-") as tmp:
            workdir = Path(tmp)
            local = label_run(engine, sample, taxonomy, args, workdir, "labeling")
            mixture_pool = sample if args.mixture_pool == "sample" else pool
            coverage = coverage_runs(engine, mixture_pool, taxonomy, args, workdir)
            baseline = baseline_run(args, sample, taxonomy, local, workdir)
        engine_info = engine.info()
    finally:
        engine.close()
    return {
        "bench": "accuracy", "when": common.now_iso(), "machine": common.machine_info(),
        "versions": common.versions(), "model": engine.model_name, "engine": engine_info,
        "engine_load_s": load_s, "command": sys.argv,
        "data": {"path": str(args.data), "label_field": args.label_field, "text_field": args.text_field,
                 "label_map": parse_label_map(args.label_map), "rows_with_label": len(rows),
                 "rows_in_taxonomy": len(pool), "dropped_labels": dropped, "limit": args.limit, "seed": args.seed},
        "taxonomy": taxonomy.names,
        "labeling": local, "baseline": baseline, "coverage": coverage,
    }


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("accuracy", build_parser(), run, accuracy_markdown, argv)


if __name__ == "__main__":
    main()
