"""Speed bench: samples/s and output tokens/s of labeling, side by side in one run.

vLLM batch vs the transformers engine; constrained (JSON schema) vs unconstrained
generation on the same prompts; cold (engine load + first run) vs warm (second run).

Example:
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python -m bench.speed \\
    --data ../shared/data/arena_hard_v2_questions.jsonl --text-field prompt --limit 64 \\
    --taxonomy coding,math,creative_writing
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from offline_cov.data.readers import FieldSpec, read_samples
from offline_cov.engines import GenRequest, open_engine
from offline_cov.labelers.base import LabelSettings
from offline_cov.labelers.llm import LLMLabeler
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.taxonomy import parse_taxonomy_list

from . import common
from .data import LabeledRow, subsample, write_dataset
from .report import speed_markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_data_args(parser, label_required=False)
    common.add_model_args(parser)
    parser.set_defaults(limit=64, taxonomy="coding,math,creative_writing")
    parser.add_argument("--engines", default="vllm,transformers", help="Engines to time, in order")
    parser.add_argument("--transformers-limit", type=int, default=None,
                        help="Time the (slow, one-at-a-time) transformers engine on only the first N samples")
    return parser


def load_texts(path: str, text_field: str, limit: int | None, seed: int) -> list[LabeledRow]:
    import json

    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line) if line.strip() else {}
            text = record.get(text_field)
            if isinstance(text, str) and text.strip():
                rows.append(LabeledRow(i, text, ""))
    return subsample(rows, limit, seed)


def rate(name: str, samples: int, seconds: float, output_tokens: int, **extra) -> dict:
    """One line of the table."""
    return {
        "name": name, "samples": samples, "seconds": seconds,
        "samples_per_s": samples / seconds if seconds else 0.0, "output_tokens": output_tokens,
        "output_tokens_per_s": output_tokens / seconds if seconds else 0.0, **extra,
    }


def analyze_run(name: str, engine, path: Path, opts: AnalyzeOptions, extra_s: float = 0.0) -> dict:
    """Time one `analyze` on an open engine; `extra_s` (engine load) is added for cold runs."""
    started = time.perf_counter()
    result = analyze(path, opts, engine=engine)
    seconds = time.perf_counter() - started + extra_s
    meta = result.metadata
    return rate(name, meta["samples"]["analyzed"], seconds, meta.get("output_tokens", 0),
                valid_labels=meta["samples"]["labeled"], label_s=meta["timings"].get("label_s"),
                engine_load_s=extra_s if extra_s else None)


def constraint_runs(engine, path: Path, opts: AnalyzeOptions) -> list[dict]:
    """The same label prompts generated with and without the JSON schema, on a warm engine."""
    samples = read_samples(path, opts.fields).samples
    labeler = LLMLabeler(engine, opts.taxonomy, opts.label)
    requests = [labeler.request(s)[0] for s in samples]
    runs = []
    for name, reqs in (
        (f"{engine.name} constrained (schema)", requests),
        (f"{engine.name} unconstrained (no schema)", [GenRequest(r.messages, None, r.max_tokens) for r in requests]),
    ):
        started = time.perf_counter()
        results = engine.generate(reqs)
        seconds = time.perf_counter() - started
        valid = sum(_parses(labeler, s.index, r) for s, r in zip(samples, results))
        stopped = sum(r.finish_reason == "stop" for r in results)
        runs.append(rate(name, len(reqs), seconds, sum(r.output_tokens for r in results),
                         valid_labels=valid, finished_by_stop=stopped))
    return runs


def _parses(labeler: LLMLabeler, index: int, result) -> bool:
    """Whether an answer is a usable label. Free text may be JSON that is not an object at all."""
    try:
        return labeler.parse(index, result) is not None
    except (AttributeError, TypeError):
        return False


def time_engine(name: str, args, first: Path, second: Path | None, opts: AnalyzeOptions) -> tuple[list[dict], dict]:
    """Cold and warm analyze runs of one engine (plus repeat and constraint runs for vLLM).

    cold: engine load + a first run on set A. run only: the same first run without the load.
    warm: a run on set B (new prompts) with the engine loaded. repeat: set A again, its prompts
    already in vLLM's prefix cache. The constraint runs use set B's prompts (cached for both).
    """
    print(f"[speed {time.strftime('%H:%M:%S')}] {name}: loading", file=sys.stderr, flush=True)
    started = time.perf_counter()
    engine = open_engine(name, args.model, args.seed)
    load_s = time.perf_counter() - started
    try:
        cold = analyze_run(f"{name} cold (load + first run, set A)", engine, first, opts, extra_s=load_s)
        only = rate(f"{name} first run only (set A, load excluded)", cold["samples"], cold["seconds"] - load_s,
                    cold["output_tokens"], valid_labels=cold["valid_labels"])
        runs = [cold, only]
        if name != "transformers" and second is not None:
            runs.append(analyze_run(f"{name} warm (loaded, new prompts, set B)", engine, second, opts))
            runs.append(analyze_run(f"{name} repeat (set A again, prefix-cached)", engine, first, opts))
            runs += constraint_runs(engine, second, opts)
        return runs, {"engine": engine.info(), "model": engine.model_name, "load_s": round(load_s, 2)}
    finally:
        engine.close()


def ratios(runs: list[dict]) -> dict:
    by = {r["name"]: r for r in runs}

    def ratio(a: str, b: str, key: str = "samples_per_s"):
        ra = next((r for n, r in by.items() if n.startswith(a)), None)
        rb = next((r for n, r in by.items() if n.startswith(b)), None)
        return ra[key] / rb[key] if ra and rb and rb[key] else None

    found = {
        "vllm vs transformers, first run only (load excluded), samples/s":
            ratio("vllm first run only", "transformers first run only"),
        "vllm warm vs transformers first run only, samples/s": ratio("vllm warm", "transformers first run only"),
        "vllm cold vs transformers cold (both include load), samples/s": ratio("vllm cold", "transformers cold"),
        "vllm warm vs vllm cold, samples/s": ratio("vllm warm", "vllm cold"),
        "vllm repeat (prefix-cached) vs warm, samples/s": ratio("vllm repeat", "vllm warm"),
        "constrained vs unconstrained, samples/s": ratio("vllm constrained", "vllm unconstrained"),
        "constrained vs unconstrained, output tokens/s":
            ratio("vllm constrained", "vllm unconstrained", "output_tokens_per_s"),
    }
    return {k: v for k, v in found.items() if v is not None}


def run(args) -> dict:
    common.set_bench_env()
    both = load_texts(args.data, args.text_field, 2 * args.limit, args.seed)
    rows, rows_b = both[0::2], both[1::2]
    taxonomy = parse_taxonomy_list(args.taxonomy)
    opts = AnalyzeOptions(**common.no_label_cache(
        taxonomy=taxonomy, model=args.model, seed=args.seed,
        fields=FieldSpec(instruction="instruction"), label=LabelSettings(batch_size=args.batch_size)))
    runs, engines, notes = [], {}, []
    with tempfile.TemporaryDirectory(prefix="offline-cov-speed-") as tmp:
        path = write_dataset(rows, Path(tmp) / "speed-a.jsonl")
        path_b = write_dataset(rows_b, Path(tmp) / "speed-b.jsonl") if rows_b else None
        for name in [e for e in args.engines.split(",") if e]:
            engine_path = path
            if name == "transformers" and args.transformers_limit and args.transformers_limit < len(rows):
                engine_path = write_dataset(rows[: args.transformers_limit], Path(tmp) / "speed-tf.jsonl")
                notes.append(f"transformers timed on the first {args.transformers_limit} of {len(rows)} samples")
            try:
                engine_runs, engines[name] = time_engine(name, args, engine_path, path_b, opts)
            except Exception as exc:  # a missing engine is a result, the others still run
                notes.append(f"{name}: could not run ({type(exc).__name__}: {exc})")
                print(notes[-1], file=sys.stderr)
                continue
            runs += engine_runs
    main_engine = engines.get("vllm") or next(iter(engines.values()), {})
    return {
        "bench": "speed", "when": common.now_iso(), "machine": common.machine_info(),
        "versions": common.versions(), "model": main_engine.get("model", args.model),
        "engine": main_engine.get("engine", {}), "engines": engines, "command": sys.argv,
        "data": str(args.data), "n_samples": len(rows), "taxonomy": taxonomy.names,
        "max_tokens": opts.label.max_tokens, "batch_size": args.batch_size,
        "runs": runs, "ratios": ratios(runs), "notes": notes,
    }


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("speed", build_parser(), run, speed_markdown, argv)


if __name__ == "__main__":
    main()
